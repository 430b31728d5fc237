// print.S: printing over the PL011 for bare-metal programs.
// Definitions: the puts_lit macro and print_lib, which emits the routines once where the
// program invokes it. Routines clobber x0-x7 (and x30 through bl); nothing else.
// Needs board.S.

// puts_lit "text": print a literal string (clobbers x0-x7, x30). The harness trims spaces at
// the ends of a quoted macro argument (GNU as keeps them): keep them out of \text.
    .macro  puts_lit text
    adr     x0, 9970f
    bl      bm_puts
    b       9971f
9970:
    .asciz  "\text"
    .balign 4
9971:
    .endm

    .macro  print_lib
// bm_putc: print the byte in w0.
bm_putc:
    uart_putc w0, x7
    ret

// bm_puts: print the NUL-terminated string at x0.
bm_puts:
    mov     x7, #UART_BASE
1:  ldrb    w6, [x0], #1
    cbz     w6, 2f
    strb    w6, [x7]
    b       1b
2:  ret

// bm_puthex: print x0 as 0x followed by hex digits, no leading zeros.
bm_puthex:
    mov     x7, #UART_BASE
    mov     w6, #0x30               // ASCII zero
    strb    w6, [x7]
    mov     w6, #0x78               // ASCII x
    strb    w6, [x7]
    mov     x5, #60                 // shift of the current nibble
    mov     x4, #0                  // a non-zero digit was printed
1:  lsr     x3, x0, x5
    and     x3, x3, #0xf
    orr     x4, x4, x3
    cbnz    x5, 2f
    mov     x4, #1                  // always print the last digit
2:  cbz     x4, 4f
    cmp     x3, #10
    b.lt    3f
    add     x3, x3, #39             // ASCII a - 10 - ASCII zero
3:  add     x3, x3, #0x30
    strb    w3, [x7]
4:  cbz     x5, 5f
    sub     x5, x5, #4
    b       1b
5:  ret

// bm_putdec: print x0 in decimal.
bm_putdec:
    mov     x7, #UART_BASE
    sub     sp, sp, #32
    mov     x5, sp                  // digits are built backwards in [sp, sp+32)
    add     x5, x5, #31
    strb    wzr, [x5]
    mov     x4, #10
1:  udiv    x3, x0, x4
    msub    x6, x3, x4, x0
    add     x6, x6, #0x30
    sub     x5, x5, #1
    strb    w6, [x5]
    mov     x0, x3
    cbnz    x0, 1b
2:  ldrb    w6, [x5], #1
    cbz     w6, 3f
    strb    w6, [x7]
    b       2b
3:  add     sp, sp, #32
    ret
    .endm
