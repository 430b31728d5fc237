// pan.S: PSTATE.PAN on exception entry (facts §1.6), on ERET (§2), and where it acts on
// memory accesses (§3), with the MMU on and real stage-1 tables (see selfcheck.S).
//
// §1.6: entry sets PAN=1 iff the CPU has PAN and (target EL1, or target EL2 with E2H=1 and
// TGE=1) and SCTLR_target.SPAN==0; otherwise PAN keeps its value.
// §3: PAN=1 makes privileged data accesses from EL1 (or EL2 with E2H=1) to EL0-accessible
// pages (AP[1]=1) permission faults; instruction fetches and the EL2 (E2H=0) regime are
// unaffected. A permission fault reports DFSC = 0x0C + level of the descriptor (§4).

    .include "selfcheck.S"

    .equ    KVAL,  0x1111                  // at BM_KPAGE + 0x10
    .equ    UVAL,  0x2222                  // at BM_UPAGE + 0x18
    .equ    BVAL,  0x3333                  // at BM_UBLOCK + 0x100
    .equ    EL1H,  (PSR_MODE_EL1h | PSR_DAIF)

    .text
    .global _start
_start:
    selfcheck_boot
    bl      t_entry_el1_span0
    bl      t_entry_el1_span1
    bl      t_entry_el1_span1_pan1
    bl      t_entry_el0_span0
    bl      t_entry_el2_e2h0
    bl      t_entry_el2_e2h0_pan1
    bl      t_entry_el2_guest_exit
    bl      t_entry_el2_e2h1_tge0_same
    bl      t_entry_el2_host_span0
    bl      t_entry_el2_host_span0_same
    bl      t_entry_el2_host_span1
    bl      t_el1_ldr_user
    bl      t_el1_str_user
    bl      t_el1_ldr_user_block
    bl      t_el1_ldr_kernel
    bl      t_el1_pan0_ldr_user
    bl      t_el1_ifetch_user
    bl      t_el1_msr_imm
    bl      t_el2_host_ldr_user
    bl      t_el2_e2h1_tge0_ldr_user
    bl      t_el2_e2h0_ldr_user
    bl      t_eret_sets_pan
    bl      t_eret_clears_pan
    bl      t_eret_el2_to_el1
    bl      t_illegal_eret
    bl      t_vhe_guest_el12
    bl      t_msr_pan_el0
    bl      t_pan_v80
    selfcheck_done

// ---- PAN on exception entry

// EL1 -> EL1, SPAN=0: PAN set; SPSR keeps the old PAN (0); ERET puts it back.
t_entry_el1_span0:
    check_begin pan_entry_el1_span0_sets, FEAT_PAN
    set_sysreg sctlr_el1, ((SCTLR_EL1_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    run_lower EL1H, k_svc_pan
    mov     x19, x0
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec pan, 1                             // §1.6: target EL1, SPAN=0
    expect_rec spsr, EL1H                         // §1.1: PAN bit 22 was 0
    expect  pan_after_eret, x19, 0                // §2: restored from SPSR
    check_end

// EL1 -> EL1, SPAN=1: PAN unchanged (0).
t_entry_el1_span1:
    check_begin pan_entry_el1_span1_keeps0, FEAT_PAN
    run_lower EL1H, k_svc_pan
    mov     x19, x0
    expect_rec count, 1
    expect_rec pan, 0
    expect  pan_after_eret, x19, 0
    check_end

// EL1 -> EL1, SPAN=1, PAN=1: unchanged (1); SPSR.PAN=1.
t_entry_el1_span1_pan1:
    check_begin pan_entry_el1_span1_keeps1, FEAT_PAN
    run_lower (EL1H | PSR_PAN_BIT), k_svc_pan
    mov     x19, x0
    expect_rec count, 1
    expect_rec pan, 1
    expect_rec spsr, (EL1H | PSR_PAN_BIT)
    expect  pan_after_eret, x19, 1
    check_end

// EL0 -> EL1, SPAN=0: PAN set.
t_entry_el0_span0:
    check_begin pan_entry_el0_span0_sets, FEAT_PAN
    set_sysreg sctlr_el1, ((SCTLR_EL1_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    run_lower PSR_MODE_EL0t, u_svc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec pan, 1
    expect_rec spsr, PSR_MODE_EL0t
    check_end

// EL1 -> EL2, E2H=0: PAN unchanged, whatever SCTLR_EL1.SPAN says.
t_entry_el2_e2h0:
    check_begin pan_entry_el2_e2h0_keeps0, FEAT_PAN
    set_sysreg sctlr_el1, ((SCTLR_EL1_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    run_lower EL1H, k_hvc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec pan, 0                             // §1.6: EL2 without E2H&TGE
    check_end

t_entry_el2_e2h0_pan1:
    check_begin pan_entry_el2_e2h0_keeps1, FEAT_PAN
    run_lower (EL1H | PSR_PAN_BIT), k_hvc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec pan, 1                             // not cleared either
    expect_rec spsr, (EL1H | PSR_PAN_BIT)
    check_end

// The VHE guest exit: E2H=1, TGE=0, SCTLR_EL2.SPAN=0; the guest's PAN=0 reaches EL2.
t_entry_el2_guest_exit:
    check_begin pan_entry_el2_e2h1_tge0_keeps0, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, ((SCTLR_EL2_VHE_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    run_lower EL1H, k_hvc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec pan, 0                             // §1.6 consequence: TGE=0, SPAN not used
    check_end

// Same EL under E2H=1, TGE=0: BRK at EL2 with PAN=0 keeps PAN=0.
t_entry_el2_e2h1_tge0_same:
    check_begin pan_entry_el2_e2h1_tge0_same_el_keeps0, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, ((SCTLR_EL2_VHE_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    run_el2 k_brk_pan
    mov     x19, x0
    expect_rec count, 1
    expect_rec pan, 0
    expect  pan_after_eret, x19, 0
    check_end

// The VHE host: E2H=1, TGE=1, SPAN=0: EL0 -> EL2 sets PAN.
t_entry_el2_host_span0:
    check_begin pan_entry_el2_vhe_host_span0_sets, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, ((SCTLR_EL2_VHE_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    run_lower PSR_MODE_EL0t, u_svc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec pan, 1                             // §1.6: EL2, E2H=1, TGE=1, SPAN=0
    check_end

// ... and EL2 -> EL2 as well; ERET restores PAN=0.
t_entry_el2_host_span0_same:
    check_begin pan_entry_el2_vhe_host_span0_same_el_sets, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, ((SCTLR_EL2_VHE_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    run_el2 k_brk_pan
    mov     x19, x0
    expect_rec count, 1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec pan, 1
    expect_rec spsr, (PSR_DAIF | PSR_MODE_EL2h)
    expect  pan_after_eret, x19, 0
    check_end

t_entry_el2_host_span1:
    check_begin pan_entry_el2_vhe_host_span1_keeps0, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    run_lower PSR_MODE_EL0t, u_svc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec pan, 0
    check_end

// ---- PAN and memory accesses

// EL1, PAN=1, LDR from the user page: permission fault, level 3, to EL1.
t_el1_ldr_user:
    check_begin pan_el1_ldr_user_page_faults, FEAT_PAN
    ldr     x0, =(BM_UPAGE + 0x18)
    run_lower (EL1H | PSR_PAN_BIT), k_ldr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x9600000f                    // EC=0x25, IL=1, WnR=0, DFSC=perm L3
    expect_rec far, (BM_UPAGE + 0x18)
    expect_rec_addr elr, k_ldr                    // ELR = the faulting LDR
    expect_rec spsr, (EL1H | PSR_PAN_BIT)
    check_end

t_el1_str_user:
    check_begin pan_el1_str_user_page_faults, FEAT_PAN
    ldr     x0, =(BM_UPAGE + 0x20)
    mov     x1, #0x55
    run_lower (EL1H | PSR_PAN_BIT), k_str
    expect_rec count, 1
    expect_rec esr, 0x9600004f                    // WnR=1
    expect_rec far, (BM_UPAGE + 0x20)
    expect_rec_addr elr, k_str
    check_end

// The user 2 MiB block is a level-2 descriptor: DFSC = permission, level 2.
t_el1_ldr_user_block:
    check_begin pan_el1_ldr_user_block_faults_l2, FEAT_PAN
    ldr     x0, =(BM_UBLOCK + 0x100)
    run_lower (EL1H | PSR_PAN_BIT), k_ldr
    expect_rec count, 1
    expect_rec esr, 0x9600000e
    expect_rec far, (BM_UBLOCK + 0x100)
    check_end

// PAN=1 does not touch kernel pages (AP[1]=0).
t_el1_ldr_kernel:
    check_begin pan_el1_ldr_kernel_page_ok, FEAT_PAN
    store_const (BM_KPAGE + 0x10), KVAL
    ldr     x0, =(BM_KPAGE + 0x10)
    run_lower (EL1H | PSR_PAN_BIT), k_ldr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, KVAL
    check_end

t_el1_pan0_ldr_user:
    check_begin pan0_el1_ldr_user_page_ok, FEAT_PAN
    store_const (BM_UPAGE + 0x18), UVAL
    ldr     x0, =(BM_UPAGE + 0x18)
    run_lower EL1H, k_ldr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, UVAL
    check_end

// Instruction fetch from an EL0-readable page (AP=11, PXN=0) at EL1 with PAN=1: allowed.
t_el1_ifetch_user:
    check_begin pan_el1_ifetch_user_text_ok, FEAT_PAN
    adr     x0, u_ret
    run_lower (EL1H | PSR_PAN_BIT), k_blr
    expect_rec count, 0
    check_end

// MSR PAN, #imm at EL1: PAN=1 faults the user load, PAN=0 lets the next one through.
t_el1_msr_imm:
    check_begin pan_el1_msr_pan_imm, FEAT_PAN
    store_const (BM_UPAGE + 0x18), UVAL
    ldr     x0, =(BM_UPAGE + 0x18)
    run_lower EL1H, k_pan_toggle_ldr
    mov     x19, x1
    mov     x20, x2
    expect_rec count, 1
    expect_rec esr, 0x9600000f
    expect_rec_addr elr, k_pan_toggle_ldr, 8
    expect_rec spsr, (EL1H | PSR_PAN_BIT)
    expect  pan_after_fault, x19, 1
    expect  value_with_pan0, x20, UVAL
    check_end

// EL2 in the VHE host (E2H=1, TGE=1), PAN=1: the user page faults at EL2.
// ESR bits 24:9 are not compared for aborts taken to EL2: QEMU 7.2 fills ISV/SAS/SRT there
// for stage-1 faults, while the Arm ARM has ISV=0 for them (only some stage-2 aborts set it).
t_el2_host_ldr_user:
    check_begin pan_el2_vhe_host_ldr_user_page_faults, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    msr     pan, #1
    ldr     x0, =(BM_UPAGE + 0x18)
    run_el2 k_ldr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec_mask esr, 0xfe0001ff, 0x9600000f
    expect_rec far, (BM_UPAGE + 0x18)
    expect_rec_addr elr, k_ldr
    check_end

// E2H=1, TGE=0: still the EL2&0 regime, PAN still acts.
t_el2_e2h1_tge0_ldr_user:
    check_begin pan_el2_e2h1_tge0_ldr_user_page_faults, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    msr     pan, #1
    ldr     x0, =(BM_UPAGE + 0x18)
    run_el2 k_ldr
    expect_rec count, 1
    expect_rec_mask esr, 0xfe0001ff, 0x9600000f
    expect_rec far, (BM_UPAGE + 0x18)
    check_end

// E2H=0: the EL2 regime has no EL0 and PAN has no effect.
t_el2_e2h0_ldr_user:
    check_begin pan_el2_e2h0_ldr_user_page_ok, FEAT_PAN
    store_const (BM_UPAGE + 0x18), UVAL
    msr     pan, #1
    ldr     x0, =(BM_UPAGE + 0x18)
    run_el2 k_ldr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, UVAL
    check_end

// ---- ERET loads PAN from SPSR (§2)

// The handler flips SPSR.PAN before its ERET: EL1 comes back with PAN=1.
t_eret_sets_pan:
    check_begin pan_eret_loads_spsr_pan1, FEAT_PAN
    set_spsr_xor PSR_PAN_BIT
    run_lower EL1H, k_svc_pan
    mov     x19, x0
    expect_rec count, 1
    expect_rec pan, 0
    expect  pan_after_eret, x19, 1
    check_end

t_eret_clears_pan:
    check_begin pan_eret_loads_spsr_pan0, FEAT_PAN
    set_spsr_xor PSR_PAN_BIT
    run_lower (EL1H | PSR_PAN_BIT), k_svc_pan
    mov     x19, x0
    expect_rec count, 1
    expect_rec pan, 1
    expect  pan_after_eret, x19, 0
    check_end

// ERET from EL2 to EL1 sets EL1's PAN from SPSR_EL2, both ways.
t_eret_el2_to_el1:
    check_begin pan_eret_el2_to_el1, FEAT_PAN
    run_lower (EL1H | PSR_PAN_BIT), k_pan_read
    mov     x19, x0
    run_lower EL1H, k_pan_read
    mov     x20, x0
    expect_rec count, 0
    expect  pan_spsr1, x19, 1
    expect  pan_spsr0, x20, 0
    check_end

// An illegal ERET (SPSR.M = EL2h from EL1: target above the current EL) keeps EL and SP
// and sets PSTATE.IL, but SetPSTATEFromPSR still loads PAN from SPSR (facts §2); the next
// instruction takes an Illegal Execution state exception (EC 0x0E) at EL1, whose SPSR shows
// IL=1 and the PAN the illegal return loaded. (QEMU's helper leaves PAN alone there.)
t_illegal_eret:
    check_begin pan_illegal_eret_loads_pan, FEAT_PAN
    set_spsr_xor PSR_IL_BIT                       // the handler returns with IL cleared
    ldr     x0, =(PSR_MODE_EL2h | PSR_DAIF | PSR_PAN_BIT)
    run_lower EL1H, k_illegal_eret
    mov     x19, x0
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x3a000000                    // EC=0x0E illegal state, IL=1
    expect_rec_addr elr, k_illegal_eret_target
    expect_rec spsr, (EL1H | PSR_IL_BIT | PSR_PAN_BIT)
    expect_rec pan, 1                             // SPAN=1: kept from the illegal return
    expect  pan_after, x19, 1
    check_end

// A VHE host sets its guest's SCTLR_EL1 through SCTLR_EL12 (E2H=1: SCTLR_EL1 at EL2 names
// SCTLR_EL2): SPAN=0 there makes the guest's own exceptions set PAN.
t_vhe_guest_el12:
    check_begin pan_vhe_guest_span0_via_sctlr_el12, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    set_sysreg sctlr_el12, ((SCTLR_EL1_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    mrs     x19, sctlr_el12
    mrs     x20, sctlr_el1                        // E2H redirect: SCTLR_EL2
    run_lower EL1H, k_svc_pan
    mov     x21, x0
    expect  sctlr_el12, x19, ((SCTLR_EL1_BASE & ~SCTLR_EL1_SPAN) | SCTLR_ELx_M)
    expect  sctlr_el1_at_el2, x20, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec pan, 1                             // §1.6: target EL1, the guest's SPAN=0
    expect  pan_after_eret, x21, 0
    check_end

// ---- the PAN instructions

// MSR PAN at EL0 is UNDEFINED (with PAN: EL1+ only; without PAN: no such instruction).
t_msr_pan_el0:
    check_begin pan_msr_at_el0_undefined
    run_lower PSR_MODE_EL0t, u_msr_pan
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec esr, 0x02000000
    expect_rec_addr elr, u_msr_pan
    check_end

// A v8.0 CPU (no FEAT_PAN): MSR PAN, #1 and MRS x0, PAN are UNDEFINED at EL1.
t_pan_v80:
    check_begin pan_instructions_undefined_v80, NEEDS_NO_PAN
    run_lower EL1H, k_pan_insns
    expect_rec count, 2
    expect_rec esr, 0x02000000
    expect_rec_addr elr, k_pan_insns, 4           // the last one: MRS
    check_end

// ---- EL1/EL2 probes of this file

k_svc_pan:
    svc     #0x33
    mrs     x0, pan
    ubfx    x0, x0, #22, #1                       // PSTATE.PAN as 0/1
    ret

k_brk_pan:
    brk     #0x44
    mrs     x0, pan
    ubfx    x0, x0, #22, #1                       // PSTATE.PAN as 0/1
    ret

k_pan_read:
    mrs     x0, pan
    ubfx    x0, x0, #22, #1                       // PSTATE.PAN as 0/1
    ret

k_pan_toggle_ldr:
    mov     x3, x0
    msr     pan, #1
    ldr     x0, [x3]                              // faults: PAN=1
    mrs     x1, pan
    ubfx    x1, x1, #22, #1
    msr     pan, #0
    ldr     x2, [x3]                              // PAN=0: loads
    ret

k_illegal_eret:
    adr     x1, k_illegal_eret_target
    msr     elr_el1, x1
    msr     spsr_el1, x0
    eret
k_illegal_eret_target:
    nop                                           // not run: the exception is taken here
    mrs     x0, pan
    ubfx    x0, x0, #22, #1
    ret

k_pan_insns:
    msr     pan, #1
    mrs     x0, pan
    ubfx    x0, x0, #22, #1                       // PSTATE.PAN as 0/1
    ret

    selfcheck_lib
