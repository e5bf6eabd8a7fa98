/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/sched/mm.h: might_alloc(). */
#ifndef _LINUX_SCHED_MM_H
#define _LINUX_SCHED_MM_H

#include <linux/gfp.h>
#include <linux/kernel.h>

/* an allocation with gfp_mask may sleep here: checked only when it can block */
static inline void might_alloc(gfp_t gfp_mask)
{
	might_sleep_if(gfpflags_allow_blocking(gfp_mask));
}

#endif
