/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: asm/processor.h: cpu_relax() in a spin loop lets the other tasks run. */
#ifndef _ASM_PROCESSOR_H
#define _ASM_PROCESSOR_H

#include <hwemu/hw.h>

static inline void cpu_relax(void)
{
	HW_RT(preempt)(0);
}

#endif
