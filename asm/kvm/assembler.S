// assembler.S: what the models share from Linux v4.13 arch/arm64/include/asm/
// (assembler.h, sysreg.h, uaccess.h, asm-offsets.c, kvm_asm.h, kvm_arm.h).
// Constants and macros only.

// ---- sysreg.h: MSR (immediate) to PSTATE fields, emitted as words like __emit_inst()
#define PSTATE_UAO  ((0 << 16) | (3 << 5))
#define PSTATE_PAN  ((0 << 16) | (4 << 5))
#define SET_PSTATE_PAN(x) .inst (0xd500401f | PSTATE_PAN | ((x) << 8))
#define SET_PSTATE_UAO(x) .inst (0xd500401f | PSTATE_UAO | ((x) << 8))

// ---- asm-offsets.c: struct task_struct (thread_info first, THREAD_INFO_IN_TASK), then
// thread.cpu_context (what cpu_switch_to saves: x19-x28, fp, sp, pc).
    .equ    TSK_TI_FLAGS,       0
    .equ    TSK_TI_ADDR_LIMIT,  8
    .equ    THREAD_CPU_CONTEXT, 16
    .equ    TSK_SIZE,           (THREAD_CPU_CONTEXT + 13 * 8)
// uaccess.h: addr_limit values (VA_BITS = 48)
    .equ    USER_DS,            0x0000ffffffffffff      // TASK_SIZE_64 - 1
    .equ    KERNEL_DS,          0xffffffffffffffff      // -1UL
    .equ    EFAULT,             14

// ---- asm-offsets.c: struct kvm_cpu_context (the registers that matter here)
    .equ    CPU_SP_EL0,         (31 * 8)                // gp_regs.regs.sp
    .equ    CPU_PC,             (32 * 8)                // ELR_EL2: where the context resumes
    .equ    CPU_PSTATE,         (33 * 8)                // SPSR_EL2: its PSTATE
    .equ    CPU_SP_EL1,         (34 * 8)
    .equ    CPU_ELR_EL1,        (35 * 8)
    .equ    CPU_SPSR_EL1,       (36 * 8)
    .equ    CPU_SCTLR_EL1,      (37 * 8)                // sys_regs[]
    .equ    CPU_TTBR0_EL1,      (38 * 8)
    .equ    CPU_TCR_EL1,        (39 * 8)
    .equ    CPU_MAIR_EL1,       (40 * 8)
    .equ    CPU_VBAR_EL1,       (41 * 8)
    .equ    CPU_CONTEXT_SIZE,   (42 * 8)
// struct kvm_vcpu (arch part)
    .equ    VCPU_CONTEXT,       0                       // vcpu->arch.ctxt
    .equ    VCPU_HOST_CONTEXT,  CPU_CONTEXT_SIZE        // vcpu->arch.host_cpu_context
    .equ    VCPU_HCR_EL2,       (CPU_CONTEXT_SIZE + 8)  // vcpu->arch.hcr_el2
    .equ    VCPU_VTTBR,         (CPU_CONTEXT_SIZE + 16) // vcpu->kvm->arch.vttbr
    .equ    VCPU_SIZE,          (CPU_CONTEXT_SIZE + 24)

// task_struct addr_limit, fn, stack_top: a struct task_struct (thread_info, then
// thread.cpu_context); a new thread first runs ret_from_fork -> fn on stack_top.
    .macro  task_struct addr_limit, fn=0, stack_top=0
    .quad   0                               // thread_info.flags
    .quad   \addr_limit                     // thread_info.addr_limit
    .quad   \fn, 0, 0, 0, 0, 0, 0, 0, 0, 0  // cpu_context.x19 (a new thread's function) - x28
    .quad   0, \stack_top                   // cpu_context.fp, sp
    .quad   ret_from_fork                   // cpu_context.pc
    .endm

// ---- kvm_asm.h: exit codes __kvm_vcpu_run returns
    .equ    ARM_EXCEPTION_IRQ,          0
    .equ    ARM_EXCEPTION_EL1_SERROR,   1
    .equ    ARM_EXCEPTION_TRAP,         2
    .equ    ARM_EXIT_WITH_SERROR_BIT,   31      // an SError taken in __guest_exit's window

// ---- kvm_arm.h: HCR_EL2 of a guest (HCR_GUEST_FLAGS; facts §6), the vgic's IMO|FMO
    .equ    HCR_IMO,            (1 << 4)
    .equ    HCR_FMO,            (1 << 3)
    .equ    HCR_GUEST_FLAGS,    0x84786623
// VTCR_EL2: T0SZ=25, SL0=1 (start at level 1), WBWA, inner shareable, 4K, PS=40 bits
    .equ    VTCR_EL2_FLAGS,     ((1 << 31) | (2 << 16) | (3 << 12) | (1 << 10) | (1 << 8) | (1 << 6) | 25)
    .equ    VTTBR_VMID_SHIFT,   48

// ---- kernel style helpers (assembler.h)

// _asm_extable from, to: an __ex_table entry: a fault at \from resumes at \to.
    .macro  _asm_extable from, to
    .pushsection __ex_table, "a"
    .quad   \from, \to
    .popsection
    .endm

// _hyp_extable from, to: the same for hyp code. Non-VHE hyp text cannot see the kernel's
// table (its pages are not in the hyp page tables), so hyp entries live in hyp data.
    .macro  _hyp_extable from, to
    .pushsection __hyp_ex_table, "a"
    .quad   \from, \to
    .popsection
    .endm

// get_current reg: `current` (the kernel keeps the task pointer in SP_EL0).
    .macro  get_current reg
    mrs     \reg, sp_el0
    .endm

// has_vhe reg: cpus_have_const_cap(ARM64_HAS_VIRT_HOST_EXTN). The kernel patches it in as a
// static key when it finds itself at EL2 with VHE; here it is the word head.S writes, since
// VHE or not is a run-time choice of the scenario on a CPU that has VHE. In hyp data so
// non-VHE hyp code can read it.
    .macro  has_vhe reg
    ldr     \reg, =arm64_vhe_cap
    ldr     \reg, [\reg]
    .endm

// config reg, field: a scenario_config field (written by the harness before the run).
    .macro  config reg, field
    ldr     \reg, =scenario_config
    ldr     \reg, [\reg, #(\field)]
    .endm
    .equ    CFG_VHE,        0
    .equ    CFG_CALLER,     8
    .equ    CFG_GUEST_PAN,  16
    .equ    CFG_GUEST_UAO,  24
    .equ    CFG_EXIT,       32
    .equ    CFG_HYP_PROBES, 40
    .equ    CFG_GUEST_EL,   48
    .equ    CFG_GUEST_DIT,  56
    .equ    CFG_GUEST_SSBS, 64
    .equ    CALLER_KVM_RUN, 0
    .equ    CALLER_KERNEL_DS, 1
    .equ    CALLER_KTHREAD, 2
    .equ    EXIT_HVC,       0
    .equ    EXIT_IRQ,       1
    .equ    EXIT_WFI,       2
    .equ    EXIT_SERROR,    3

// ---- page-table attributes (pgtable-prot.h)
    .equ    PROT_NORMAL,    (PTE_TYPE_PAGE | PTE_AF | PTE_SHARED | PTE_ATTRINDX_NORMAL)
    .equ    PAGE_KERNEL_EXEC, (PROT_NORMAL | PTE_UXN)                   // AP=00
    .equ    PAGE_KERNEL,    (PROT_NORMAL | PTE_PXN | PTE_UXN)           // AP=00
    .equ    PAGE_USER,      (PROT_NORMAL | PTE_USER | PTE_PXN | PTE_UXN) // AP=01
    .equ    PAGE_READONLY_EXEC, (PROT_NORMAL | PTE_USER | PTE_RDONLY | PTE_PXN) // AP=11, EL0 may run it
    .equ    SECT_DEVICE,    (PMD_TYPE_SECT | PTE_AF | PTE_ATTRINDX_DEVICE | PTE_PXN | PTE_UXN)
    .equ    SECT_KERNEL,    (PMD_TYPE_SECT | PTE_AF | PTE_SHARED | PTE_ATTRINDX_NORMAL | PTE_PXN | PTE_UXN)
// Hyp (EL2, E2H=0) stage 1: AP[1] is RES1 there, hence PTE_HYP == PTE_USER; PTE_UXN is XN.
    .equ    PTE_HYP,        PTE_USER
    .equ    PAGE_HYP_EXEC,  (PROT_NORMAL | PTE_HYP)
    .equ    PAGE_HYP,       (PROT_NORMAL | PTE_HYP | PTE_UXN)
    .equ    SECT_HYP_DEVICE, (PMD_TYPE_SECT | PTE_AF | PTE_ATTRINDX_DEVICE | PTE_HYP | PTE_UXN)
// Stage 2 (pgtable-hwdef.h): MemAttr[5:2], S2AP[7:6], SH, AF, XN
    .equ    S2_BLOCK_NORMAL, (PMD_TYPE_SECT | (0xf << 2) | (3 << 6) | PTE_SHARED | PTE_AF)
    .equ    S2_BLOCK_DEVICE, (PMD_TYPE_SECT | (0x1 << 2) | (3 << 6) | PTE_AF | PTE_UXN)
    .equ    PAGE_SIZE,      4096

// search_extable start, end, found: look the faulting address in x0 up in the exception
// table [\start, \end) (search_exception_tables); on a hit x0 = the fix-up and control goes to
// \found, else it falls through. Clobbers x1-x4.
    .macro  search_extable start, end, found
    ldr     x1, =\start
    ldr     x2, =\end
9940:
    cmp     x1, x2
    b.hs    9941f
    ldp     x3, x4, [x1], #16
    cmp     x3, x0
    b.ne    9940b
    mov     x0, x4
    b       \found
9941:
    .endm
