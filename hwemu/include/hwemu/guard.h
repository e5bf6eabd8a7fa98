/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: the guard of a call from Python into kernel C (see hwemu/kbuild/runtime.c).
 * Included by the runtime and by each module's generated glue, never by kernel code.
 */
#ifndef _HWEMU_GUARD_H
#define _HWEMU_GUARD_H

#include <setjmp.h>
#include <stdint.h>

struct hw_guard {
	jmp_buf env;
	struct hw_guard *prev;
	uintptr_t addr;		/* the faulting address, when the unwind is a fault */
	uintptr_t ip;		/* and the faulting instruction */
	int write;
};

#endif
