// sync.S: synchronous exceptions other than aborts: SVC, HVC, SMC (trapped), BRK,
// UNDEFINED, WFI/WFE traps, MSR/MRS traps. For each: the EL it is taken to (routing,
// facts §1 "Routing reminders"), the vector entry (§1.7), ESR (§4), ELR (§1.4: next
// instruction for SVC/HVC, the instruction itself for traps, BRK and UNDEFINED), SPSR
// (§1.1) and the PSTATE the handler runs with (§1.4-§1.5: DAIF=1111, SPSel=1).

    .include "selfcheck.S"

    .text
    .global _start
_start:
    selfcheck_boot
    bl      t_svc_el0
    bl      t_svc_el0_tge_e2h0
    bl      t_svc_el0_vhe_host
    bl      t_svc_el0_guest
    bl      t_svc_el1
    bl      t_svc_el1t
    bl      t_hvc_el1
    bl      t_hvc_el2
    bl      t_hvc_el0_undef
    bl      t_smc_el1_tsc
    bl      t_brk_el1
    bl      t_brk_el0
    bl      t_brk_el0_vhe_host
    bl      t_brk_el2
    bl      t_brk_el2t
    bl      t_udf_el1
    bl      t_udf_el0
    bl      t_udf_el2
    bl      t_wfi_el1_twi
    bl      t_wfi_el0_twi
    bl      t_wfi_el0_sctlr
    bl      t_msr_el1_tvm
    bl      t_mrs_el1_trvm
    bl      t_sp_el0
    bl      t_sp_el1h
    bl      t_sp_el1t
    bl      t_illegal_eret_el0h
    bl      t_illegal_eret_tge
    selfcheck_done

// SVC from EL0 with TGE=0 goes to EL1, lower-EL vector; SPSR keeps NZCV and DAIF=0000.
t_svc_el0:
    check_begin svc_el0_to_el1
    run_lower PSR_MODE_EL0t, u_svc, (PSR_N_BIT | PSR_C_BIT)
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1                  // SVC from EL0, TGE=0 -> EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC      // §1.7: lower EL, AArch64
    expect_rec esr, 0x56000033                    // EC=0x15 SVC64, IL=1, ISS=imm16 0x33
    expect_rec_addr elr, u_svc, 4                 // preferred return: the next instruction
    expect_rec spsr, 0xa0000000                   // N,C set; DAIF=0000; M=EL0t
    expect_rec daif, PSR_DAIF                     // §1.5: D,A,I,F masked on entry
    expect_rec spsel, 1                           // §1.4: PSTATE.SP = 1
    check_end

// SVC from EL0 with TGE=1 goes to EL2 even without E2H (facts §1 routing).
t_svc_el0_tge_e2h0:
    check_begin svc_el0_tge_e2h0_to_el2
    set_hcr (HCR_RW | HCR_TGE)
    run_lower PSR_MODE_EL0t, u_svc, PSR_Z_BIT
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2                  // TGE=1: EL0 exceptions go to EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x56000033
    expect_rec_addr elr, u_svc, 4
    expect_rec spsr, PSR_Z_BIT                    // M=EL0t, DAIF=0000
    expect_rec daif, PSR_DAIF
    check_end

// The VHE host: E2H=1, TGE=1; SVC from EL0 goes to EL2 (its ESR_EL2/ELR_EL2/SPSR_EL2).
t_svc_el0_vhe_host:
    check_begin svc_el0_vhe_host_to_el2, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    run_lower (PSR_MODE_EL0t | PSR_DAIF), u_svc, PSR_V_BIT
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x56000033
    expect_rec_addr elr, u_svc, 4
    expect_rec spsr, (PSR_V_BIT | PSR_DAIF)       // DAIF was masked at EL0
    check_end

// A guest EL0 under a VHE host (E2H=1, TGE=0): SVC goes to the guest's EL1.
t_svc_el0_guest:
    check_begin svc_el0_e2h1_tge0_to_el1, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_GUEST_VHE_FLAGS
    run_lower PSR_MODE_EL0t, u_svc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x56000033
    check_end

// SVC at EL1h stays at EL1: current EL with SP_ELx vector.
t_svc_el1:
    check_begin svc_el1_same_el
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_svc, (PSR_Z_BIT | PSR_V_BIT)
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x56000033
    expect_rec_addr elr, k_svc, 4
    expect_rec spsr, (PSR_Z_BIT | PSR_V_BIT | PSR_DAIF | PSR_MODE_EL1h)
    expect_rec spsel, 1
    check_end

// SVC at EL1t (SPSel=0): the current-EL SP0 vector, SPSR.M=EL1t, handler on SP_EL1.
t_svc_el1t:
    check_begin svc_el1t_sp0_vector
    run_lower (PSR_MODE_EL1t | PSR_DAIF), k_svc
    expect_rec count, 1
    expect_rec vec, VEC_CUR_SP0 + VEC_SYNC
    expect_rec esr, 0x56000033
    expect_rec spsr, (PSR_DAIF | PSR_MODE_EL1t)
    expect_rec spsel, 1
    check_end

// HVC from EL1 goes to EL2 (SCR_EL3.HCE=1 on both boards).
t_hvc_el1:
    check_begin hvc_el1_to_el2
    run_lower (PSR_MODE_EL1h | PSR_D_BIT | PSR_I_BIT), k_hvc, PSR_N_BIT
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x5a000012                    // EC=0x16 HVC64, IL=1, imm16 0x12
    expect_rec_addr elr, k_hvc, 4
    expect_rec spsr, (PSR_N_BIT | PSR_D_BIT | PSR_I_BIT | PSR_MODE_EL1h)  // D,I only
    expect_rec daif, PSR_DAIF
    expect_rec spsel, 1
    check_end

// HVC at EL2 is taken to EL2: current EL with SP_ELx.
t_hvc_el2:
    check_begin hvc_el2_same_el
    run_el2 k_hvc, PSR_C_BIT
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x5a000012
    expect_rec_addr elr, k_hvc, 4
    expect_rec spsr, (PSR_C_BIT | PSR_DAIF | PSR_MODE_EL2h)
    check_end

// HVC at EL0 is UNDEFINED: EC=0 to EL1, ELR = the HVC itself.
t_hvc_el0_undef:
    check_begin hvc_el0_undefined
    run_lower PSR_MODE_EL0t, u_hvc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x02000000                    // EC=0 unknown reason, IL=1
    expect_rec_addr elr, u_hvc
    expect_rec spsr, PSR_MODE_EL0t
    check_end

// SMC at EL1 with HCR_EL2.TSC=1 traps to EL2: EC=0x17, ELR = the SMC (a trap, not a call).
t_smc_el1_tsc:
    check_begin smc_el1_tsc_trap
    set_hcr (HCR_RW | HCR_TSC)
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_smc
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x5e000077                    // EC=0x17 SMC64, IL=1, imm16 0x77
    expect_rec_addr elr, k_smc
    expect_rec spsr, (PSR_DAIF | PSR_MODE_EL1h)
    check_end

// BRK at EL1: EC=0x3C, ISS=imm16, ELR = the BRK.
t_brk_el1:
    check_begin brk_el1
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_brk
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0xf2000044                    // EC=0x3C BRK64, IL=1, imm16 0x44
    expect_rec_addr elr, k_brk
    expect_rec spsr, (PSR_DAIF | PSR_MODE_EL1h)
    check_end

t_brk_el0:
    check_begin brk_el0_to_el1
    run_lower PSR_MODE_EL0t, u_brk
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0xf2000045
    expect_rec_addr elr, u_brk
    expect_rec spsr, PSR_MODE_EL0t
    check_end

t_brk_el0_vhe_host:
    check_begin brk_el0_vhe_host_to_el2, FEAT_VHE
    set_sysreg sctlr_el2, (SCTLR_EL2_VHE_BASE | SCTLR_ELx_M)
    set_hcr HCR_HOST_VHE_FLAGS
    run_lower PSR_MODE_EL0t, u_brk
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2                  // TGE=1 routes EL0 debug exceptions to EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0xf2000045
    expect_rec_addr elr, u_brk
    check_end

t_brk_el2:
    check_begin brk_el2
    run_el2 k_brk, (PSR_N_BIT | PSR_Z_BIT | PSR_C_BIT | PSR_V_BIT)
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0xf2000044
    expect_rec_addr elr, k_brk
    expect_rec spsr, (0xf0000000 | PSR_DAIF | PSR_MODE_EL2h)
    check_end

// BRK at EL2t (SPSel=0): current EL with SP0 vector, SPSR.M=EL2t.
t_brk_el2t:
    check_begin brk_el2t_sp0_vector
    run_el2 k_brk_sp0
    mov     x19, x0                               // SPSel after the ERET
    expect_rec count, 1
    expect_rec vec, VEC_CUR_SP0 + VEC_SYNC
    expect_rec esr, 0xf2000047
    expect_rec_addr elr, k_brk_sp0, 4
    expect_rec spsr, (PSR_DAIF | PSR_MODE_EL2t)
    expect_rec spsel, 1
    expect  spsel_after_eret, x19, 0               // ERET restored SPSel=0 (§2)
    check_end

k_brk_sp0:
    msr     spsel, #0
    brk     #0x47
    mrs     x0, spsel
    msr     spsel, #1
    ret

t_udf_el1:
    check_begin udf_el1
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_udf
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x02000000                    // EC=0, IL=1
    expect_rec_addr elr, k_udf                    // ELR = the UNDEFINED instruction
    check_end

t_udf_el0:
    check_begin udf_el0_to_el1
    run_lower PSR_MODE_EL0t, u_udf
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x02000000
    expect_rec_addr elr, u_udf
    check_end

t_udf_el2:
    check_begin udf_el2
    run_el2 k_udf
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x02000000
    expect_rec_addr elr, k_udf
    check_end

// WFI at EL1 with HCR_EL2.TWI=1 traps to EL2: EC=0x01, CV=1, COND=0b1110, TI=0 (WFI).
t_wfi_el1_twi:
    check_begin wfi_el1_twi_trap
    set_hcr (HCR_RW | HCR_TWI)
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_wfi
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x07e00000
    expect_rec_addr elr, k_wfi                    // a trap: ELR = the WFI
    expect_rec spsr, (PSR_DAIF | PSR_MODE_EL1h)
    check_end

// WFI at EL0, SCTLR_EL1.nTWI=1 (not trapped to EL1), HCR_EL2.TWI=1: EL2.
t_wfi_el0_twi:
    check_begin wfi_el0_twi_trap
    set_hcr (HCR_RW | HCR_TWI)
    run_lower PSR_MODE_EL0t, u_wfi
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x07e00000
    expect_rec_addr elr, u_wfi
    check_end

// WFI at EL0 with SCTLR_EL1.nTWI=0: the EL1 trap has priority over HCR_EL2.TWI.
t_wfi_el0_sctlr:
    check_begin wfi_el0_sctlr_ntwi0_to_el1
    set_sysreg sctlr_el1, ((SCTLR_EL1_BASE & ~SCTLR_EL1_NTWI) | SCTLR_ELx_M)
    set_hcr (HCR_RW | HCR_TWI)
    run_lower PSR_MODE_EL0t, u_wfi
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_LOWER_A64 + VEC_SYNC
    expect_rec esr, 0x07e00000
    expect_rec_addr elr, u_wfi
    check_end

// MSR SCTLR_EL1 at EL1 with HCR_EL2.TVM=1 traps to EL2 (EC=0x18) and does not write it.
// ISS = Op0[21:20]=3 Op2[19:17]=0 Op1[16:14]=0 CRn[13:10]=1 Rt[9:5]=1 CRm[4:1]=0 Dir[0]=0.
t_msr_el1_tvm:
    check_begin msr_el1_tvm_trap
    set_hcr (HCR_RW | HCR_TVM)
    mov     x1, #0                                // would turn the EL1 MMU off
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_msr_sctlr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec esr, 0x62300420
    expect_rec_addr elr, k_msr_sctlr
    mrs     x0, sctlr_el1
    expect  sctlr_el1, x0, (SCTLR_EL1_BASE | SCTLR_ELx_M)
    check_end

k_msr_sctlr:
    msr     sctlr_el1, x1
    ret

// MRS SCTLR_EL1 into x3 at EL1 with HCR_EL2.TRVM=1: Rt=3, Dir=1 (read).
t_mrs_el1_trvm:
    check_begin mrs_el1_trvm_trap
    set_hcr (HCR_RW | HCR_TRVM)
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_mrs_sctlr
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec esr, 0x62300461
    expect_rec_addr elr, k_mrs_sctlr
    check_end

k_mrs_sctlr:
    mrs     x3, sctlr_el1
    ret

// ---- stack pointers: entry selects SP_ELx (§1.4), ERET the one SPSR.M names (§2)

t_sp_el0:
    check_begin sp_el0_kept_across_svc
    run_lower PSR_MODE_EL0t, u_svc_sp
    mov     x19, x1
    mov     x20, x2
    expect_rec count, 1
    expect  sp_before, x19, BM_STACK_EL0_TOP      // EL0 runs on SP_EL0
    expect  sp_after, x20, BM_STACK_EL0_TOP
    check_end

// EL1h: the same-EL handler pushes its frame on SP_EL1 and pops it again.
t_sp_el1h:
    check_begin sp_el1h_kept_across_svc
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_svc_sp
    mov     x19, x1
    mov     x20, x2
    expect_rec count, 1
    expect  sp_before, x19, BM_STACK_EL1_TOP
    expect  sp_after, x20, BM_STACK_EL1_TOP
    check_end

// EL1t: sp is SP_EL0; the exception runs on SP_EL1 and the ERET goes back to SP_EL0.
t_sp_el1t:
    check_begin sp_el1t_kept_across_svc
    run_lower (PSR_MODE_EL1t | PSR_DAIF), k_svc_sp
    mov     x19, x1
    mov     x20, x2
    expect_rec count, 1
    expect_rec vec, VEC_CUR_SP0 + VEC_SYNC
    expect  sp_before, x19, BM_STACK_EL0_TOP
    expect  sp_after, x20, BM_STACK_EL0_TOP
    check_end

k_svc_sp:
    mov     x1, sp
    svc     #0x33
    mov     x2, sp
    ret

// ---- illegal exception returns (§2): IL=1, EL and SP kept, NZCV/DAIF from SPSR; the next
// instruction takes an Illegal Execution state exception (EC 0x0E, IL=1) at the same EL.

// SPSR.M = 0b0001 (EL0 with SP_EL1) does not exist: ERET from EL1 is illegal.
t_illegal_eret_el0h:
    check_begin eret_el1_to_el0h_illegal
    set_spsr_xor PSR_IL_BIT                       // the handler returns with IL cleared
    ldr     x0, =(PSR_N_BIT | PSR_DAIF | 0x1)
    run_lower (PSR_MODE_EL1h | PSR_DAIF), k_eret_el1
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL1
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x3a000000
    expect_rec_addr elr, k_eret_el1_target
    expect_rec spsr, (PSR_N_BIT | PSR_IL_BIT | PSR_DAIF | PSR_MODE_EL1h)
    check_end

// ERET from EL2 to EL1 while HCR_EL2.TGE=1 is illegal: the CPU stays at EL2h.
t_illegal_eret_tge:
    check_begin eret_el2_to_el1_tge_illegal
    set_hcr (HCR_RW | HCR_TGE)
    set_spsr_xor PSR_IL_BIT
    ldr     x0, =(PSR_Z_BIT | PSR_DAIF | PSR_MODE_EL1h)
    run_el2 k_eret_el2
    expect_rec count, 1
    expect_rec el, CURRENTEL_EL2
    expect_rec vec, VEC_CUR_SPX + VEC_SYNC
    expect_rec esr, 0x3a000000
    expect_rec_addr elr, k_eret_el2_target
    expect_rec spsr, (PSR_Z_BIT | PSR_IL_BIT | PSR_DAIF | PSR_MODE_EL2h)
    check_end

// ERET with SPSR = x0 to the next label, at EL1 / EL2.
k_eret_el1:
    adr     x1, k_eret_el1_target
    msr     elr_el1, x1
    msr     spsr_el1, x0
    eret
k_eret_el1_target:
    nop                                           // the illegal-state exception is taken here
    ret

k_eret_el2:
    adr     x1, k_eret_el2_target
    msr     elr_el2, x1
    msr     spsr_el2, x0
    eret
k_eret_el2_target:
    nop
    ret

    selfcheck_lib
