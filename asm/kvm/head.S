// head.S: arch/arm64/kernel/head.S (stext, el2_setup, __primary_switch), with the boot-time
// steps of cpufeature.c (cpu_enable_pan, cpu_enable_uao) and process.c (__switch_to) it leads to.

    .text
    .global _start
_start:
    // stext: entered at EL2h, MMU off, DAIF masked
    ldr     x0, =init_stack_top
    mov     sp, x0
    bl      __create_page_tables            // __create_page_tables
    bl      __create_hyp_mappings           // kvm: create_hyp_mappings (used without VHE)
    bl      __create_guest_tables           // the guest's stage 1 and its stage 2
    bl      __create_stage2_tables
    b       el2_setup

// el2_setup: VHE when the scenario asks for it and ID_AA64MMFR1_EL1.VH says the CPU can.
el2_setup:
    config  x0, CFG_VHE
    cbz     x0, 1f
    mrs     x1, id_aa64mmfr1_el1
    ubfx    x1, x1, #ID_AA64MMFR1_VH_SHIFT, #4
    cbz     x1, 1f
    // VHE: the kernel stays at EL2. E2H|TGE: from now on its EL1 register names reach EL2's.
    ldr     x0, =HCR_HOST_VHE_FLAGS
    msr     hcr_el2, x0
    isb
    ldr     x0, =arm64_vhe_cap              // ARM64_HAS_VIRT_HOST_EXTN detected
    mov     x1, #1
    str     x1, [x0]
    bl      __init_stage2_translation       // kvm: VTCR_EL2 (hyp init under VHE)
    b       __primary_switch
1:  // Non-VHE: KVM's hyp init at EL2 (the hyp-stub HVC collapsed into a call), then EL1.
    ldr     x0, =HCR_HOST_NVHE_FLAGS
    msr     hcr_el2, x0
    ldr     x0, =__primary_switch           // where the host resumes, at EL1
    b       __kvm_hyp_init

// __primary_switch: the same code at EL1 (non-VHE) and at EL2 (VHE, through E2H redirection).
__primary_switch:
    bl      __cpu_setup
    bl      __enable_mmu
    b       __primary_switched

// __cpu_setup (mm/proc.S): memory attributes and translation control.
__cpu_setup:
    ldr     x0, =MAIR_VALUE
    msr     mair_el1, x0
    ldr     x0, =TCR_VALUE
    msr     tcr_el1, x0
    ret

// __enable_mmu: TTBR0 and SCTLR.M; SPAN stays 1 (RES1 on v8.0) until cpu_enable_pan.
__enable_mmu:
    ldr     x0, =host_pg_l1
    msr     ttbr0_el1, x0
    isb
    ldr     x0, =(SCTLR_EL1_BASE | SCTLR_ELx_M)
    msr     sctlr_el1, x0
    isb
    ret

// __primary_switched: vectors, stack, `current`, then start_kernel.
__primary_switched:
    ldr     x0, =init_stack_top
    mov     sp, x0
    ldr     x8, =vectors
    msr     vbar_el1, x8                    // VBAR_EL2 under VHE
    isb
    ldr     x0, =init_task
    msr     sp_el0, x0                      // current = &init_task (KERNEL_DS)
    b       start_kernel

// start_kernel, reduced to what matters here.
start_kernel:
    // setup_cpu_features -> the enable methods of the caps the CPU has
    alternative_if ARM64_HAS_PAN
    bl      cpu_enable_pan
    alternative_else_nop_endif
    alternative_if ARM64_HAS_UAO
    bl      cpu_enable_uao
    alternative_else_nop_endif
    bl      kvm_arch_init                   // kvm_arch_init + kvm_reset_vcpu for vcpu0
    // The vcpu thread's process context as v4.13 leaves it (it has no daifflags.h): its
    // KVM_RUN ioctl came in by an SVC, whose entry masked D, A, I and F, and el0_svc's
    // enable_dbg_and_irq (entry.S; assembler.h: msr daifclr, #(8 | 2)) unmasks D and I only.
    // A and F stay masked (no v4.13 path unmasks F; 746647c75afb made el0_svc enable_daif).
    msr     daifclr, #0xa                   // el0_svc: enable_dbg_and_irq
    // schedule() -> __switch_to(init_task, the vcpu thread): nothing switches back to init_task
    ldr     x0, =init_task
    ldr     x1, =vcpu_task
    bl      __switch_to
    b       panic

// cpu_enable_pan (mm/fault.c): exceptions taken to the kernel set PAN (SPAN=0), and PAN=1 now.
cpu_enable_pan:
    mrs     x0, sctlr_el1
    bic     x0, x0, #SCTLR_EL1_SPAN         // config_sctlr_el1(SCTLR_EL1_SPAN, 0)
    msr     sctlr_el1, x0
    isb
    SET_PSTATE_PAN(1)
    ret

// cpu_enable_uao (mm/fault.c): the boot task runs with KERNEL_DS.
cpu_enable_uao:
    SET_PSTATE_UAO(1)
    ret

// __switch_to (process.c): x0 = prev, x1 = next; returns in next's context.
__switch_to:
    stp     x29, x30, [sp, #-32]!
    stp     x0, x1, [sp, #16]
    mov     x0, x1
    bl      uao_thread_switch               // uao_thread_switch(next)
    ldp     x0, x1, [sp, #16]
    ldp     x29, x30, [sp], #32
    b       cpu_switch_to                   // last = cpu_switch_to(prev, next)

// cpu_switch_to (entry.S): x0 = prev, x1 = next. Saves prev's callee-saved registers, stack
// and return address in prev->thread.cpu_context, loads next's, and makes next `current`.
cpu_switch_to:
    add     x8, x0, #THREAD_CPU_CONTEXT
    mov     x9, sp
    stp     x19, x20, [x8], #16             // store callee-saved registers
    stp     x21, x22, [x8], #16
    stp     x23, x24, [x8], #16
    stp     x25, x26, [x8], #16
    stp     x27, x28, [x8], #16
    stp     x29, x9, [x8], #16
    str     lr, [x8]
    add     x8, x1, #THREAD_CPU_CONTEXT
    ldp     x19, x20, [x8], #16             // restore callee-saved registers
    ldp     x21, x22, [x8], #16
    ldp     x23, x24, [x8], #16
    ldp     x25, x26, [x8], #16
    ldp     x27, x28, [x8], #16
    ldp     x29, x9, [x8], #16
    ldr     lr, [x8]
    mov     sp, x9
    msr     sp_el0, x1                      // current = next
    ret

// ret_from_fork (entry.S): a new thread's first return from cpu_switch_to: run its function
// (x19) with its argument (x20). The threads modelled here never return to user space.
ret_from_fork:
    mov     x0, x20
    blr     x19
    b       panic

    .section .data, "aw"
    .balign 16
init_task:                                  // the boot task: KERNEL_DS (INIT_THREAD_INFO)
    task_struct KERNEL_DS
vcpu_task:                                  // the VMM's vcpu thread: a user task (USER_DS),
    task_struct USER_DS, host_main, vcpu_stack_top  // modelled from its ioctl(KVM_RUN) on
    .balign 16
init_stack:
    .skip   4096
init_stack_top:
vcpu_stack:
    .skip   4096
vcpu_stack_top:
