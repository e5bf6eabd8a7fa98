/* SPDX-License-Identifier: GPL-2.0 */
/* Generated from hwemu/kbuild/calls.py by hwemu.kbuild.headers: do not edit. */
#ifndef _HWEMU_RT_H
#define _HWEMU_RT_H

/* What kernel C reaches hwemu through; set when hwemu.kbuild loads a module. */
struct hw_rt {
	void (*guard_push)(void *guard);
	void (*guard_pop)(void *guard);
	void * (*guard_raise)(void *guard, int how);
	void (*asan_check)(__UINTPTR_TYPE__ addr, __SIZE_TYPE__ size, int write, __UINTPTR_TYPE__ ip);
	int (*kasan_enabled)(void);
	int (*mem_profiling)(void);
	void (*vprintk)(int level, const char *fmt, __builtin_va_list ap);
	/* calls into hwemu (Python), hwemu/kbuild/calls.py */
	__UINTPTR_TYPE__ (*kmalloc)(__SIZE_TYPE__ size, unsigned int flags, int node);
	void (*kfree)(__UINTPTR_TYPE__ objp);
	__SIZE_TYPE__ (*ksize)(__UINTPTR_TYPE__ objp);
	__UINTPTR_TYPE__ (*kvmalloc)(__SIZE_TYPE__ size, unsigned int flags, int node);
	void (*kvfree)(__UINTPTR_TYPE__ addr);
	__UINTPTR_TYPE__ (*kmem_cache_create)(const char *name, unsigned int size, unsigned int align, unsigned long flags, __UINTPTR_TYPE__ ctor);
	void (*kmem_cache_destroy)(__UINTPTR_TYPE__ s);
	__UINTPTR_TYPE__ (*kmem_cache_alloc)(__UINTPTR_TYPE__ s, unsigned int flags, int node);
	void (*kmem_cache_free)(__UINTPTR_TYPE__ s, __UINTPTR_TYPE__ objp);
	unsigned int (*kmem_cache_size)(__UINTPTR_TYPE__ s);
	__UINTPTR_TYPE__ (*alloc_pages)(unsigned int gfp, unsigned int order, int node);
	void (*free_pages)(__UINTPTR_TYPE__ page, unsigned int order);
	__UINTPTR_TYPE__ (*page_address)(__UINTPTR_TYPE__ page);
	__UINTPTR_TYPE__ (*virt_to_page)(__UINTPTR_TYPE__ addr);
	__UINTPTR_TYPE__ (*kmap_local_page)(__UINTPTR_TYPE__ page);
	void (*kunmap_local)(__UINTPTR_TYPE__ addr);
	__UINTPTR_TYPE__ (*kmap_atomic)(__UINTPTR_TYPE__ page);
	void (*kunmap_atomic)(__UINTPTR_TYPE__ addr);
	int (*kasan_mempool_poison_object)(__UINTPTR_TYPE__ ptr);
	void (*kasan_mempool_unpoison_object)(__UINTPTR_TYPE__ ptr, __SIZE_TYPE__ size);
	int (*kasan_mempool_poison_pages)(__UINTPTR_TYPE__ page, unsigned int order);
	void (*kasan_mempool_unpoison_pages)(__UINTPTR_TYPE__ page, unsigned int order);
	void (*check_access)(__UINTPTR_TYPE__ addr, __SIZE_TYPE__ size, int write, __UINTPTR_TYPE__ ip);
	void (*fault)(__UINTPTR_TYPE__ addr, int write, __UINTPTR_TYPE__ ip);
	unsigned long (*spin_lock)(__UINTPTR_TYPE__ lock, int how);
	void (*spin_unlock)(__UINTPTR_TYPE__ lock, int how, unsigned long flags);
	void (*spin_lock_init)(__UINTPTR_TYPE__ lock);
	void (*preempt)(int how);
	long (*schedule_timeout)(long timeout, int io);
	void (*msleep)(unsigned int msecs);
	void (*set_current_state)(int state);
	unsigned long (*jiffies)(void);
	int (*task_info)(int what);
	void (*init_waitqueue_head)(__UINTPTR_TYPE__ wq);
	void (*prepare_to_wait)(__UINTPTR_TYPE__ wq, __UINTPTR_TYPE__ wait, int state, int excl);
	void (*finish_wait)(__UINTPTR_TYPE__ wq, __UINTPTR_TYPE__ wait);
	int (*wake_up)(__UINTPTR_TYPE__ wq, int nr);
	void (*printk)(int level, const char *text);
	void (*bug)(const char *file, int line);
	void (*warn)(const char *file, int line, const char *text);
	void (*dump_stack)(void);
	void (*panic)(const char *text);
	void (*might_sleep)(const char *file, int line);
	int (*symbolize)(__UINTPTR_TYPE__ addr, char *buf, __SIZE_TYPE__ size);
	int (*fault_attr_bind)(const char *name, __UINTPTR_TYPE__ attr);
	int (*should_fail)(int id, __SIZE_TYPE__ size, int flags);
	__UINTPTR_TYPE__ (*alloc_tag_push)(const char *file, int line, const char *func);
	void (*alloc_tag_pop)(__UINTPTR_TYPE__ saved);
	__UINTPTR_TYPE__ (*run_in_interrupt)(__UINTPTR_TYPE__ fn, __UINTPTR_TYPE__ arg, int softirq);
	__UINTPTR_TYPE__ (*mempool_create)(int min_nr, __UINTPTR_TYPE__ alloc_fn, __UINTPTR_TYPE__ free_fn, __UINTPTR_TYPE__ pool_data, unsigned int gfp, int node);
	int (*mempool_init)(__UINTPTR_TYPE__ pool, int min_nr, __UINTPTR_TYPE__ alloc_fn, __UINTPTR_TYPE__ free_fn, __UINTPTR_TYPE__ pool_data, unsigned int gfp, int node);
	void (*mempool_exit)(__UINTPTR_TYPE__ pool);
	void (*mempool_destroy)(__UINTPTR_TYPE__ pool);
	int (*mempool_resize)(__UINTPTR_TYPE__ pool, int new_min_nr);
	__UINTPTR_TYPE__ (*mempool_alloc)(__UINTPTR_TYPE__ pool, unsigned int gfp);
	__UINTPTR_TYPE__ (*mempool_alloc_preallocated)(__UINTPTR_TYPE__ pool);
	void (*mempool_free)(__UINTPTR_TYPE__ element, __UINTPTR_TYPE__ pool);
	int (*mempool_alloc_bulk)(__UINTPTR_TYPE__ pool, __UINTPTR_TYPE__ elems, unsigned int count);
	unsigned int (*mempool_free_bulk)(__UINTPTR_TYPE__ pool, __UINTPTR_TYPE__ elems, unsigned int count);
	__UINTPTR_TYPE__ (*mempool_stock)(int which, __UINTPTR_TYPE__ a, __UINTPTR_TYPE__ b);
	long (*workload)(int what, const char *name, long n);
};

extern const struct hw_rt *__hw_rt;

#endif
