/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/kernel.h: the everyday macros and helpers. */
#ifndef _LINUX_KERNEL_H
#define _LINUX_KERNEL_H

#include <linux/stdarg.h>
#include <linux/align.h>
#include <linux/bits.h>
#include <linux/build_bug.h>
#include <linux/compiler.h>
#include <linux/container_of.h>
#include <linux/limits.h>
#include <linux/log2.h>
#include <linux/math.h>
#include <linux/minmax.h>
#include <linux/panic.h>
#include <linux/printk.h>
#include <linux/sprintf.h>
#include <linux/stddef.h>
#include <linux/typecheck.h>
#include <linux/types.h>
#include <hwemu/hw.h>

#define ARRAY_SIZE(arr)	(sizeof(arr) / sizeof((arr)[0]) + \
			 BUILD_BUG_ON_ZERO(__same_type((arr), &(arr)[0])))

#define upper_32_bits(n)	((u32)(((n) >> 16) >> 16))
#define lower_32_bits(n)	((u32)((n) & 0xffffffff))
#define upper_16_bits(n)	((u16)((n) >> 16))
#define lower_16_bits(n)	((u16)((n) & 0xffff))

#define STACK_MAGIC	0xdeadbeef
#define REPEAT_BYTE(x)	((~0ul / 0xff) * (x))

/* a point where the task may sleep: hwemu checks the context (atomic, IRQs off) */
#define might_sleep()		HW_RT(might_sleep)(__FILE__, __LINE__)
#define might_sleep_if(cond)	do { if (cond) might_sleep(); } while (0)
#define might_fault()		might_sleep()
#define cant_sleep()		do { } while (0)
#define cant_migrate()		do { } while (0)
#define non_block_start()	do { } while (0)
#define non_block_end()		do { } while (0)

#endif
