// EXPECT: err_misaligned.S:6:5: instruction at offset 0x5 of .text is not 4-byte aligned
    .text
_start:
    nop
    .byte 1
    ret
