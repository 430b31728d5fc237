// EXPECT: err_msr_imm.S:3:14: msr pan, #2: immediate out of range 0 to 1
    .text
    msr pan, #2
