/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/spinlock.h. Taking and releasing a lock are calls into hwemu:
 * preemption points, a wait while another task holds the lock, the IRQ and preempt
 * state of the task, and the CONFIG_DEBUG_SPINLOCK checks (bad magic, recursion,
 * wrong owner) as oopses. The word itself may be anywhere (module data, the stack,
 * emulated memory).
 */
#ifndef __LINUX_SPINLOCK_H
#define __LINUX_SPINLOCK_H

#include <linux/bug.h>
#include <linux/compiler.h>
#include <linux/irqflags.h>
#include <linux/lockdep.h>
#include <linux/preempt.h>
#include <linux/spinlock_types.h>
#include <linux/typecheck.h>
#include <hwemu/hw.h>

/* how a lock is taken (hwemu.kbuild.native) */
#define HW_SPIN_PLAIN	0
#define HW_SPIN_IRQ	1
#define HW_SPIN_IRQSAVE	2
#define HW_SPIN_BH	3

static inline void spin_lock_init(spinlock_t *lock)
{
	HW_RT(spin_lock_init)(HW_PTR(lock));
}

static inline void spin_lock(spinlock_t *lock)
{
	HW_RT(spin_lock)(HW_PTR(lock), HW_SPIN_PLAIN);
}

static inline void spin_unlock(spinlock_t *lock)
{
	HW_RT(spin_unlock)(HW_PTR(lock), HW_SPIN_PLAIN, 0);
}

static inline void spin_lock_irq(spinlock_t *lock)
{
	HW_RT(spin_lock)(HW_PTR(lock), HW_SPIN_IRQ);
}

static inline void spin_unlock_irq(spinlock_t *lock)
{
	HW_RT(spin_unlock)(HW_PTR(lock), HW_SPIN_IRQ, 0);
}

static inline void spin_lock_bh(spinlock_t *lock)
{
	HW_RT(spin_lock)(HW_PTR(lock), HW_SPIN_BH);
}

static inline void spin_unlock_bh(spinlock_t *lock)
{
	HW_RT(spin_unlock)(HW_PTR(lock), HW_SPIN_BH, 0);
}

#define spin_lock_irqsave(lock, flags) do {				\
	typecheck(unsigned long, flags);				\
	(flags) = HW_RT(spin_lock)(HW_PTR(lock), HW_SPIN_IRQSAVE);	\
} while (0)

static inline void spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	HW_RT(spin_unlock)(HW_PTR(lock), HW_SPIN_IRQSAVE, flags);
}

#define spin_lock_nested(lock, subclass)		spin_lock(lock)
#define spin_lock_irqsave_nested(lock, flags, subclass)	spin_lock_irqsave(lock, flags)

static inline int spin_is_locked(spinlock_t *lock)
{
	return READ_ONCE(lock->raw) != 0;
}

#define assert_spin_locked(lock)	BUG_ON(!spin_is_locked(lock))

/* the raw_ API: the same locks here */
#define raw_spin_lock_init(l)			spin_lock_init(l)
#define raw_spin_lock(l)			spin_lock(l)
#define raw_spin_unlock(l)			spin_unlock(l)
#define raw_spin_lock_irq(l)			spin_lock_irq(l)
#define raw_spin_unlock_irq(l)			spin_unlock_irq(l)
#define raw_spin_lock_irqsave(l, flags)		spin_lock_irqsave(l, flags)
#define raw_spin_unlock_irqrestore(l, flags)	spin_unlock_irqrestore(l, flags)
#define raw_spin_is_locked(l)			spin_is_locked(l)

#endif
