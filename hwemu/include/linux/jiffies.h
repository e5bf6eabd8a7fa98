/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/jiffies.h: 'jiffies' reads the emulated machine's clock. HZ
 * is the machine's (hwemu.kbuild passes -DHZ=); 1000 when built without it.
 */
#ifndef _LINUX_JIFFIES_H
#define _LINUX_JIFFIES_H

#include <linux/limits.h>
#include <linux/math.h>
#include <linux/time64.h>
#include <linux/types.h>
#include <hwemu/hw.h>

#ifndef HZ
#define HZ 1000
#endif
#define USER_HZ		100

#define jiffies		(HW_RT(jiffies)())
#define jiffies_64	((u64)jiffies)
static inline u64 get_jiffies_64(void)
{
	return jiffies;
}

/* wrap-safe comparisons of two jiffies values */
#define time_after(a, b)	((long)((b) - (a)) < 0)
#define time_before(a, b)	time_after(b, a)
#define time_after_eq(a, b)	((long)((a) - (b)) >= 0)
#define time_before_eq(a, b)	time_after_eq(b, a)
#define time_in_range(a, b, c)	(time_after_eq(a, b) && time_before_eq(a, c))
#define time_is_before_jiffies(a)	time_after(jiffies, a)
#define time_is_after_jiffies(a)	time_before(jiffies, a)
#define time_after64(a, b)	((s64)((b) - (a)) < 0)
#define time_before64(a, b)	time_after64(b, a)

#define MAX_JIFFY_OFFSET	((LONG_MAX >> 1) - 1)

/* rounded up, as the kernel's; a negative time is MAX_JIFFY_OFFSET */
static inline unsigned long msecs_to_jiffies(const unsigned int m)
{
	if ((int)m < 0)
		return MAX_JIFFY_OFFSET;
	return DIV_ROUND_UP((u64)m * HZ, MSEC_PER_SEC);
}

static inline unsigned long usecs_to_jiffies(const unsigned int u)
{
	if ((int)u < 0)
		return MAX_JIFFY_OFFSET;
	return DIV_ROUND_UP((u64)u * HZ, USEC_PER_SEC);
}

static inline unsigned long nsecs_to_jiffies(u64 n)
{
	return DIV_ROUND_UP(n, NSEC_PER_SEC / HZ);
}

static inline unsigned int jiffies_to_msecs(const unsigned long j)
{
	return (unsigned int)((u64)j * MSEC_PER_SEC / HZ);
}

static inline unsigned int jiffies_to_usecs(const unsigned long j)
{
	return (unsigned int)((u64)j * USEC_PER_SEC / HZ);
}

static inline u64 jiffies_to_nsecs(const unsigned long j)
{
	return (u64)j * (NSEC_PER_SEC / HZ);
}

#define secs_to_jiffies(s)	((unsigned long)(s) * HZ)

#endif
