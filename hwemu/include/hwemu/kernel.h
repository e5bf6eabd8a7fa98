/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: what hwemu offers kernel C beyond the kernel's API, for tests and drivers. */
#ifndef _HWEMU_KERNEL_H
#define _HWEMU_KERNEL_H

#include <linux/irqflags.h>
#include <linux/types.h>
#include <hwemu/hw.h>

/*
 * Run fn(arg) in hard interrupt context (softirq: in softirq context) on the
 * current CPU, as an interrupt arriving now would; returns what fn returned.
 */
static inline unsigned long hwemu_run_in_interrupt(unsigned long (*fn)(unsigned long),
						   unsigned long arg, bool softirq)
{
	return HW_RT(run_in_interrupt)(HW_PTR(fn), arg, softirq);
}

/* the pid of the emulated task running this code */
static inline int hwemu_current_pid(void)
{
	return HW_RT(task_info)(HW_TASK_PID);
}

#endif
