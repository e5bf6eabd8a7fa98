/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/mm.h: pages and their addresses, on hwemu's memory map. */
#ifndef _LINUX_MM_H
#define _LINUX_MM_H

#include <linux/atomic.h>
#include <linux/bug.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/mmdebug.h>
#include <linux/numa.h>
#include <linux/overflow.h>
#include <linux/sched/mm.h>
#include <asm/page.h>
#include <hwemu/hw.h>

#define PAGE_ALIGN(addr)	ALIGN(addr, PAGE_SIZE)
#define PAGE_ALIGN_DOWN(addr)	ALIGN_DOWN(addr, PAGE_SIZE)
#define PAGE_ALIGNED(addr)	IS_ALIGNED((unsigned long)(addr), PAGE_SIZE)
#define offset_in_page(p)	((unsigned long)(p) & ~PAGE_MASK)

/* the direct-map address of a lowmem page; NULL for a highmem page not mapped */
static inline void *page_address(const struct page *page)
{
	return (void *)HW_RT(page_address)(HW_PTR(page));
}

static inline void *lowmem_page_address(const struct page *page)
{
	return page_address(page);
}

/* the page of a direct-map (or vmalloc) address */
static inline struct page *virt_to_page(const void *addr)
{
	return (struct page *)HW_RT(virt_to_page)(HW_PTR(addr));
}

static inline struct page *virt_to_head_page(const void *addr)
{
	return virt_to_page(addr);
}

#define page_to_virt(page)	page_address(page)

static inline int page_to_nid(const struct page *page)
{
	return (READ_ONCE(page->flags) >> NODES_PGSHIFT) & NODES_MASK;
}

static inline int page_zonenum(const struct page *page)
{
	return (READ_ONCE(page->flags) >> ZONES_PGSHIFT) & ZONES_MASK;
}

static inline int page_ref_count(const struct page *page)
{
	return atomic_read(&page->_refcount);
}

static inline int page_count(const struct page *page)
{
	return page_ref_count(page);
}

#endif
