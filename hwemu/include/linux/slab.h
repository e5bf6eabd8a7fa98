/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/slab.h: kmalloc and the slab caches, on hwemu's SLUB. The
 * SLAB_* flags, KMALLOC_* limits and ZERO_SIZE_PTR are in hwemu/facts.h
 * (hwemu/slab.py). The public names are alloc_hooks() over the _noprof functions,
 * as in the kernel, so that allocation profiling sees the caller.
 */
#ifndef _LINUX_SLAB_H
#define _LINUX_SLAB_H

#include <linux/alloc_tag.h>
#include <linux/gfp.h>
#include <linux/overflow.h>
#include <linux/string.h>
#include <linux/types.h>
#include <hwemu/hw.h>

struct kmem_cache;

#define ZERO_OR_NULL_PTR(x)	((unsigned long)(x) <= (unsigned long)ZERO_SIZE_PTR)

/* kmalloc and friends */

static inline __alloc_size(1) void *kmalloc_node_noprof(size_t size, gfp_t flags, int node)
{
	return (void *)HW_RT(kmalloc)(size, flags, node);
}

static inline __alloc_size(1) void *kmalloc_noprof(size_t size, gfp_t flags)
{
	return kmalloc_node_noprof(size, flags, NUMA_NO_NODE);
}

static inline __alloc_size(1) void *kzalloc_noprof(size_t size, gfp_t flags)
{
	return kmalloc_noprof(size, flags | __GFP_ZERO);
}

static inline __alloc_size(1) void *kzalloc_node_noprof(size_t size, gfp_t flags, int node)
{
	return kmalloc_node_noprof(size, flags | __GFP_ZERO, node);
}

/* n * size bytes; NULL when that overflows */
static inline __alloc_size(1, 2) void *kmalloc_array_node_noprof(size_t n, size_t size,
								  gfp_t flags, int node)
{
	size_t bytes;

	if (unlikely(check_mul_overflow(n, size, &bytes)))
		return NULL;
	return kmalloc_node_noprof(bytes, flags, node);
}

static inline __alloc_size(1, 2) void *kmalloc_array_noprof(size_t n, size_t size,
							     gfp_t flags)
{
	return kmalloc_array_node_noprof(n, size, flags, NUMA_NO_NODE);
}

static inline __alloc_size(1, 2) void *kcalloc_node_noprof(size_t n, size_t size,
							    gfp_t flags, int node)
{
	return kmalloc_array_node_noprof(n, size, flags | __GFP_ZERO, node);
}

static inline __alloc_size(1, 2) void *kcalloc_noprof(size_t n, size_t size, gfp_t flags)
{
	return kmalloc_array_noprof(n, size, flags | __GFP_ZERO);
}

#define kmalloc(...)		alloc_hooks(kmalloc_noprof(__VA_ARGS__))
#define kmalloc_node(...)	alloc_hooks(kmalloc_node_noprof(__VA_ARGS__))
#define kzalloc(...)		alloc_hooks(kzalloc_noprof(__VA_ARGS__))
#define kzalloc_node(...)	alloc_hooks(kzalloc_node_noprof(__VA_ARGS__))
#define kmalloc_array(...)	alloc_hooks(kmalloc_array_noprof(__VA_ARGS__))
#define kmalloc_array_node(...)	alloc_hooks(kmalloc_array_node_noprof(__VA_ARGS__))
#define kcalloc(...)		alloc_hooks(kcalloc_noprof(__VA_ARGS__))
#define kcalloc_node(...)	alloc_hooks(kcalloc_node_noprof(__VA_ARGS__))

static inline void kfree(const void *objp)
{
	HW_RT(kfree)(HW_PTR(objp));
}

/* the usable size of a kmalloc object */
static inline size_t ksize(const void *objp)
{
	return HW_RT(ksize)(HW_PTR(objp));
}

/* kfree() after clearing the whole object */
static inline void kfree_sensitive(const void *objp)
{
	if (!ZERO_OR_NULL_PTR(objp))
		memzero_explicit((void *)objp, ksize(objp));
	kfree(objp);
}

/* kvmalloc: kmalloc, or vmalloc when that fails for a large size */

static inline __alloc_size(1) void *kvmalloc_node_noprof(size_t size, gfp_t flags, int node)
{
	return (void *)HW_RT(kvmalloc)(size, flags, node);
}

static inline __alloc_size(1) void *kvmalloc_noprof(size_t size, gfp_t flags)
{
	return kvmalloc_node_noprof(size, flags, NUMA_NO_NODE);
}

static inline __alloc_size(1, 2) void *kvmalloc_array_node_noprof(size_t n, size_t size,
								   gfp_t flags, int node)
{
	size_t bytes;

	if (unlikely(check_mul_overflow(n, size, &bytes)))
		return NULL;
	return kvmalloc_node_noprof(bytes, flags, node);
}

static inline __alloc_size(1, 2) void *kvmalloc_array_noprof(size_t n, size_t size,
							      gfp_t flags)
{
	return kvmalloc_array_node_noprof(n, size, flags, NUMA_NO_NODE);
}

#define kvmalloc(...)		alloc_hooks(kvmalloc_noprof(__VA_ARGS__))
#define kvmalloc_node(...)	alloc_hooks(kvmalloc_node_noprof(__VA_ARGS__))
#define kvzalloc(size, flags)	kvmalloc(size, (flags) | __GFP_ZERO)
#define kvzalloc_node(size, flags, node) kvmalloc_node(size, (flags) | __GFP_ZERO, node)
#define kvmalloc_array(...)	alloc_hooks(kvmalloc_array_noprof(__VA_ARGS__))
#define kvmalloc_array_node(...) alloc_hooks(kvmalloc_array_node_noprof(__VA_ARGS__))
#define kvcalloc(n, size, flags) kvmalloc_array(n, size, (flags) | __GFP_ZERO)
#define kvcalloc_node(n, size, flags, node) \
	kvmalloc_array_node(n, size, (flags) | __GFP_ZERO, node)

static inline void kvfree(const void *addr)
{
	HW_RT(kvfree)(HW_PTR(addr));
}

/*
 * 7.0's typed forms: kmalloc_obj(VAR_OR_TYPE[, GFP]) allocates one object the size of
 * VAR_OR_TYPE, kmalloc_objs(VAR_OR_TYPE, COUNT[, GFP]) an array of COUNT, and
 * kmalloc_flex(VAR_OR_TYPE, FAM, COUNT[, GFP]) a struct with COUNT elements in its
 * flexible array FAM; the GFP flags default to GFP_KERNEL.
 */
#define __hw_default_gfp(...)	__hw_gfp_pick(__VA_ARGS__ __VA_OPT__(,) GFP_KERNEL)
#define __hw_gfp_pick(gfp, ...)	gfp
#define __hw_alloc_objs(ALLOC, P, COUNT, GFP) \
	((typeof(P) *)ALLOC(COUNT, sizeof(P), GFP))
#define __hw_alloc_flex(ALLOC, P, FAM, COUNT, GFP) \
	((typeof(P) *)ALLOC(struct_size_t(typeof(P), FAM, COUNT), GFP))

#define kmalloc_obj(P, ...)	__hw_alloc_objs(kmalloc_array, P, 1, __hw_default_gfp(__VA_ARGS__))
#define kzalloc_obj(P, ...)	__hw_alloc_objs(kcalloc, P, 1, __hw_default_gfp(__VA_ARGS__))
#define kvmalloc_obj(P, ...)	__hw_alloc_objs(kvmalloc_array, P, 1, __hw_default_gfp(__VA_ARGS__))
#define kvzalloc_obj(P, ...)	__hw_alloc_objs(kvcalloc, P, 1, __hw_default_gfp(__VA_ARGS__))
#define kmalloc_objs(P, COUNT, ...) \
	__hw_alloc_objs(kmalloc_array, P, COUNT, __hw_default_gfp(__VA_ARGS__))
#define kzalloc_objs(P, COUNT, ...) \
	__hw_alloc_objs(kcalloc, P, COUNT, __hw_default_gfp(__VA_ARGS__))
#define kvmalloc_objs(P, COUNT, ...) \
	__hw_alloc_objs(kvmalloc_array, P, COUNT, __hw_default_gfp(__VA_ARGS__))
#define kvzalloc_objs(P, COUNT, ...) \
	__hw_alloc_objs(kvcalloc, P, COUNT, __hw_default_gfp(__VA_ARGS__))
#define kmalloc_flex(P, FAM, COUNT, ...) \
	__hw_alloc_flex(kmalloc, P, FAM, COUNT, __hw_default_gfp(__VA_ARGS__))
#define kzalloc_flex(P, FAM, COUNT, ...) \
	__hw_alloc_flex(kzalloc, P, FAM, COUNT, __hw_default_gfp(__VA_ARGS__))
#define kvmalloc_flex(P, FAM, COUNT, ...) \
	__hw_alloc_flex(kvmalloc, P, FAM, COUNT, __hw_default_gfp(__VA_ARGS__))
#define kvzalloc_flex(P, FAM, COUNT, ...) \
	__hw_alloc_flex(kvzalloc, P, FAM, COUNT, __hw_default_gfp(__VA_ARGS__))

/* slab caches */

/* NULL on failure (or a panic with SLAB_PANIC) */
static inline struct kmem_cache *kmem_cache_create(const char *name, unsigned int size,
						   unsigned int align, slab_flags_t flags,
						   void (*ctor)(void *))
{
	return (struct kmem_cache *)HW_RT(kmem_cache_create)(name, size, align, flags,
							      HW_PTR(ctor));
}

#define KMEM_CACHE(__struct, __flags)					\
	kmem_cache_create(#__struct, sizeof(struct __struct),		\
			  __alignof__(struct __struct), (__flags), NULL)

static inline void kmem_cache_destroy(struct kmem_cache *s)
{
	HW_RT(kmem_cache_destroy)(HW_PTR(s));
}

static inline void *kmem_cache_alloc_node_noprof(struct kmem_cache *s, gfp_t flags, int node)
{
	return (void *)HW_RT(kmem_cache_alloc)(HW_PTR(s), flags, node);
}

static inline void *kmem_cache_alloc_noprof(struct kmem_cache *s, gfp_t flags)
{
	return kmem_cache_alloc_node_noprof(s, flags, NUMA_NO_NODE);
}

#define kmem_cache_alloc(...)	alloc_hooks(kmem_cache_alloc_noprof(__VA_ARGS__))
#define kmem_cache_alloc_node(...) alloc_hooks(kmem_cache_alloc_node_noprof(__VA_ARGS__))
#define kmem_cache_zalloc(_k, _flags)	kmem_cache_alloc(_k, (_flags) | __GFP_ZERO)

static inline void kmem_cache_free(struct kmem_cache *s, void *objp)
{
	HW_RT(kmem_cache_free)(HW_PTR(s), HW_PTR(objp));
}

/* the object size the cache was made for */
static inline unsigned int kmem_cache_size(struct kmem_cache *s)
{
	return HW_RT(kmem_cache_size)(HW_PTR(s));
}

#endif
