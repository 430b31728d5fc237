// vectors.S: AArch64 exception vector tables (VBAR_ELx: 2 KiB aligned, 16 entries of
// 0x80 bytes; offsets in facts §1.7). Definitions only.

// ventry label: one kernel-style entry that branches to \label.
    .macro  ventry label
    .balign 0x80
    b       \label
    .endm

// ventry_frame handler, offset, frame: open a \frame-byte frame on SP_ELx, save x0/x1 in
// it, pass the entry's offset in x0 and branch to \handler.
    .macro  ventry_frame handler, offset, frame
    .balign 0x80
    sub     sp, sp, #\frame
    stp     x0, x1, [sp]
    mov     x0, #\offset
    b       \handler
    .endm

// vector_table name, handler, frame: a table whose 16 entries all go to one handler,
// which learns the entry from x0 (VEC_* offsets of arm64_defs.S).
    .macro  vector_table name, handler, frame
    .balign 0x800
\name:
    ventry_frame \handler, 0x000, \frame
    ventry_frame \handler, 0x080, \frame
    ventry_frame \handler, 0x100, \frame
    ventry_frame \handler, 0x180, \frame
    ventry_frame \handler, 0x200, \frame
    ventry_frame \handler, 0x280, \frame
    ventry_frame \handler, 0x300, \frame
    ventry_frame \handler, 0x380, \frame
    ventry_frame \handler, 0x400, \frame
    ventry_frame \handler, 0x480, \frame
    ventry_frame \handler, 0x500, \frame
    ventry_frame \handler, 0x580, \frame
    ventry_frame \handler, 0x600, \frame
    ventry_frame \handler, 0x680, \frame
    ventry_frame \handler, 0x700, \frame
    ventry_frame \handler, 0x780, \frame
    .endm
