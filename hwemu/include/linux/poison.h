/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/poison.h. POISON_INUSE, POISON_FREE and POISON_END come
 * from hwemu/facts.h (mempool/_mempool.py); LIST_POISON1 is where hwemu's wait queues
 * point a non-empty head (hwemu/wait.py), and the rest follow from it as in the kernel.
 */
#ifndef _LINUX_POISON_H
#define _LINUX_POISON_H

#include <hwemu/facts.h>

#define POISON_POINTER_DELTA	(HW_LIST_POISON1 - 0x100)
#define LIST_POISON1		((void *)HW_LIST_POISON1)
#define LIST_POISON2		((void *)(0x122 + POISON_POINTER_DELTA))
#define TIMER_ENTRY_STATIC	((void *)(0x300 + POISON_POINTER_DELTA))
#define PAGE_POISON_PATTERN	-1l

#define SLUB_RED_INACTIVE	0xbb
#define SLUB_RED_ACTIVE		0xcc
#define POISON_FREE_INITMEM	0xcc

#endif
