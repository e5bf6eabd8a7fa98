/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hwemu: include/linux/mempool.h (the newest form). struct mempool is laid out as
 * hwemu's (mempool/_mempool.py; checked against hwemu/facts.h below), so that a pool
 * made in C and one made in Python are the same thing in memory.
 *
 * mempool_alloc_bulk_noprof() changed between 6.19 (with 'allocated') and 7.0
 * (without): HWEMU_MEMPOOL_BULK_ALLOCATED picks the form, 1 (6.19's) by default;
 * hwemu.kbuild sets it for the source it compiles.
 */
#ifndef _LINUX_MEMPOOL_H
#define _LINUX_MEMPOOL_H

#include <linux/alloc_tag.h>
#include <linux/compiler.h>
#include <linux/gfp_types.h>
#include <linux/numa.h>
#include <linux/sched.h>
#include <linux/stddef.h>
#include <linux/wait.h>

#ifndef HWEMU_MEMPOOL_BULK_ALLOCATED
#define HWEMU_MEMPOOL_BULK_ALLOCATED 1
#endif

struct kmem_cache;

typedef void * (mempool_alloc_t)(gfp_t gfp_mask, void *pool_data);
typedef void (mempool_free_t)(void *element, void *pool_data);

typedef struct mempool {
	spinlock_t lock;
	int min_nr;		/* nr of elements at *elements */
	int curr_nr;		/* Current nr of elements at *elements */
	void **elements;

	void *pool_data;
	mempool_alloc_t *alloc;
	mempool_free_t *free;
	wait_queue_head_t wait;
} mempool_t;

#define __hw_mempool_field(f, off) \
	_Static_assert(offsetof(struct mempool, f) == (off), \
		       "struct mempool." #f " is not where hwemu has it");
HW_STRUCT_MEMPOOL_LAYOUT(__hw_mempool_field)
_Static_assert(sizeof(struct mempool) == HW_STRUCT_MEMPOOL_SIZE,
	       "sizeof(struct mempool) differs from hwemu's");

static inline bool mempool_initialized(struct mempool *pool)
{
	return pool->elements != NULL;
}

static inline bool mempool_is_saturated(struct mempool *pool)
{
	return READ_ONCE(pool->curr_nr) >= pool->min_nr;
}

void mempool_exit(struct mempool *pool);
int mempool_init_node(struct mempool *pool, int min_nr, mempool_alloc_t *alloc_fn,
		      mempool_free_t *free_fn, void *pool_data, gfp_t gfp_mask, int node_id);
int mempool_init_noprof(struct mempool *pool, int min_nr, mempool_alloc_t *alloc_fn,
			mempool_free_t *free_fn, void *pool_data);
#define mempool_init(...)	alloc_hooks(mempool_init_noprof(__VA_ARGS__))

struct mempool *mempool_create(int min_nr, mempool_alloc_t *alloc_fn,
			       mempool_free_t *free_fn, void *pool_data);
struct mempool *mempool_create_node_noprof(int min_nr, mempool_alloc_t *alloc_fn,
					   mempool_free_t *free_fn, void *pool_data,
					   gfp_t gfp_mask, int nid);
#define mempool_create_node(...) alloc_hooks(mempool_create_node_noprof(__VA_ARGS__))
#define mempool_create(_min_nr, _alloc_fn, _free_fn, _pool_data)	\
	mempool_create_node(_min_nr, _alloc_fn, _free_fn, _pool_data,	\
			    GFP_KERNEL, NUMA_NO_NODE)

int mempool_resize(struct mempool *pool, int new_min_nr);
void mempool_destroy(struct mempool *pool);

void *mempool_alloc_noprof(struct mempool *pool, gfp_t gfp_mask) __malloc;
#define mempool_alloc(...)	alloc_hooks(mempool_alloc_noprof(__VA_ARGS__))
#if HWEMU_MEMPOOL_BULK_ALLOCATED
int mempool_alloc_bulk_noprof(struct mempool *pool, void **elem, unsigned int count,
			      unsigned int allocated);
#else
int mempool_alloc_bulk_noprof(struct mempool *pool, void **elem, unsigned int count);
#endif
#define mempool_alloc_bulk(...)	alloc_hooks(mempool_alloc_bulk_noprof(__VA_ARGS__))

void *mempool_alloc_preallocated(struct mempool *pool) __malloc;
void mempool_free(void *element, struct mempool *pool);
unsigned int mempool_free_bulk(struct mempool *pool, void **elem, unsigned int count);

/* A slab cache's pool (the cache must have no constructor). */
void *mempool_alloc_slab(gfp_t gfp_mask, void *pool_data);
void mempool_free_slab(void *element, void *pool_data);
#define mempool_init_slab_pool(_pool, _min_nr, _kc)			\
	mempool_init(_pool, (_min_nr), mempool_alloc_slab,		\
		     mempool_free_slab, (void *)(_kc))
#define mempool_create_slab_pool(_min_nr, _kc)				\
	mempool_create((_min_nr), mempool_alloc_slab, mempool_free_slab, \
		       (void *)(_kc))

/* A pool of kmalloc objects of pool_data bytes. */
void *mempool_kmalloc(gfp_t gfp_mask, void *pool_data);
void mempool_kfree(void *element, void *pool_data);
#define mempool_init_kmalloc_pool(_pool, _min_nr, _size)		\
	mempool_init(_pool, (_min_nr), mempool_kmalloc, mempool_kfree,	\
		     (void *)(unsigned long)(_size))
#define mempool_create_kmalloc_pool(_min_nr, _size)			\
	mempool_create((_min_nr), mempool_kmalloc, mempool_kfree,	\
		       (void *)(unsigned long)(_size))

/* A pool of page blocks of order pool_data. */
void *mempool_alloc_pages(gfp_t gfp_mask, void *pool_data);
void mempool_free_pages(void *element, void *pool_data);
#define mempool_init_page_pool(_pool, _min_nr, _order)			\
	mempool_init(_pool, (_min_nr), mempool_alloc_pages,		\
		     mempool_free_pages, (void *)(long)(_order))
#define mempool_create_page_pool(_min_nr, _order)			\
	mempool_create((_min_nr), mempool_alloc_pages,			\
		       mempool_free_pages, (void *)(long)(_order))

#endif
