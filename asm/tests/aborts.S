// aborts.S: data and instruction aborts with the MMU on (tables in selfcheck.S), taken from
// EL0, EL1 and EL2, without PAN or UAO (pan.S and uao.S cover those).
//
// Routing (facts §1): aborts go to the current EL, EL0 to EL1, or to EL2 when TGE=1.
// ESR (§4): EC 0x24/0x25 data abort lower/same EL, 0x20/0x21 instruction abort lower/same
// EL; IL=1; WnR bit 6 for writes; FSC = translation 0x04+L, access flag 0x08+L, permission
// 0x0C+L, L the level of the descriptor that faulted. ELR = the faulting instruction; FAR =
// the faulting address (for an instruction abort, the address fetched).
// ESR bits 24:9 are not compared for data aborts taken to EL2: QEMU 7.2 fills ISV/SAS/SRT
// there for stage-1 faults, the Arm ARM gives ISV=0 for them.

    .include "selfcheck.S"

    .equ    KVAL,  0x1111                  // at BM_KPAGE + 0x10
    .equ    UVAL,  0x2222                  // at BM_UPAGE + 0x18
    .equ    EL1H,  (PSR_MODE_EL1h | PSR_DAIF)
    .equ    ESR_MASK_EL2, 0xfe0001ff

    .text
    .global _start
_start:
    selfcheck_boot
    bl      t_el0_ldr_kernel
    bl      t_el0_str_kernel
    bl      t_el0_ldr_user
    bl      t_el0_ldr_kernel_vhe_host
    bl      t_el0_ldr_kernel_tge_e2h0
    bl      t_el0_str_rdonly
    bl      t_el1_translation_l1
    bl      t_el1_translation_l3
    bl      t_el1_access_flag_l3
    bl      t_el1_str_rdonly
    bl      t_el2_str_rdonly
    bl      t_el2_translation_l1
    bl      t_el2_vhe_translation_l3
    bl      t_iabt_el1_pxn
    bl      t_iabt_el0_uxn
    bl      t_iabt_el1_translation_l1
    bl      t_iabt_el2_xn
    bl      t_iabt_el2_vhe_pxn
    bl      t_iabt_el0_vhe_host
    selfcheck_done

// ---- data aborts from EL0

t_el0_ldr_kernel:
    check_begin dabt_el0_ldr_kernel_page_to_el1
    ldr     x0, =(BM_KPAGE + 0x10)
    run_lower PSR_MODE_EL0t, u_ldr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x9200000f                    // EC=0x24, permission L3
    expect_rec far, (BM_KPAGE + 0x10)
    expect_rec_addr elr, u_ldr
    expect_rec spsr, PSR_MODE_EL0t
    check_end

t_el0_str_kernel:
    check_begin dabt_el0_str_kernel_page_to_el1
    ldr     x0, =(BM_KPAGE + 0x20)
    mov     x1, #0x99
    run_lower PSR_MODE_EL0t, u_str
    expect_rec count, 1
    expect_rec esr, 0x9200004f                    // WnR=1
    expect_rec far, (BM_KPAGE + 0x20)
    expect_rec_addr elr, u_str
    check_end

t_el0_ldr_user:
    check_begin el0_ldr_user_page_ok
    store_const (BM_UPAGE + 0x18), UVAL
    ldr     x0, =(BM_UPAGE + 0x18)
    run_lower PSR_MODE_EL0t, u_ldr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, UVAL
    check_end

// The VHE host: EL0 runs in the EL2&0 regime and its aborts go to EL2.
t_el0_ldr_kernel_vhe_host:
    check_begin dabt_el0_vhe_host_to_el2, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    ldr     x0, =(BM_KPAGE + 0x10)
    run_lower PSR_MODE_EL0t, u_ldr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec_mask esr, ESR_MASK_EL2, 0x9200000f
    expect_rec far, (BM_KPAGE + 0x10)
    expect_rec_addr elr, u_ldr
    check_end

// TGE=1 with E2H=0: the EL1&0 stage 1 behaves as disabled (SCTLR_EL1.M read as 0), so
// EL0 reaches the kernel page (flat, no permission check).
t_el0_ldr_kernel_tge_e2h0:
    check_begin el0_tge_e2h0_stage1_off_ok
    store_const (BM_KPAGE + 0x10), KVAL
    set_hcr (HCR_RW | HCR_TGE)
    ldr     x0, =(BM_KPAGE + 0x10)
    run_lower PSR_MODE_EL0t, u_ldr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, KVAL
    check_end

// EL0 store to its own read-only text (AP=11): permission fault, WnR=1.
t_el0_str_rdonly:
    check_begin dabt_el0_str_readonly_page
    adr     x0, u_ret
    mov     x1, #0
    run_lower PSR_MODE_EL0t, u_str
    expect_rec count, 1
    expect_rec esr, 0x9200004f
    expect_rec_addr far, u_ret
    check_end

// ---- data aborts at EL1

t_el1_translation_l1:
    check_begin dabt_el1_translation_fault_l1
    ldr     x0, =(BM_UNMAPPED_L1 + 0x10)
    run_lower EL1H, k_ldr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x96000005                    // translation fault, level 1
    expect_rec far, (BM_UNMAPPED_L1 + 0x10)
    expect_rec_addr elr, k_ldr
    check_end

t_el1_translation_l3:
    check_begin dabt_el1_translation_fault_l3
    ldr     x0, =(BM_TPAGE + 0x8)
    run_lower EL1H, k_ldr
    expect_rec count, 1
    expect_rec esr, 0x96000007                    // translation fault, level 3
    expect_rec far, (BM_TPAGE + 0x8)
    check_end

// AF=0 with hardware AF management off (TCR.HA=0): access flag fault.
t_el1_access_flag_l3:
    check_begin dabt_el1_access_flag_fault_l3
    ldr     x0, =(BM_AFPAGE + 0x8)
    run_lower EL1H, k_ldr
    expect_rec count, 1
    expect_rec esr, 0x9600000b                    // access flag fault, level 3
    expect_rec far, (BM_AFPAGE + 0x8)
    check_end

// EL1 store to an AP=11 page (read-only at every EL): permission fault, WnR=1.
t_el1_str_rdonly:
    check_begin dabt_el1_str_readonly_page
    adr     x0, u_ret
    mov     x1, #0
    run_lower EL1H, k_str
    expect_rec count, 1
    expect_rec esr, 0x9600004f
    expect_rec_addr far, u_ret
    expect_rec_addr elr, k_str
    check_end

// ---- data aborts at EL2

// The EL2 regime honours AP[2] (read-only) although it ignores AP[1].
t_el2_str_rdonly:
    check_begin dabt_el2_e2h0_str_readonly_page
    adr     x0, u_ret
    mov     x1, #0
    run_el2 k_str
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec_mask esr, ESR_MASK_EL2, 0x9600004f
    expect_rec_addr far, u_ret
    expect_rec_addr elr, k_str
    check_end

t_el2_translation_l1:
    check_begin dabt_el2_e2h0_translation_fault_l1
    ldr     x0, =(BM_UNMAPPED_L1 + 0x10)
    run_el2 k_ldr
    expect_rec count, 1
    expect_rec_mask esr, ESR_MASK_EL2, 0x96000005
    expect_rec far, (BM_UNMAPPED_L1 + 0x10)
    check_end

t_el2_vhe_translation_l3:
    check_begin dabt_el2_vhe_host_translation_fault_l3, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    ldr     x0, =(BM_TPAGE + 0x8)
    run_el2 k_ldr
    expect_rec count, 1
    expect_rec_mask esr, ESR_MASK_EL2, 0x96000007
    expect_rec far, (BM_TPAGE + 0x8)
    check_end

// ---- instruction aborts (the handler returns to the caller's x30)

// EL1 branches to a PXN page: permission fault L3, FAR = ELR = the target.
t_iabt_el1_pxn:
    check_begin iabt_el1_pxn_page
    adr     x0, bm_xn_text
    run_lower EL1H, k_blr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x8600000f                    // EC=0x21, IL=1, IFSC=perm L3
    expect_rec_addr far, bm_xn_text
    expect_rec_addr elr, bm_xn_text
    expect_rec spsr, EL1H
    check_end

t_iabt_el0_uxn:
    check_begin iabt_el0_uxn_page_to_el1
    adr     x0, bm_xn_text
    run_lower PSR_MODE_EL0t, u_blr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x8200000f                    // EC=0x20
    expect_rec_addr far, bm_xn_text
    expect_rec_addr elr, bm_xn_text
    expect_rec spsr, PSR_MODE_EL0t
    check_end

t_iabt_el1_translation_l1:
    check_begin iabt_el1_translation_fault_l1
    ldr     x0, =BM_UNMAPPED_L1
    run_lower EL1H, k_blr
    expect_rec count, 1
    expect_rec esr, 0x86000005
    expect_rec far, BM_UNMAPPED_L1
    expect_rec elr, BM_UNMAPPED_L1
    check_end

// The EL2 regime: descriptor bit 54 is XN.
t_iabt_el2_xn:
    check_begin iabt_el2_e2h0_xn_page
    adr     x0, bm_xn_text
    run_el2 k_blr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x8600000f
    expect_rec_addr far, bm_xn_text
    expect_rec_addr elr, bm_xn_text
    check_end

t_iabt_el2_vhe_pxn:
    check_begin iabt_el2_vhe_host_pxn_page, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    adr     x0, bm_xn_text
    run_el2 k_blr
    expect_rec count, 1
    expect_rec esr, 0x8600000f
    expect_rec_addr far, bm_xn_text
    check_end

t_iabt_el0_vhe_host:
    check_begin iabt_el0_vhe_host_to_el2, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    adr     x0, bm_xn_text
    run_lower PSR_MODE_EL0t, u_blr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x8200000f
    expect_rec_addr far, bm_xn_text
    check_end

    selfcheck_lib
