// SPDX-License-Identifier: GPL-2.0
/*
 * respool.c: a small reserve pool, written for hwemu's tests from the description of
 * a memory pool in hwemu's spec (shared/spec/kernel-mm.md, section 1): the allocator
 * is tried first, a reserve of min_nr elements kept in a LIFO array under a spinlock
 * is the fallback, and a free refills the reserve before anything goes back to the
 * allocator. Elements in the reserve are KASAN-poisoned as freed ones.
 *
 * Exported for Python: respool_create/alloc/free/destroy (a kmalloc-backed pool, for
 * bench/kbuild.py), the same pool under mempool's names for blkdrv.c, and a planted
 * lost-update race for the schedule explorer (racy_inc).
 */
#include "kdrv.h"

struct respool {
	spinlock_t lock;
	int min_nr;
	int curr_nr;
	void **elements;
	void *pool_data;
	mempool_alloc_t *alloc;
	mempool_free_t *free;
	bool slab;		/* pool_data is a kmem_cache, else a kmalloc size */
};

static void *respool_alloc_slab(gfp_t gfp, void *pool_data)
{
	return kmem_cache_alloc((struct kmem_cache *)pool_data, gfp);
}

static void respool_free_slab(void *element, void *pool_data)
{
	kmem_cache_free((struct kmem_cache *)pool_data, element);
}

static void *respool_kmalloc(gfp_t gfp, void *pool_data)
{
	return kmalloc((size_t)pool_data, gfp);
}

static void respool_kfree(void *element, void *pool_data)
{
	kfree(element);
}

static size_t element_size(struct respool *pool)
{
	return pool->slab ? kmem_cache_size(pool->pool_data) : (size_t)pool->pool_data;
}

/* Push onto the reserve: the caller holds the lock. */
static void add_element(struct respool *pool, void *element)
{
	BUG_ON(pool->curr_nr >= max(pool->min_nr, 1));
	if (kasan_mempool_poison_object(element))
		pool->elements[pool->curr_nr++] = element;
	/* else KASAN reported a bad free and the element is dropped */
}

/* Pop from the reserve: the caller holds the lock and saw curr_nr > 0. */
static void *remove_element(struct respool *pool)
{
	void *element = pool->elements[--pool->curr_nr];

	BUG_ON(pool->curr_nr < 0);
	kasan_mempool_unpoison_object(element, element_size(pool));
	return element;
}

static void respool_exit(struct respool *pool)
{
	while (pool->curr_nr) {
		void *element = remove_element(pool);

		pool->free(element, pool->pool_data);
	}
	kfree(pool->elements);
	pool->elements = NULL;
}

static struct respool *respool_init(int min_nr, mempool_alloc_t *alloc_fn,
				    mempool_free_t *free_fn, void *pool_data, bool slab)
{
	struct respool *pool = kzalloc(sizeof(*pool), GFP_KERNEL);

	if (!pool)
		return NULL;
	spin_lock_init(&pool->lock);
	pool->min_nr = min_nr;
	pool->pool_data = pool_data;
	pool->alloc = alloc_fn;
	pool->free = free_fn;
	pool->slab = slab;
	pool->elements = kmalloc_array(max(min_nr, 1), sizeof(void *), GFP_KERNEL);
	if (!pool->elements)
		goto fail;
	while (pool->curr_nr < max(min_nr, 1)) {
		void *element = alloc_fn(GFP_KERNEL, pool_data);

		if (!element)
			goto fail;
		add_element(pool, element);
	}
	return pool;
fail:
	respool_exit(pool);
	kfree(pool);
	return NULL;
}

/* Take from the reserve, or NULL if it is empty. */
static void *take_reserved(struct respool *pool)
{
	unsigned long flags;
	void *element = NULL;

	spin_lock_irqsave(&pool->lock, flags);
	if (pool->curr_nr)
		element = remove_element(pool);
	spin_unlock_irqrestore(&pool->lock, flags);
	smp_wmb();
	return element;
}

void *respool_alloc_gfp(struct respool *pool, gfp_t gfp_mask)
{
	gfp_t gfp_temp;
	void *element;

	gfp_mask |= __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN;
	gfp_temp = gfp_mask & ~(__GFP_DIRECT_RECLAIM | __GFP_IO);
	if (gfp_mask & __GFP_DIRECT_RECLAIM)
		might_sleep();
	for (;;) {
		element = pool->alloc(gfp_temp, pool->pool_data);
		if (element)
			return element;
		element = take_reserved(pool);
		if (element)
			return element;
		if (gfp_temp != gfp_mask) {
			gfp_temp = gfp_mask;
			continue;
		}
		if (!(gfp_mask & __GFP_DIRECT_RECLAIM))
			return NULL;
		io_schedule_timeout(1);	/* a free may come: try again */
	}
}

void respool_free(struct respool *pool, void *element)
{
	unsigned long flags;

	if (!element)
		return;
	smp_rmb();
	if (READ_ONCE(pool->curr_nr) < pool->min_nr) {
		spin_lock_irqsave(&pool->lock, flags);
		if (pool->curr_nr < pool->min_nr) {
			add_element(pool, element);
			spin_unlock_irqrestore(&pool->lock, flags);
			return;
		}
		spin_unlock_irqrestore(&pool->lock, flags);
	}
	pool->free(element, pool->pool_data);
}

/* ---- the API bench/kbuild.py and tests call ---- */

struct respool *respool_create(int min_nr, unsigned long size)
{
	return respool_init(min_nr, respool_kmalloc, respool_kfree, (void *)size, false);
}

/* From the reserve only (never the allocator): NULL if it is empty. */
void *respool_alloc(struct respool *pool)
{
	return take_reserved(pool);
}

int respool_curr_nr(struct respool *pool)
{
	return READ_ONCE(pool->curr_nr);
}

void respool_destroy(struct respool *pool)
{
	if (!pool)
		return;
	respool_exit(pool);
	kfree(pool);
}

/* n reserve pairs in C, for the benchmark's in-C row */
int respool_pairs(struct respool *pool, int n)
{
	for (int i = 0; i < n; i++) {
		void *element = take_reserved(pool);

		if (!element)
			return -ENOMEM;
		respool_free(pool, element);
	}
	return 0;
}

/* ---- the same pool under mempool's names (kdrv.h), for blkdrv.c ---- */

mempool_t *mempool_create_slab_pool(int min_nr, struct kmem_cache *cache)
{
	return respool_init(min_nr, respool_alloc_slab, respool_free_slab, cache, true);
}

void *mempool_alloc(mempool_t *pool, gfp_t gfp_mask)
{
	return respool_alloc_gfp(pool, gfp_mask);
}

void *mempool_alloc_preallocated(mempool_t *pool)
{
	return take_reserved(pool);
}

void mempool_free(void *element, mempool_t *pool)
{
	respool_free(pool, element);
}

void mempool_destroy(mempool_t *pool)
{
	respool_destroy(pool);
}

/* ---- a planted race for the explorer: a lost update ---- */

/* *counter += 1 as read, preemption point, write: two tasks can lose an update. */
void racy_inc(long *counter)
{
	long value = READ_ONCE(*counter);

	cond_resched();
	WRITE_ONCE(*counter, value + 1);
}

/* The same under a spinlock at lock: no update is lost. */
void locked_inc(long *counter, spinlock_t *lock)
{
	spin_lock(lock);
	racy_inc(counter);
	spin_unlock(lock);
}

/* ---- what a call costs ---- */

void empty(void)
{
}

/* n calls into hwemu (task_info(0): current's pid), for bench/kbuild.py */
long hwemu_calls(int n)
{
	long sum = 0;

	for (int i = 0; i < n; i++)
		sum += RT(task_info)(0);
	return sum;
}
