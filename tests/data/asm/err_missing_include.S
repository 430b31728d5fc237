// EXPECT: err_missing_include.S:3:1: include file 'no_such_header.h' not found
    .text
#include "no_such_header.h"
