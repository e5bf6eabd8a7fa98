/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/spinlock_types.h with CONFIG_DEBUG_SPINLOCK, flattened: the
 * lock word, magic, owner CPU and owner, where hwemu's spinlock reads them
 * (hwemu/spinlock.py; checked against hwemu/facts.h below).
 */
#ifndef __LINUX_SPINLOCK_TYPES_H
#define __LINUX_SPINLOCK_TYPES_H

#include <linux/types.h>
#include <hwemu/facts.h>

typedef struct spinlock {
	u32 raw;		/* 0 unlocked, else held (arch_spinlock_t) */
	u32 magic;		/* SPINLOCK_MAGIC once initialised */
	u32 owner_cpu;
	u32 pad;
	u64 owner;		/* the holder's pid */
} spinlock_t;

/* no separate raw spinlock: the same lock */
typedef spinlock_t raw_spinlock_t;

#define __hw_spinlock_field(f, off) \
	_Static_assert(__builtin_offsetof(spinlock_t, f) == (off), \
		       "spinlock_t." #f " is not where hwemu has it");
HW_SPINLOCK_T_LAYOUT(__hw_spinlock_field)
_Static_assert(sizeof(spinlock_t) == HW_SPINLOCK_T_SIZE, "sizeof(spinlock_t) differs from hwemu's");

#define __SPIN_LOCK_UNLOCKED(lockname) (spinlock_t) {		\
	.raw = 0, .magic = SPINLOCK_MAGIC,				\
	.owner_cpu = HW_SPINLOCK_OWNER_CPU_INIT,			\
	.owner = HW_SPINLOCK_OWNER_INIT }
#define __RAW_SPIN_LOCK_UNLOCKED(lockname)	__SPIN_LOCK_UNLOCKED(lockname)
#define DEFINE_SPINLOCK(x)	spinlock_t x = __SPIN_LOCK_UNLOCKED(x)
#define DEFINE_RAW_SPINLOCK(x)	raw_spinlock_t x = __SPIN_LOCK_UNLOCKED(x)

#endif
