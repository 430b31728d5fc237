// EXPECT: err_define_args.S:4:5: macro PAIR takes 2 arguments, got 3
#define PAIR(a, b) stp a, b, [sp, #-16]!
    .text
    PAIR(x0, x1, x2)
