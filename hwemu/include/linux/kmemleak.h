/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/kmemleak.h: no kmemleak; every hook does nothing. */
#ifndef __KMEMLEAK_H
#define __KMEMLEAK_H

#include <linux/gfp_types.h>
#include <linux/types.h>

static inline void kmemleak_alloc(const void *ptr, size_t size, int min_count, gfp_t gfp) { }
static inline void kmemleak_free(const void *ptr) { }
static inline void kmemleak_free_part(const void *ptr, size_t size) { }
static inline void kmemleak_update_trace(const void *ptr) { }
static inline void kmemleak_not_leak(const void *ptr) { }
static inline void kmemleak_transient_leak(const void *ptr) { }
static inline void kmemleak_ignore(const void *ptr) { }
static inline void kmemleak_scan_area(const void *ptr, size_t size, gfp_t gfp) { }
static inline void kmemleak_no_scan(const void *ptr) { }
static inline void kmemleak_erase(void **ptr) { }
static inline void kmemleak_alloc_phys(phys_addr_t phys, size_t size, gfp_t gfp) { }
static inline void kmemleak_free_part_phys(phys_addr_t phys, size_t size) { }
static inline void kmemleak_ignore_phys(phys_addr_t phys) { }

#endif
