#ifndef REG
#define REG x9
#endif
	.macro	body
	msr	pan, #1
	.endm
