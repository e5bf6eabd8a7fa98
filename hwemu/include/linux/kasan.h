/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/kasan.h: the hooks kernel memory code calls, on hwemu's
 * generic KASAN (whether it is on is the machine's config: kasan_enabled()).
 */
#ifndef _LINUX_KASAN_H
#define _LINUX_KASAN_H

#include <linux/kasan-checks.h>
#include <linux/types.h>
#include <hwemu/hw.h>

struct page;

static inline bool kasan_enabled(void)
{
	return HW_RT(kasan_enabled)() != 0;
}

/* an object going into a mempool's reserve: poisoned; false if it must not go in */
static inline bool kasan_mempool_poison_object(void *ptr)
{
	return HW_RT(kasan_mempool_poison_object)(HW_PTR(ptr)) != 0;
}

static inline void kasan_mempool_unpoison_object(void *ptr, size_t size)
{
	HW_RT(kasan_mempool_unpoison_object)(HW_PTR(ptr), size);
}

static inline bool kasan_mempool_poison_pages(struct page *page, unsigned int order)
{
	return HW_RT(kasan_mempool_poison_pages)(HW_PTR(page), order) != 0;
}

static inline void kasan_mempool_unpoison_pages(struct page *page, unsigned int order)
{
	HW_RT(kasan_mempool_unpoison_pages)(HW_PTR(page), order);
}

#endif
