// fidelity.S: the library of the generated differential test programs (harness/fidelity).
//
// A generated program is
//     .include "fidelity.S"
//     _start:  selfcheck_boot
//              fid_main              // runs every case of the table, prints, powers off
//              selfcheck_lib
//              fidelity_lib
//     fid_cases: one FID_CASE_SIZE row per case ... fid_cases_end:
// and is built once with GNU as, then run on qemu-system-aarch64 and on the harness: the
// two UART outputs must be identical. Nothing is checked on the target; the program only
// reports what the CPU did.
//
// A case row (quads): id, SPSR_EL2 of the ERET that starts the probe (its EL, SP, PAN, UAO,
// DAIF), probe, NZCV, x0, x1, HCR_EL2, SCTLR_EL1, SCTLR_EL2, the XOR applied to the SPSR of
// the first exception before its ERET. The probe runs in the stage-1 setup of selfcheck.S
// (pages: user, kernel, invalid, AF=0, XN) and ends with svc/hvc #BM_EXIT_IMM.
//
// Output, one line per case:
//   C<id> n=<exceptions> x0=<probe's x0> exit=<SPSR at the exit call: PSTATE after the ERET>
//         | vec= el= esr= elr= spsr= far= pan= uao= daif= spsel= dit= ssbs=  (one group per exception)
// FAR is printed for aborts only (it is UNKNOWN for the other classes).

    .include "selfcheck.S"

    .equ    FID_CASE_SIZE,  80
    .equ    FID_REC_SIZE,   96              // vec el esr elr spsr far pan uao daif spsel dit ssbs
    .equ    FID_MAXREC,     4               // more exceptions than this: a runaway, stop
    .equ    FID_RET_INSN,   0xd65f03c0      // ret: what the invalid and AF=0 pages hold

// fid_handler name, el, esr, elr, spsr, far: one EL's handler. Logs the exception, returns
// (SVC/HVC to ELR, instruction aborts to the interrupted x30, an Illegal Execution state
// exception to ELR with SPSR.IL cleared so the probe can go on, the rest to ELR + 4), XORs
// the first SPSR with fid_xor. svc/hvc #BM_EXIT_IMM ends the probe: the SPSR it was taken
// with is the PSTATE after the ERET, kept in fid_exit_spsr (the first exit call only).
    .macro  fid_handler name, el, esr, elr, spsr, far
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
1:  adr     x4, fid_count
    ldr     x5, [x4]
    cmp     x5, #FID_MAXREC
    b.hs    fid_runaway
    add     x6, x5, #1
    str     x6, [x4]
    adr     x4, fid_log
    mov     x6, #FID_REC_SIZE
    madd    x4, x5, x6, x4
    str     x0, [x4]
    mrs     x6, CurrentEL
    str     x6, [x4, #8]
    str     x1, [x4, #16]
    mrs     x5, \elr
    str     x5, [x4, #24]
    mrs     x6, \spsr
    str     x6, [x4, #32]
    mrs     x7, \far
    str     x7, [x4, #40]
    mrs     x8, pan
    str     x8, [x4, #48]
    mrs     x8, uao
    str     x8, [x4, #56]
    mrs     x8, daif
    str     x8, [x4, #64]
    mrs     x8, spsel
    str     x8, [x4, #72]
    mrs     x8, dit                         // (a max CPU: FEAT_DIT, FEAT_SSBS)
    str     x8, [x4, #80]
    mrs     x8, ssbs
    str     x8, [x4, #88]
    cmp     x2, #ESR_ELx_EC_SVC64
    b.eq    5f
    cmp     x2, #ESR_ELx_EC_HVC64
    b.eq    5f
    cmp     x2, #ESR_ELx_EC_ILL
    b.eq    6f
    cmp     x2, #ESR_ELx_EC_IABT_LOW
    b.eq    4f
    cmp     x2, #ESR_ELx_EC_IABT_CUR
    b.eq    4f
    add     x5, x5, #4
    b       5f
4:  ldr     x5, [sp, #144]
    b       5f
6:  bic     x6, x6, #PSR_IL_BIT
5:  msr     \elr, x5
    adr     x4, fid_xor
    ldr     x7, [x4]
    str     xzr, [x4]
    eor     x6, x6, x7
    msr     \spsr, x6
    bm_frame_eret
8:  adr     x4, fid_exit_spsr
    ldr     x5, [x4]
    ldr     x6, =BM_POISON
    cmp     x5, x6
    b.ne    9f
    mrs     x5, \spsr
    str     x5, [x4]
9:
    bm_exit_call \el
    .endm

// fid_field label, off: print the string at \label, then the quad at [x22 + \off] in hex.
    .macro  fid_field label, off
    adr     x0, \label
    bl      bm_puts
    ldr     x0, [x22, #\off]
    bl      bm_puthex
    .endm

// fid_main: after selfcheck_boot, run the table fid_cases..fid_cases_end and power off.
    .macro  fid_main
    bl      fid_boot
    adr     x19, fid_cases
    ldr     x20, =fid_cases_end
9960:
    cmp     x19, x20
    b.hs    9961f
    bl      fid_run_case
    add     x19, x19, #FID_CASE_SIZE
    b       9960b
9961:
    adr     x0, fid_s_end
    bl      bm_puts
    psci_system_off
    .endm

    .macro  fidelity_lib
// fid_boot: our vectors.
fid_boot:
    adr     x0, fid_el2_vectors
    msr     vbar_el2, x0
    adr     x0, fid_el1_vectors
    msr     vbar_el1, x0
    isb
    ret

// fid_reset_memory: with the EL2 MMU off for a moment (two of the pages are invalid), put
// the known values back in every probe address and a ret at the start of the invalid and
// AF=0 pages (reached when the MMU is off), so no case sees what an earlier one stored.
fid_reset_memory:
    ldr     x0, =SCTLR_EL2_BASE
    msr     sctlr_el2, x0
    isb
    adr     x0, fid_memory_init
    adr     x1, fid_memory_init_end
1:  ldp     x2, x3, [x0], #16
    str     x3, [x2]
    cmp     x0, x1
    b.lo    1b
    ldr     x3, =FID_RET_INSN
    ldr     x2, =BM_TPAGE
    str     w3, [x2]
    ldr     x2, =BM_AFPAGE
    str     w3, [x2]
    dsb     sy
    ic      iallu
    ldr     x0, =(SCTLR_EL2_BASE | SCTLR_ELx_M)
    msr     sctlr_el2, x0
    dsb     sy
    isb
    ret

// fid_run_case: x19 = the case row; configure, run the probe, print the line.
fid_run_case:
    stp     x29, x30, [sp, #-16]!
    bl      bm_reset_config
    bl      fid_reset_memory
    adr     x0, fid_count
    str     xzr, [x0]
    ldr     x1, =BM_POISON
    adr     x0, fid_exit_spsr
    str     x1, [x0]
    // SCTLRs while E2H=0: with E2H=1 an EL2 write of SCTLR_EL1 goes to SCTLR_EL2
    ldr     x0, [x19, #56]
    msr     sctlr_el1, x0
    ldr     x0, [x19, #64]
    msr     sctlr_el2, x0
    isb
    ldr     x0, [x19, #48]
    msr     hcr_el2, x0
    isb
    bl      bm_flush_tlb
    ldr     x0, [x19, #72]
    adr     x1, fid_xor
    str     x0, [x1]
    ldr     x9, [x19, #8]
    ldr     x8, [x19, #16]
    ldr     x7, [x19, #24]
    ldr     x0, [x19, #32]
    ldr     x1, [x19, #40]
    bl      bm_run_lower
    mov     x21, x0
    bl      fid_print_case
    ldp     x29, x30, [sp], #16
    ret

// fid_print_case: x19 = the case row, x21 = the probe's x0.
fid_print_case:
    stp     x29, x30, [sp, #-32]!
    stp     x22, x23, [sp, #16]
    mov     w0, #0x43                       // C
    bl      bm_putc
    ldr     x0, [x19]
    bl      bm_putdec
    adr     x0, fid_s_n
    bl      bm_puts
    adr     x0, fid_count
    ldr     x0, [x0]
    bl      bm_putdec
    adr     x0, fid_s_x0
    bl      bm_puts
    mov     x0, x21
    bl      bm_puthex
    adr     x0, fid_s_exit
    bl      bm_puts
    adr     x0, fid_exit_spsr
    ldr     x0, [x0]
    bl      bm_puthex
    adr     x22, fid_log
    adr     x23, fid_count
    ldr     x23, [x23]
1:  cbz     x23, 9f
    fid_field fid_s_vec, 0
    fid_field fid_s_el, 8
    fid_field fid_s_esr, 16
    fid_field fid_s_elr, 24
    fid_field fid_s_spsr, 32
    adr     x0, fid_s_far
    bl      bm_puts
    ldr     x1, [x22, #16]
    lsr     x1, x1, #ESR_ELx_EC_SHIFT
    mov     x2, #0x3a                       // 0x20, 0x21, 0x24, 0x25: the aborts
    and     x1, x1, x2
    cmp     x1, #0x20
    b.ne    2f
    ldr     x0, [x22, #40]
    bl      bm_puthex
    b       3f
2:  mov     w0, #0x2d                       // -
    bl      bm_putc
3:  fid_field fid_s_pan, 48
    fid_field fid_s_uao, 56
    fid_field fid_s_daif, 64
    fid_field fid_s_spsel, 72
    fid_field fid_s_dit, 80
    fid_field fid_s_ssbs, 88
    add     x22, x22, #FID_REC_SIZE
    sub     x23, x23, #1
    b       1b
9:  mov     w0, #10
    bl      bm_putc
    ldp     x22, x23, [sp, #16]
    ldp     x29, x30, [sp], #32
    ret

// More exceptions than a case can cause: print where and stop (both emulators alike).
fid_runaway:
    adr     x0, fid_s_runaway
    bl      bm_puts
    ldr     x0, [x19]
    bl      bm_putdec
    mov     w0, #10
    bl      bm_putc
    psci_system_off

// A ret in kernel text, for instruction fetches at EL0 from a privileged page.
fid_k_ret:
    ret

    fid_handler fid_el1_handler, 1, esr_el1, elr_el1, spsr_el1, far_el1
    fid_handler fid_el2_handler, 2, esr_el2, elr_el2, spsr_el2, far_el2
    vector_table fid_el1_vectors, fid_el1_handler, BM_FRAME
    vector_table fid_el2_vectors, fid_el2_handler, BM_FRAME

    .balign 8
fid_count:      .quad 0
fid_xor:        .quad 0
fid_exit_spsr:  .quad 0
fid_log:        .skip FID_REC_SIZE * FID_MAXREC
fid_memory_init:                            // address, value: what each probe address holds
    .quad   BM_KPAGE + 0x10, 0x1111
    .quad   BM_UPAGE + 0x18, 0x2222
    .quad   BM_UBLOCK + 0x100, 0x3333
    .quad   BM_TPAGE + 0x8, 0x4444
    .quad   BM_AFPAGE + 0x8, 0x5555
fid_memory_init_end:

fid_s_n:        .asciz " n="
fid_s_x0:       .asciz " x0="
fid_s_exit:     .asciz " exit="
fid_s_vec:      .asciz " | vec="
fid_s_el:       .asciz " el="
fid_s_esr:      .asciz " esr="
fid_s_elr:      .asciz " elr="
fid_s_spsr:     .asciz " spsr="
fid_s_far:      .asciz " far="
fid_s_pan:      .asciz " pan="
fid_s_uao:      .asciz " uao="
fid_s_daif:     .asciz " daif="
fid_s_spsel:    .asciz " spsel="
fid_s_dit:      .asciz " dit="
fid_s_ssbs:     .asciz " ssbs="
fid_s_runaway:  .asciz "RUNAWAY C"
fid_s_end:      .asciz "END\n"
    .balign 4
    .endm
