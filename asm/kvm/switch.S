// switch.S: arch/arm64/kvm/hyp/switch.c (__kvm_vcpu_run, __activate_traps,
// __deactivate_traps, __activate_vm, __deactivate_vm) and hyp/sysreg-sr.c (the host and guest
// system-register save/restore), in assembly. Only the state that matters to PSTATE, the
// MMU and exception routing is switched; FP/SIMD, debug, PMU, timer and vgic are left out.
// hyp_alternate_select(VHE, non-VHE) becomes a test of has_vhe.

// The EL1 registers of a context. Non-VHE: by their own names; VHE: through the *_EL12
// names (write_sysreg_el1), since the EL1 names reach EL2 there.
    .macro  el1_sysregs op, ctxt, el
    \op     x2, sctlr_\el, #CPU_SCTLR_EL1, \ctxt
    \op     x2, ttbr0_\el, #CPU_TTBR0_EL1, \ctxt
    \op     x2, tcr_\el,   #CPU_TCR_EL1,   \ctxt
    \op     x2, mair_\el,  #CPU_MAIR_EL1,  \ctxt
    \op     x2, vbar_\el,  #CPU_VBAR_EL1,  \ctxt
    \op     x2, elr_\el,   #CPU_ELR_EL1,   \ctxt
    \op     x2, spsr_\el,  #CPU_SPSR_EL1,  \ctxt
    .endm
    .macro  save_reg tmp, reg, off, ctxt
    mrs     \tmp, \reg
    str     \tmp, [\ctxt, \off]
    .endm
    .macro  restore_reg tmp, reg, off, ctxt
    ldr     \tmp, [\ctxt, \off]
    msr     \reg, \tmp
    .endm

    .section .hyp.text, "ax"
// int __kvm_vcpu_run(struct kvm_vcpu *vcpu): x0 = vcpu; returns the exit code.
    .type   __kvm_vcpu_run, %function
__kvm_vcpu_run:
    stp     x29, x30, [sp, #-48]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    mov     x19, x0
    msr     tpidr_el2, x19                  // write_sysreg(vcpu, tpidr_el2)
    ldr     x20, [x19, #VCPU_HOST_CONTEXT]  // host_ctxt = kern_hyp_va(vcpu->arch.host_cpu_context)
    add     x21, x19, #VCPU_CONTEXT         // guest_ctxt = &vcpu->arch.ctxt
    mov     x0, x20
    bl      __sysreg_save_host_state        // __sysreg_save_host_state(host_ctxt)
    mov     x0, x19
    bl      __activate_traps                // __activate_traps(vcpu)
    mov     x0, x19
    bl      __activate_vm                   // __activate_vm(vcpu)
    mov     x0, x21
    bl      __sysreg_restore_guest_state    // __sysreg_restore_guest_state(guest_ctxt)
    mov     x0, x19
    mov     x1, x20
    bl      __guest_enter                   // exit_code = __guest_enter(vcpu, host_ctxt)
vcpu_run_after_guest:                       // And we're baaack!
    mov     x22, x0
    // The harness's window probe (not kernel code): a plain load from a user page here.
    // A fault here overwrites ELR/SPSR_EL2, so the guest's saved PC and PSTATE are the
    // probe's; no scenario resumes the guest.
    ldr     x1, =user_page
probe_window_ldr:
    ldr     x1, [x1]
    _hyp_extable probe_window_ldr, 1f
1:  mov     x0, x21
    bl      __sysreg_save_guest_state       // __sysreg_save_guest_state(guest_ctxt)
    mov     x0, x19
    bl      __deactivate_traps              // __deactivate_traps(vcpu)
    bl      __deactivate_vm                 // __deactivate_vm(vcpu)
    mov     x0, x20
    bl      __sysreg_restore_host_state     // __sysreg_restore_host_state(host_ctxt)
vcpu_run_fixup:
    mov     x0, x22                         // return exit_code
    ldp     x21, x22, [sp, #32]
    ldp     x19, x20, [sp, #16]
    ldp     x29, x30, [sp], #48
    ret
    .size   __kvm_vcpu_run, .-__kvm_vcpu_run

// __activate_traps(vcpu): x0 = vcpu.
__activate_traps:
    ldr     x1, [x0, #VCPU_HCR_EL2]
    msr     hcr_el2, x1                     // write_sysreg(vcpu->arch.hcr_el2, hcr_el2): TGE=0
    has_vhe x1
    cbz     x1, __activate_traps_nvhe
__activate_traps_vhe:
    ldr     x1, =__kvm_hyp_vector
    msr     vbar_el1, x1                    // write_sysreg(__kvm_hyp_vector, vbar_el1): VBAR_EL2
    ret
__activate_traps_nvhe:
    ret                                     // CPTR_EL2 (FP/SIMD traps) only: not modelled

// __deactivate_traps(vcpu)
__deactivate_traps:
    has_vhe x1
    cbz     x1, __deactivate_traps_nvhe
__deactivate_traps_vhe:
    ldr     x1, =HCR_HOST_VHE_FLAGS
    msr     hcr_el2, x1                     // write_sysreg(HCR_HOST_VHE_FLAGS, hcr_el2): TGE=1
    ldr     x1, =vectors
    msr     vbar_el1, x1                    // write_sysreg(vectors, vbar_el1): the kernel's vectors
    ret
__deactivate_traps_nvhe:
    ldr     x1, =HCR_HOST_NVHE_FLAGS
    msr     hcr_el2, x1                     // write_sysreg(HCR_RW, hcr_el2)
    ret

// __activate_vm(vcpu): write_sysreg(kvm->arch.vttbr, vttbr_el2)
__activate_vm:
    ldr     x1, [x0, #VCPU_VTTBR]
    msr     vttbr_el2, x1
    ret

// __deactivate_vm(vcpu): write_sysreg(0, vttbr_el2)
__deactivate_vm:
    msr     vttbr_el2, xzr
    ret

// __sysreg_save_host_state(ctxt): x0 = ctxt. VHE: the host's EL1 registers are not in use.
__sysreg_save_host_state:
    save_reg x2, sp_el0, #CPU_SP_EL0, x0    // __sysreg_save_common_state: current
    save_reg x2, elr_el2, #CPU_PC, x0       // the host's return address (non-VHE: into el1_sync's HVC)
    save_reg x2, spsr_el2, #CPU_PSTATE, x0  // and its PSTATE, PAN and UAO included
    has_vhe x1
    cbnz    x1, 1f
    el1_sysregs save_reg, x0, el1           // __sysreg_save_state
    save_reg x2, sp_el1, #CPU_SP_EL1, x0
1:  ret

// __sysreg_restore_guest_state(ctxt)
__sysreg_restore_guest_state:
    restore_reg x2, sp_el0, #CPU_SP_EL0, x0
    restore_reg x2, elr_el2, #CPU_PC, x0
    restore_reg x2, spsr_el2, #CPU_PSTATE, x0
    restore_reg x2, sp_el1, #CPU_SP_EL1, x0
    has_vhe x1
    cbnz    x1, 1f
    el1_sysregs restore_reg, x0, el1
    ret
1:  el1_sysregs restore_reg, x0, el12
    ret

// __sysreg_save_guest_state(ctxt)
__sysreg_save_guest_state:
    save_reg x2, sp_el0, #CPU_SP_EL0, x0
    save_reg x2, elr_el2, #CPU_PC, x0
    save_reg x2, spsr_el2, #CPU_PSTATE, x0
    save_reg x2, sp_el1, #CPU_SP_EL1, x0
    has_vhe x1
    cbnz    x1, 1f
    el1_sysregs save_reg, x0, el1
    ret
1:  el1_sysregs save_reg, x0, el12
    ret

// __sysreg_restore_host_state(ctxt)
    .type   __sysreg_restore_host_state, %function
__sysreg_restore_host_state:
    restore_reg x2, sp_el0, #CPU_SP_EL0, x0 // current is back in SP_EL0 from here on
    restore_reg x2, elr_el2, #CPU_PC, x0
    restore_reg x2, spsr_el2, #CPU_PSTATE, x0
    has_vhe x1
    cbnz    x1, 1f
    el1_sysregs restore_reg, x0, el1
    restore_reg x2, sp_el1, #CPU_SP_EL1, x0
1:  ret
    .size   __sysreg_restore_host_state, .-__sysreg_restore_host_state
