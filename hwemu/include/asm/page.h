/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: asm/page.h, asm/page_types.h and asm-generic/getorder.h. PAGE_SHIFT,
 * PAGE_SIZE and PAGE_MASK are in hwemu/facts.h (hwemu/page_types.py). */
#ifndef _ASM_PAGE_H
#define _ASM_PAGE_H

#include <linux/compiler.h>
#include <linux/log2.h>
#include <hwemu/facts.h>

/* the smallest order whose block holds size bytes (size > 0) */
static inline __attribute_const__ int get_order(unsigned long size)
{
	if (size <= PAGE_SIZE)
		return 0;
	return fls64((size - 1) >> PAGE_SHIFT);
}

#endif
