/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/interrupt.h: the context tests and IRQ flags. There are no
 * IRQ lines to request; a test runs code in interrupt context with
 * hwemu_run_in_interrupt() (hwemu/kernel.h).
 */
#ifndef _LINUX_INTERRUPT_H
#define _LINUX_INTERRUPT_H

#include <linux/hardirq.h>
#include <linux/irqflags.h>
#include <linux/preempt.h>
#include <linux/kernel.h>

enum irqreturn {
	IRQ_NONE		= (0 << 0),
	IRQ_HANDLED		= (1 << 0),
	IRQ_WAKE_THREAD		= (1 << 1),
};
typedef enum irqreturn irqreturn_t;
#define IRQ_RETVAL(x)	((x) ? IRQ_HANDLED : IRQ_NONE)

#endif
