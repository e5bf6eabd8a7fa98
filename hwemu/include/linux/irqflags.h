/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/irqflags.h: the emulated task's IRQ state, kept by hwemu. */
#ifndef _LINUX_TRACE_IRQFLAGS_H
#define _LINUX_TRACE_IRQFLAGS_H

#include <linux/typecheck.h>
#include <hwemu/hw.h>

#define HW_PREEMPT_POINT	0	/* how of the preempt entry */
#define HW_PREEMPT_DISABLE	1
#define HW_PREEMPT_ENABLE	2
#define HW_IRQ_DISABLE		3
#define HW_IRQ_ENABLE		4
#define HW_TASK_PID		0	/* what of the task_info entry */
#define HW_TASK_CPU		1
#define HW_TASK_NODE		2
#define HW_TASK_PREEMPT_COUNT	3
#define HW_TASK_IRQS_DISABLED	4
#define HW_TASK_IN_INTERRUPT	5
#define HW_TASK_IN_HARDIRQ	6
#define HW_TASK_IN_SOFTIRQ	7

#define local_irq_disable()	HW_RT(preempt)(HW_IRQ_DISABLE)
#define local_irq_enable()	HW_RT(preempt)(HW_IRQ_ENABLE)
#define irqs_disabled()		(HW_RT(task_info)(HW_TASK_IRQS_DISABLED) != 0)
/* flags: nonzero when IRQs were disabled */
#define local_save_flags(flags) do {					\
	typecheck(unsigned long, flags);				\
	(flags) = HW_RT(task_info)(HW_TASK_IRQS_DISABLED);		\
} while (0)
#define local_irq_save(flags) do {					\
	local_save_flags(flags);					\
	HW_RT(preempt)(HW_IRQ_DISABLE);					\
} while (0)
#define local_irq_restore(flags) do {					\
	typecheck(unsigned long, flags);				\
	HW_RT(preempt)((flags) ? HW_IRQ_DISABLE : HW_IRQ_ENABLE);	\
} while (0)
#define irqs_disabled_flags(flags)	((flags) != 0)

#define raw_local_irq_disable()		local_irq_disable()
#define raw_local_irq_enable()		local_irq_enable()
#define raw_local_irq_save(flags)	local_irq_save(flags)
#define raw_local_irq_restore(flags)	local_irq_restore(flags)
#define raw_local_save_flags(flags)	local_save_flags(flags)
#define raw_irqs_disabled()		irqs_disabled()

#endif
