"""The calls kernel C makes into hwemu: one table, from which the C side is generated.

Each :class:`Call` is one entry of ``struct hw_rt`` (``hwemu/include/hwemu/rt.h``, the
table every compiled module reaches hwemu through) with its Python implementation.
The runtime module (``runtime.c``) turns each into a C function that calls Python with
the GIL held and unwinds the C code back to its caller from Python when the Python side
raised (an oops, a BUG, a machine going down). Pointers cross as ``uintptr_t`` (plain
ints on the Python side), strings as ``const char *``.

The implementations act on ``current``'s machine, as the Python API does; where C
hands over a kernel object that lives in host memory (a lock in a module's data, a
wait entry on its stack), they touch it through :mod:`hwemu.kbuild.native`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class Call(NamedTuple):
    """One entry of ``struct hw_rt``: ``ret name(params)``, implemented by ``impl``."""
    ret: str
    name: str
    params: str
    impl: Callable

    def c_decl(self, name: str) -> str:
        return f"{self.ret} {name}({self.params or 'void'})"


def _table() -> list[Call]:
    from . import native as n
    return [
        # slab and kmalloc (mm/slub.c)
        Call("uintptr_t", "kmalloc", "size_t size, unsigned int flags, int node", n.kmalloc),
        Call("void", "kfree", "uintptr_t objp", n.kfree),
        Call("size_t", "ksize", "uintptr_t objp", n.ksize),
        Call("uintptr_t", "kvmalloc", "size_t size, unsigned int flags, int node", n.kvmalloc),
        Call("void", "kvfree", "uintptr_t addr", n.kvfree),
        Call("uintptr_t", "kmem_cache_create",
             "const char *name, unsigned int size, unsigned int align, unsigned long flags, "
             "uintptr_t ctor", n.kmem_cache_create),
        Call("void", "kmem_cache_destroy", "uintptr_t s", n.kmem_cache_destroy),
        Call("uintptr_t", "kmem_cache_alloc", "uintptr_t s, unsigned int flags, int node",
             n.kmem_cache_alloc),
        Call("void", "kmem_cache_free", "uintptr_t s, uintptr_t objp", n.kmem_cache_free),
        Call("unsigned int", "kmem_cache_size", "uintptr_t s", n.kmem_cache_size),
        # the page allocator and highmem (mm/page_alloc.c, mm/highmem.c)
        Call("uintptr_t", "alloc_pages", "unsigned int gfp, unsigned int order, int node",
             n.alloc_pages),
        Call("void", "free_pages", "uintptr_t page, unsigned int order", n.free_pages),
        Call("uintptr_t", "page_address", "uintptr_t page", n.page_address),
        Call("uintptr_t", "virt_to_page", "uintptr_t addr", n.virt_to_page),
        Call("uintptr_t", "kmap_local_page", "uintptr_t page", n.kmap_local_page),
        Call("void", "kunmap_local", "uintptr_t addr", n.kunmap_local),
        Call("uintptr_t", "kmap_atomic", "uintptr_t page", n.kmap_atomic),
        Call("void", "kunmap_atomic", "uintptr_t addr", n.kunmap_atomic),
        # KASAN (mm/kasan/common.c; generic.c's checks come through check_access)
        Call("int", "kasan_mempool_poison_object", "uintptr_t ptr",
             n.kasan_mempool_poison_object),
        Call("void", "kasan_mempool_unpoison_object", "uintptr_t ptr, size_t size",
             n.kasan_mempool_unpoison_object),
        Call("int", "kasan_mempool_poison_pages", "uintptr_t page, unsigned int order",
             n.kasan_mempool_poison_pages),
        Call("void", "kasan_mempool_unpoison_pages", "uintptr_t page, unsigned int order",
             n.kasan_mempool_unpoison_pages),
        Call("void", "check_access", "uintptr_t addr, size_t size, int write, uintptr_t ip",
             n.check_access),
        Call("void", "fault", "uintptr_t addr, int write, uintptr_t ip", n.fault),
        # locking and scheduling (kernel/locking, kernel/sched)
        Call("unsigned long", "spin_lock", "uintptr_t lock, int how", n.spin_lock),
        Call("void", "spin_unlock", "uintptr_t lock, int how, unsigned long flags",
             n.spin_unlock),
        Call("void", "spin_lock_init", "uintptr_t lock", n.spin_lock_init),
        Call("void", "preempt", "int how", n.preempt),
        Call("long", "schedule_timeout", "long timeout, int io", n.schedule_timeout),
        Call("void", "msleep", "unsigned int msecs", n.msleep),
        Call("void", "set_current_state", "int state", n.set_current_state),
        Call("unsigned long", "jiffies", "", n.jiffies),
        Call("int", "task_info", "int what", n.task_info),
        Call("void", "init_waitqueue_head", "uintptr_t wq", n.init_waitqueue_head),
        Call("void", "prepare_to_wait", "uintptr_t wq, uintptr_t wait, int state, int excl",
             n.prepare_to_wait),
        Call("void", "finish_wait", "uintptr_t wq, uintptr_t wait", n.finish_wait),
        Call("int", "wake_up", "uintptr_t wq, int nr", n.wake_up),
        # reports (lib/bug.c, kernel/panic.c, kernel/printk)
        Call("void", "printk", "int level, const char *text", n.printk),
        Call("void", "bug", "const char *file, int line", n.bug),
        Call("void", "warn", "const char *file, int line, const char *text", n.warn),
        Call("void", "dump_stack", "", n.dump_stack),
        Call("void", "panic", "const char *text", n.panic),
        Call("void", "might_sleep", "const char *file, int line", n.might_sleep),
        Call("int", "symbolize", "uintptr_t addr, char *buf, size_t size", n.symbolize),
        # fault injection (lib/fault-inject.c)
        Call("int", "fault_attr_bind", "const char *name, uintptr_t attr",
             n.fault_attr_bind),
        Call("int", "should_fail", "int id, size_t size, int flags", n.should_fail),
        # memory allocation profiling (lib/alloc_tag.c)
        Call("uintptr_t", "alloc_tag_push", "const char *file, int line, const char *func",
             n.alloc_tag_push),
        Call("void", "alloc_tag_pop", "uintptr_t saved", n.alloc_tag_pop),
        # interrupts
        Call("uintptr_t", "run_in_interrupt", "uintptr_t fn, uintptr_t arg, int softirq",
             n.run_in_interrupt),
        # the mempool API for modules that do not define it (the mempool package's)
        Call("uintptr_t", "mempool_create",
             "int min_nr, uintptr_t alloc_fn, uintptr_t free_fn, uintptr_t pool_data, "
             "unsigned int gfp, int node", n.mempool_create),
        Call("int", "mempool_init",
             "uintptr_t pool, int min_nr, uintptr_t alloc_fn, uintptr_t free_fn, "
             "uintptr_t pool_data, unsigned int gfp, int node", n.mempool_init),
        Call("void", "mempool_exit", "uintptr_t pool", n.mempool_exit),
        Call("void", "mempool_destroy", "uintptr_t pool", n.mempool_destroy),
        Call("int", "mempool_resize", "uintptr_t pool, int new_min_nr", n.mempool_resize),
        Call("uintptr_t", "mempool_alloc", "uintptr_t pool, unsigned int gfp", n.mempool_alloc),
        Call("uintptr_t", "mempool_alloc_preallocated", "uintptr_t pool",
             n.mempool_alloc_preallocated),
        Call("void", "mempool_free", "uintptr_t element, uintptr_t pool", n.mempool_free),
        Call("int", "mempool_alloc_bulk", "uintptr_t pool, uintptr_t elems, unsigned int count",
             n.mempool_alloc_bulk),
        Call("unsigned int", "mempool_free_bulk",
             "uintptr_t pool, uintptr_t elems, unsigned int count", n.mempool_free_bulk),
        Call("uintptr_t", "mempool_stock", "int which, uintptr_t a, uintptr_t b",
             n.mempool_stock),
        # a run's custom workload in C (hwemu/workload.h)
        Call("long", "workload", "int what, const char *name, long n", n.workload),
    ]


_CALLS: list[Call] | None = None


def calls() -> list[Call]:
    """The table, in ``struct hw_rt`` order (built on first use: it imports hwemu)."""
    global _CALLS
    if _CALLS is None:
        _CALLS = _table()
    return _CALLS
