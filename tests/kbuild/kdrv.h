/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kdrv.h: the kernel API the test drivers here use, in the kernel's names, written
 * straight on hwemu's call table (hwemu/rt.h) so that they build with or without
 * hwemu's own <linux/...> headers. Written for hwemu's tests; no kernel text.
 */
#ifndef _TESTS_KDRV_H
#define _TESTS_KDRV_H

#include "hwemu/rt.h"

typedef __UINTPTR_TYPE__ uintptr_t;
typedef __SIZE_TYPE__ size_t;
typedef unsigned int gfp_t;
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#define READ_ONCE(x)	(*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define barrier()	__asm__ __volatile__("" ::: "memory")
#define smp_rmb()	barrier()
#define smp_wmb()	barrier()
#define offsetof(t, m)	__builtin_offsetof(t, m)
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#define max(a, b)	((a) > (b) ? (a) : (b))
#define HW(p)		((uintptr_t)(p))
/* a table entry, called as RT(name)(args): the parentheses keep the macro of the
 * same name from expanding */
#define RT(name)	(__hw_rt->name)

/* gfp */
#define __GFP_HIGH		0x20u
#define __GFP_IO		0x40u
#define __GFP_FS		0x80u
#define __GFP_ZERO		0x100u
#define __GFP_DIRECT_RECLAIM	0x400u
#define __GFP_KSWAPD_RECLAIM	0x800u
#define __GFP_NOWARN		0x2000u
#define __GFP_NORETRY		0x10000u
#define __GFP_NOMEMALLOC	0x80000u
#define __GFP_RECLAIM		(__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM)
#define GFP_ATOMIC		(__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
#define GFP_NOWAIT		(__GFP_KSWAPD_RECLAIM | __GFP_NOWARN)
#define GFP_NOIO		(__GFP_RECLAIM)
#define GFP_KERNEL		(__GFP_RECLAIM | __GFP_IO | __GFP_FS)
#define NUMA_NO_NODE		(-1)

#define ENOMEM	12
#define EINVAL	22
#define TASK_UNINTERRUPTIBLE 2

/* printk */
#define KERN_ERR	3
#define KERN_WARNING	4
#define KERN_INFO	6
static inline __attribute__((format(printf, 2, 3)))
void hw_printk(int level, const char *fmt, ...)
{
	__builtin_va_list ap;

	__builtin_va_start(ap, fmt);
	RT(vprintk)(level, fmt, ap);
	__builtin_va_end(ap);
}
#define pr_info(fmt, ...)	hw_printk(KERN_INFO, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...)	hw_printk(KERN_WARNING, fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...)	hw_printk(KERN_ERR, fmt, ##__VA_ARGS__)

/* bugs and warnings */
#define BUG()		do { RT(bug)(__FILE__, __LINE__); __builtin_unreachable(); } while (0)
#define BUG_ON(c)	do { if (unlikely(c)) BUG(); } while (0)
#define WARN_ON(c) ({							\
	int __ret = !!(c);						\
	if (unlikely(__ret))						\
		RT(warn)(__FILE__, __LINE__, NULL);		\
	unlikely(__ret);						\
})
#define might_sleep()	RT(might_sleep)(__FILE__, __LINE__)

/* context */
#define in_interrupt()	(RT(task_info)(5))
#define in_hardirq()	(RT(task_info)(6))
#define cond_resched()	RT(preempt)(0)

/* spinlock_t: the word hwemu's runtime checks (hwemu/kbuild/runtime.c) */
typedef struct { u32 raw, magic, owner_cpu, pad; u64 owner; } spinlock_t;
#define spin_lock_init(l)	RT(spin_lock_init)(HW(l))
#define spin_lock(l)		((void)RT(spin_lock)(HW(l), 0))
#define spin_unlock(l)		RT(spin_unlock)(HW(l), 0, 0)
#define spin_lock_irqsave(l, f)	((f) = RT(spin_lock)(HW(l), 2))
#define spin_unlock_irqrestore(l, f) RT(spin_unlock)(HW(l), 2, (f))

/* sleeping */
static inline long io_schedule_timeout(long timeout)
{
	RT(set_current_state)(TASK_UNINTERRUPTIBLE);
	return RT(schedule_timeout)(timeout, 1);
}

/* slab */
struct kmem_cache;
#define kmalloc(size, gfp)	((void *)RT(kmalloc)((size), (gfp), NUMA_NO_NODE))
#define kzalloc(size, gfp)	kmalloc((size), (gfp) | __GFP_ZERO)
#define kmalloc_array(n, size, gfp) kmalloc((size_t)(n) * (size), (gfp))
#define kfree(p)		RT(kfree)(HW(p))
#define kmem_cache_create(name, size, align, flags, ctor) \
	((struct kmem_cache *)RT(kmem_cache_create)((name), (size), (align), (flags), HW(ctor)))
#define kmem_cache_destroy(s)	RT(kmem_cache_destroy)(HW(s))
#define kmem_cache_alloc(s, gfp) ((void *)RT(kmem_cache_alloc)(HW(s), (gfp), NUMA_NO_NODE))
#define kmem_cache_free(s, p)	RT(kmem_cache_free)(HW(s), HW(p))
#define kmem_cache_size(s)	RT(kmem_cache_size)(HW(s))

/* KASAN's mempool hooks */
#define kasan_mempool_poison_object(p)	RT(kasan_mempool_poison_object)(HW(p))
#define kasan_mempool_unpoison_object(p, n) RT(kasan_mempool_unpoison_object)(HW(p), (n))

/* doubly linked lists */
struct list_head { struct list_head *next, *prev; };
static inline void INIT_LIST_HEAD(struct list_head *h) { h->next = h; h->prev = h; }
static inline int list_empty(const struct list_head *h) { return READ_ONCE(h->next) == h; }
static inline void list_add_tail(struct list_head *n, struct list_head *h)
{
	struct list_head *prev = h->prev;

	n->next = h;
	n->prev = prev;
	prev->next = n;
	h->prev = n;
}
static inline void list_del(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
	e->next = e->prev = NULL;
}
#define list_first_entry(h, type, member) container_of((h)->next, type, member)

/* the reserve pool of respool.c, under mempool's names */
typedef void *(mempool_alloc_t)(gfp_t gfp_mask, void *pool_data);
typedef void (mempool_free_t)(void *element, void *pool_data);
struct respool;
typedef struct respool mempool_t;
mempool_t *mempool_create_slab_pool(int min_nr, struct kmem_cache *cache);
void *mempool_alloc(mempool_t *pool, gfp_t gfp_mask);
void *mempool_alloc_preallocated(mempool_t *pool);
void mempool_free(void *element, mempool_t *pool);
void mempool_destroy(mempool_t *pool);
int respool_curr_nr(struct respool *pool);

#endif
