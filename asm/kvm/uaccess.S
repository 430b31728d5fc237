// uaccess.S: arch/arm64/include/asm/uaccess.h (set_fs, the uaccess_*_not_uao macros),
// kernel/process.c (uao_thread_switch) and lib/copy_{from,to}_user.S.
// With UAO (v8.2) the copy routines use LDTR/STTR, unprivileged unless PSTATE.UAO=1, which
// set_fs(KERNEL_DS) sets so the same routines may reach kernel memory; without UAO they use
// plain LDR/STR.

// uaccess_enable_not_uao / uaccess_disable_not_uao: on CPUs with PAN but not UAO, uaccess
// clears PAN around the access (ARM64_ALT_PAN_NOT_UAO).
    .macro  uaccess_enable_not_uao
    ALTERNATIVE(nop, SET_PSTATE_PAN(0), ARM64_ALT_PAN_NOT_UAO)
    .endm
    .macro  uaccess_disable_not_uao
    ALTERNATIVE(nop, SET_PSTATE_PAN(1), ARM64_ALT_PAN_NOT_UAO)
    .endm

    .text
// set_fs(fs): x0 = the new addr_limit.
set_fs:
    get_current x1
    str     x0, [x1, #TSK_TI_ADDR_LIMIT]    // current_thread_info()->addr_limit = fs
    ldr     x2, =KERNEL_DS
    cmp     x0, x2
    b.ne    1f
    ALTERNATIVE(nop, SET_PSTATE_UAO(1), ARM64_HAS_UAO)      // KERNEL_DS: UAO on
    ret
1:  ALTERNATIVE(nop, SET_PSTATE_UAO(0), ARM64_HAS_UAO)      // USER_DS: UAO off
    ret

// uao_thread_switch(next): x0 = next; UAO follows next's addr_limit.
    .type   uao_thread_switch, %function
uao_thread_switch:
    ldr     x1, [x0, #TSK_TI_ADDR_LIMIT]
    cmn     x1, #1                          // == KERNEL_DS?
    b.ne    1f
    ALTERNATIVE(nop, SET_PSTATE_UAO(1), ARM64_HAS_UAO)
    ret
1:  ALTERNATIVE(nop, SET_PSTATE_UAO(0), ARM64_HAS_UAO)
    ret
    .size   uao_thread_switch, .-uao_thread_switch

// __arch_copy_from_user(to, from, n): x0 = to, x1 = from (user), x2 = n (a multiple of 8).
// Returns the bytes not copied.
__arch_copy_from_user:
    uaccess_enable_not_uao
    add     x3, x0, x2                      // end
1:  cmp     x0, x3
    b.hs    2f
probe_uaccess_user:                         // (the harness observes this access)
    alternative_if_not ARM64_HAS_UAO
    ldr     x4, [x1], #8
    nop
    alternative_else
    ldtr    x4, [x1]
    add     x1, x1, #8
    alternative_endif
    _asm_extable probe_uaccess_user, 9998f
    str     x4, [x0], #8
    b       1b
2:  uaccess_disable_not_uao
    mov     x0, #0
    ret
9998:                                       // .fixup: the bytes left
    uaccess_disable_not_uao
    sub     x0, x3, x0
    ret

// __arch_copy_to_user(to, from, n): x0 = to (user, or kernel under KERNEL_DS), x1 = from.
__arch_copy_to_user:
    uaccess_enable_not_uao
    add     x3, x0, x2
1:  cmp     x0, x3
    b.hs    2f
    ldr     x4, [x1], #8
probe_uaccess_kernel:                       // (the harness observes this access)
    alternative_if_not ARM64_HAS_UAO
    str     x4, [x0], #8
    nop
    alternative_else
    sttr    x4, [x0]
    add     x0, x0, #8
    alternative_endif
    _asm_extable probe_uaccess_kernel, 9998f
    b       1b
2:  uaccess_disable_not_uao
    mov     x0, #0
    ret
9998:
    uaccess_disable_not_uao
    sub     x0, x3, x0
    ret
