// EXPECT: err_macro_symbol.S:3:5: undefined symbol 'no_such_label' (from macro 'jump' used at err_macro_symbol.S:7)
    .macro jump to
    b.eq \to
    .endm
    .text
_start:
    jump no_such_label
