// mmu.S: the translation tables (head.S __create_page_tables, kvm/mmu.c create_hyp_mappings,
// the guest's own tables and its stage 2). Identity maps (VA == IPA == PA), 4 KiB granule,
// 39-bit VA: level-1 blocks of 1 GiB, level-2 blocks of 2 MiB, level-3 pages.
// Built at boot with the MMUs off; every table is one page of .pgtables.

// map_range l3, start, end, attrs: l3[] entries for the pages [start, end) (symbols; they
// must lie in the 2 MiB that \l3 covers). Clobbers x9-x15.
    .macro  map_range l3, start, end, attrs
    ldr     x12, =\l3
    ldr     x13, =\start
    ldr     x14, =\end
    ldr     x15, =\attrs
9950:
    cmp     x13, x14
    b.hs    9951f
    ubfx    x9, x13, #12, #9                // index of the page in its level-3 table
    orr     x10, x13, x15
    str     x10, [x12, x9, lsl #3]
    add     x13, x13, #PAGE_SIZE
    b       9950b
9951:
    .endm

// link_tables l1, l2, l3: l1[1] -> l2 (0x4000_0000..), l2[0] -> l3 (0x4000_0000..0x401f_ffff).
    .macro  link_tables l1, l2, l3
    ldr     x0, =\l1
    ldr     x1, =(\l2 + PMD_TYPE_TABLE)
    str     x1, [x0, #8]
    ldr     x0, =\l2
    ldr     x1, =(\l3 + PMD_TYPE_TABLE)
    str     x1, [x0]
    .endm

    .text
// __create_page_tables: the host kernel's stage 1 (TTBR0_EL1, or TTBR0_EL2 under VHE where
// the same tables serve the EL2&0 regime). Kernel text and data AP=00, user_page AP=01,
// the UART as device. Guest memory is not the host's business here.
__create_page_tables:
    link_tables host_pg_l1, host_pg_l2, host_pg_l3
    ldr     x0, =host_pg_l1
    ldr     x1, =SECT_DEVICE                // 0..1 GiB: the PL011 (panic messages)
    str     x1, [x0]
    ldr     x0, =host_pg_l2                 // .pgtables: kernel data, 2 MiB block
    ldr     x1, =(__pgtables_start + SECT_KERNEL)
    str     x1, [x0, #8]
    map_range host_pg_l3, __text_start, __hyp_text_start, PAGE_KERNEL_EXEC
    map_range host_pg_l3, __hyp_text_start, __hyp_data_start, PAGE_KERNEL_EXEC
    map_range host_pg_l3, __hyp_data_start, __data_start, PAGE_KERNEL
    map_range host_pg_l3, __data_start, __user_start, PAGE_KERNEL
    map_range host_pg_l3, user_page, (user_page + PAGE_SIZE), PAGE_USER
    ret

// create_hyp_mappings (kvm/mmu.c): the non-VHE hyp stage 1 in TTBR0_EL2 (E2H=0). Only hyp
// text and hyp data (and the UART); the kernel's text and data are NOT mapped, so hyp code
// that calls into the kernel or dereferences `current` takes an abort. user_page is mapped
// with PTE_HYP (AP[1]=1, as every hyp page) to show what PAN does (nothing) in this regime.
__create_hyp_mappings:
    link_tables hyp_pg_l1, hyp_pg_l2, hyp_pg_l3
    ldr     x0, =hyp_pg_l1
    ldr     x1, =SECT_HYP_DEVICE
    str     x1, [x0]
    map_range hyp_pg_l3, __hyp_text_start, __hyp_data_start, PAGE_HYP_EXEC
    map_range hyp_pg_l3, __hyp_data_start, __data_start, PAGE_HYP
    map_range hyp_pg_l3, user_page, (user_page + PAGE_SIZE), PAGE_HYP
    ret

// The guest's own stage 1 (its TTBR0_EL1): guest kernel text/data AP=00, its user text AP=11
// (EL0 may run it), guest_user_page AP=01.
// Built by the host here for brevity; the guest would build it itself.
__create_guest_tables:
    link_tables guest_pg_l1, guest_pg_l2, guest_pg_l3
    ldr     x0, =guest_pg_l1
    ldr     x1, =SECT_DEVICE
    str     x1, [x0]
    map_range guest_pg_l3, __guest_start, guest_user_text, PAGE_KERNEL_EXEC
    map_range guest_pg_l3, guest_user_text, guest_user_page, PAGE_READONLY_EXEC
    map_range guest_pg_l3, guest_user_page, (guest_user_page + PAGE_SIZE), PAGE_USER
    ret

// kvm_alloc_stage2_pgd (kvm/mmu.c): the guest's stage 2, IPA == PA: 1 GiB of device
// (UART) and 1 GiB of normal RAM, read/write, as level-1 blocks.
__create_stage2_tables:
    ldr     x0, =s2_pg_l1
    ldr     x1, =S2_BLOCK_DEVICE
    str     x1, [x0]
    ldr     x1, =(0x40000000 + S2_BLOCK_NORMAL)
    str     x1, [x0, #8]
    ret

    .section .pgtables, "aw"
    .balign PAGE_SIZE
host_pg_l1:     .skip PAGE_SIZE
host_pg_l2:     .skip PAGE_SIZE
host_pg_l3:     .skip PAGE_SIZE
hyp_pg_l1:      .skip PAGE_SIZE
hyp_pg_l2:      .skip PAGE_SIZE
hyp_pg_l3:      .skip PAGE_SIZE
guest_pg_l1:    .skip PAGE_SIZE
guest_pg_l2:    .skip PAGE_SIZE
guest_pg_l3:    .skip PAGE_SIZE
s2_pg_l1:       .skip PAGE_SIZE
