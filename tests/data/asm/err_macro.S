// EXPECT: err_macro.S:5:5: cannot assemble 'frob x1' (Invalid mnemonic (KS_ERR_ASM_MNEMONICFAIL)) (from macro 'inner' used at err_macro.S:9, from macro 'outer' used at err_macro.S:13)
    .macro inner reg
    nop
    // the bad statement: line 5, column 5
    frob \reg
    .endm

    .macro outer
    inner x1
    .endm

    .text
    outer
