// board.S: the QEMU virt-compatible board (RAM, PL011, PSCI) as constants and macros.
// Definitions only: include it once per program.

    .equ    RAM_BASE,       0x40000000      // programs are linked at 0x4008_0000 (_start: EL2h, DAIF masked)
    .equ    UART_BASE,      0x09000000      // PL011 data register (UARTDR)

// psci_system_off: PSCI SYSTEM_OFF through the SMC conduit; does not return.
    .macro  psci_system_off
    ldr     x0, =PSCI_0_2_FN_SYSTEM_OFF
    smc     #0
    b       .
    .endm

// uart_putc wreg, tmp: write the byte in \wreg to the PL011 data register (clobbers \tmp).
// Both QEMU's PL011 and the harness accept bytes without polling UARTFR.
    .macro  uart_putc wreg, tmp
    mov     \tmp, #UART_BASE
    strb    \wreg, [\tmp]
    .endm
