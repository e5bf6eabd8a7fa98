/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/wait.h. A wait queue head is the kernel's (lock + list) and
 * must live in emulated memory (kmalloc, a mempool, ...): hwemu keeps its waiters
 * and writes the list head so that waitqueue_active() is a plain read
 * (head.next == &head: empty). Entries are keyed by their address, so DEFINE_WAIT
 * only zeroes one. No DECLARE_WAIT_QUEUE_HEAD: a head in module data is not in
 * emulated memory.
 */
#ifndef _LINUX_WAIT_H
#define _LINUX_WAIT_H

#include <asm/barrier.h>
#include <linux/list.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/stddef.h>
#include <hwemu/hw.h>

struct wait_queue_entry;
typedef int (*wait_queue_func_t)(struct wait_queue_entry *wq_entry, unsigned mode,
				 int flags, void *key);

#define WQ_FLAG_EXCLUSIVE	0x01
#define WQ_FLAG_WOKEN		0x02

struct wait_queue_entry {
	unsigned int		flags;
	void			*private;
	wait_queue_func_t	func;
	struct list_head	entry;
};
typedef struct wait_queue_entry wait_queue_entry_t;

struct wait_queue_head {
	spinlock_t		lock;
	struct list_head	head;
};
typedef struct wait_queue_head wait_queue_head_t;

#define __hw_wq_field(f, off) \
	_Static_assert(offsetof(wait_queue_head_t, f) == (off), \
		       "wait_queue_head_t." #f " is not where hwemu has it");
HW_WAIT_QUEUE_HEAD_T_LAYOUT(__hw_wq_field)
_Static_assert(sizeof(wait_queue_head_t) == HW_WAIT_QUEUE_HEAD_T_SIZE,
	       "sizeof(wait_queue_head_t) differs from hwemu's");

static inline void init_waitqueue_head(struct wait_queue_head *wq_head)
{
	HW_RT(init_waitqueue_head)(HW_PTR(wq_head));
}

#define DEFINE_WAIT_FUNC(name, function) \
	struct wait_queue_entry name = { .func = function }
#define DEFINE_WAIT(name)	struct wait_queue_entry name = { 0 }
#define init_wait(wait)		(void)(*(wait) = (struct wait_queue_entry){ 0 })

/* queue wait on wq_head (once) and set the task state: no wake-up is lost after */
static inline void prepare_to_wait(struct wait_queue_head *wq_head,
				   struct wait_queue_entry *wq_entry, int state)
{
	HW_RT(prepare_to_wait)(HW_PTR(wq_head), HW_PTR(wq_entry), state, 0);
}

/* the same, queued at the tail and woken one at a time */
static inline void prepare_to_wait_exclusive(struct wait_queue_head *wq_head,
					     struct wait_queue_entry *wq_entry, int state)
{
	HW_RT(prepare_to_wait)(HW_PTR(wq_head), HW_PTR(wq_entry), state, 1);
}

/* TASK_RUNNING, and off the queue if no wake-up took it off */
static inline void finish_wait(struct wait_queue_head *wq_head,
			       struct wait_queue_entry *wq_entry)
{
	HW_RT(finish_wait)(HW_PTR(wq_head), HW_PTR(wq_entry));
}

static inline int waitqueue_active(struct wait_queue_head *wq_head)
{
	return READ_ONCE(wq_head->head.next) != &wq_head->head;
}

static inline bool wq_has_sleeper(struct wait_queue_head *wq_head)
{
	smp_mb();
	return waitqueue_active(wq_head);
}

/* wake every non-exclusive waiter and nr exclusive ones (0: all) */
static inline int __hw_wake_up(struct wait_queue_head *wq_head, int nr_exclusive)
{
	return HW_RT(wake_up)(HW_PTR(wq_head), nr_exclusive);
}

#define wake_up(x)			__hw_wake_up(x, 1)
#define wake_up_nr(x, nr)		__hw_wake_up(x, nr)
#define wake_up_all(x)			__hw_wake_up(x, 0)
#define wake_up_interruptible(x)	__hw_wake_up(x, 1)
#define wake_up_interruptible_nr(x, nr)	__hw_wake_up(x, nr)
#define wake_up_interruptible_all(x)	__hw_wake_up(x, 0)

/*
 * wait_event*(): sleep until condition holds, re-checked after every wake-up.
 * The _timeout forms return 0 if it still did not hold when the timeout passed,
 * else the jiffies left (at least 1).
 */
#define ___wait_cond_timeout(condition) ({				\
	bool __cond = (condition);					\
	if (__cond && !__ret)						\
		__ret = 1;						\
	__cond || !__ret;						\
})

#define ___hw_wait_event(wq_head, condition, state, exclusive, timeout, sched) ({ \
	long __ret = (timeout);						\
	struct wait_queue_entry __wq_entry = { 0 };			\
	for (;;) {							\
		HW_RT(prepare_to_wait)(HW_PTR(&(wq_head)),		\
				       HW_PTR(&__wq_entry), state, exclusive); \
		if (___wait_cond_timeout(condition))			\
			break;						\
		__ret = HW_RT(schedule_timeout)(__ret, sched);		\
	}								\
	finish_wait(&(wq_head), &__wq_entry);				\
	__ret;								\
})

#define wait_event(wq_head, condition) do {				\
	might_sleep();							\
	if (!(condition))						\
		___hw_wait_event(wq_head, condition, TASK_UNINTERRUPTIBLE, 0, \
				 MAX_SCHEDULE_TIMEOUT, 0);		\
} while (0)

#define io_wait_event(wq_head, condition) do {				\
	might_sleep();							\
	if (!(condition))						\
		___hw_wait_event(wq_head, condition, TASK_UNINTERRUPTIBLE, 0, \
				 MAX_SCHEDULE_TIMEOUT, 1);		\
} while (0)

#define wait_event_timeout(wq_head, condition, timeout) ({		\
	long __ret = (timeout);						\
	might_sleep();							\
	if (!___wait_cond_timeout(condition))				\
		__ret = ___hw_wait_event(wq_head, condition,		\
					 TASK_UNINTERRUPTIBLE, 0, __ret, 0); \
	__ret;								\
})

#define wait_event_exclusive_timeout(wq_head, condition, timeout) ({	\
	long __ret = (timeout);						\
	might_sleep();							\
	if (!___wait_cond_timeout(condition))				\
		__ret = ___hw_wait_event(wq_head, condition,		\
					 TASK_UNINTERRUPTIBLE, 1, __ret, 0); \
	__ret;								\
})

#endif
