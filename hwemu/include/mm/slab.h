/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: mm/slab.h, the mm-internal slab header (mm sources include it as "slab.h"):
 * struct kmem_cache as hwemu keeps its header in emulated memory (hwemu/slab.py;
 * checked against hwemu/facts.h below). ctor is nonzero when the cache has a
 * constructor (hwemu keeps an id there; never call it).
 */
#ifndef MM_SLAB_H
#define MM_SLAB_H

#include <linux/slab.h>
#include <linux/types.h>
#include <hwemu/facts.h>

struct reciprocal_value {
	u32 m;
	u8 sh1, sh2;
};

struct kmem_cache_order_objects {
	unsigned int x;		/* order << 16 | objects */
};

struct kmem_cache {
	void *cpu_sheaves;
	slab_flags_t flags;
	unsigned long min_partial;
	unsigned int size;		/* object size with its metadata */
	unsigned int object_size;	/* object size without metadata */
	struct reciprocal_value reciprocal_size;
	unsigned int offset;		/* of the free pointer */
	unsigned int sheaf_capacity;
	struct kmem_cache_order_objects oo;
	struct kmem_cache_order_objects min;
	gfp_t allocflags;
	int refcount;
	void (*ctor)(void *object);
	unsigned int inuse;		/* offset of the metadata */
	unsigned int align;
	unsigned int red_left_pad;
	const char *name;
};

#define __hw_kmem_cache_field(f, off) \
	_Static_assert(offsetof(struct kmem_cache, f) == (off), \
		       "struct kmem_cache." #f " is not where hwemu has it");
HW_STRUCT_KMEM_CACHE_LAYOUT(__hw_kmem_cache_field)
_Static_assert(sizeof(struct kmem_cache) == HW_STRUCT_KMEM_CACHE_SIZE,
	       "sizeof(struct kmem_cache) differs from hwemu's");

#endif
