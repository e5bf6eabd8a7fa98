/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/gfp.h: the page allocator's API, on hwemu's buddy allocator. */
#ifndef __LINUX_GFP_H
#define __LINUX_GFP_H

#include <linux/alloc_tag.h>
#include <linux/gfp_types.h>
#include <linux/mmdebug.h>
#include <linux/numa.h>
#include <linux/topology.h>
#include <linux/types.h>
#include <hwemu/hw.h>

struct page;

/* may an allocation with these flags sleep (enter direct reclaim)? */
static inline bool gfpflags_allow_blocking(const gfp_t gfp_flags)
{
	return !!(gfp_flags & __GFP_DIRECT_RECLAIM);
}

static inline bool gfp_has_io_fs(gfp_t gfp)
{
	return (gfp & (__GFP_IO | __GFP_FS)) == (__GFP_IO | __GFP_FS);
}

/* nid NUMA_NO_NODE: the node of the current CPU */
static inline struct page *alloc_pages_node_noprof(int nid, gfp_t gfp_mask,
						   unsigned int order)
{
	return (struct page *)HW_RT(alloc_pages)(gfp_mask, order, nid);
}

static inline struct page *alloc_pages_noprof(gfp_t gfp, unsigned int order)
{
	return alloc_pages_node_noprof(NUMA_NO_NODE, gfp, order);
}

static inline struct page *__alloc_pages_node_noprof(int nid, gfp_t gfp_mask,
						     unsigned int order)
{
	return alloc_pages_node_noprof(nid, gfp_mask, order);
}

#define alloc_pages(...)		alloc_hooks(alloc_pages_noprof(__VA_ARGS__))
#define alloc_pages_node(...)		alloc_hooks(alloc_pages_node_noprof(__VA_ARGS__))
#define __alloc_pages_node(...)		alloc_hooks(__alloc_pages_node_noprof(__VA_ARGS__))
#define alloc_page(gfp_mask)		alloc_pages(gfp_mask, 0)

static inline void __free_pages(struct page *page, unsigned int order)
{
	HW_RT(free_pages)(HW_PTR(page), order);
}

#define __free_page(page)	__free_pages((page), 0)

/* the direct-map address of new lowmem pages (0 on failure) */
static inline unsigned long __get_free_pages_noprof(gfp_t gfp_mask, unsigned int order)
{
	struct page *page = alloc_pages_noprof(gfp_mask & ~__GFP_HIGHMEM, order);

	return page ? (unsigned long)HW_RT(page_address)(HW_PTR(page)) : 0;
}

static inline unsigned long get_zeroed_page_noprof(gfp_t gfp_mask)
{
	return __get_free_pages_noprof(gfp_mask | __GFP_ZERO, 0);
}

#define __get_free_pages(...)	alloc_hooks(__get_free_pages_noprof(__VA_ARGS__))
#define __get_free_page(gfp_mask)	__get_free_pages((gfp_mask), 0)
#define get_zeroed_page(...)	alloc_hooks(get_zeroed_page_noprof(__VA_ARGS__))

static inline void free_pages(unsigned long addr, unsigned int order)
{
	if (addr != 0)
		__free_pages((struct page *)HW_RT(virt_to_page)(addr), order);
}

#define free_page(addr)		free_pages((addr), 0)

#endif
