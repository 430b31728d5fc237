// EXPECT: err_alt_size.S:4:1: alternative_if: the alternative_if side is 8 bytes, the alternative_else side 4; both must have the same size
    .text
_start:
alternative_if ARM64_HAS_PAN
    nop
    nop
alternative_else
    nop
alternative_endif
