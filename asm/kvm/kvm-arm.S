// kvm-arm.S: the host side of KVM: arch/arm64/kvm/hyp.S (__kvm_call_hyp), virt/kvm/arm/arm.c
// (kvm_arch_init, kvm_arch_vcpu_ioctl_run), arch/arm64/kvm/reset.c (kvm_reset_vcpu), and the
// two KERNEL_DS paths into the world switch the 2017 review argues about (kernel_ds_caller,
// kvm_vcpu_kthread). Neither exists in v4.13: see their comments for what they stand for.

    .text
// kvm_call_hyp(fn, args...): x0 = hyp function, x1-x3 its arguments.
    .type   kvm_call_hyp, %function
kvm_call_hyp:
    has_vhe x9
    cbnz    x9, __vhe_hyp_call
    str     lr, [sp, #-16]!
    hvc     #0                              // non-VHE: into __kvm_hyp_vector el1_sync
    ldr     lr, [sp], #16
    ret
    .size   kvm_call_hyp, .-kvm_call_hyp

// __vhe_hyp_call (hyp-entry.S): under VHE the kernel is already at EL2: a plain call.
__vhe_hyp_call:
    str     lr, [sp, #-16]!
    mov     lr, x0
    mov     x0, x1
    mov     x1, x2
    mov     x2, x3
    blr     lr
    ldr     lr, [sp], #16
    ret

// kvm_arch_init + kvm_reset_vcpu(vcpu0): the vcpu as the VMM configured it.
kvm_arch_init:
    ldr     x19, =vcpu0
    ldr     x0, =kvm_host_cpu_state
    str     x0, [x19, #VCPU_HOST_CONTEXT]   // vcpu->arch.host_cpu_context
    // vcpu_reset_hcr(): HCR_GUEST_FLAGS, +E2H under VHE; the vgic adds IMO|FMO
    ldr     x0, =(HCR_GUEST_FLAGS | HCR_IMO | HCR_FMO)
    has_vhe x1
    cbz     x1, 1f
    orr     x0, x0, #HCR_E2H
1:  str     x0, [x19, #VCPU_HCR_EL2]
    // kvm_alloc_stage2_pgd + update_vttbr(): the stage-2 root with VMID 1
    ldr     x0, =(s2_pg_l1 + (1 << VTTBR_VMID_SHIFT))
    str     x0, [x19, #VCPU_VTTBR]
    // kvm_reset_sys_regs + the guest's own boot: MMU on with its tables, SPAN=0, its vectors
    ldr     x0, =(SCTLR_EL1_BASE | SCTLR_ELx_M)
    alternative_if ARM64_HAS_PAN
    bic     x0, x0, #SCTLR_EL1_SPAN
    alternative_else_nop_endif
    str     x0, [x19, #CPU_SCTLR_EL1]
    ldr     x0, =guest_pg_l1
    str     x0, [x19, #CPU_TTBR0_EL1]
    ldr     x0, =TCR_VALUE
    str     x0, [x19, #CPU_TCR_EL1]
    ldr     x0, =MAIR_VALUE
    str     x0, [x19, #CPU_MAIR_EL1]
    ldr     x0, =guest_vectors
    str     x0, [x19, #CPU_VBAR_EL1]
    ldr     x0, =guest_stack_top
    str     x0, [x19, #CPU_SP_EL1]
    str     xzr, [x19, #CPU_ELR_EL1]
    str     xzr, [x19, #CPU_SPSR_EL1]
    ret

// kvm_vcpu_set_regs: the VMM's KVM_SET_ONE_REG calls before KVM_RUN. The guest starts at
// guest_entry in EL1h (the guest kernel); x0-x5 = its PAN, UAO, exit cause, the EL it exits
// from, and its DIT and SSBS. At EL1 the mask of the interrupt that ends its run is cleared here; at EL0 the
// guest kernel's ERET gives user space DAIF=0000, as Linux runs user space.
kvm_vcpu_set_regs:
    ldr     x19, =vcpu0
    ldr     x0, =guest_entry
    str     x0, [x19, #CPU_PC]
    config  x1, CFG_EXIT
    mov     x0, #(PSR_MODE_EL1h | PSR_DAIF)
    cmp     x1, #EXIT_IRQ
    b.ne    2f
    bic     x0, x0, #PSR_I_BIT
2:  cmp     x1, #EXIT_SERROR
    b.ne    3f
    bic     x0, x0, #PSR_A_BIT
3:  str     x0, [x19, #CPU_PSTATE]
    config  x0, CFG_GUEST_PAN
    str     x0, [x19, #(0 * 8)]
    config  x0, CFG_GUEST_UAO
    str     x0, [x19, #(1 * 8)]
    str     x1, [x19, #(2 * 8)]
    config  x0, CFG_GUEST_EL
    str     x0, [x19, #(3 * 8)]
    config  x0, CFG_GUEST_DIT
    str     x0, [x19, #(4 * 8)]
    config  x0, CFG_GUEST_SSBS
    str     x0, [x19, #(5 * 8)]
    str     xzr, [x19, #CPU_SP_EL0]
    ret

// host_main: the vcpu thread. Its ioctl(KVM_RUN), or one of the two KERNEL_DS paths; then
// the harness's probes of what hyp code can reach (not kernel code), then power off.
host_main:
    bl      kvm_vcpu_set_regs
    config  x0, CFG_CALLER
    cmp     x0, #CALLER_KERNEL_DS
    b.eq    1f
    cmp     x0, #CALLER_KTHREAD
    b.eq    2f
    bl      kvm_arch_vcpu_ioctl_run
    b       3f
1:  bl      kernel_ds_caller
    b       3f
2:  bl      kvm_kthread_run
3:  ldr     x1, =kvm_exit_code
    str     x0, [x1]
    config  x0, CFG_HYP_PROBES
    cbz     x0, 4f
    ldr     x0, =__kvm_probe_hyp_pan
    bl      kvm_call_hyp
    ldr     x0, =__kvm_probe_kernel_call
    bl      kvm_call_hyp
4:  psci_system_off

// kvm_arch_vcpu_ioctl_run: the KVM_RUN path, entered from user space with USER_DS.
kvm_arch_vcpu_ioctl_run:
    stp     x29, x30, [sp, #-16]!
    bl      host_world_switch
    ldp     x29, x30, [sp], #16
    ret

// kernel_ds_caller (A1's caller): the vcpu thread running the world switch inside
// set_fs(KERNEL_DS). No v4.13 kernel does this (the reviewer: KVM_RUN runs with USER_DS);
// it is the case "KVM decides to set_fs(KERNEL_DS) around the world switch".
kernel_ds_caller:
    stp     x29, x30, [sp, #-32]!
    stp     x19, x20, [sp, #16]
    get_current x0
    ldr     x19, [x0, #TSK_TI_ADDR_LIMIT]   // old_fs = get_fs()
    ldr     x0, =KERNEL_DS
    bl      set_fs                          // set_fs(KERNEL_DS)
    bl      host_world_switch
    mov     x20, x0
    mov     x0, x19
    bl      set_fs                          // set_fs(old_fs)
    mov     x0, x20
    ldp     x19, x20, [sp, #16]
    ldp     x29, x30, [sp], #32
    ret

// kvm_kthread_run (A2's path): kthread_run(kvm_vcpu_kthread, vcpu0) and wait for it. A kernel
// thread has its own task, stack and call chain, and in v4.13 runs with addr_limit = KERNEL_DS
// (inherited from kthreadd; only exec gives a task USER_DS), so __switch_to's
// uao_thread_switch() sets UAO=1 for it without any set_fs(). No v4.13 kernel thread runs a
// vcpu: this stands for the author's "any kernel path" with KERNEL_DS into the world switch.
kvm_kthread_run:
    stp     x29, x30, [sp, #-16]!
    get_current x0                          // prev = the vcpu thread
    ldr     x1, =kvm_kthread_task
    bl      __switch_to                     // wake_up_process() + schedule(): run the kthread
    ldr     x0, =kvm_kthread_ret            // back here once it has scheduled us again
    ldr     x0, [x0]
    ldp     x29, x30, [sp], #16
    ret

// kvm_vcpu_kthread(vcpu): the kernel thread's function (ret_from_fork calls it on its stack).
kvm_vcpu_kthread:
    bl      kvm_arch_vcpu_ioctl_run         // one KVM_RUN for the vcpu, from kernel context
    ldr     x1, =kvm_kthread_ret
    str     x0, [x1]
    ldr     x0, =kvm_kthread_task           // schedule() back to the vcpu thread; nothing
    ldr     x1, =vcpu_task                  // switches to this thread again
    bl      __switch_to
    b       panic

// host_world_switch: one iteration of kvm_arch_vcpu_ioctl_run's run loop, with the
// harness's host probes before and straight after the world switch. host_before_call and
// host_after_call bracket everything the host does to enter and leave the guest: the
// harness compares the host's PSTATE at these two points (W2).
    .type   host_world_switch, %function
host_world_switch:
    stp     x29, x30, [sp, #-32]!
    str     x19, [sp, #16]
    bl      host_probes                     // baseline, before the world switch
    msr     daifset, #2                     // local_irq_disable()
host_before_call:
    ldr     x0, =__kvm_vcpu_run
    ldr     x1, =vcpu0
    bl      kvm_call_hyp                    // ret = kvm_call_hyp(__kvm_vcpu_run, vcpu)
host_after_call:
    mov     x19, x0
    bl      host_probes
    msr     daifclr, #2                     // local_irq_enable()
    mov     x0, x19
    ldr     x19, [sp, #16]
    ldp     x29, x30, [sp], #32
    ret
    .size   host_world_switch, .-host_world_switch

    .section .data, "aw"
    .balign 8
scenario_config:                            // written by the harness (world.py CONFIG_FIELDS)
    .quad   0, 0, 0, 0, 0, 1, 1
kvm_exit_code:
    .quad   -1
kvm_kthread_ret:
    .quad   -1
    .balign 16
kvm_kthread_task:                           // the kernel thread: KERNEL_DS, as every kthread
    task_struct KERNEL_DS, kvm_vcpu_kthread, kthread_stack_top
    .balign 16
kthread_stack:
    .skip   4096
kthread_stack_top:

    .section .hyp.data, "aw"
    .balign 16
arm64_vhe_cap:                              // has_vhe()
    .quad   0
    .balign 16
vcpu0:                                      // struct kvm_vcpu
    .skip   VCPU_SIZE
    .balign 16
kvm_host_cpu_state:                         // the host's struct kvm_cpu_context
    .skip   CPU_CONTEXT_SIZE
