// EXPECT: err_include.h:5:13: unknown system register 'sctlr_el9'
    .text
_start:
    nop
#include "err_include.h"
    ret
