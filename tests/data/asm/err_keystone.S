// EXPECT: err_keystone.S:4:17: cannot assemble 'add x0, x1, x99'
    .text
    nop
    mov x0, #1; add x0, x1, x99
