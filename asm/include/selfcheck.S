// selfcheck.S: the framework of the self-checking bare-metal exception tests (asm/tests).
//
// A program includes this file once, then:
//     _start:  selfcheck_boot        // EL2h, DAIF masked, MMU off -> MMUs on, vectors set
//              bl  t_first_check ... // each check is a function (check_begin ... check_end)
//              selfcheck_done        // "DONE <n> checks", PSCI SYSTEM_OFF
//              ...check functions, EL1 probes...
//              selfcheck_lib         // routines, vectors, EL0 probes, data (emit once, last)
//
// Output, one line per check: "PASS <name>", or one "FAIL <name> <field>=<got> expected
// <want>" per wrong field, or "SKIP <name> no PAN|no UAO|no VHE|has PAN|has UAO".
//
// Memory (identity mapped; the same tables serve the EL1&0, EL2 and EL2&0 regimes):
//   0x0000_0000 1 GiB  level-1 block, Device, AP=00, XN     (PL011 at 0x0900_0000)
//   0x4000_0000 2 MiB  level-3 pages, kernel RWX AP=00, except:
//       BM_KPAGE     kernel data page     AP=00 PXN UXN
//       BM_UPAGE     user data page       AP=01 PXN UXN
//       BM_TPAGE     invalid descriptor   (translation fault, level 3)
//       BM_AFPAGE    AF=0                 (access flag fault, level 3)
//       bm_user_text..bm_user_text_end    AP=11 (EL0 and EL1 read-only), executable at both
//       bm_xn_text   one page             AP=00 PXN UXN (XN in the EL2 regime)
//   BM_UBLOCK   2 MiB  level-2 block, user data AP=01 PXN UXN
//   other RAM   2 MiB  level-2 blocks, kernel RWX AP=00 (tables and stacks live there)
//   0x8000_0000        level-1 entry invalid (translation fault, level 1)
//
// Exceptions go to one recording handler per EL (bm_el1_vectors, bm_el2_vectors). It stores
// ESR/ELR/SPSR/FAR, the vector offset and the PSTATE it runs with (CurrentEL, DAIF, SPSel,
// PAN, UAO, DIT, SSBS; -1 for a field the CPU lacks) in rec_*, then returns: SVC/HVC to ELR, instruction aborts to the interrupted
// x30 (the branch target cannot run), everything else to ELR + 4; the SPSR is XORed with
// bm_spsr_xor first (to show that ERET loads PSTATE from SPSR). svc/hvc #BM_EXIT_IMM is not
// recorded: it ends a probe run at a lower EL and returns to the EL2 driver.
//
// Registers: probes get x0-x6 as arguments and NZCV from x7 and return x0-x7; the
// framework routines clobber x0-x11 and keep x19-x29.

    .include "arm64_defs.S"
    .include "board.S"
    .include "print.S"
    .include "vectors.S"
    .include "pgtable.S"

    .equ    BM_PT_L1,        0x44000000
    .equ    BM_PT_L2,        0x44001000
    .equ    BM_PT_L3,        0x44002000
    .equ    BM_STACK_EL2_TOP, 0x44100000
    .equ    BM_STACK_EL1_TOP, 0x44110000
    .equ    BM_STACK_EL0_TOP, 0x44120000
    .equ    BM_KPAGE,        0x40100000
    .equ    BM_UPAGE,        0x40101000
    .equ    BM_TPAGE,        0x40102000
    .equ    BM_AFPAGE,       0x40103000
    .equ    BM_UBLOCK,       0x40200000
    .equ    BM_UNMAPPED_L1,  0x80000000

    .equ    ATTR_KERNEL_PAGE,  (PTE_TYPE_PAGE | PTE_AF | PTE_SHARED | PTE_ATTRINDX_NORMAL)
    .equ    ATTR_KERNEL_BLOCK, (PMD_TYPE_SECT | PTE_AF | PTE_SHARED | PTE_ATTRINDX_NORMAL)
    .equ    ATTR_KDATA_PAGE,   (ATTR_KERNEL_PAGE | PTE_PXN | PTE_UXN)
    .equ    ATTR_UDATA_PAGE,   (ATTR_KERNEL_PAGE | PTE_USER | PTE_PXN | PTE_UXN)
    .equ    ATTR_UDATA_BLOCK,  (ATTR_KERNEL_BLOCK | PTE_USER | PTE_PXN | PTE_UXN)
    .equ    ATTR_UTEXT_PAGE,   (ATTR_KERNEL_PAGE | PTE_USER | PTE_RDONLY)
    .equ    ATTR_XN_PAGE,      (ATTR_KERNEL_PAGE | PTE_PXN | PTE_UXN)
    .equ    ATTR_NOAF_PAGE,    (PTE_TYPE_PAGE | PTE_SHARED | PTE_PXN | PTE_UXN)
    .equ    ATTR_DEVICE_BLOCK, (PMD_TYPE_SECT | PTE_AF | PTE_ATTRINDX_DEVICE | PTE_PXN | PTE_UXN)

    .equ    BM_EXIT_IMM,     0xfff          // svc/hvc immediate that ends a probe run
    .equ    BM_FRAME,        160            // x0-x17, x30 (+ padding to 16)
    .equ    BM_POISON,       0xbad0bad0bad0bad0
    .equ    REC_NFIELDS,     12             // rec_vec .. rec_ssbs

    // check_begin requirements (bm_features holds the first three)
    .equ    FEAT_PAN,        1
    .equ    FEAT_UAO,        2
    .equ    FEAT_VHE,        4
    .equ    NEEDS_NO_PAN,    8
    .equ    NEEDS_NO_UAO,    16
    .equ    FEAT_DIT,        32
    .equ    FEAT_SSBS,       64             // SSBS with its MSR/MRS (ID_AA64PFR1_EL1.SSBS >= 2)
    .equ    NEEDS_NO_DIT,    128
    .equ    FEAT_PAN_BIT,    0
    .equ    FEAT_UAO_BIT,    1
    .equ    FEAT_DIT_BIT,    5
    .equ    FEAT_SSBS_BIT,   6

// ------------------------------------------------------------------ program skeleton

    .macro  selfcheck_boot
    ldr     x0, =BM_STACK_EL2_TOP
    mov     sp, x0
    bl      bm_boot
    .endm

    .macro  selfcheck_done
    b       bm_done
    .endm

// ------------------------------------------------------------------ checks

// check_begin name, needs: open a check function (it must be reached by bl). Resets the
// machine to the baseline (HCR_EL2=RW, SCTLR_EL1/EL2 base with M=1, PAN=UAO=0 at EL2) and
// the record; returns at once with a SKIP line when a feature in \needs is missing.
    .macro  check_begin name, needs=0
    stp     x29, x30, [sp, #-16]!
    adr     x0, 9980f
    ldr     x1, =\needs
    bl      bm_check_begin
    cbz     x0, 9981f
    ldp     x29, x30, [sp], #16
    ret
9980:
    .asciz  "\name"
    .balign 4
9981:
    .endm

// check_end: print PASS when no expect failed, and return from the check function.
    .macro  check_end
    bl      bm_check_end
    ldp     x29, x30, [sp], #16
    ret
    .endm

// expect field, reg, want: register \reg must equal the constant \want.
    .macro  expect field, reg, want
    mov     x1, \reg
    ldr     x2, =\want
    adr     x0, 9982f
    bl      bm_expect
    b       9983f
9982:
    .asciz  "\field"
    .balign 4
9983:
    .endm

// expect_rec field, want: the recorded rec_<field> must equal the constant \want.
    .macro  expect_rec field, want
    adr     x1, rec_\field
    ldr     x1, [x1]
    ldr     x2, =\want
    adr     x0, 9984f
    bl      bm_expect
    b       9985f
9984:
    .asciz  "\field"
    .balign 4
9985:
    .endm

// expect_rec_mask field, mask, want: (rec_<field> & \mask) must equal \want.
    .macro  expect_rec_mask field, mask, want
    adr     x1, rec_\field
    ldr     x1, [x1]
    ldr     x2, =\mask
    and     x1, x1, x2
    ldr     x2, =\want
    adr     x0, 9986f
    bl      bm_expect
    b       9987f
9986:
    .asciz  "\field&\mask"
    .balign 4
9987:
    .endm

// expect_rec_addr field, sym, off: rec_<field> must equal the address \sym + \off.
    .macro  expect_rec_addr field, sym, off=0
    adr     x1, rec_\field
    ldr     x1, [x1]
    adr     x2, \sym
    add     x2, x2, #\off
    adr     x0, 9988f
    bl      bm_expect
    b       9989f
9988:
    .asciz  "\field"
    .balign 4
9989:
    .endm

// expect_addr field, reg, sym, off: register \reg must equal the address \sym + \off.
    .macro  expect_addr field, reg, sym, off=0
    mov     x1, \reg
    adr     x2, \sym
    add     x2, x2, #\off
    adr     x0, 9990f
    bl      bm_expect
    b       9991f
9990:
    .asciz  "\field"
    .balign 4
9991:
    .endm

// ------------------------------------------------------------------ running probes

// call_probe reg: call the function at \reg without BLR. BLR sets PSTATE.BTYPE (FEAT_BTI,
// QEMU's -cpu max), and whether an SVC/HVC/UNDEFINED/abort at the branch target leaves
// that BTYPE in SPSR[11:10] is CONSTRAINED UNPREDICTABLE (AArch64.TakeException); RET
// leaves BTYPE=00, so SPSR values stay exact on every CPU.
    .macro  call_probe reg
    adr     x30, 9992f
    ret     \reg
9992:
    .endm

// run_el2 probe, nzcv: call \probe at EL2 in the current configuration with NZCV = \nzcv.
    .macro  run_el2 probe, nzcv=0
    ldr     x7, =\nzcv
    adr     x8, \probe
    bl      bm_run_here
    .endm

// run_lower spsr, probe, nzcv: ERET to the EL/SP named by \spsr (its DAIF, PAN and UAO too)
// and call \probe there (EL0 probes must live in bm_user_text); returns when it is done.
    .macro  run_lower spsr, probe, nzcv=0
    ldr     x7, =\nzcv
    adr     x8, \probe
    ldr     x9, =\spsr
    bl      bm_run_lower
    .endm

// set_hcr value: write HCR_EL2 and drop every stage-1 TLB entry (E2H switches regime).
    .macro  set_hcr value
    ldr     x9, =\value
    msr     hcr_el2, x9
    isb
    bl      bm_flush_tlb
    .endm

// set_sysreg reg, value: write a system register with a constant, then ISB.
    .macro  set_sysreg reg, value
    ldr     x9, =\value
    msr     \reg, x9
    isb
    .endm

// store_const addr, value: *(u64 *)\addr = \value (both constants; run at EL2).
    .macro  store_const addr, value
    ldr     x9, =\addr
    ldr     x10, =\value
    str     x10, [x9]
    .endm

// set_spsr_xor value: the next recorded exception returns with SPSR ^ \value.
    .macro  set_spsr_xor value
    adr     x9, bm_spsr_xor
    ldr     x10, =\value
    str     x10, [x9]
    .endm

// ------------------------------------------------------------------ handler frames

// bm_frame_save: complete the frame ventry_frame opened (x0/x1 are in it): x2-x17, x30.
    .macro  bm_frame_save
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    str     x30, [sp, #144]
    .endm

// bm_frame_eret: restore x0-x17 and x30 from the frame, drop it, ERET.
    .macro  bm_frame_eret
    ldp     x0, x1, [sp]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldr     x30, [sp, #144]
    add     sp, sp, #BM_FRAME
    eret
    .endm

// bm_exit_call el: svc/hvc #BM_EXIT_IMM reached the handler of EL\el. At EL1 (a run at EL1,
// or at EL0 with TGE=0) pass x0-x7 on to the EL2 driver with another exit call; at EL2
// return to the driver.
    .macro  bm_exit_call el
    .if \el == 1
    ldp     x0, x1, [sp]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    add     sp, sp, #BM_FRAME
    hvc     #BM_EXIT_IMM
    b       .
    .else
    b       bm_return_to_driver
    .endif
    .endm

// dit_ssbs_probe insn, imm: a probe body (FEAT_DIT and FEAT_SSBS CPUs only). Writes PSTATE.DIT
// and SSBS from x0 (their SPSR bits, MSR register forms), reads them back into x1, takes
// `\insn #\imm`, and returns in x0 the DIT|SSBS bits it runs with after the ERET.
    .macro  dit_ssbs_probe insn, imm
    msr     dit, x0
    msr     ssbs, x0
    mrs     x1, dit
    mrs     x2, ssbs
    orr     x1, x1, x2
    \insn   #\imm
    mrs     x0, dit
    mrs     x2, ssbs
    orr     x0, x0, x2
    ret
    .endm

// ------------------------------------------------------------------ the recording handler

// bm_record_handler name, el, esr, elr, spsr, far: the handler of one EL's vector table.
    .macro  bm_record_handler name, el, esr, elr, spsr, far
\name:
    bm_frame_save
    mrs     x1, \esr
    lsr     x2, x1, #ESR_ELx_EC_SHIFT
    and     x3, x1, #0xffff
    cmp     x3, #BM_EXIT_IMM
    b.ne    1f
    cmp     x2, #ESR_ELx_EC_SVC64
    b.eq    8f
    cmp     x2, #ESR_ELx_EC_HVC64
    b.eq    8f
1:  adr     x4, bm_in_handler
    ldr     x5, [x4]
    cbnz    x5, bm_nested
    mov     x5, #1
    str     x5, [x4]
    adr     x4, rec_vec
    str     x0, [x4]
    adr     x4, rec_esr
    str     x1, [x4]
    mrs     x5, \elr
    adr     x4, rec_elr
    str     x5, [x4]
    mrs     x6, \spsr
    adr     x4, rec_spsr
    str     x6, [x4]
    mrs     x7, \far
    adr     x4, rec_far
    str     x7, [x4]
    mrs     x8, CurrentEL
    adr     x4, rec_el
    str     x8, [x4]
    mrs     x8, daif
    adr     x4, rec_daif
    str     x8, [x4]
    mrs     x8, spsel
    adr     x4, rec_spsel
    str     x8, [x4]
    adr     x4, bm_features
    ldr     x9, [x4]
    mov     x8, #-1                         // PAN/UAO cannot be read on a v8.0 CPU
    tbz     x9, #FEAT_PAN_BIT, 2f
    mrs     x8, pan
    lsr     x8, x8, #22
2:  adr     x4, rec_pan
    str     x8, [x4]
    mov     x8, #-1
    tbz     x9, #FEAT_UAO_BIT, 3f
    mrs     x8, uao
    lsr     x8, x8, #23
3:  adr     x4, rec_uao
    str     x8, [x4]
    mov     x8, #-1
    tbz     x9, #FEAT_DIT_BIT, 6f
    mrs     x8, dit
    lsr     x8, x8, #24
6:  adr     x4, rec_dit
    str     x8, [x4]
    mov     x8, #-1
    tbz     x9, #FEAT_SSBS_BIT, 7f
    mrs     x8, ssbs
    lsr     x8, x8, #12
7:  adr     x4, rec_ssbs
    str     x8, [x4]
    adr     x4, rec_count
    ldr     x8, [x4]
    add     x8, x8, #1
    str     x8, [x4]
    cmp     x2, #ESR_ELx_EC_SVC64
    b.eq    5f
    cmp     x2, #ESR_ELx_EC_HVC64
    b.eq    5f
    cmp     x2, #ESR_ELx_EC_IABT_LOW
    b.eq    4f
    cmp     x2, #ESR_ELx_EC_IABT_CUR
    b.eq    4f
    add     x5, x5, #4
    b       5f
4:  ldr     x5, [sp, #144]
5:  msr     \elr, x5
    adr     x4, bm_spsr_xor
    ldr     x7, [x4]
    str     xzr, [x4]
    eor     x6, x6, x7
    msr     \spsr, x6
    adr     x4, bm_in_handler
    str     xzr, [x4]
    bm_frame_eret
8:
    bm_exit_call \el
    .endm

// ------------------------------------------------------------------ the library

    .macro  selfcheck_lib
    print_lib

bm_boot:
    stp     x29, x30, [sp, #-16]!
    adr     x0, bm_el2_vectors
    msr     vbar_el2, x0
    adr     x0, bm_el1_vectors
    msr     vbar_el1, x0
    ldr     x0, =HCR_HOST_NVHE_FLAGS
    msr     hcr_el2, x0
    isb
    // features from the ID registers (PAN and UAO instructions are UNDEFINED without them)
    mrs     x0, id_aa64mmfr1_el1
    mov     x3, #0
    ubfx    x1, x0, #ID_AA64MMFR1_PAN_SHIFT, #4
    cbz     x1, 1f
    orr     x3, x3, #FEAT_PAN
1:  ubfx    x1, x0, #ID_AA64MMFR1_VH_SHIFT, #4
    cbz     x1, 2f
    orr     x3, x3, #FEAT_VHE
2:  mrs     x0, id_aa64mmfr2_el1
    ubfx    x1, x0, #ID_AA64MMFR2_UAO_SHIFT, #4
    cbz     x1, 3f
    orr     x3, x3, #FEAT_UAO
3:  mrs     x0, id_aa64pfr0_el1
    ubfx    x1, x0, #ID_AA64PFR0_DIT_SHIFT, #4
    cbz     x1, 4f
    orr     x3, x3, #FEAT_DIT
4:  mrs     x0, id_aa64pfr1_el1
    ubfx    x1, x0, #ID_AA64PFR1_SSBS_SHIFT, #4
    cmp     x1, #2
    b.lo    5f
    orr     x3, x3, #FEAT_SSBS
5:  adr     x0, bm_features
    str     x3, [x0]
    adr     x0, bm_nchecks
    str     xzr, [x0]
    adr     x0, bm_in_handler
    str     xzr, [x0]
    adr     x0, bm_str_info_features
    bl      bm_puts
    adr     x0, bm_features
    ldr     x0, [x0]
    bl      bm_puthex
    mov     w0, #10
    bl      bm_putc
    bl      bm_build_page_tables
    bl      bm_mmu_on
    ldp     x29, x30, [sp], #16
    ret

bm_build_page_tables:
    ldr     x0, =BM_PT_L1
    ldr     x1, =BM_PT_L2
    ldr     x2, =BM_PT_L3
    pt_zero x0, 3
    // level 1: [0] the GiB with the UART, [1] RAM through level 2, [2] invalid
    pt_set  x0, 0, ATTR_DEVICE_BLOCK
    orr     x3, x1, #PMD_TYPE_TABLE
    str     x3, [x0, #8]
    // level 2: [0] through level 3, the rest kernel blocks but BM_UBLOCK
    orr     x3, x2, #PMD_TYPE_TABLE
    str     x3, [x1]
    ldr     x3, =(RAM_BASE + 0x200000)
    mov     x4, #511
1:
    pt_map  x1, x3, ATTR_KERNEL_BLOCK, 21
    add     x3, x3, #0x200000
    subs    x4, x4, #1
    b.ne    1b
    ldr     x3, =BM_UBLOCK
    pt_map  x1, x3, ATTR_UDATA_BLOCK, 21
    // level 3: kernel pages, then the special ones
    ldr     x3, =RAM_BASE
    mov     x4, #512
2:
    pt_map  x2, x3, ATTR_KERNEL_PAGE, 12
    add     x3, x3, #0x1000
    subs    x4, x4, #1
    b.ne    2b
    ldr     x3, =BM_KPAGE
    pt_map  x2, x3, ATTR_KDATA_PAGE, 12
    ldr     x3, =BM_UPAGE
    pt_map  x2, x3, ATTR_UDATA_PAGE, 12
    ldr     x3, =BM_AFPAGE
    pt_map  x2, x3, ATTR_NOAF_PAGE, 12
    ldr     x3, =BM_TPAGE
    ubfx    x4, x3, #12, #9
    str     xzr, [x2, x4, lsl #3]
    adr     x3, bm_user_text
    adr     x4, bm_user_text_end
3:
    pt_map  x2, x3, ATTR_UTEXT_PAGE, 12
    add     x3, x3, #0x1000
    cmp     x3, x4
    b.lo    3b
    adr     x3, bm_xn_text
    pt_map  x2, x3, ATTR_XN_PAGE, 12
    dsb     sy
    ret

bm_mmu_on:
    ldr     x0, =MAIR_VALUE
    msr     mair_el1, x0
    msr     mair_el2, x0
    ldr     x0, =TCR_VALUE
    msr     tcr_el1, x0
    msr     tcr_el2, x0
    ldr     x0, =BM_PT_L1
    msr     ttbr0_el1, x0
    msr     ttbr0_el2, x0
    isb
    tlbi    alle2
    tlbi    alle1
    dsb     sy
    isb
    ldr     x0, =(SCTLR_EL1_BASE | SCTLR_ELx_M)
    msr     sctlr_el1, x0
    ldr     x0, =(SCTLR_EL2_BASE | SCTLR_ELx_M)
    msr     sctlr_el2, x0
    isb
    ret

bm_flush_tlb:
    dsb     sy
    tlbi    alle2
    tlbi    alle1
    dsb     sy
    isb
    ret

// bm_check_begin: x0 = name, x1 = needs; returns x0 = 0 to run the check, 1 to skip it.
bm_check_begin:
    stp     x29, x30, [sp, #-32]!
    str     x19, [sp, #16]
    adr     x2, bm_cur_name
    str     x0, [x2]
    adr     x2, bm_cur_fail
    str     xzr, [x2]
    adr     x2, bm_features
    ldr     x2, [x2]
    mvn     x3, x2
    and     x3, x3, #(FEAT_PAN | FEAT_UAO)
    orr     x2, x2, x3, lsl #3              // absent PAN/UAO satisfy NEEDS_NO_PAN/NO_UAO
    mvn     x3, x2
    and     x3, x3, #FEAT_DIT
    orr     x2, x2, x3, lsl #2              // absent DIT satisfies NEEDS_NO_DIT
    bic     x1, x1, x2                      // what is needed but missing
    cbz     x1, 9f
    mov     x19, x1
    adr     x0, bm_str_skip
    bl      bm_puts
    adr     x0, bm_cur_name
    ldr     x0, [x0]
    bl      bm_puts
    tbz     x19, #0, 1f
    adr     x0, bm_str_no_pan
    bl      bm_puts
    b       8f
1:  tbz     x19, #1, 2f
    adr     x0, bm_str_no_uao
    bl      bm_puts
    b       8f
2:  tbz     x19, #2, 3f
    adr     x0, bm_str_no_vhe
    bl      bm_puts
    b       8f
3:  tbz     x19, #3, 4f
    adr     x0, bm_str_has_pan
    bl      bm_puts
    b       8f
4:  tbz     x19, #4, 5f
    adr     x0, bm_str_has_uao
    bl      bm_puts
    b       8f
5:  tbz     x19, #5, 6f
    adr     x0, bm_str_no_dit
    bl      bm_puts
    b       8f
6:  tbz     x19, #6, 7f
    adr     x0, bm_str_no_ssbs
    bl      bm_puts
    b       8f
7:  adr     x0, bm_str_has_dit
    bl      bm_puts
8:  mov     w0, #10
    bl      bm_putc
    mov     x0, #1
    b       10f
9:  bl      bm_reset_config
    bl      bm_rec_reset
    mov     x0, #0
10: ldr     x19, [sp, #16]
    ldp     x29, x30, [sp], #32
    ret

// bm_reset_config: the baseline every check starts from (EL2, E2H=0, TGE=0, MMUs on).
bm_reset_config:
    stp     x29, x30, [sp, #-16]!
    msr     daifset, #0xf
    ldr     x0, =HCR_HOST_NVHE_FLAGS
    msr     hcr_el2, x0
    isb
    ldr     x0, =(SCTLR_EL2_BASE | SCTLR_ELx_M)
    msr     sctlr_el2, x0
    ldr     x0, =(SCTLR_EL1_BASE | SCTLR_ELx_M)
    msr     sctlr_el1, x0
    isb
    adr     x0, bm_features
    ldr     x0, [x0]
    tbz     x0, #FEAT_PAN_BIT, 1f
    msr     pan, #0
1:  tbz     x0, #FEAT_UAO_BIT, 2f
    msr     uao, #0
2:  tbz     x0, #FEAT_DIT_BIT, 3f
    msr     dit, #0
3:  tbz     x0, #FEAT_SSBS_BIT, 4f
    msr     ssbs, #0
4:  adr     x0, bm_spsr_xor
    str     xzr, [x0]
    bl      bm_flush_tlb
    ldp     x29, x30, [sp], #16
    ret

bm_rec_reset:
    adr     x0, rec_count
    str     xzr, [x0]
    ldr     x1, =BM_POISON
    adr     x0, rec_vec
    mov     x2, #REC_NFIELDS
1:  str     x1, [x0], #8
    subs    x2, x2, #1
    b.ne    1b
    ret

// bm_check_end: count the check; PASS when no expect failed.
bm_check_end:
    stp     x29, x30, [sp, #-16]!
    adr     x0, bm_nchecks
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    adr     x0, bm_cur_fail
    ldr     x0, [x0]
    cbnz    x0, 1f
    adr     x0, bm_str_pass
    bl      bm_puts
    adr     x0, bm_cur_name
    ldr     x0, [x0]
    bl      bm_puts
    mov     w0, #10
    bl      bm_putc
1:  ldp     x29, x30, [sp], #16
    ret

// bm_expect: x0 = field name, x1 = value seen, x2 = value the rule predicts.
bm_expect:
    cmp     x1, x2
    b.ne    1f
    ret
1:  stp     x29, x30, [sp, #-48]!
    stp     x19, x20, [sp, #16]
    str     x21, [sp, #32]
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    adr     x0, bm_cur_fail
    ldr     x1, [x0]
    add     x1, x1, #1
    str     x1, [x0]
    adr     x0, bm_str_fail
    bl      bm_puts
    adr     x0, bm_cur_name
    ldr     x0, [x0]
    bl      bm_puts
    mov     w0, #32
    bl      bm_putc
    mov     x0, x19
    bl      bm_puts
    mov     w0, #61                         // =
    bl      bm_putc
    mov     x0, x20
    bl      bm_puthex
    adr     x0, bm_str_expected
    bl      bm_puts
    mov     x0, x21
    bl      bm_puthex
    mov     w0, #10
    bl      bm_putc
    ldp     x19, x20, [sp, #16]
    ldr     x21, [sp, #32]
    ldp     x29, x30, [sp], #48
    ret

bm_done:
    adr     x0, bm_str_done
    bl      bm_puts
    adr     x0, bm_nchecks
    ldr     x0, [x0]
    bl      bm_putdec
    adr     x0, bm_str_checks
    bl      bm_puts
    mov     w0, #10
    bl      bm_putc
    psci_system_off

// An exception inside the recording handler: nothing after it can be trusted.
bm_nested:
    mov     x19, x1
    adr     x0, bm_str_fail
    bl      bm_puts
    adr     x0, bm_cur_name
    ldr     x0, [x0]
    bl      bm_puts
    adr     x0, bm_str_nested_exception_esr
    bl      bm_puts
    mov     x0, x19
    bl      bm_puthex
    mov     w0, #10
    bl      bm_putc
    psci_system_off

// bm_run_here: x8 = probe, x7 = NZCV, x0-x6 its arguments; call it at the current EL.
bm_run_here:
    stp     x29, x30, [sp, #-16]!
    msr     nzcv, x7
    call_probe x8
    ldp     x29, x30, [sp], #16
    ret

// bm_run_lower: x8 = probe, x9 = SPSR_EL2 for the ERET (EL0 or EL1), x7 = NZCV, x0-x6 its
// arguments; returns the probe's x0-x7 when its trampoline makes the exit call.
bm_run_lower:
    adr     x10, bm_drv_ctx
    stp     x19, x20, [x10, #0]
    stp     x21, x22, [x10, #16]
    stp     x23, x24, [x10, #32]
    stp     x25, x26, [x10, #48]
    stp     x27, x28, [x10, #64]
    stp     x29, x30, [x10, #80]
    mov     x11, sp
    str     x11, [x10, #96]
    ldr     x11, =BM_STACK_EL1_TOP
    msr     sp_el1, x11
    ldr     x11, =BM_STACK_EL0_TOP
    msr     sp_el0, x11
    adr     x11, bm_tramp_el1
    tst     x9, #0xc                        // SPSR.M[3:2] = target EL
    b.ne    1f
    adr     x11, bm_tramp_el0
1:  msr     elr_el2, x11
    msr     spsr_el2, x9
    eret

bm_return_to_driver:
    ldp     x0, x1, [sp]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    adr     x9, bm_drv_ctx
    ldp     x19, x20, [x9, #0]
    ldp     x21, x22, [x9, #16]
    ldp     x23, x24, [x9, #32]
    ldp     x25, x26, [x9, #48]
    ldp     x27, x28, [x9, #64]
    ldp     x29, x30, [x9, #80]
    ldr     x10, [x9, #96]
    mov     sp, x10
    ret

bm_tramp_el1:
    msr     nzcv, x7
    call_probe x8
    hvc     #BM_EXIT_IMM
    svc     #BM_EXIT_IMM                    // at EL0 (an ERET with a changed SPSR put the probe
    b       .                               // there) the HVC is UNDEFINED: exit through EL1

// EL1/EL2 probes: plain functions; x0.. arguments and results; the faulting instruction
// is the label (or label + 4 after an SVC/HVC, whose ELR is the next instruction).
k_ldr:
    ldr     x0, [x0]
    ret
k_str:
    str     x1, [x0]
    ret
k_ldtr:
    ldtr    x2, [x0]                        // not x0, [x0]: capstone 5.0.7 cannot decode that
    mov     x0, x2
    ret
k_sttr:
    sttr    x1, [x0]
    ret
k_blr:
    mov     x9, x30
    call_probe x0
    ret     x9
k_svc:
    svc     #0x33
    ret
k_hvc:
    hvc     #0x12
    ret
k_smc:
    smc     #0x77
    ret
k_brk:
    brk     #0x44
    ret
k_udf:
    .inst   0x00001234                      // udf #0x1234 (keystone lacks UDF)
    ret
k_wfi:
    wfi
    ret
k_dit_ssbs:
    dit_ssbs_probe svc, 0x33
k_msrimm:
    msr     dit, #1
    msr     ssbs, #0
    svc     #0x33
    ret
// An SVC and a BRK at the target of a BR and a BLR: PSTATE.BTYPE is 01 / 10 there (FEAT_BTI,
// an unguarded page), which SPSR_ELx.BTYPE then holds or not (AArch64.TakeException).
k_brsvc:
    adr     x9, 1f
    br      x9
1:  svc     #0x33
    ret
k_blrbrk:
    mov     x10, x30
    adr     x9, 1f
    blr     x9
1:  brk     #0x44
    mov     x30, x10
    ret

    bm_record_handler bm_el1_handler, 1, esr_el1, elr_el1, spsr_el1, far_el1
    bm_record_handler bm_el2_handler, 2, esr_el2, elr_el2, spsr_el2, far_el2
    vector_table bm_el1_vectors, bm_el1_handler, BM_FRAME
    vector_table bm_el2_vectors, bm_el2_handler, BM_FRAME

    .balign 8
bm_features:    .quad 0
bm_nchecks:     .quad 0
bm_cur_name:    .quad 0
bm_cur_fail:    .quad 0
bm_in_handler:  .quad 0
bm_spsr_xor:    .quad 0
bm_drv_ctx:     .skip 8 * 14
rec_count:      .quad 0
rec_vec:        .quad 0
rec_el:         .quad 0
rec_esr:        .quad 0
rec_elr:        .quad 0
rec_spsr:       .quad 0
rec_far:        .quad 0
rec_pan:        .quad 0
rec_uao:        .quad 0
rec_daif:       .quad 0
rec_spsel:      .quad 0
rec_dit:        .quad 0
rec_ssbs:       .quad 0

    // Strings here, not as macro arguments: the harness trims spaces at the ends of a
    // quoted macro argument, GNU as keeps them.
bm_str_info_features:
    .asciz  "INFO features="
bm_str_skip:
    .asciz  "SKIP "
bm_str_no_pan:
    .asciz  " no PAN"
bm_str_no_uao:
    .asciz  " no UAO"
bm_str_no_vhe:
    .asciz  " no VHE"
bm_str_has_pan:
    .asciz  " has PAN"
bm_str_has_uao:
    .asciz  " has UAO"
bm_str_no_dit:
    .asciz  " no DIT"
bm_str_no_ssbs:
    .asciz  " no SSBS"
bm_str_has_dit:
    .asciz  " has DIT"
bm_str_pass:
    .asciz  "PASS "
bm_str_fail:
    .asciz  "FAIL "
bm_str_expected:
    .asciz  " expected "
bm_str_done:
    .asciz  "DONE "
bm_str_checks:
    .asciz  " checks"
bm_str_nested_exception_esr:
    .asciz  " nested_exception esr="

    // EL0 code: pages AP=11 (EL0 may run them) with no literal pool inside.
    .balign 4096
bm_user_text:
bm_tramp_el0:
    msr     nzcv, x7
    call_probe x8
    svc     #BM_EXIT_IMM
    b       .
u_ldr:
    ldr     x0, [x0]
    ret
u_str:
    str     x1, [x0]
    ret
u_ldtr:
    ldtr    x2, [x0]
    mov     x0, x2
    ret
u_sttr:
    sttr    x1, [x0]
    ret
u_blr:
    mov     x9, x30
    call_probe x0
    ret     x9
u_svc:
    svc     #0x33
    ret
u_hvc:
    hvc     #0x12
    ret
u_brk:
    brk     #0x45
    ret
u_udf:
    .inst   0x00004321                      // udf #0x4321
    ret
u_wfi:
    wfi
    ret
u_svc_sp:
    mov     x1, sp
    svc     #0x33
    mov     x2, sp
    ret
u_msr_pan:
    msr     pan, #1
    ret
u_dit_ssbs:
    dit_ssbs_probe svc, 0x33
u_msrimm:
    msr     dit, #1
    msr     ssbs, #0
    svc     #0x33
    ret
u_brsvc:
    adr     x9, 1f
    br      x9
1:  svc     #0x33
    ret
u_blrbrk:
    mov     x10, x30
    adr     x9, 1f
    blr     x9
1:  brk     #0x45
    mov     x30, x10
    ret
u_ret:
    ret
    .balign 4096
bm_user_text_end:

    // One page that no EL may execute from.
bm_xn_text:
    ret
    .balign 4096
    .endm
