// Every form keystone 0.9.2 gets wrong or rejects (facts §7), plus the GNU-as dialect
// kernel sources use.  tests/test_asm_gnu.py assembles it with the harness and with
// aarch64-linux-gnu-as and compares every byte.
#include "hostile_defs.h"
#include "hostile_defs.h"		/* twice: the include guard must hold */

#ifndef VARIANT
#define VARIANT 1
#endif

	.equ	STACK_SIZE, 0x100
	KIMAGE_OFFSET = 0x80000
	.set	FLAGS, (STACK_SIZE | 3) & ~1

	.text
	.global	_start
	.type	_start, %function
_start:
	// PSTATE fields keystone rejects
	msr	pan, #1
	msr	pan, #0
	msr	uao, #1
	msr	uao, #0
	mrs	x0, pan
	mrs	x1, uao
	msr	pan, x2
	msr	uao, x3
	// registers keystone does not know: VHE aliases and EL2 additions
	mrs	x4, sctlr_el12
	msr	spsr_el12, x5
	mrs	x6, elr_el12
	msr	vbar_el12, x7
	mrs	x8, cntv_ctl_el02
	msr	ttbr1_el2, x9
	mrs	x10, contextidr_el2
	mrs	x11, s3_0_c4_c2_3	// the generic name of PAN
	MRS	X12, CurrentEL
	msr	daifset, #0xf
	msr	daifclr, #(1 | 2)
	msr	spsel, #1
	// HINT space: RAS, speculation barriers, PAC, BTI
	esb
	csdb
	ssbb
	pssbb
	paciasp
	autiasp
	bti	c
	hint	#0x22
	psb	csync
	isb
	dsb	ish
	dmb	ishst
	dsb	#12
	tlbi	vmalls12e1is
	// .inst is emitted, never dropped; one line, several words
	.inst	0xd500419f
	.inst	0xd503201f, 0xd503201f
	SET_PSTATE_PAN(PSTATE_PAN_IMM)
	SET_PSTATE_UAO(0)
	// decimal immediates stay decimal
	mov	x1, #10
	add	x2, x2, #100
	ldr	x3, [x1, #16]
	mov	x4, #STACK_SIZE
	mov	x5, #FLAGS
	mov	x6, #(2 + 3) * 4
	movz	x7, #0x1234, lsl #16
	movk	x7, #KIMAGE_OFFSET >> 16, lsl #32
	and	x8, x8, #~SCTLR_EL1_SPAN
	// ';' separates statements
	nop ; nop;nop
	/* a block comment ; with a separator in it */ nop
	/* a block comment
	   over lines */
	// numeric local labels, forwards and backwards, reused
1:	subs	x0, x0, #1
	b.ne	1b
	cbz	x0, 1f
	b	2f
1:	nop
2:	tbnz	x1, #3, 1b
	tbz	w1, #31, 2b
	b	.
	adr	x9, . + 8
	// literal pools: constants, symbols, shared entries, 4- and 8-byte pools
	ldr	x0, =0x84000008
	ldr	w1, =0x12345
	ldr	x2, =far_data
	ldr	x3, =far_data + 8
	ldr	x4, =0x84000008
	ldr	x5, =_start
	// adrp and :lo12: in add and in loads/stores (keystone aborts on these)
	adrp	x6, far_data
	add	x6, x6, :lo12:far_data
	adrp	x7, far_data
	ldr	x8, [x7, #:lo12:far_data]
	str	x8, [x7, :lo12:far_data + 8]
	ldrb	w9, [x7, #:lo12:bytes]
	// unprivileged loads and stores (capstone 5 cannot decode some)
	ldtr	x1, [x0]
	sttr	x1, [x0]
	ldtr	x0, [x0, #8]
	ldtrb	w2, [x3]
	sttrh	w2, [x3, #2]
	// C-style and GNU-as macros
	PAIR(x29, x30)
	save_x	x19, tmp=x1
	save_x	x20, 16, x2
	count_down x3
	count_down x4, 5
	sum	x5, 1, 2, 3, 4
	.rept	2
	nop
	.endr
	.irp	r, x10, x11
	mov	\r, xzr
	.endr
#if VARIANT == 1 && defined(BIT)
	mov	x0, #1
#elif VARIANT == 2
	mov	x0, #2
#else
	mov	x0, #3
#endif
	.if	STACK_SIZE > 0x80
	mov	x1, #1
	.else
	mov	x1, #0
	.endif
vcpu	.req	x0
	ldr	x2, [vcpu, #8]
	.unreq	vcpu
	// kernel alternatives, both forms
	ALTERNATIVE(nop, SET_PSTATE_PAN(1), ARM64_HAS_PAN)
alternative_if ARM64_HAS_UAO
	SET_PSTATE_UAO(1)
	nop
alternative_else
	nop
	nop
alternative_endif
alternative_if_not ARM64_HAS_VIRT_HOST_EXTN
	hvc	#0
alternative_else_nop_endif
	eret
	hvc	#0
	svc	#0
	smc	#0
	brk	#0x800
	udf	#0x12
	ret
	.size	_start, . - _start
	.ltorg

	// data in a code section, then code again
table:
	.quad	_start, far_data - _start, 0x1122334455667788
	.xword	-1
	.long	0xdeadbeef, table - _start
	.word	7
	.hword	0x1234, -2
	.short	5
	.byte	1, 2, 0xff, 'A'
	.balign	8
	.ascii	"ab\tc"
	.asciz	"str\"q\\"
	.string	"x\101\x42"
	.balign	16
	.space	3
	.skip	2, 0xaa
	.zero	3
	.fill	2, 4, 0x11223344
	.balign	8, 0xcc
	.p2align 3
after_data:
	ret

	.pushsection .rodata.hostile, "a"
ro_value:
	.quad	0xfeedface
	.popsection
	nop

	.section .data
	.balign	16
far_data:
	.quad	0x0102030405060708, after_data
bytes:
	.byte	9, 8, 7
	.previous
	ldr	x0, =ro_value		// back in .text: its own pool at the end
	ret

	.bss
	.balign	8
bss_space:
	.space	64
