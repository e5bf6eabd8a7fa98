"""The kernel's memory pools (include/linux/mempool.h and mm/mempool.c) on hwemu.

A ``struct mempool *`` is an int: the address of the pool in the machine's memory.
Elements are pointers (ints), or ``struct page *`` for page pools. ``alloc_fn`` and
``free_fn`` may be Python callables ``alloc_fn(gfp_mask, pool_data) -> element`` and
``free_fn(element, pool_data)``, or function pointers from :func:`fnptr`.
The functions live in :mod:`mempool._mempool`, one for one with mm/mempool.c.
"""
from hwemu.access import load
from hwemu.alloc_tag import alloc_hooks

from ._mempool import (MEMPOOL_ALLOC_PAGES, MEMPOOL_ALLOC_SLAB, MEMPOOL_FREE_PAGES,
                       MEMPOOL_FREE_SLAB, MEMPOOL_KFREE, MEMPOOL_KMALLOC, POISON_END, POISON_FREE,
                       POISON_INUSE, SIZEOF_MEMPOOL, fn_of, fnptr, mempool_adjust_gfp,
                       mempool_alloc_bulk_noprof, mempool_alloc_noprof, mempool_alloc_pages,
                       mempool_alloc_preallocated, mempool_alloc_slab, mempool_create_node_noprof,
                       mempool_create_noprof, mempool_destroy, mempool_exit, mempool_free,
                       mempool_free_bulk, mempool_free_pages, mempool_free_slab, mempool_init_node,
                       mempool_init_noprof, mempool_kfree, mempool_kmalloc, mempool_resize,
                       struct_mempool)
from .describe import describe
from .stats import mempool_stats

mempool_t = struct_mempool

# The macros of mempool.h: alloc_hooks() around the _noprof functions, so the reserve
# is charged to the line that created the pool and fresh elements to the line that
# called mempool_alloc().
mempool_init = alloc_hooks(mempool_init_noprof)
mempool_create_node = alloc_hooks(mempool_create_node_noprof)
mempool_create = alloc_hooks(mempool_create_noprof)
mempool_alloc = alloc_hooks(mempool_alloc_noprof)
mempool_alloc_bulk = alloc_hooks(mempool_alloc_bulk_noprof)


def _read(pool: int, name: str) -> int:
    """``pool->name``: one load at the field's offset, of its size, from struct_mempool."""
    field = getattr(struct_mempool, name)
    return load(pool + field.offset, field.size)


def mempool_initialized(pool: int) -> bool:
    """``pool->elements != NULL``"""
    return _read(pool, "elements") != 0


def mempool_is_saturated(pool: int) -> bool:
    """``READ_ONCE(pool->curr_nr) >= pool->min_nr`` (a zero-min pool always is)."""
    return _read(pool, "curr_nr") >= _read(pool, "min_nr")


# The pool-type helpers are macros in mempool.h too: hooked at their caller's line.
@alloc_hooks
def mempool_init_slab_pool(pool: int, min_nr: int, kc: int) -> int:
    return mempool_init_noprof(pool, min_nr, MEMPOOL_ALLOC_SLAB, MEMPOOL_FREE_SLAB, kc)


@alloc_hooks
def mempool_create_slab_pool(min_nr: int, kc: int) -> int:
    return mempool_create_noprof(min_nr, MEMPOOL_ALLOC_SLAB, MEMPOOL_FREE_SLAB, kc)


@alloc_hooks
def mempool_init_kmalloc_pool(pool: int, min_nr: int, size: int) -> int:
    return mempool_init_noprof(pool, min_nr, MEMPOOL_KMALLOC, MEMPOOL_KFREE, size)


@alloc_hooks
def mempool_create_kmalloc_pool(min_nr: int, size: int) -> int:
    return mempool_create_noprof(min_nr, MEMPOOL_KMALLOC, MEMPOOL_KFREE, size)


@alloc_hooks
def mempool_init_page_pool(pool: int, min_nr: int, order: int) -> int:
    return mempool_init_noprof(pool, min_nr, MEMPOOL_ALLOC_PAGES, MEMPOOL_FREE_PAGES, order)


@alloc_hooks
def mempool_create_page_pool(min_nr: int, order: int) -> int:
    return mempool_create_noprof(min_nr, MEMPOOL_ALLOC_PAGES, MEMPOOL_FREE_PAGES, order)
