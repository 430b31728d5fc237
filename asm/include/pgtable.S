// pgtable.S: building stage-1 translation tables (4 KiB granule) at run time.
// Definitions only; needs arm64_defs.S. All macros clobber x9-x11 only.

// pt_zero base, npages: clear \npages 4 KiB pages from the address in register \base.
    .macro  pt_zero base, npages
    mov     x9, \base
    mov     x10, #(\npages * 512)
9960:
    str     xzr, [x9], #8
    subs    x10, x10, #1
    b.ne    9960b
    .endm

// pt_set table, index, desc: table[\index] = \desc (a constant expression).
    .macro  pt_set table, index, desc
    ldr     x9, =\desc
    str     x9, [\table, #((\index) * 8)]
    .endm

// pt_map table, va, attrs, shift: identity-map the address in register \va with the entry of
// \table (a register) at the level whose blocks are 1 << \shift bytes (12: level 3 page,
// 21: level 2 block, 30: level 1 block): entry = (\va aligned down) | \attrs.
    .macro  pt_map table, va, attrs, shift
    lsr     x9, \va, #\shift
    and     x10, x9, #0x1ff
    lsl     x9, x9, #\shift
    ldr     x11, =\attrs
    orr     x9, x9, x11
    str     x9, [\table, x10, lsl #3]
    .endm
