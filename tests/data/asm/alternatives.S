/* Kernel alternatives in both spellings; tests/test_asm_layout.py checks both CPU models. */
#define SET_PSTATE_PAN(x)	.inst (0xd500401f | (0 << 16) | (4 << 5) | ((!!(x)) << 8))
#define SET_PSTATE_UAO(x)	.inst (0xd500401f | (0 << 16) | (3 << 5) | ((!!(x)) << 8))

	.text
_start:
pan_alt:
	ALTERNATIVE(nop, SET_PSTATE_PAN(1), ARM64_HAS_PAN)
uao_alt:
alternative_if ARM64_HAS_UAO
	SET_PSTATE_UAO(1)
	mrs	x0, uao
alternative_else
	nop
	mrs	x0, currentel
alternative_endif
vhe_alt:
alternative_if_not ARM64_HAS_VIRT_HOST_EXTN
	hvc	#0
	b	1f
alternative_else_nop_endif
config_alt:
	ALTERNATIVE(nop, SET_PSTATE_PAN(0), ARM64_HAS_PAN, CONFIG_ARM64_PAN)
1:
after:
	ret
