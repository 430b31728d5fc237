// hyp-init.S: arch/arm64/kvm/hyp-init.S (__kvm_hyp_init / __do_hyp_init) and
// __init_stage2_translation (hyp/s2-setup.c). Non-VHE only: the hyp's own MMU, vectors and
// stack at EL2. x0 = where the host resumes at EL1 (the hyp-stub's ERET).

    .section .hyp.text, "ax"
__kvm_hyp_init:
    mov     x19, x0
    ldr     x1, =hyp_pg_l1
    msr     ttbr0_el2, x1
    ldr     x1, =TCR_VALUE                  // RES1 bits 23 and 31 of the E2H=0 TCR_EL2 included
    msr     tcr_el2, x1
    ldr     x1, =MAIR_VALUE
    msr     mair_el2, x1
    bl      __init_stage2_translation
    isb
    ldr     x1, =(SCTLR_EL2_BASE | SCTLR_ELx_M)
    msr     sctlr_el2, x1
    isb
    ldr     x1, =__kvm_hyp_vector
    msr     vbar_el2, x1
    ldr     x1, =hyp_stack_top
    mov     sp, x1
    // back to the host, at EL1h with interrupts masked as at boot
    msr     elr_el2, x19
    mov     x1, #(PSR_MODE_EL1h | PSR_DAIF)
    msr     spsr_el2, x1
    eret

// __init_stage2_translation: VTCR_EL2 for the guests' stage 2.
__init_stage2_translation:
    ldr     x1, =VTCR_EL2_FLAGS
    msr     vtcr_el2, x1
    ret

    .section .hyp.data, "aw"
    .balign 16
hyp_stack:
    .skip   4096
hyp_stack_top:
