// guest.S: the guest, at EL1 behind its own stage 1 and KVM's stage 2. It sets PSTATE.PAN
// and PSTATE.UAO as the scenario asks (x0, x1, put there by the host as its registers),
// then leaves by the scenario's exit cause (x2).

    .section .guest, "ax"
guest_entry:
    cbz     x0, 1f
    ALTERNATIVE(nop, SET_PSTATE_PAN(1), ARM64_HAS_PAN)
    b       2f
1:  ALTERNATIVE(nop, SET_PSTATE_PAN(0), ARM64_HAS_PAN)
2:  cbz     x1, 3f
    ALTERNATIVE(nop, SET_PSTATE_UAO(1), ARM64_HAS_UAO)
    b       4f
3:  ALTERNATIVE(nop, SET_PSTATE_UAO(0), ARM64_HAS_UAO)
4:  cmp     x2, #EXIT_IRQ
    b.eq    guest_irq_point
    cmp     x2, #EXIT_SERROR
    b.eq    guest_irq_point
    cmp     x2, #EXIT_WFI
    b.eq    5f
    hvc     #0                              // a hypercall: traps to EL2 (EC 0x16)
    b       guest_halt
5:  wfi                                     // trapped by HCR_EL2.TWI (EC 0x01)
    b       guest_halt
// The harness raises the IRQ or SError here; the guest waits with that mask cleared.
guest_irq_point:
    b       guest_irq_point
guest_halt:
    b       guest_halt

// Nothing should reach the guest's own vectors: if something does, the run ends in a loop.
guest_bad_exception:
    b       guest_bad_exception
    .balign 0x800
guest_vectors:
    .rept   16
    ventry  guest_bad_exception
    .endr

    .balign 16
guest_stack:
    .skip   1024
guest_stack_top:
    .balign PAGE_SIZE
guest_user_page:
    .quad   0x6775657374                    // "guest"
    .skip   PAGE_SIZE - 8
