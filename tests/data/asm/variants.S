// A program whose variant is chosen by `defines` and whose include can be patched by `overrides`.
#include "variants_body.h"
	.text
_start:
#if VARIANT == 2
	mov	x0, #2
#elif defined(VARIANT)
	mov	x0, #VARIANT
#else
	mov	x0, #0
#endif
	mov	REG, #1
	body
	ret
