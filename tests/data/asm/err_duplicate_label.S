// EXPECT: err_duplicate_label.S:5:1: label 'here' defined twice
    .text
here:
    nop
here:
    nop
