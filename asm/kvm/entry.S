// entry.S: arch/arm64/kvm/hyp/entry.S: __guest_enter and __guest_exit.

    .macro  save_callee_saved_regs ctxt
    stp     x19, x20, [\ctxt, #(19 * 8)]
    stp     x21, x22, [\ctxt, #(21 * 8)]
    stp     x23, x24, [\ctxt, #(23 * 8)]
    stp     x25, x26, [\ctxt, #(25 * 8)]
    stp     x27, x28, [\ctxt, #(27 * 8)]
    stp     x29, lr,  [\ctxt, #(29 * 8)]
    .endm

    .macro  restore_callee_saved_regs ctxt
    ldp     x19, x20, [\ctxt, #(19 * 8)]
    ldp     x21, x22, [\ctxt, #(21 * 8)]
    ldp     x23, x24, [\ctxt, #(23 * 8)]
    ldp     x25, x26, [\ctxt, #(25 * 8)]
    ldp     x27, x28, [\ctxt, #(27 * 8)]
    ldp     x29, lr,  [\ctxt, #(29 * 8)]
    .endm

    .section .hyp.text, "ax"
// __guest_enter(vcpu, host_ctxt): x0 = vcpu, x1 = host context.
    .type   __guest_enter, %function
__guest_enter:
    save_callee_saved_regs x1               // Store the host regs
    str     x1, [sp, #-16]!                 // Store the host_ctxt for use at exit time
    add     x18, x0, #VCPU_CONTEXT
    ldp     x0, x1,   [x18, #(0 * 8)]       // Restore guest regs x0-x17
    ldp     x2, x3,   [x18, #(2 * 8)]
    ldp     x4, x5,   [x18, #(4 * 8)]
    ldp     x6, x7,   [x18, #(6 * 8)]
    ldp     x8, x9,   [x18, #(8 * 8)]
    ldp     x10, x11, [x18, #(10 * 8)]
    ldp     x12, x13, [x18, #(12 * 8)]
    ldp     x14, x15, [x18, #(14 * 8)]
    ldp     x16, x17, [x18, #(16 * 8)]
    restore_callee_saved_regs x18           // Restore guest regs x19-x29, lr
    ldr     x18,      [x18, #(18 * 8)]      // Restore guest reg x18
    eret                                    // Do not touch any register after this!
    .size   __guest_enter, .-__guest_enter

// __guest_exit: x0 = exit code, x1 = vcpu, x2-x29, lr = guest regs, guest x0-x1 on the stack.
__guest_exit:
    add     x1, x1, #VCPU_CONTEXT
    // cb96408da4e1: under VHE the exit (E2H=1, TGE=0) left the guest's PAN: set it again
    ALTERNATIVE(nop, SET_PSTATE_PAN(1), ARM64_HAS_PAN)
    stp     x2, x3,   [x1, #(2 * 8)]        // Store the guest regs x2 and x3
    ldp     x2, x3,   [sp], #16             // Retrieve the guest regs x0-x1 from the stack
    stp     x2, x3,   [x1, #(0 * 8)]        // Store the guest regs x0-x1 and x4-x18
    stp     x4, x5,   [x1, #(4 * 8)]
    stp     x6, x7,   [x1, #(6 * 8)]
    stp     x8, x9,   [x1, #(8 * 8)]
    stp     x10, x11, [x1, #(10 * 8)]
    stp     x12, x13, [x1, #(12 * 8)]
    stp     x14, x15, [x1, #(14 * 8)]
    stp     x16, x17, [x1, #(16 * 8)]
    str     x18,      [x1, #(18 * 8)]
    save_callee_saved_regs x1               // Store the guest regs x19-x29, lr
    ldr     x2, [sp], #16                   // Restore the host_ctxt from the stack
    restore_callee_saved_regs x2            // Now restore the host regs
    // A pending asynchronous abort of the guest shows itself now: keep the exit's syndrome
    // registers and code, since an SError taken below overwrites them (el2_error).
    mrs     x2, elr_el2
    mrs     x3, esr_el2
    mrs     x4, spsr_el2
    mov     x5, x0
    dsb     sy                              // Synchronize against in-flight ld/st
    msr     daifclr, #4                     // Unmask aborts
    // The single-instruction window: a pending SError is taken at the earliest here, at the
    // latest just after the ISB; el2_error survives it only here.
abort_guest_exit_start:
    isb
abort_guest_exit_end:
    // el2_error set ARM_EXIT_WITH_SERROR_BIT in x0: put back the exit's ELR/ESR/SPSR_EL2 and
    // merge the exit code with the SError bit.
    tbz     x0, #ARM_EXIT_WITH_SERROR_BIT, 1f
    msr     elr_el2, x2
    msr     esr_el2, x3
    msr     spsr_el2, x4
    orr     x0, x0, x5
1:
__guest_exit_end:
    ret
