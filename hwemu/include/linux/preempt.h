/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/preempt.h: preemption and the context tests, on hwemu's task. */
#ifndef __LINUX_PREEMPT_H
#define __LINUX_PREEMPT_H

#include <linux/irqflags.h>
#include <linux/types.h>
#include <hwemu/hw.h>

#define preempt_count()		HW_RT(task_info)(HW_TASK_PREEMPT_COUNT)
#define preempt_disable()	HW_RT(preempt)(HW_PREEMPT_DISABLE)
#define preempt_enable()	HW_RT(preempt)(HW_PREEMPT_ENABLE)
#define preempt_enable_no_resched()	preempt_enable()
#define preempt_disable_notrace()	preempt_disable()
#define preempt_enable_notrace()	preempt_enable()
#define migrate_disable()	preempt_disable()
#define migrate_enable()	preempt_enable()

#define in_interrupt()		(HW_RT(task_info)(HW_TASK_IN_INTERRUPT) != 0)
#define in_hardirq()		(HW_RT(task_info)(HW_TASK_IN_HARDIRQ) != 0)
#define in_irq()		in_hardirq()
#define in_softirq()		(HW_RT(task_info)(HW_TASK_IN_SOFTIRQ) != 0)
#define in_serving_softirq()	in_softirq()
#define in_nmi()		0
#define in_task()		(!in_interrupt())
#define in_atomic()		(preempt_count() != 0)
#define irq_count()		(preempt_count() & (HARDIRQ_MASK | SOFTIRQ_MASK | NMI_MASK))
#define preemptible()		(preempt_count() == 0 && !irqs_disabled())

#endif
