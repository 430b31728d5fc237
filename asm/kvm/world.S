// world.S: the arm64 KVM world switch of Linux v4.13, as one bare-metal program: a host
// kernel (VHE or not), KVM's hyp code and a guest. One file per kernel file modelled; the
// harness picks VHE, the caller, the guest's PAN/UAO and the exit cause at run time through
// `scenario_config`, and code variants patch these files (asm/variants/*.diff).
// Sections are placed by harness/scenarios/world.py (LAYOUT); everything is identity-mapped.

    .include "arm64_defs.S"
    .include "board.S"
    .include "vectors.S"
    .include "print.S"
#include "assembler.S"

// Section boundaries (the page-table code maps each section's range).
    .text
__text_start:
    .section .hyp.text, "ax"
__hyp_text_start:
    .section .hyp.data, "aw"
__hyp_data_start:
    .section .data, "aw"
__data_start:
    .section .user, "aw"
__user_start:
    .section .guest, "ax"
__guest_start:
    .section .pgtables, "aw"
__pgtables_start:
    .section __ex_table, "a"
__start___ex_table:
    .section __hyp_ex_table, "a"
__start___hyp_ex_table:

#include "head.S"
#include "mmu.S"
#include "kernel-entry.S"
#include "uaccess.S"
#include "kvm-arm.S"
#include "hyp-init.S"
#include "hyp-entry.S"
#include "entry.S"
#include "switch.S"
#include "guest.S"
#include "probes.S"

    .section __ex_table, "a"
__stop___ex_table:
    .section __hyp_ex_table, "a"
__stop___hyp_ex_table:
