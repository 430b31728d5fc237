/* Included by hostile.S: C-style defines and GNU-as macros, as kernel headers have them. */
#ifndef HOSTILE_DEFS_H
#define HOSTILE_DEFS_H

#define PSTATE_PAN_IMM		1
#define BIT(n)			(1 << (n))
#define SCTLR_EL1_SPAN		BIT(23)
#define SET_PSTATE_PAN(x)	.inst (0xd500401f | (0 << 16) | (4 << 5) | ((!!(x)) << 8))
#define SET_PSTATE_UAO(x)	.inst (0xd500401f | (0 << 16) | (3 << 5) | ((!!(x)) << 8))
#define PAIR(a, b)		stp a, b, [sp, #-16]!

	.macro	save_x, reg, off=8, tmp:req
	str	\reg, [sp, #\off]
	mov	\tmp, #\off
	.endm

	.macro	count_down, reg, from=3
	mov	\reg, #\from
.Lloop\@:
	subs	\reg, \reg, #1
	b.ne	.Lloop\@
	.endm

	.macro	sum, dst, first, rest:vararg
	mov	\dst, #\first
	.irp	v, \rest
	add	\dst, \dst, #\v
	.endr
	.endm
#endif
