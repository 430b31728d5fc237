// hyp-entry.S: arch/arm64/kvm/hyp/hyp-entry.S: __kvm_hyp_vector and its handlers.
// Non-VHE: VBAR_EL2 from hyp init on; VHE: installed by __activate_traps for a guest's run.

    .section .hyp.text, "ax"
// el1_sync: a trap from EL1: the host calling hyp (non-VHE HVC, VTTBR_EL2 == 0) or the guest.
el1_sync:
    stp     x0, x1, [sp, #-16]!
    mrs     x1, esr_el2                     // (v4.13 reads esr_el1 under VHE: redirected here)
    lsr     x0, x1, #ESR_ELx_EC_SHIFT
    cmp     x0, #ESR_ELx_EC_HVC64
    b.ne    el1_trap
    mrs     x1, vttbr_el2                   // If vttbr is valid, the guest called HVC
    cbnz    x1, el1_trap
    // Here, we're pretty sure the host called HVC.
    ldp     x0, x1, [sp], #16
    // Perform the EL2 call. (The model keeps the HVC's ELR/SPSR_EL2 on the stack: its EL2
    // probes may fault inside the call, and that nested exception overwrites them.)
    mrs     x9, elr_el2
    mrs     x10, spsr_el2
    stp     x9, x10, [sp, #-16]!
    mov     lr, x0
    mov     x0, x1
    mov     x1, x2
    mov     x2, x3
    blr     lr
    ldp     x9, x10, [sp], #16
    msr     elr_el2, x9
    msr     spsr_el2, x10
    eret

// el1_trap: x0 = ESR_EL2.EC; a guest exit.
el1_trap:
    mrs     x1, tpidr_el2                   // vcpu
    mov     x0, #ARM_EXCEPTION_TRAP
    b       __guest_exit

el1_irq:
    stp     x0, x1, [sp, #-16]!
    mrs     x1, tpidr_el2
    mov     x0, #ARM_EXCEPTION_IRQ
    b       __guest_exit

el1_error:
    stp     x0, x1, [sp, #-16]!
    mrs     x1, tpidr_el2
    mov     x0, #ARM_EXCEPTION_EL1_SERROR
    b       __guest_exit

// el2_error: an SError taken at EL2. Survivable only in __guest_exit's window (ELR_EL2 at
// abort_guest_exit_start or _end): x0 becomes the SError bit and the exit path goes on; from
// anywhere else it is a bug: panic.
el2_error:
    mrs     x0, elr_el2
    adr     x1, abort_guest_exit_start
    cmp     x0, x1
    adr     x1, abort_guest_exit_end
    ccmp    x0, x1, #4, ne                  // Z set when ELR is either end of the window
    b.ne    hyp_panic
    mov     x0, #(1 << ARM_EXIT_WITH_SERROR_BIT)
    eret

// el2_sync: an abort in hyp code itself. v4.13 panics here (el2h_sync_invalid); the model
// looks the fault up in the hyp exception table so the harness's EL2 probes can report it.
el2_sync:
    stp     x0, x1, [sp, #-48]!
    stp     x2, x3, [sp, #16]
    str     x4, [sp, #32]
    mrs     x0, elr_el2
    mrs     x1, esr_el2
    lsr     x1, x1, #ESR_ELx_EC_SHIFT
    cmp     x1, #ESR_ELx_EC_IABT_CUR
    b.ne    1f
    sub     x0, lr, #4                      // a branch into unmapped text faults at its target
1:  search_extable __start___hyp_ex_table, __stop___hyp_ex_table, 2f
    b       hyp_panic
2:  msr     elr_el2, x0
    ldp     x2, x3, [sp, #16]
    ldr     x4, [sp, #32]
    ldp     x0, x1, [sp], #48
    eret

// __hyp_panic: the harness reports the loop.
hyp_panic:
    b       hyp_panic

    .balign 0x800
__kvm_hyp_vector:
    ventry  hyp_panic                       // Synchronous EL2t
    ventry  hyp_panic                       // IRQ EL2t
    ventry  hyp_panic                       // FIQ EL2t
    ventry  hyp_panic                       // Error EL2t
    ventry  el2_sync                        // Synchronous EL2h
    ventry  hyp_panic                       // IRQ EL2h
    ventry  hyp_panic                       // FIQ EL2h
    ventry  el2_error                       // Error EL2h
    ventry  el1_sync                        // Synchronous 64-bit EL1
    ventry  el1_irq                         // IRQ 64-bit EL1
    ventry  hyp_panic                       // FIQ 64-bit EL1
    ventry  el1_error                       // Error 64-bit EL1
    ventry  hyp_panic                       // Synchronous 32-bit EL1
    ventry  hyp_panic                       // IRQ 32-bit EL1
    ventry  hyp_panic                       // FIQ 32-bit EL1
    ventry  hyp_panic                       // Error 32-bit EL1
