// EXPECT: err_alternative_macro.S:9:5: ALTERNATIVE: old is 4 bytes, new is 8; both must have the same size
    .macro two_nops
    nop
    nop
    .endm
    .text
_start:
    // new side is one asm macro of two instructions: sized after expansion
    ALTERNATIVE(nop, two_nops, ARM64_HAS_PAN)
