/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/completion.h, built as kernel/sched/completion.c does: a
 * count of completions under the wait queue's lock, waiters queued exclusively.
 * As for any wait queue head, the completion must live in emulated memory, so there
 * is no DECLARE_COMPLETION.
 */
#ifndef __LINUX_COMPLETION_H
#define __LINUX_COMPLETION_H

#include <linux/limits.h>
#include <linux/sched.h>
#include <linux/wait.h>

struct completion {
	unsigned int done;
	wait_queue_head_t wait;
};

static inline void init_completion(struct completion *x)
{
	x->done = 0;
	init_waitqueue_head(&x->wait);
}

static inline void reinit_completion(struct completion *x)
{
	x->done = 0;
}

static inline void complete(struct completion *x)
{
	unsigned long flags;

	spin_lock_irqsave(&x->wait.lock, flags);
	if (x->done != UINT_MAX)
		x->done++;
	spin_unlock_irqrestore(&x->wait.lock, flags);
	wake_up(&x->wait);
}

/* every waiter from now on passes */
static inline void complete_all(struct completion *x)
{
	unsigned long flags;

	spin_lock_irqsave(&x->wait.lock, flags);
	x->done = UINT_MAX;
	spin_unlock_irqrestore(&x->wait.lock, flags);
	wake_up_all(&x->wait);
}

/* 0 if it timed out, else the jiffies left (at least 1) */
static inline long __hw_wait_for_common(struct completion *x, long timeout, int state,
					int io)
{
	struct wait_queue_entry wait = { 0 };
	unsigned long flags;
	bool queued = false;

	might_sleep();
	spin_lock_irqsave(&x->wait.lock, flags);
	while (!x->done && timeout) {
		prepare_to_wait_exclusive(&x->wait, &wait, state);
		queued = true;
		spin_unlock_irqrestore(&x->wait.lock, flags);
		timeout = HW_RT(schedule_timeout)(timeout, io);
		spin_lock_irqsave(&x->wait.lock, flags);
	}
	if (x->done) {
		if (x->done != UINT_MAX)
			x->done--;
		if (!timeout)
			timeout = 1;
	}
	spin_unlock_irqrestore(&x->wait.lock, flags);
	if (queued)
		finish_wait(&x->wait, &wait);
	return timeout;
}

static inline void wait_for_completion(struct completion *x)
{
	__hw_wait_for_common(x, MAX_SCHEDULE_TIMEOUT, TASK_UNINTERRUPTIBLE, 0);
}

static inline void wait_for_completion_io(struct completion *x)
{
	__hw_wait_for_common(x, MAX_SCHEDULE_TIMEOUT, TASK_UNINTERRUPTIBLE, 1);
}

static inline unsigned long wait_for_completion_timeout(struct completion *x,
							unsigned long timeout)
{
	return __hw_wait_for_common(x, timeout, TASK_UNINTERRUPTIBLE, 0);
}

static inline unsigned long wait_for_completion_io_timeout(struct completion *x,
							   unsigned long timeout)
{
	return __hw_wait_for_common(x, timeout, TASK_UNINTERRUPTIBLE, 1);
}

/* take a completion if there is one, without waiting */
static inline bool try_wait_for_completion(struct completion *x)
{
	unsigned long flags;
	bool ret = false;

	if (!READ_ONCE(x->done))
		return false;
	spin_lock_irqsave(&x->wait.lock, flags);
	if (x->done) {
		if (x->done != UINT_MAX)
			x->done--;
		ret = true;
	}
	spin_unlock_irqrestore(&x->wait.lock, flags);
	return ret;
}

/* no waiter would wait now */
static inline bool completion_done(struct completion *x)
{
	unsigned long flags;

	if (!READ_ONCE(x->done))
		return false;
	/* as the kernel: let a complete() in progress finish with the lock */
	spin_lock_irqsave(&x->wait.lock, flags);
	spin_unlock_irqrestore(&x->wait.lock, flags);
	return true;
}

#endif
