/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/delay.h. msleep() sleeps in emulated time; the busy waits
 * (udelay, ndelay, mdelay) are a preemption point each and take no emulated time.
 */
#ifndef _LINUX_DELAY_H
#define _LINUX_DELAY_H

#include <linux/math.h>
#include <linux/sched.h>
#include <hwemu/hw.h>

static inline void msleep(unsigned int msecs)
{
	HW_RT(msleep)(msecs);
}

static inline void ssleep(unsigned int seconds)
{
	msleep(seconds * 1000);
}

static inline void usleep_range(unsigned long min, unsigned long max)
{
	msleep(DIV_ROUND_UP(min, 1000));
}

static inline void fsleep(unsigned long usecs)
{
	msleep(DIV_ROUND_UP(usecs, 1000));
}

#define __hw_busy_wait(n) do { (void)(n); HW_RT(preempt)(HW_PREEMPT_POINT); } while (0)
#define udelay(n)	__hw_busy_wait(n)
#define ndelay(n)	__hw_busy_wait(n)
#define mdelay(n)	__hw_busy_wait(n)

#endif
