// EXPECT: err_if.S:3:1: unterminated #if (no #endif in this file)
    .text
#if defined(SOMETHING)
    nop
    ret
