// guest.S: the guest. Its kernel starts at EL1, behind its own stage 1 and KVM's stage 2,
// with x0-x5 = the scenario's PAN, UAO, exit cause, guest EL, DIT and SSBS (the host put them
// there as its registers). At EL1 it sets PSTATE.PAN, UAO, DIT and SSBS and leaves by the exit
// cause; for EL0 it ERETs to its user code with them in SPSR_EL1 (what EL0 runs with), and
// user space leaves. Exits from EL0 are the ones that are real there: an IRQ or SError routed to EL2
// (HCR_EL2.IMO/AMO) and a WFI trapped by HCR_EL2.TWI (the guest kernel's SCTLR_EL1.nTWI=1
// lets EL0 run WFI). HVC is UNDEFINED at EL0 (it would be the guest kernel's exception, not
// an exit), so there is no HVC exit from EL0.

    .section .guest, "ax"
guest_entry:
    cbz     x3, guest_enter_user
    cbz     x0, 1f
    ALTERNATIVE(nop, SET_PSTATE_PAN(1), ARM64_HAS_PAN)
    b       2f
1:  ALTERNATIVE(nop, SET_PSTATE_PAN(0), ARM64_HAS_PAN)
2:  cbz     x1, 3f
    ALTERNATIVE(nop, SET_PSTATE_UAO(1), ARM64_HAS_UAO)
    b       4f
3:  ALTERNATIVE(nop, SET_PSTATE_UAO(0), ARM64_HAS_UAO)
4:  alternative_if ARM64_HAS_DIT
    lsl     x6, x4, #24
    msr     dit, x6                         // the DIT the guest kernel runs with (bit 24)
    alternative_else_nop_endif
    alternative_if ARM64_SSBS
    lsl     x6, x5, #12
    msr     ssbs, x6                        // and its SSBS (bit 12)
    alternative_else_nop_endif
    cmp     x2, #EXIT_IRQ
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

// The guest kernel's return to user space (kernel_exit 0): SPSR_EL1 = EL0t, DAIF clear, and
// PAN/UAO/DIT/SSBS as the scenario gives them (only the CPU's features are kept: a v8.0 has
// none of them).
guest_enter_user:
    mov     x6, #PSR_MODE_EL0t
    alternative_if ARM64_HAS_PAN
    orr     x6, x6, x0, lsl #22             // SPSR.PAN
    alternative_else_nop_endif
    alternative_if ARM64_HAS_UAO
    orr     x6, x6, x1, lsl #23             // SPSR.UAO
    alternative_else_nop_endif
    alternative_if ARM64_HAS_DIT
    orr     x6, x6, x4, lsl #24             // SPSR.DIT
    alternative_else_nop_endif
    alternative_if ARM64_SSBS
    orr     x6, x6, x5, lsl #12             // SPSR.SSBS
    alternative_else_nop_endif
    msr     spsr_el1, x6
    adr     x6, guest_user_entry
    msr     elr_el1, x6
    eret

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

// The guest's user space, at EL0 (a read-only, user-executable page).
    .balign PAGE_SIZE
guest_user_text:
guest_user_entry:
    cmp     x2, #EXIT_WFI
    b.ne    guest_user_irq_point
    wfi                                     // trapped to EL2 by HCR_EL2.TWI (EC 0x01)
    b       guest_user_halt
// The harness raises the IRQ or SError here when the guest runs at EL0.
guest_user_irq_point:
    b       guest_user_irq_point
guest_user_halt:
    b       guest_user_halt

    .balign PAGE_SIZE
guest_user_page:
    .quad   0x6775657374                    // "guest"
    .skip   PAGE_SIZE - 8
