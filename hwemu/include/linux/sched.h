/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/sched.h: the task states and sleeping, on hwemu's scheduler
 * (emulated time: a sleep advances the machine's clock, not the host's). There is
 * no 'current' task struct; hwemu/kernel.h has hwemu_current_pid().
 */
#ifndef _LINUX_SCHED_H
#define _LINUX_SCHED_H

#include <linux/kernel.h>
#include <linux/preempt.h>
#include <linux/smp.h>
#include <linux/types.h>
#include <hwemu/hw.h>

/* TASK_RUNNING ... TASK_KILLABLE, MAX_SCHEDULE_TIMEOUT: hwemu/facts.h (hwemu/sched.py) */
#define TASK_NORMAL		(TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE)

#define __set_current_state(state)	HW_RT(set_current_state)(state)
#define set_current_state(state)	HW_RT(set_current_state)(state)

/* sleep up to timeout jiffies in the current state; returns what is left of it */
static inline long schedule_timeout(long timeout)
{
	return HW_RT(schedule_timeout)(timeout, 0);
}

static inline long io_schedule_timeout(long timeout)
{
	return HW_RT(schedule_timeout)(timeout, 1);
}

static inline void schedule(void)
{
	HW_RT(schedule_timeout)(MAX_SCHEDULE_TIMEOUT, 0);
}

static inline void io_schedule(void)
{
	HW_RT(schedule_timeout)(MAX_SCHEDULE_TIMEOUT, 1);
}

static inline long schedule_timeout_uninterruptible(long timeout)
{
	__set_current_state(TASK_UNINTERRUPTIBLE);
	return schedule_timeout(timeout);
}

static inline long schedule_timeout_interruptible(long timeout)
{
	__set_current_state(TASK_INTERRUPTIBLE);
	return schedule_timeout(timeout);
}

static inline long schedule_timeout_killable(long timeout)
{
	__set_current_state(TASK_KILLABLE);
	return schedule_timeout(timeout);
}

static inline long schedule_timeout_idle(long timeout)
{
	__set_current_state(TASK_UNINTERRUPTIBLE);
	return schedule_timeout(timeout);
}

/* a preemption point; 0 as the kernel's when nothing tells whether it switched */
#define cond_resched()		({ HW_RT(preempt)(HW_PREEMPT_POINT); 0; })
#define might_resched()		HW_RT(preempt)(HW_PREEMPT_POINT)
#define yield()			HW_RT(preempt)(HW_PREEMPT_POINT)

#endif
