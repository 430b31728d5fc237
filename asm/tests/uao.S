// uao.S: PSTATE.UAO on exception entry (facts §1.2), on ERET (§2), and its effect on the
// unprivileged loads and stores LDTR/STTR (§3), with the MMU on (see selfcheck.S).
//
// §1.2: every exception entry clears UAO (any target EL) on a CPU that has UAO.
// §3: LDTR/STTR at EL1, or at EL2 with E2H:TGE=11, are EL0 accesses unless UAO=1, when they
// are privileged accesses (PAN applies to them); at EL2 with TGE=0 they are always
// privileged. An EL0 access to a kernel page (AP=00) is a permission fault (DFSC 0x0F at
// level 3), reported as a same-EL data abort (EC 0x25) when taken from EL1 or EL2.

    .include "selfcheck.S"

    .equ    KVAL,  0x1111                  // at BM_KPAGE + 0x10
    .equ    UVAL,  0x2222                  // at BM_UPAGE + 0x18
    .equ    EL1H,  (PSR_MODE_EL1h | PSR_DAIF)

    .text
    .global _start
_start:
    selfcheck_boot
    bl      t_entry_el1
    bl      t_entry_el2_from_el1
    bl      t_entry_el2_same
    bl      t_entry_el2_vhe_host
    bl      t_entry_el2_vhe_guest_exit
    bl      t_uao_kept_at_el0
    bl      t_ldtr_el1_uao0_kernel
    bl      t_ldtr_el1_uao1_kernel
    bl      t_sttr_el1_uao0_kernel
    bl      t_sttr_el1_uao1_kernel
    bl      t_ldtr_el1_pan1_user
    bl      t_sttr_el1_uao1_pan1_user
    bl      t_sttr_el1_uao1_pan0_user
    bl      t_ldtr_el2_host_uao0_kernel
    bl      t_ldtr_el2_host_uao1_kernel
    bl      t_sttr_el2_host_pan1_user
    bl      t_ldtr_el2_tge0_kernel
    bl      t_ldtr_el2_tge0_pan1_user
    bl      t_ldtr_el2_e2h0_kernel
    bl      t_el1_msr_imm
    bl      t_eret_sets_uao
    bl      t_eret_el2_to_el1
    bl      t_uao_v80
    selfcheck_done

// ---- UAO on exception entry

t_entry_el1:
    check_begin uao_entry_el1_clears, FEAT_UAO
    run_lower (EL1H | PSR_UAO_BIT), k_svc_uao
    mov     x19, x0
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec uao, 0                             // §1.2
    expect_rec spsr, (EL1H | PSR_UAO_BIT)         // §1.1: UAO is SPSR bit 23
    expect  uao_after_eret, x19, 1                // §2
    check_end

t_entry_el2_from_el1:
    check_begin uao_entry_el2_from_el1_clears, FEAT_UAO
    run_lower (EL1H | PSR_UAO_BIT), k_hvc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec uao, 0
    expect_rec spsr, (EL1H | PSR_UAO_BIT)
    check_end

t_entry_el2_same:
    check_begin uao_entry_el2_same_el_clears, FEAT_UAO
    msr     uao, #1
    run_el2 k_brk_uao
    mov     x19, x0
    expect_rec count, 1
    expect_rec uao, 0
    expect_rec spsr, (PSR_UAO_BIT | PSR_DAIF | PSR_MODE_EL2h)
    expect  uao_after_eret, x19, 1
    check_end

t_entry_el2_vhe_host:
    check_begin uao_entry_el2_vhe_host_clears, (FEAT_UAO | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    msr     uao, #1
    run_el2 k_brk_uao
    mov     x19, x0
    expect_rec count, 1
    expect_rec uao, 0
    expect  uao_after_eret, x19, 1
    check_end

// The VHE guest exit (E2H=1, TGE=0): a guest UAO=1 does not survive into EL2.
t_entry_el2_vhe_guest_exit:
    check_begin uao_entry_el2_vhe_guest_exit_clears, (FEAT_UAO | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    run_lower (EL1H | PSR_UAO_BIT), k_hvc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec uao, 0
    expect_rec spsr, (EL1H | PSR_UAO_BIT)
    check_end

// ERET to EL0 loads UAO from SPSR like every other PSTATE bit (AArch64.ExceptionReturn has
// no EL condition for it), so the SVC back to EL1 saves UAO=1 in SPSR_EL1.
t_uao_kept_at_el0:
    check_begin uao_eret_to_el0_kept, FEAT_UAO
    run_lower (PSR_MODE_EL0t | PSR_UAO_BIT), u_svc
    expect_rec count, 1
    expect_rec uao, 0
    expect_rec spsr, (PSR_MODE_EL0t | PSR_UAO_BIT)
    check_end

// ---- LDTR/STTR at EL1

t_ldtr_el1_uao0_kernel:
    check_begin ldtr_el1_uao0_kernel_page_faults
    ldr     x0, =(BM_KPAGE + 0x10)
    run_lower EL1H, k_ldtr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x9600000f                    // EL0 access to AP=00: permission, L3
    expect_rec far, (BM_KPAGE + 0x10)
    expect_rec_addr elr, k_ldtr
    check_end

t_ldtr_el1_uao1_kernel:
    check_begin ldtr_el1_uao1_kernel_page_ok, FEAT_UAO
    store_const (BM_KPAGE + 0x10), KVAL
    ldr     x0, =(BM_KPAGE + 0x10)
    run_lower (EL1H | PSR_UAO_BIT), k_ldtr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, KVAL
    check_end

t_sttr_el1_uao0_kernel:
    check_begin sttr_el1_uao0_kernel_page_faults
    ldr     x0, =(BM_KPAGE + 0x28)
    mov     x1, #0x77
    run_lower EL1H, k_sttr
    expect_rec count, 1
    expect_rec esr, 0x9600004f                    // WnR=1
    expect_rec far, (BM_KPAGE + 0x28)
    expect_rec_addr elr, k_sttr
    check_end

t_sttr_el1_uao1_kernel:
    check_begin sttr_el1_uao1_kernel_page_ok, FEAT_UAO
    store_const (BM_KPAGE + 0x28), 0
    ldr     x0, =(BM_KPAGE + 0x28)
    mov     x1, #0x77
    run_lower (EL1H | PSR_UAO_BIT), k_sttr
    expect_rec count, 0
    ldr     x9, =(BM_KPAGE + 0x28)
    ldr     x19, [x9]
    expect  stored, x19, 0x77
    check_end

// PAN=1, UAO=0: LDTR is an EL0 access, which PAN does not restrict.
t_ldtr_el1_pan1_user:
    check_begin ldtr_el1_uao0_pan1_user_page_ok, FEAT_PAN
    store_const (BM_UPAGE + 0x18), UVAL
    ldr     x0, =(BM_UPAGE + 0x18)
    run_lower (EL1H | PSR_PAN_BIT), k_ldtr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, UVAL
    check_end

// PAN=1, UAO=1: STTR is a privileged access to a user page: PAN fault.
t_sttr_el1_uao1_pan1_user:
    check_begin sttr_el1_uao1_pan1_user_page_faults, (FEAT_PAN | FEAT_UAO)
    ldr     x0, =(BM_UPAGE + 0x30)
    mov     x1, #0x66
    run_lower (EL1H | PSR_PAN_BIT | PSR_UAO_BIT), k_sttr
    expect_rec count, 1
    expect_rec esr, 0x9600004f
    expect_rec far, (BM_UPAGE + 0x30)
    expect_rec_addr elr, k_sttr
    expect_rec uao, 0                             // §1.2 on an abort too
    expect_rec pan, 1                             // SPAN=1: kept
    expect_rec spsr, (EL1H | PSR_PAN_BIT | PSR_UAO_BIT)
    check_end

t_sttr_el1_uao1_pan0_user:
    check_begin sttr_el1_uao1_pan0_user_page_ok, FEAT_UAO
    store_const (BM_UPAGE + 0x30), 0
    ldr     x0, =(BM_UPAGE + 0x30)
    mov     x1, #0x66
    run_lower (EL1H | PSR_UAO_BIT), k_sttr
    expect_rec count, 0
    ldr     x9, =(BM_UPAGE + 0x30)
    ldr     x19, [x9]
    expect  stored, x19, 0x66
    check_end

// ---- LDTR at EL2

// The VHE host (E2H:TGE=11): LDTR with UAO=0 is an EL0 access of the EL2&0 regime.
// (ESR bits 24:9 not compared for aborts to EL2: see pan.S.)
t_ldtr_el2_host_uao0_kernel:
    check_begin ldtr_el2_vhe_host_uao0_kernel_page_faults, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    ldr     x0, =(BM_KPAGE + 0x10)
    run_el2 k_ldtr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec_mask esr, 0xfe0001ff, 0x9600000f
    expect_rec far, (BM_KPAGE + 0x10)
    expect_rec_addr elr, k_ldtr
    check_end

t_ldtr_el2_host_uao1_kernel:
    check_begin ldtr_el2_vhe_host_uao1_kernel_page_ok, (FEAT_UAO | FEAT_VHE)
    store_const (BM_KPAGE + 0x10), KVAL
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    msr     uao, #1
    ldr     x0, =(BM_KPAGE + 0x10)
    run_el2 k_ldtr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, KVAL
    check_end

// The VHE host with UAO=1 and PAN=1: STTR is privileged, so PAN faults it on a user page.
t_sttr_el2_host_pan1_user:
    check_begin sttr_el2_vhe_host_uao1_pan1_user_page_faults, (FEAT_PAN | FEAT_UAO | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    msr     pan, #1
    msr     uao, #1
    ldr     x0, =(BM_UPAGE + 0x30)
    mov     x1, #0x66
    run_el2 k_sttr
    expect_rec count, 1
    expect_rec_mask esr, 0xfe0001ff, 0x9600004f
    expect_rec far, (BM_UPAGE + 0x30)
    expect_rec uao, 0
    expect_rec spsr, (PSR_PAN_BIT | PSR_UAO_BIT | PSR_DAIF | PSR_MODE_EL2h)
    check_end

// E2H=1, TGE=0: LDTR at EL2 is privileged even with UAO=0.
t_ldtr_el2_tge0_kernel:
    check_begin ldtr_el2_e2h1_tge0_kernel_page_ok, FEAT_VHE
    store_const (BM_KPAGE + 0x10), KVAL
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    ldr     x0, =(BM_KPAGE + 0x10)
    run_el2 k_ldtr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, KVAL
    check_end

// ... and, being privileged, PAN=1 makes it fault on a user page.
t_ldtr_el2_tge0_pan1_user:
    check_begin ldtr_el2_e2h1_tge0_pan1_user_page_faults, (FEAT_PAN | FEAT_VHE)
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    msr     pan, #1
    ldr     x0, =(BM_UPAGE + 0x18)
    run_el2 k_ldtr
    expect_rec count, 1
    expect_rec_mask esr, 0xfe0001ff, 0x9600000f
    expect_rec far, (BM_UPAGE + 0x18)
    check_end

// E2H=0: the EL2 regime has no EL0; LDTR is an ordinary EL2 load.
t_ldtr_el2_e2h0_kernel:
    check_begin ldtr_el2_e2h0_kernel_page_ok
    store_const (BM_KPAGE + 0x10), KVAL
    ldr     x0, =(BM_KPAGE + 0x10)
    run_el2 k_ldtr
    mov     x19, x0
    expect_rec count, 0
    expect  value, x19, KVAL
    check_end

// ---- the UAO instructions and ERET

// MSR UAO, #imm at EL1: UAO=1 lets LDTR read the kernel page, UAO=0 makes it fault.
t_el1_msr_imm:
    check_begin uao_el1_msr_uao_imm, FEAT_UAO
    store_const (BM_KPAGE + 0x10), KVAL
    ldr     x0, =(BM_KPAGE + 0x10)
    run_lower EL1H, k_uao_toggle_ldtr
    mov     x19, x2
    expect_rec count, 1
    expect_rec esr, 0x9600000f
    expect_rec_addr elr, k_uao_toggle_ldtr, 16
    expect_rec spsr, EL1H                         // UAO=0 at the fault
    expect  value_with_uao1, x19, KVAL
    check_end

t_eret_sets_uao:
    check_begin uao_eret_loads_spsr_uao1, FEAT_UAO
    set_spsr_xor PSR_UAO_BIT
    run_lower EL1H, k_svc_uao
    mov     x19, x0
    expect_rec count, 1
    expect_rec uao, 0
    expect  uao_after_eret, x19, 1
    check_end

t_eret_el2_to_el1:
    check_begin uao_eret_el2_to_el1, FEAT_UAO
    run_lower (EL1H | PSR_UAO_BIT), k_uao_read
    mov     x19, x0
    run_lower EL1H, k_uao_read
    mov     x20, x0
    expect_rec count, 0
    expect  uao_spsr1, x19, 1
    expect  uao_spsr0, x20, 0
    check_end

// A v8.0 CPU (no FEAT_UAO): MSR UAO, #1 and MRS x0, UAO are UNDEFINED at EL1.
t_uao_v80:
    check_begin uao_instructions_undefined_v80, NEEDS_NO_UAO
    run_lower EL1H, k_uao_insns
    expect_rec count, 2
    expect_rec esr, 0x02000000
    expect_rec_addr elr, k_uao_insns, 4
    check_end

// ---- EL1/EL2 probes of this file

k_svc_uao:
    svc     #0x33
    mrs     x0, uao
    ubfx    x0, x0, #23, #1                       // PSTATE.UAO as 0/1
    ret

k_brk_uao:
    brk     #0x44
    mrs     x0, uao
    ubfx    x0, x0, #23, #1
    ret

k_uao_read:
    mrs     x0, uao
    ubfx    x0, x0, #23, #1
    ret

k_uao_toggle_ldtr:
    mov     x3, x0
    msr     uao, #1
    ldtr    x2, [x3]                              // privileged: loads
    msr     uao, #0
    ldtr    x4, [x3]                              // EL0 access: faults
    ret

k_uao_insns:
    msr     uao, #1
    mrs     x0, uao
    ret

    selfcheck_lib
