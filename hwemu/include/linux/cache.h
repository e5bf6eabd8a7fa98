/* SPDX-License-Identifier: GPL-2.0 */
/* hwemu: include/linux/cache.h (L1_CACHE_BYTES is in hwemu/facts.h, hwemu/slab.py). */
#ifndef __LINUX_CACHE_H
#define __LINUX_CACHE_H

#include <linux/compiler.h>
#include <hwemu/facts.h>

#define SMP_CACHE_BYTES		L1_CACHE_BYTES
#define L1_CACHE_ALIGN(x)	(((x) + (L1_CACHE_BYTES - 1)) & ~(L1_CACHE_BYTES - 1))
#define ____cacheline_aligned	__attribute__((__aligned__(SMP_CACHE_BYTES)))
#define ____cacheline_aligned_in_smp	____cacheline_aligned
#define __cacheline_aligned	____cacheline_aligned
#define __cacheline_aligned_in_smp	____cacheline_aligned
#define ____cacheline_internodealigned_in_smp	____cacheline_aligned
#define __read_mostly
#ifndef __ro_after_init
#define __ro_after_init
#endif
#define cache_line_size()	L1_CACHE_BYTES

#endif
