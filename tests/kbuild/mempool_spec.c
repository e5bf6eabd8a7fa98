// SPDX-License-Identifier: GPL-2.0
/*
 * mempool_spec.c: memory pools (the 6.19 form of mm/mempool.c), written for hwemu's
 * tests from the behavioural spec (spec/kernel-mm.md sections 1-4), not from kernel
 * source: a reserve of min_nr elements kept for when the allocator fails, so that
 * callers which must make progress (writeback, block I/O) always get an element back
 * eventually.
 *
 * The reserve is a LIFO stack in pool->elements[0..curr_nr). The allocator is always
 * asked first; the reserve is only drawn on when it fails (or fault injection says it
 * did). Elements sitting in the reserve are "free" to the debug tools: KASAN poisons
 * them, and with CONFIG_SLUB_DEBUG_ON (and no KASAN) they are filled with POISON_FREE
 * and checked when they leave.
 *
 * Built by hwemu.kbuild against hwemu's own headers; tests/test_kbuild_runs.py binds
 * the mempool package to it with hwemu.kbuild.use_mempool().
 */
#include <linux/export.h>
#include <linux/fault-inject.h>
#include <linux/highmem.h>
#include <linux/init.h>
#include <linux/kasan.h>
#include <linux/kmemleak.h>
#include <linux/mempool.h>
#include <linux/mm.h>
#include <linux/poison.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/writeback.h>
#include <mm/slab.h>

/* Fault injection: pretend the allocator failed, so that the reserve gets used. */
static DECLARE_FAULT_ATTR(fail_mempool_alloc);
static DECLARE_FAULT_ATTR(fail_mempool_alloc_bulk);

static int __init mempool_faultinject_init(void)
{
	struct dentry *d;

	d = fault_create_debugfs_attr("fail_mempool_alloc", NULL, &fail_mempool_alloc);
	if (IS_ERR(d))
		return PTR_ERR(d);
	d = fault_create_debugfs_attr("fail_mempool_alloc_bulk", NULL,
				      &fail_mempool_alloc_bulk);
	return PTR_ERR_OR_ZERO(d);
}
late_initcall(mempool_faultinject_init);

/* ------------------------------------------------------------------ debug poisoning */

#ifdef CONFIG_SLUB_DEBUG_ON
/* Print where the poison of a reserved element was overwritten, and carry on. */
static void mempool_poison_report(struct mempool *pool, u8 *obj, size_t size,
				  size_t bad)
{
	const size_t word = BITS_PER_LONG / 8;
	size_t first = bad > word ? bad - word : 0;
	size_t last = min(bad + word, size);
	size_t i;

	pr_err("BUG: mempool element poison mismatch\n");
	pr_err("Mempool %p size %zu\n", pool, size);
	pr_err(" nr=%d @ %p: %s0x", pool->curr_nr, obj, first ? "... " : "");
	for (i = first; i < last; i++)
		pr_cont("%x ", obj[i]);
	pr_cont("%s\n", last < size ? "..." : "");
	dump_stack();
}

/* On the way out of the reserve: still POISON_FREE...POISON_END? Then POISON_INUSE. */
static void mempool_verify_poison(struct mempool *pool, void *mem, size_t size)
{
	u8 *bytes = mem;
	size_t i;

	for (i = 0; i < size; i++) {
		u8 want = (i + 1 == size) ? POISON_END : POISON_FREE;

		if (bytes[i] != want) {
			mempool_poison_report(pool, bytes, size, i);
			return;
		}
	}
	memset(bytes, POISON_INUSE, size);
}

/* On the way into the reserve. */
static void mempool_fill_poison(void *mem, size_t size)
{
	u8 *bytes = mem;

	memset(bytes, POISON_FREE, size - 1);
	bytes[size - 1] = POISON_END;
}

static void mempool_poison_pages(struct mempool *pool, struct page *page, bool fill)
{
	unsigned int order = (unsigned long)pool->pool_data;
#ifdef CONFIG_HIGHMEM
	unsigned long n;

	/* a highmem page block may not be mapped as a whole: one page at a time */
	for (n = 0; n < (1UL << order); n++) {
		void *addr = kmap_local_page(page + n);

		if (fill)
			mempool_fill_poison(addr, PAGE_SIZE);
		else
			mempool_verify_poison(pool, addr, PAGE_SIZE);
		kunmap_local(addr);
	}
#else
	void *addr = page_address(page);

	if (fill)
		mempool_fill_poison(addr, PAGE_SIZE << order);
	else
		mempool_verify_poison(pool, addr, PAGE_SIZE << order);
#endif
}

/* Only pools of the stock backends are poisoned: told apart by their callbacks. */
static void poison_element(struct mempool *pool, void *element)
{
	if (kasan_enabled())	/* KASAN keeps its own metadata in free objects */
		return;
	if (pool->alloc == mempool_kmalloc)
		mempool_fill_poison(element, (size_t)pool->pool_data);
	else if (pool->alloc == mempool_alloc_slab)
		mempool_fill_poison(element, kmem_cache_size(pool->pool_data));
	else if (pool->alloc == mempool_alloc_pages)
		mempool_poison_pages(pool, element, true);
}

static void check_element(struct mempool *pool, void *element)
{
	if (kasan_enabled())
		return;
	if (pool->free == mempool_kfree)
		mempool_verify_poison(pool, element, (size_t)pool->pool_data);
	else if (pool->free == mempool_free_slab)
		mempool_verify_poison(pool, element, kmem_cache_size(pool->pool_data));
	else if (pool->free == mempool_free_pages)
		mempool_poison_pages(pool, element, false);
}
#else
static inline void poison_element(struct mempool *pool, void *element) { }
static inline void check_element(struct mempool *pool, void *element) { }
#endif

/* ------------------------------------------------------------------ KASAN */

/* False: KASAN found the element bad (double or invalid free) and reported it. */
static __always_inline bool kasan_poison_element(struct mempool *pool, void *element)
{
	if (pool->alloc == mempool_alloc_slab || pool->alloc == mempool_kmalloc)
		return kasan_mempool_poison_object(element);
	if (pool->alloc == mempool_alloc_pages)
		return kasan_mempool_poison_pages(element,
						  (unsigned long)pool->pool_data);
	return true;
}

static void kasan_unpoison_element(struct mempool *pool, void *element)
{
	if (pool->alloc == mempool_kmalloc)
		kasan_mempool_unpoison_object(element, (size_t)pool->pool_data);
	else if (pool->alloc == mempool_alloc_slab)
		kasan_mempool_unpoison_object(element,
					      kmem_cache_size(pool->pool_data));
	else if (pool->alloc == mempool_alloc_pages)
		kasan_mempool_unpoison_pages(element,
					     (unsigned long)pool->pool_data);
}

/* ------------------------------------------------------------------ the stack */

/* Push onto the reserve; pool->lock held (or the pool not yet shared). */
static __always_inline void add_element(struct mempool *pool, void *element)
{
	BUG_ON(pool->min_nr != 0 && pool->curr_nr >= pool->min_nr);
	poison_element(pool, element);
	/* an element KASAN rejected is dropped: neither kept nor freed */
	if (kasan_poison_element(pool, element))
		pool->elements[pool->curr_nr++] = element;
}

/* Pop the most recently pushed element; pool->lock held. */
static void *remove_element(struct mempool *pool)
{
	void *element;

	pool->curr_nr--;
	BUG_ON(pool->curr_nr < 0);
	element = pool->elements[pool->curr_nr];
	kasan_unpoison_element(pool, element);
	check_element(pool, element);
	return element;
}

/* ------------------------------------------------------------------ setup, teardown */

/**
 * mempool_exit - give back a pool's reserve and its array
 * @pool: an initialised pool, or a zeroed one that never was
 *
 * No locking: nobody else may use the pool any more. Elements handed out and not
 * yet freed are not the pool's business.
 */
void mempool_exit(struct mempool *pool)
{
	while (pool->curr_nr) {
		void *element = remove_element(pool);

		pool->free(element, pool->pool_data);
	}
	kfree(pool->elements);
	pool->elements = NULL;
}
EXPORT_SYMBOL(mempool_exit);

/**
 * mempool_destroy - exit a pool made by mempool_create() and free it
 * @pool: the pool, or NULL
 */
void mempool_destroy(struct mempool *pool)
{
	if (unlikely(!pool))
		return;
	mempool_exit(pool);
	kfree(pool);
}
EXPORT_SYMBOL(mempool_destroy);

/**
 * mempool_init_node - set up a pool in memory the caller owns (zeroed)
 *
 * Allocates the array (at least one slot: a zero-minimum pool keeps one element)
 * and fills the reserve with @gfp_mask as given. Returns 0 or -ENOMEM.
 */
int mempool_init_node(struct mempool *pool, int min_nr, mempool_alloc_t *alloc_fn,
		      mempool_free_t *free_fn, void *pool_data, gfp_t gfp_mask,
		      int node_id)
{
	int slots = max(1, min_nr);

	spin_lock_init(&pool->lock);
	pool->min_nr = min_nr;
	pool->pool_data = pool_data;
	pool->alloc = alloc_fn;
	pool->free = free_fn;
	init_waitqueue_head(&pool->wait);

	pool->elements = kmalloc_array_node(slots, sizeof(void *), gfp_mask, node_id);
	if (!pool->elements)
		return -ENOMEM;

	while (pool->curr_nr < slots) {
		void *element = pool->alloc(gfp_mask, pool->pool_data);

		if (unlikely(!element)) {
			mempool_exit(pool);
			return -ENOMEM;
		}
		add_element(pool, element);
	}
	return 0;
}
EXPORT_SYMBOL(mempool_init_node);

/**
 * mempool_init_noprof - mempool_init_node() with GFP_KERNEL on any node
 */
int mempool_init_noprof(struct mempool *pool, int min_nr, mempool_alloc_t *alloc_fn,
			mempool_free_t *free_fn, void *pool_data)
{
	return mempool_init_node(pool, min_nr, alloc_fn, free_fn, pool_data,
				 GFP_KERNEL, NUMA_NO_NODE);
}
EXPORT_SYMBOL(mempool_init_noprof);

/**
 * mempool_create_node_noprof - allocate and initialise a pool
 *
 * Returns the pool, or NULL if it or its reserve could not be allocated.
 */
struct mempool *mempool_create_node_noprof(int min_nr, mempool_alloc_t *alloc_fn,
					   mempool_free_t *free_fn, void *pool_data,
					   gfp_t gfp_mask, int node_id)
{
	struct mempool *pool;

	/* zeroed: mempool_init_node() counts curr_nr up from 0 */
	pool = kmalloc_node_noprof(sizeof(*pool), gfp_mask | __GFP_ZERO, node_id);
	if (!pool)
		return NULL;
	if (mempool_init_node(pool, min_nr, alloc_fn, free_fn, pool_data, gfp_mask,
			      node_id)) {
		kfree(pool);
		return NULL;
	}
	return pool;
}
EXPORT_SYMBOL(mempool_create_node_noprof);

/**
 * mempool_resize - change a pool's min_nr
 * @pool: the pool
 * @new_min_nr: the new reserve target, > 0
 *
 * Shrinking gives the surplus back to the allocator at once. Growing makes a bigger
 * array and then tops the reserve up with GFP_KERNEL; if that fails the pool stays
 * under-filled (frees refill it) and 0 is still returned. Only a failure to allocate
 * the array is -ENOMEM. May sleep; never call it concurrently with mempool_destroy().
 */
int mempool_resize(struct mempool *pool, int new_min_nr)
{
	void **bigger;
	unsigned long flags;

	BUG_ON(new_min_nr <= 0);
	might_sleep();

	spin_lock_irqsave(&pool->lock, flags);
	if (new_min_nr <= pool->min_nr) {
		while (pool->curr_nr > new_min_nr) {
			void *element = remove_element(pool);

			spin_unlock_irqrestore(&pool->lock, flags);
			pool->free(element, pool->pool_data);
			spin_lock_irqsave(&pool->lock, flags);
		}
		pool->min_nr = new_min_nr;
		goto out_unlock;
	}
	spin_unlock_irqrestore(&pool->lock, flags);

	bigger = kmalloc_array(new_min_nr, sizeof(*bigger), GFP_KERNEL);
	if (!bigger)
		return -ENOMEM;

	spin_lock_irqsave(&pool->lock, flags);
	if (unlikely(new_min_nr <= pool->min_nr)) {
		/* somebody resized meanwhile: theirs stands */
		spin_unlock_irqrestore(&pool->lock, flags);
		kfree(bigger);
		return 0;
	}
	memcpy(bigger, pool->elements, pool->curr_nr * sizeof(*bigger));
	kfree(pool->elements);
	pool->elements = bigger;
	pool->min_nr = new_min_nr;	/* from now on, frees refill the reserve too */

	while (pool->curr_nr < pool->min_nr) {
		void *element;

		spin_unlock_irqrestore(&pool->lock, flags);
		element = pool->alloc(GFP_KERNEL, pool->pool_data);
		if (!element)
			return 0;
		spin_lock_irqsave(&pool->lock, flags);
		if (pool->curr_nr >= pool->min_nr) {
			/* frees filled it while the lock was dropped */
			spin_unlock_irqrestore(&pool->lock, flags);
			pool->free(element, pool->pool_data);
			return 0;
		}
		add_element(pool, element);
	}
out_unlock:
	spin_unlock_irqrestore(&pool->lock, flags);
	return 0;
}
EXPORT_SYMBOL(mempool_resize);

/* ------------------------------------------------------------------ allocation */

/*
 * The caller's mask gets "no emergency reserves, no retrying inside the allocator,
 * no failure warnings" (failures are what the reserve is for); the first attempt is
 * made without direct reclaim and I/O as well. Returns that first-attempt mask.
 */
static inline gfp_t mempool_adjust_gfp(gfp_t *gfp_mask)
{
	*gfp_mask |= __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN;
	return *gfp_mask & ~(__GFP_DIRECT_RECLAIM | __GFP_IO);
}

/*
 * Fill every empty slot of @elems[0..count) from the reserve, all of them or none.
 * If the reserve is too small and @gfp allows direct reclaim, sleep (at most 5 s)
 * until an element is given back or time passes; the allocator may have recovered.
 * Returns the new number of filled slots.
 */
static unsigned int mempool_alloc_from_pool(struct mempool *pool, void **elems,
					    unsigned int count, unsigned int allocated,
					    gfp_t gfp)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&pool->lock, flags);
	if (unlikely(pool->curr_nr < (int)(count - allocated))) {
		if (gfp & __GFP_DIRECT_RECLAIM) {
			DEFINE_WAIT(wait);

			/* queued before the unlock: a free in between still wakes us */
			prepare_to_wait(&pool->wait, &wait, TASK_UNINTERRUPTIBLE);
			spin_unlock_irqrestore(&pool->lock, flags);
			io_schedule_timeout(5 * HZ);
			finish_wait(&pool->wait, &wait);
		} else {
			spin_unlock_irqrestore(&pool->lock, flags);
		}
		return allocated;
	}
	for (i = 0; i < count; i++) {
		if (elems[i])
			continue;
		elems[i] = remove_element(pool);
		allocated++;
	}
	spin_unlock_irqrestore(&pool->lock, flags);

	/* pairs with the read barrier of mempool_free_bulk(): see there */
	smp_wmb();
	for (i = 0; i < count; i++)
		kmemleak_update_trace(elems[i]);
	return allocated;
}

/**
 * mempool_alloc_noprof - an element, from the allocator or else the reserve
 * @pool: the pool
 * @gfp_mask: how the caller may allocate (__GFP_ZERO is not supported)
 *
 * In order: the allocator without direct reclaim or I/O; the reserve; the allocator
 * with the caller's mask; the reserve again, sleeping if it is empty; and so on.
 * Never NULL when @gfp_mask allows direct reclaim; otherwise NULL once both the
 * allocator and the reserve came up empty. Callable from interrupts with
 * GFP_ATOMIC.
 */
void *mempool_alloc_noprof(struct mempool *pool, gfp_t gfp_mask)
{
	gfp_t gfp_temp = mempool_adjust_gfp(&gfp_mask);
	void *element;

	VM_WARN_ON_ONCE(gfp_mask & __GFP_ZERO);
	might_alloc(gfp_mask);

	for (;;) {
		element = NULL;
		if (should_fail_ex(&fail_mempool_alloc, 1, FAULT_NOWARN))
			pr_info("forcing mempool usage for %pS\n", (void *)_RET_IP_);
		else
			element = pool->alloc(gfp_temp, pool->pool_data);
		if (likely(element))
			return element;

		if (mempool_alloc_from_pool(pool, &element, 1, 0, gfp_temp))
			return element;
		if (gfp_temp != gfp_mask) {
			/* the light attempt and the reserve failed: now the real one */
			gfp_temp = gfp_mask;
			continue;
		}
		if (!(gfp_mask & __GFP_DIRECT_RECLAIM))
			return NULL;
		/* we slept on pool->wait in mempool_alloc_from_pool(): again */
	}
}
EXPORT_SYMBOL(mempool_alloc_noprof);

/**
 * mempool_alloc_bulk_noprof - fill the empty (NULL) slots of @elems[0..count)
 * @pool: the pool; @count must not exceed its min_nr
 * @elems: the array, partly filled already
 * @count: its length
 * @allocated: how many of its slots are filled on entry
 *
 * GFP_KERNEL semantics (restrict with memalloc_noio_save() and friends). The reserve
 * is used only if it can fill every remaining slot at once. Always returns 0.
 */
int mempool_alloc_bulk_noprof(struct mempool *pool, void **elems, unsigned int count,
			      unsigned int allocated)
{
	gfp_t gfp_mask = GFP_KERNEL;
	gfp_t gfp_temp = mempool_adjust_gfp(&gfp_mask);
	unsigned int i;

	VM_WARN_ON_ONCE(count > pool->min_nr);
	might_alloc(gfp_mask);

	/* decided once: all the allocator attempts are skipped */
	if (should_fail_ex(&fail_mempool_alloc_bulk, 1, FAULT_NOWARN)) {
		pr_info("forcing mempool usage for %pS\n", (void *)_RET_IP_);
		goto from_pool;
	}

	for (;;) {
		for (i = 0; i < count; i++) {
			if (elems[i])
				continue;
			elems[i] = pool->alloc(gfp_temp, pool->pool_data);
			if (unlikely(!elems[i]))
				goto from_pool;
			allocated++;
		}
		return 0;
from_pool:
		allocated = mempool_alloc_from_pool(pool, elems, count, allocated,
						    gfp_temp);
		gfp_temp = gfp_mask;
	}
}
EXPORT_SYMBOL_GPL(mempool_alloc_bulk_noprof);

/**
 * mempool_alloc_preallocated - an element from the reserve only, or NULL
 * @pool: the pool
 *
 * Never calls the allocator and never sleeps.
 */
void *mempool_alloc_preallocated(struct mempool *pool)
{
	void *element = NULL;

	mempool_alloc_from_pool(pool, &element, 1, 0, GFP_NOWAIT);
	return element;
}
EXPORT_SYMBOL(mempool_alloc_preallocated);

/* ------------------------------------------------------------------ freeing */

/**
 * mempool_free_bulk - give elements back to the reserve while it is short
 * @pool: the pool
 * @elems: the elements
 * @count: how many
 *
 * Returns how many elements from the start of @elems the reserve took (their slots
 * are left as they were); the caller frees the others to the allocator.
 */
unsigned int mempool_free_bulk(struct mempool *pool, void **elems, unsigned int count)
{
	unsigned long flags;
	unsigned int taken = 0;
	bool refilled = false;

	/*
	 * An element may reach us from the allocating CPU with no barrier of its own;
	 * this pairs with the smp_wmb() after taking it from the reserve, so that the
	 * curr_nr we read is at least as new as that allocation. Then the unlocked
	 * test below cannot miss a reserve that its allocation left short.
	 */
	smp_rmb();

	if (unlikely(READ_ONCE(pool->curr_nr) < pool->min_nr)) {
		spin_lock_irqsave(&pool->lock, flags);
		while (pool->curr_nr < pool->min_nr && taken < count) {
			add_element(pool, elems[taken++]);
			refilled = true;
		}
		spin_unlock_irqrestore(&pool->lock, flags);
	} else if (unlikely(pool->min_nr == 0 && READ_ONCE(pool->curr_nr) == 0)) {
		/* a zero-minimum pool keeps one element back for its waiters */
		spin_lock_irqsave(&pool->lock, flags);
		if (likely(pool->curr_nr == 0)) {
			add_element(pool, elems[taken++]);
			refilled = true;
		}
		spin_unlock_irqrestore(&pool->lock, flags);
	}

	if (unlikely(refilled) && wq_has_sleeper(&pool->wait))
		wake_up(&pool->wait);
	return taken;
}
EXPORT_SYMBOL_GPL(mempool_free_bulk);

/**
 * mempool_free - give an element back: to the reserve if it is short, else to the
 * allocator
 * @element: the element, or NULL
 * @pool: the pool it came from (or any element the pool's allocator could have made)
 */
void mempool_free(void *element, struct mempool *pool)
{
	if (likely(element) && !mempool_free_bulk(pool, &element, 1))
		pool->free(element, pool->pool_data);
}
EXPORT_SYMBOL(mempool_free);

/* ------------------------------------------------------------------ stock backends */

void *mempool_alloc_slab(gfp_t gfp_mask, void *pool_data)
{
	struct kmem_cache *cache = pool_data;

	VM_BUG_ON(cache->ctor);	/* reserved elements are never re-constructed */
	return kmem_cache_alloc_noprof(cache, gfp_mask);
}
EXPORT_SYMBOL(mempool_alloc_slab);

void mempool_free_slab(void *element, void *pool_data)
{
	kmem_cache_free(pool_data, element);
}
EXPORT_SYMBOL(mempool_free_slab);

void *mempool_kmalloc(gfp_t gfp_mask, void *pool_data)
{
	return kmalloc_noprof((size_t)pool_data, gfp_mask);
}
EXPORT_SYMBOL(mempool_kmalloc);

void mempool_kfree(void *element, void *pool_data)
{
	kfree(element);
}
EXPORT_SYMBOL(mempool_kfree);

/* page pools: the elements are struct page pointers */
void *mempool_alloc_pages(gfp_t gfp_mask, void *pool_data)
{
	return alloc_pages_noprof(gfp_mask, (unsigned int)(unsigned long)pool_data);
}
EXPORT_SYMBOL(mempool_alloc_pages);

void mempool_free_pages(void *element, void *pool_data)
{
	__free_pages(element, (unsigned int)(unsigned long)pool_data);
}
EXPORT_SYMBOL(mempool_free_pages);
