/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/mm_types.h: struct page, 64 bytes, in hwemu's layout
 * (hwemu/page.py; checked against hwemu/facts.h below). A struct page * is the
 * address of the page's entry in the machine's vmemmap.
 */
#ifndef _LINUX_MM_TYPES_H
#define _LINUX_MM_TYPES_H

#include <linux/atomic.h>
#include <linux/stddef.h>
#include <linux/types.h>
#include <hwemu/facts.h>

struct address_space;

struct page {
	unsigned long flags;		/* PG_* flags; node and zone in the top bits */
	union {
		struct list_head lru;	/* on an LRU or free list */
		struct {
			unsigned long compound_head;	/* tail pages: head + 1 */
			unsigned long __pad;
		};
	};
	struct address_space *mapping;
	union {
		pgoff_t index;
		unsigned long share;
	};
	unsigned long private;		/* the buddy order while free */
	union {
		atomic_t _mapcount;
		unsigned int page_type;
	};
	atomic_t _refcount;
	unsigned long memcg_data;
};

#define __hw_page_field(f, off) \
	_Static_assert(offsetof(struct page, f) == (off), \
		       "struct page." #f " is not where hwemu has it");
HW_STRUCT_PAGE_LAYOUT(__hw_page_field)
_Static_assert(sizeof(struct page) == HW_STRUCT_PAGE_SIZE,
	       "sizeof(struct page) differs from hwemu's");

#endif
