// dit_ssbs.S: PSTATE.DIT and PSTATE.SSBS (facts §8) through their MSR/MRS forms, exception
// entry (SVC, HVC) and ERET, with the MMU on (see selfcheck.S).
//
// §8: DIT is SPSR bit 24, SSBS bit 12; both are writable at EL0 (MSR immediate and register
// forms, `mrs xN, dit|ssbs` reading the bit in place). AArch64.TakeException saves them in
// SPSR_ELx, leaves DIT as it was and sets SSBS from SCTLR_ELx.DSSBS (bit 44) of the target EL;
// ERET (SetPSTATEFromPSR) loads both from SPSR. QEMU 7.2 clears DIT on entry: the
// dit_kept_on_* checks fail there (harness.selftest.QEMU_KNOWN_DEVIATIONS).

    .include "selfcheck.S"

    .equ    BOTH,  (PSR_DIT_BIT | PSR_SSBS_BIT)
    .equ    EL1H,  (PSR_MODE_EL1h | PSR_DAIF)
    .equ    NEEDS, (FEAT_DIT | FEAT_SSBS)

    .text
    .global _start
_start:
    selfcheck_boot
    bl      t_msr_el2
    bl      t_el0_svc
    bl      t_el0_svc_dit_kept
    bl      t_el0_svc_dssbs
    bl      t_el1_hvc
    bl      t_el1_hvc_dit_kept
    bl      t_el1_hvc_dssbs
    bl      t_eret_loads_spsr
    bl      t_undefined_without_dit
    selfcheck_done

// MSR (immediate and register) and MRS at EL2: each bit in place, the rest RES0.
t_msr_el2:
    check_begin dit_ssbs_msr_mrs_el2, NEEDS
    run_el2 k_msr_imm
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    expect  dit_after_msr_1, x19, PSR_DIT_BIT
    expect  ssbs_after_msr_1, x20, PSR_SSBS_BIT
    expect  dit_after_msr_0, x21, 0
    expect  ssbs_after_msr_0, x22, 0
    ldr     x0, =BOTH
    run_el2 k_msr_reg
    expect  both_after_msr_reg, x0, BOTH
    check_end

// EL0 sets both (writable there), SVC to EL1: SPSR keeps them, SSBS = SCTLR_EL1.DSSBS (0),
// the ERET gives them back.
t_el0_svc:
    check_begin dit_ssbs_el0_svc_spsr_eret, NEEDS
    ldr     x0, =BOTH
    run_lower PSR_MODE_EL0t, u_dit_ssbs
    mov     x19, x0
    mov     x20, x1
    expect  read_back_at_el0, x20, BOTH
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec_mask spsr, BOTH, BOTH              // §8: SPSR bits 24 and 12
    expect_rec ssbs, 0                            // §8: SCTLR_EL1.DSSBS = 0
    expect  after_eret, x19, BOTH                 // §2: restored from SPSR_EL1
    check_end

// The same entry: DIT is not assigned by AArch64.TakeException (QEMU 7.2 clears it).
t_el0_svc_dit_kept:
    check_begin dit_kept_on_svc_entry, NEEDS
    ldr     x0, =BOTH
    run_lower PSR_MODE_EL0t, u_dit_ssbs
    expect_rec dit, 1
    check_end

// SCTLR_EL1.DSSBS = 1: the SVC handler runs with SSBS = 1 although EL0 had SSBS = 0.
t_el0_svc_dssbs:
    check_begin ssbs_from_sctlr_el1_dssbs, NEEDS
    set_sysreg sctlr_el1, (SCTLR_EL1_BASE | SCTLR_ELx_M | SCTLR_ELx_DSSBS)
    mov     x0, #0
    run_lower PSR_MODE_EL0t, u_dit_ssbs
    mov     x19, x0
    expect_rec ssbs, 1                            // §8: SSBS = SCTLR_EL1.DSSBS
    expect_rec_mask spsr, BOTH, 0
    expect_rec dit, 0
    expect  after_eret, x19, 0
    check_end

// EL1 sets both, HVC to EL2: SPSR_EL2 keeps them, SSBS = SCTLR_EL2.DSSBS (0).
t_el1_hvc:
    check_begin dit_ssbs_el1_hvc_spsr_eret, NEEDS
    ldr     x0, =BOTH
    run_lower EL1H, k_dit_ssbs_hvc
    mov     x19, x0
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec_mask spsr, BOTH, BOTH
    expect_rec ssbs, 0                            // §8: SCTLR_EL2.DSSBS = 0
    expect  after_eret, x19, BOTH
    check_end

t_el1_hvc_dit_kept:
    check_begin dit_kept_on_hvc_entry, NEEDS
    ldr     x0, =BOTH
    run_lower EL1H, k_dit_ssbs_hvc
    expect_rec dit, 1
    check_end

// SCTLR_EL2.DSSBS = 1 (its E2H=0 layout has the bit too): HVC entry sets SSBS.
t_el1_hvc_dssbs:
    check_begin ssbs_from_sctlr_el2_dssbs, NEEDS
    set_sysreg sctlr_el2, (SCTLR_EL2_BASE | SCTLR_ELx_M | SCTLR_ELx_DSSBS)
    ldr     x0, =PSR_DIT_BIT
    run_lower EL1H, k_dit_ssbs_hvc
    mov     x19, x0
    expect_rec ssbs, 1
    expect_rec_mask spsr, BOTH, PSR_DIT_BIT
    expect  after_eret, x19, PSR_DIT_BIT          // SSBS back to SPSR's 0
    check_end

// ERET loads DIT and SSBS from SPSR: the handler flips both bits of SPSR_EL1.
t_eret_loads_spsr:
    check_begin dit_ssbs_eret_loads_spsr, NEEDS
    set_spsr_xor BOTH
    mov     x0, #0
    run_lower PSR_MODE_EL0t, u_dit_ssbs
    mov     x19, x0
    expect_rec_mask spsr, BOTH, 0
    expect  after_eret, x19, BOTH
    check_end

// Without FEAT_DIT (a v8.0 CPU) the DIT forms are UNDEFINED (C6.2.195 MSR (immediate)).
t_undefined_without_dit:
    check_begin msr_mrs_dit_undefined_without_feat_dit, NEEDS_NO_DIT
    run_lower EL1H, k_msr_dit_undef
    expect_rec count, 2                           // the handler returns past each one
    expect_rec el, CURRENTEL_EL1
    expect_rec esr, 0x02000000                    // EC 0x00 (unknown reason), IL=1
    check_end

k_msr_dit_undef:
    msr     dit, #1
    mrs     x0, dit
    ret

k_msr_imm:
    msr     dit, #1
    mrs     x0, dit
    msr     ssbs, #1
    mrs     x1, ssbs
    msr     dit, #0
    mrs     x2, dit
    msr     ssbs, #0
    mrs     x3, ssbs
    ret

k_msr_reg:
    msr     dit, x0
    msr     ssbs, x0
    mrs     x0, dit
    mrs     x1, ssbs
    orr     x0, x0, x1
    ret

k_dit_ssbs_hvc:
    dit_ssbs_probe hvc, 0x12

    selfcheck_lib
