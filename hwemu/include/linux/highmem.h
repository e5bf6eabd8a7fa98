/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/highmem.h: temporary mappings of any page (highmem ones get
 * a slot of the machine's kmap windows; lowmem ones their direct-map address).
 */
#ifndef _LINUX_HIGHMEM_H
#define _LINUX_HIGHMEM_H

#include <linux/bug.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <hwemu/hw.h>

static inline void *kmap_local_page(struct page *page)
{
	return (void *)HW_RT(kmap_local_page)(HW_PTR(page));
}

/* any address inside the mapping */
static inline void kunmap_local(const void *addr)
{
	HW_RT(kunmap_local)(HW_PTR(addr));
}

static inline void *kmap_atomic(struct page *page)
{
	return (void *)HW_RT(kmap_atomic)(HW_PTR(page));
}

static inline void kunmap_atomic(const void *addr)
{
	HW_RT(kunmap_atomic)(HW_PTR(addr));
}

static inline void clear_highpage(struct page *page)
{
	void *kaddr = kmap_local_page(page);

	memset(kaddr, 0, PAGE_SIZE);
	kunmap_local(kaddr);
}

static inline void memzero_page(struct page *page, size_t offset, size_t len)
{
	char *addr = kmap_local_page(page);

	VM_BUG_ON(offset + len > PAGE_SIZE);
	memset(addr + offset, 0, len);
	kunmap_local(addr);
}

static inline void memcpy_from_page(char *to, struct page *page, size_t offset, size_t len)
{
	char *from = kmap_local_page(page);

	VM_BUG_ON(offset + len > PAGE_SIZE);
	memcpy(to, from + offset, len);
	kunmap_local(from);
}

static inline void memcpy_to_page(struct page *page, size_t offset, const char *from,
				  size_t len)
{
	char *to = kmap_local_page(page);

	VM_BUG_ON(offset + len > PAGE_SIZE);
	memcpy(to + offset, from, len);
	kunmap_local(to);
}

static inline void copy_highpage(struct page *to, struct page *from)
{
	char *vfrom = kmap_local_page(from), *vto = kmap_local_page(to);

	memcpy(vto, vfrom, PAGE_SIZE);
	kunmap_local(vto);
	kunmap_local(vfrom);
}

#endif
