// probes.S: the harness's probes (not kernel code). Each probe is one labelled access with
// an exception-table fix-up, so a fault shows as an exception the harness records and the
// run goes on (x0 = -EFAULT, or the bytes left for the copy routines).

    .text
// host_probes: what the host kernel can touch: a plain load from a user page (PAN), a
// USER_DS uaccess (copy_from_user of the user page) and a KERNEL_DS uaccess (copy_to_user
// into a kernel page).
host_probes:
    stp     x29, x30, [sp, #-16]!
    ldr     x1, =user_page
probe_ldr_user:
    ldr     x2, [x1]
    _asm_extable probe_ldr_user, 1f
1:  ldr     x0, =probe_buf
    ldr     x1, =user_page
    mov     x2, #8
    bl      __arch_copy_from_user           // probe_uaccess_user
    ldr     x0, =kernel_buf
    ldr     x1, =probe_buf
    mov     x2, #8
    bl      __arch_copy_to_user             // probe_uaccess_kernel
    ldp     x29, x30, [sp], #16
    ret

    .section .hyp.text, "ax"
// __kvm_probe_hyp_pan: at EL2, a load from a page with AP[1]=1 under PAN=1 and PAN=0.
__kvm_probe_hyp_pan:
    alternative_if_not ARM64_HAS_PAN
    ret
    alternative_else_nop_endif
    mrs     x3, s3_0_c4_c2_3                // PAN, to put back
    ldr     x1, =user_page
    SET_PSTATE_PAN(1)
probe_hyp_pan1:
    ldr     x2, [x1]
    _hyp_extable probe_hyp_pan1, 1f
1:  SET_PSTATE_PAN(0)
probe_hyp_pan0:
    ldr     x2, [x1]
    _hyp_extable probe_hyp_pan0, 2f
2:  tbz     x3, #22, 3f
    SET_PSTATE_PAN(1)
3:  ret

// __kvm_probe_kernel_call: hyp code calling kernel text and reading `current`.
    .type   __kvm_probe_kernel_call, %function
__kvm_probe_kernel_call:
    stp     x29, x30, [sp, #-16]!
    get_current x0
probe_hyp_call_kernel:
    bl      uao_thread_switch               // uao_thread_switch(current)
    _hyp_extable probe_hyp_call_kernel, 1f
1:
probe_hyp_current:
    get_current x0
    ldr     x1, [x0, #TSK_TI_ADDR_LIMIT]    // current->addr_limit
    _hyp_extable (probe_hyp_current + 4), 2f
2:  ldp     x29, x30, [sp], #16
    ret
    .size   __kvm_probe_kernel_call, .-__kvm_probe_kernel_call

    .section .data, "aw"
    .balign 16
probe_buf:
    .quad   0
    .balign PAGE_SIZE
kernel_buf:                                 // a kernel page (AP=00)
    .skip   PAGE_SIZE

    .section .user, "aw"
    .balign PAGE_SIZE
user_page:                                  // a user page (AP=01)
    .quad   0x75736572                      // "user"
    .skip   PAGE_SIZE - 8
