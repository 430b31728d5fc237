// kernel-entry.S: arch/arm64/kernel/entry.S (the vectors, kernel_entry/kernel_exit, el1_sync
// -> do_mem_abort -> fixup_exception from mm/fault.c and mm/extable.c) and panic().
// Under VHE the same vectors run at EL2 (VBAR_EL2 = vectors) and their EL1 register names
// reach the EL2 registers (E2H redirection).

    .equ    S_FRAME_SIZE,   80              // x0-x7, x30 (the handlers use no more)

    .macro  kernel_entry
    sub     sp, sp, #S_FRAME_SIZE
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    str     x30, [sp, #64]
    .endm

    .macro  kernel_exit
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldr     x30, [sp, #64]
    add     sp, sp, #S_FRAME_SIZE
    eret
    .endm

    .text
    .balign 0x800
vectors:
    ventry  el1_invalid                     // Synchronous EL1t
    ventry  el1_invalid                     // IRQ EL1t
    ventry  el1_invalid                     // FIQ EL1t
    ventry  el1_invalid                     // Error EL1t
    ventry  el1h_64_sync                    // Synchronous EL1h (v4.13: el1_sync)
    ventry  el1h_64_irq                     // IRQ EL1h (v4.13: el1_irq)
    ventry  el1_invalid                     // FIQ EL1h
    ventry  el1_invalid                     // Error EL1h
    ventry  el1_invalid                     // Synchronous 64-bit EL0 (no user space here)
    ventry  el1_invalid                     // IRQ 64-bit EL0
    ventry  el1_invalid                     // FIQ 64-bit EL0
    ventry  el1_invalid                     // Error 64-bit EL0
    ventry  el1_invalid                     // 32-bit EL0
    ventry  el1_invalid
    ventry  el1_invalid
    ventry  el1_invalid

// el1_sync: only kernel aborts are expected (the probes'); anything else is a bug: panic.
el1h_64_sync:
    kernel_entry
    mrs     x1, esr_el1                     // ESR_EL2 under VHE
    lsr     x2, x1, #ESR_ELx_EC_SHIFT
    mrs     x0, elr_el1                     // ELR_EL2 under VHE
    cmp     x2, #ESR_ELx_EC_DABT_CUR
    b.eq    el1_da
    cmp     x2, #ESR_ELx_EC_IABT_CUR
    b.ne    el1_inv
    // el1_ia: a branch into unmapped text faults at its target: the call site is lr - 4
    ldr     x0, [sp, #64]
    sub     x0, x0, #4
el1_da:
    // do_mem_abort -> __do_kernel_fault -> fixup_exception(regs)
    search_extable __start___ex_table, __stop___ex_table, 1f
    // search_exception_tables also covers the hyp text (VHE runs it in the kernel's context)
    search_extable __start___hyp_ex_table, __stop___hyp_ex_table, 1f
    adr     x0, msg_unhandled_fault
    b       panic
1:  msr     elr_el1, x0                     // regs->pc = fixup
    kernel_exit

el1_inv:
    adr     x0, msg_bad_mode                // bad_mode()
    b       panic

// el1_irq: no device interrupts the host in these scenarios; return at once.
el1h_64_irq:
    eret

el1_invalid:
    adr     x0, msg_bad_mode
    b       panic

// panic(): print the message on the UART and stop (the harness reports the loop).
panic:
    mov     x19, x0
    puts_lit "Kernel panic - not syncing: "
    mov     x0, x19
    bl      bm_puts
    puts_lit "\n"
1:  b       1b

msg_unhandled_fault:
    .asciz  "Unable to handle kernel paging request"
msg_bad_mode:
    .asciz  "Bad mode in synchronous handler"
    .balign 4
    print_lib
