// arm64_defs.S: architectural constants for the bare-metal programs and the asm models.
// Names follow Linux arch/arm64 (asm/ptrace.h, asm/sysreg.h, asm/kvm_arm.h, asm/esr.h,
// asm/pgtable-hwdef.h) so the models read like the kernel files they stand for.
// Constants only (.equ): include it once per program.

// ---- PSTATE / SPSR_ELx (facts §1.1, §8: NZCV[31:28] DIT[24] UAO[23] PAN[22] SS[21] IL[20]
//      SSBS[12] BTYPE[11:10] DAIF[9:6] M[4:0])
    .equ    PSR_MODE_EL0t,  0x0
    .equ    PSR_MODE_EL1t,  0x4
    .equ    PSR_MODE_EL1h,  0x5
    .equ    PSR_MODE_EL2t,  0x8
    .equ    PSR_MODE_EL2h,  0x9
    .equ    PSR_F_BIT,      (1 << 6)
    .equ    PSR_I_BIT,      (1 << 7)
    .equ    PSR_A_BIT,      (1 << 8)
    .equ    PSR_D_BIT,      (1 << 9)
    .equ    PSR_DAIF,       0x3c0
    .equ    PSR_BTYPE_SHIFT, 10
    .equ    PSR_SSBS_BIT,   (1 << 12)
    .equ    PSR_IL_BIT,     (1 << 20)
    .equ    PSR_SS_BIT,     (1 << 21)
    .equ    PSR_PAN_BIT,    (1 << 22)
    .equ    PSR_UAO_BIT,    (1 << 23)
    .equ    PSR_DIT_BIT,    (1 << 24)
    .equ    PSR_V_BIT,      (1 << 28)
    .equ    PSR_C_BIT,      (1 << 29)
    .equ    PSR_Z_BIT,      (1 << 30)
    .equ    PSR_N_BIT,      (1 << 31)
    .equ    CURRENTEL_EL1,  (1 << 2)        // mrs xN, CurrentEL reads EL << 2
    .equ    CURRENTEL_EL2,  (2 << 2)

// ---- HCR_EL2
    .equ    HCR_TWI,        (1 << 13)
    .equ    HCR_TWE,        (1 << 14)
    .equ    HCR_TSC,        (1 << 19)
    .equ    HCR_TVM,        (1 << 26)
    .equ    HCR_TGE,        (1 << 27)
    .equ    HCR_TRVM,       (1 << 30)
    .equ    HCR_RW,         (1 << 31)
    .equ    HCR_E2H,        (1 << 34)
    .equ    HCR_HOST_NVHE_FLAGS, HCR_RW                       // 0x8000_0000 (facts §6)
    .equ    HCR_HOST_VHE_FLAGS,  (HCR_RW | HCR_TGE | HCR_E2H) // 0x4_8800_0000 (facts §6)
    .equ    HCR_GUEST_VHE_FLAGS, (HCR_RW | HCR_E2H)           // E2H=1, TGE=0: a VHE host running a guest

// ---- SCTLR_ELx
    .equ    SCTLR_ELx_M,    (1 << 0)
    .equ    SCTLR_EL1_NTWI, (1 << 16)       // 0: EL0 WFI traps to EL1
    .equ    SCTLR_EL1_NTWE, (1 << 18)
    .equ    SCTLR_EL1_SPAN, (1 << 23)       // 0: exception entry sets PSTATE.PAN (facts §1.6)
    .equ    SCTLR_ELx_DSSBS, (1 << 44)      // PSTATE.SSBS on exception entry to this EL (facts §8)
    // RES1 bits of SCTLR_EL1 in v8.0 (29,28,23,22,20,11) + nTWE + nTWI: EL0 WFx not trapped.
    .equ    SCTLR_EL1_BASE, 0x30d50800
    // SCTLR_EL2 when E2H==0: RES1 bits 29,28,23,22,18,16,11,5,4.
    .equ    SCTLR_EL2_BASE, 0x30c50830
    // SCTLR_EL2 when E2H==1 has the EL1 layout (SPAN acts when TGE==1: facts §1.6).
    .equ    SCTLR_EL2_VHE_BASE, SCTLR_EL1_BASE

// ---- ESR_ELx (facts §4): EC[31:26] IL[25] ISS[24:0]
    .equ    ESR_ELx_EC_SHIFT,   26
    .equ    ESR_ELx_EC_UNKNOWN, 0x00
    .equ    ESR_ELx_EC_WFx,     0x01
    .equ    ESR_ELx_EC_ILL,     0x0e        // Illegal Execution state
    .equ    ESR_ELx_EC_SVC64,   0x15
    .equ    ESR_ELx_EC_HVC64,   0x16
    .equ    ESR_ELx_EC_SMC64,   0x17
    .equ    ESR_ELx_EC_SYS64,   0x18
    .equ    ESR_ELx_EC_IABT_LOW, 0x20
    .equ    ESR_ELx_EC_IABT_CUR, 0x21
    .equ    ESR_ELx_EC_DABT_LOW, 0x24
    .equ    ESR_ELx_EC_DABT_CUR, 0x25
    .equ    ESR_ELx_EC_BRK64,   0x3c
    .equ    ESR_ELx_IL,         (1 << 25)
    .equ    ESR_ELx_WNR,        (1 << 6)
    .equ    ESR_ELx_FSC_TRANS,  0x04        // + level
    .equ    ESR_ELx_FSC_ACCESS, 0x08        // + level
    .equ    ESR_ELx_FSC_PERM,   0x0c        // + level

// ---- vector offsets (facts §1.7)
    .equ    VEC_CUR_SP0,    0x000
    .equ    VEC_CUR_SPX,    0x200
    .equ    VEC_LOWER_A64,  0x400
    .equ    VEC_LOWER_A32,  0x600
    .equ    VEC_SYNC,       0x000
    .equ    VEC_IRQ,        0x080
    .equ    VEC_FIQ,        0x100
    .equ    VEC_SERROR,     0x180

// ---- ID registers
    .equ    ID_AA64MMFR1_VH_SHIFT,  8
    .equ    ID_AA64MMFR1_PAN_SHIFT, 20
    .equ    ID_AA64MMFR2_UAO_SHIFT, 4
    .equ    ID_AA64PFR0_DIT_SHIFT,  48
    .equ    ID_AA64PFR1_SSBS_SHIFT, 4      // 2: PSTATE.SSBS with its MSR/MRS forms

// ---- stage-1 descriptors, 4 KiB granule (asm/pgtable-hwdef.h)
    .equ    PMD_TYPE_SECT,  0x1             // level 1/2 block
    .equ    PMD_TYPE_TABLE, 0x3
    .equ    PTE_TYPE_PAGE,  0x3             // level 3 page
    .equ    PTE_ATTRINDX_NORMAL, (0 << 2)   // MAIR attr0
    .equ    PTE_ATTRINDX_DEVICE, (1 << 2)   // MAIR attr1
    .equ    PTE_USER,       (1 << 6)        // AP[1]: EL0 access
    .equ    PTE_RDONLY,     (1 << 7)        // AP[2]
    .equ    PTE_SHARED,     (3 << 8)        // inner shareable
    .equ    PTE_AF,         (1 << 10)
    .equ    PTE_PXN,        (1 << 53)
    .equ    PTE_UXN,        (1 << 54)       // XN in the EL2 (E2H==0) regime
    .equ    MAIR_VALUE,     0x00ff          // attr0 Normal WB, attr1 Device-nGnRnE
    // T0SZ=25 (39-bit VA, walk from level 1), inner/outer WB, inner shareable, TG0=4K,
    // EPD1=1, TG1=4K. Bits 23 and 31 are RES1 in the E2H==0 TCR_EL2, so one value fits
    // TCR_EL1, TCR_EL2 and the E2H==1 TCR_EL2 (TG1 must be valid even with EPD1: facts §7).
    .equ    TCR_VALUE,      (25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (2 << 30))

// ---- PSCI (SMC conduit on QEMU virt and on the harness board)
    .equ    PSCI_0_2_FN_SYSTEM_OFF,   0x84000008
    .equ    PSCI_0_2_FN_SYSTEM_RESET, 0x84000009
