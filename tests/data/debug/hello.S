// A small program for the debugger's tests and fuzzers: prints through the PL011, calls a leaf
// function, powers off through PSCI.
    .text
    .global _start
_start:
    ldr     x1, =0x09000000         // PL011 data register
    adr     x2, msg
next:
    ldrb    w3, [x2], #1
    cbz     w3, done
    strb    w3, [x1]
    b       next
done:
    bl      leaf
    ldr     x0, =0x84000008         // PSCI SYSTEM_OFF
    smc     #0
leaf:
    add     x4, x4, #1
    ret
msg:
    .asciz "hello, world\n"
