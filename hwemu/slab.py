"""Emulation of mm/slub.c, mm/slab_common.c and include/linux/slab.h: kmem_cache and kmalloc.

A cache is a ``struct kmem_cache`` in emulated memory (allocated, like every cache but
the first, from the bootstrap cache ``kmem_cache``, which holds its own descriptor)
plus a :class:`KmemCache` that keeps the allocator's bookkeeping. Slabs are compound
page blocks from the page allocator, marked as the kernel marks them: page type
``PGTY_slab`` in the top byte of ``_mapcount``, ``slab->slab_cache`` at offset 8 of the
head ``struct page``, ``freelist`` at 32 and the ``inuse``/``objects`` counters at 40,
``_refcount`` 0 (slab pages are frozen). The free objects of a slab are kept in a
Python list (the head of it is mirrored into ``slab->freelist``); an allocated object
is a key of its cache's ``live`` dict, whose value is the size the caller asked for
(what KASAN unpoisons). kmalloc sizes above ``KMALLOC_MAX_CACHE_SIZE`` are compound
pages of type ``PGTY_large_kmalloc``.

Each CPU has one array of free objects per cache (the 6.18+ per-CPU *sheaves*): an
allocation pops from it and a free pushes to it; refills and flushes move a sheaf of
objects between the array and the slabs under the cache's lock. Only the CPU's own
task uses its array for single objects; other tasks only ever take objects out of it
(flushing), one list operation at a time, which Python makes atomic, so the fast path
takes no lock.

Bad frees (wrong cache, a pointer into an object, a double free, a pointer that is no
slab object) are caught by :meth:`Slab.check_free`, reported in the kernel's words and
then ignored, so the allocator stays consistent: an object freed to the wrong cache
gets 6.x's ``cache_from_obj()`` WARN and goes to its own cache (7.1 leaks it instead);
interior pointers and double frees get the ``slab_debug=F`` reports (``slab_err()``/
``object_err()`` and ``FIX ...: Object at 0x... not freed``); ``kfree`` of a page that
is no slab and no large kmalloc gets ``free_large_kmalloc()``'s WARN_ON_ONCE and
``dump_page(page, "Not a kmalloc allocation")``.

This module is "compiled" for x86_64 with ``CONFIG_SLUB_DEBUG``, ``CONFIG_FAILSLAB``,
``CONFIG_MEMCG``, ``CONFIG_KASAN_GENERIC``, ``CONFIG_SLAB_OBJ_EXT``,
``CONFIG_SLAB_FREELIST_HARDENED``; no ``CONFIG_DEBUG_OBJECTS``, ``CONFIG_KFENCE``,
``CONFIG_SLUB_TINY``, ``CONFIG_RANDOM_KMALLOC_CACHES``, ``CONFIG_SLAB_FREELIST_RANDOM``.
The ``SLAB_*`` flag values follow from that (``enum _slab_flag_bits``, 6.10+).

Not emulated: cache merging (every ``kmem_cache_create`` makes its own cache, as with
``slab_nomerge``), the per-node *barn* of spare sheaves and the spare sheaf (one array
of up to two sheaves per CPU instead), free pointers inside free objects,
``slab_debug=`` poisoning and red zones (the bad-free checks of ``slab_debug=F`` are
always on), ``SLAB_STORE_USER`` tracking, RCU-deferred freeing for
``SLAB_TYPESAFE_BY_RCU`` (accepted; slabs are freed at once), memcg charging, the
``kmem_cache_node`` cache, sysfs. The layout is the 64-bit one on every machine, as
for ``struct page``.
"""
from __future__ import annotations

import collections
import ctypes
import sys
import threading
import typing

from . import bug, sched
from .alloc_tag import alloc_hooks
from .current import current
from .gfp import GFP_SLAB_BUG_MASK, format_flags, format_gfp, gfp_t, gfp_zone, gfpflag_names
from .mmzone import MAX_PAGE_ORDER, NUMA_NO_NODE, ZONE_HIGHMEM
from .page import (NO_PAGE_TYPE, PAGE_LRU, PAGE_TYPE, PGTY_large_kmalloc, PGTY_slab,
                   format_page_flags)
from .page_alloc import ALLOC_WMARK_LOW, PAGE_ALLOC_COSTLY_ORDER
from .page_types import PAGE_SHIFT, PAGE_SIZE
from .printk import KERN_ERR, KERN_WARNING

__all__ = [
    "Slab", "KmemCache", "struct_kmem_cache",
    "SLAB_CONSISTENCY_CHECKS", "SLAB_RED_ZONE", "SLAB_POISON", "SLAB_KMALLOC",
    "SLAB_HWCACHE_ALIGN", "SLAB_CACHE_DMA", "SLAB_CACHE_DMA32", "SLAB_STORE_USER",
    "SLAB_PANIC", "SLAB_TYPESAFE_BY_RCU", "SLAB_TRACE", "SLAB_NOLEAKTRACE",
    "SLAB_NO_MERGE", "SLAB_FAILSLAB", "SLAB_ACCOUNT", "SLAB_KASAN", "SLAB_NO_USER_FLAGS",
    "SLAB_RECLAIM_ACCOUNT", "SLAB_TEMPORARY", "SLAB_NO_OBJ_EXT", "ZERO_SIZE_PTR",
    "ZERO_OR_NULL_PTR", "KMALLOC_MIN_SIZE", "KMALLOC_SHIFT_LOW", "KMALLOC_SHIFT_HIGH",
    "KMALLOC_SHIFT_MAX", "KMALLOC_MAX_CACHE_SIZE", "KMALLOC_MAX_SIZE", "KMALLOC_MAX_ORDER",
    "ARCH_KMALLOC_MINALIGN", "ARCH_SLAB_MINALIGN", "PGTY_slab", "PGTY_large_kmalloc",
    "kmem_cache_create", "kmem_cache_destroy", "kmem_cache_shrink", "kmem_cache_size",
    "kmem_cache_alloc", "kmem_cache_alloc_node", "kmem_cache_zalloc", "kmem_cache_free",
    "kmem_cache_alloc_noprof", "kmem_cache_alloc_node_noprof", "kmem_cache_zalloc_noprof",
    "kcalloc_noprof", "kcalloc_node_noprof",
    "kmalloc", "kzalloc", "kmalloc_node", "kzalloc_node", "kmalloc_array",
    "kmalloc_array_node", "kcalloc", "kcalloc_node", "krealloc", "kfree",
    "kfree_sensitive", "ksize", "kmalloc_size_roundup", "kmalloc_noprof",
    "kmalloc_node_noprof", "kzalloc_noprof", "kmalloc_array_noprof",
    "kmalloc_array_node_noprof", "krealloc_noprof", "krealloc_node_align_noprof",
    "virt_to_cache",
]

# ---------------------------------------------------------------- include/linux/slab.h

# enum _slab_flag_bits for the config in the module docstring.
_SLAB_FLAG_BITS = (
    "CONSISTENCY_CHECKS", "RED_ZONE", "POISON", "KMALLOC", "HWCACHE_ALIGN", "CACHE_DMA",
    "CACHE_DMA32", "STORE_USER", "PANIC", "TYPESAFE_BY_RCU", "TRACE",
    # CONFIG_DEBUG_OBJECTS: DEBUG_OBJECTS
    "NOLEAKTRACE", "NO_MERGE",
    "FAILSLAB",        # CONFIG_FAILSLAB
    "ACCOUNT",         # CONFIG_MEMCG
    "KASAN",           # CONFIG_KASAN_GENERIC
    "NO_USER_FLAGS",
    # CONFIG_KFENCE: SKIP_KFENCE
    "RECLAIM_ACCOUNT",  # !CONFIG_SLUB_TINY
    "OBJECT_POISON", "CMPXCHG_DOUBLE",
    "NO_OBJ_EXT",      # CONFIG_SLAB_OBJ_EXT
    "OBJ_EXT_IN_OBJ",  # CONFIG_SLAB_OBJ_EXT && CONFIG_64BIT
)
_SLAB_FLAG = {name: 1 << bit for bit, name in enumerate(_SLAB_FLAG_BITS)}

SLAB_CONSISTENCY_CHECKS = _SLAB_FLAG["CONSISTENCY_CHECKS"]
SLAB_RED_ZONE = _SLAB_FLAG["RED_ZONE"]
SLAB_POISON = _SLAB_FLAG["POISON"]
SLAB_KMALLOC = _SLAB_FLAG["KMALLOC"]
SLAB_HWCACHE_ALIGN = _SLAB_FLAG["HWCACHE_ALIGN"]
SLAB_CACHE_DMA = _SLAB_FLAG["CACHE_DMA"]
SLAB_CACHE_DMA32 = _SLAB_FLAG["CACHE_DMA32"]
SLAB_STORE_USER = _SLAB_FLAG["STORE_USER"]
SLAB_PANIC = _SLAB_FLAG["PANIC"]
SLAB_TYPESAFE_BY_RCU = _SLAB_FLAG["TYPESAFE_BY_RCU"]
SLAB_TRACE = _SLAB_FLAG["TRACE"]
SLAB_DEBUG_OBJECTS = 0
SLAB_NOLEAKTRACE = _SLAB_FLAG["NOLEAKTRACE"]
SLAB_NO_MERGE = _SLAB_FLAG["NO_MERGE"]
SLAB_FAILSLAB = _SLAB_FLAG["FAILSLAB"]
SLAB_ACCOUNT = _SLAB_FLAG["ACCOUNT"]
SLAB_KASAN = _SLAB_FLAG["KASAN"]
SLAB_NO_USER_FLAGS = _SLAB_FLAG["NO_USER_FLAGS"]
SLAB_SKIP_KFENCE = 0
SLAB_RECLAIM_ACCOUNT = _SLAB_FLAG["RECLAIM_ACCOUNT"]
SLAB_TEMPORARY = SLAB_RECLAIM_ACCOUNT
SLAB_NO_OBJ_EXT = _SLAB_FLAG["NO_OBJ_EXT"]
__OBJECT_POISON = _SLAB_FLAG["OBJECT_POISON"]
__CMPXCHG_DOUBLE = _SLAB_FLAG["CMPXCHG_DOUBLE"]

SLAB_DEBUG_FLAGS = (SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER | SLAB_TRACE
                    | SLAB_CONSISTENCY_CHECKS)
SLAB_CORE_FLAGS = (SLAB_HWCACHE_ALIGN | SLAB_CACHE_DMA | SLAB_CACHE_DMA32 | SLAB_PANIC
                   | SLAB_TYPESAFE_BY_RCU | SLAB_DEBUG_OBJECTS | SLAB_NOLEAKTRACE
                   | SLAB_RECLAIM_ACCOUNT | SLAB_TEMPORARY | SLAB_ACCOUNT | SLAB_NO_USER_FLAGS
                   | SLAB_KMALLOC | SLAB_NO_MERGE | SLAB_NO_OBJ_EXT)
SLAB_FLAGS_PERMITTED = SLAB_CORE_FLAGS | SLAB_DEBUG_FLAGS | SLAB_FAILSLAB | SLAB_KASAN

#: ``kmalloc(0)`` returns this; ``kfree``/``ksize`` treat everything up to it as NULL.
ZERO_SIZE_PTR = 16

ARCH_KMALLOC_MINALIGN = 8      # __alignof__(unsigned long long)
ARCH_SLAB_MINALIGN = 8
KMALLOC_MIN_SIZE = 8
KMALLOC_SHIFT_LOW = 3
KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1
KMALLOC_SHIFT_MAX = min(MAX_PAGE_ORDER + PAGE_SHIFT, 25)
KMALLOC_MAX_CACHE_SIZE = 1 << KMALLOC_SHIFT_HIGH      # 8192 with 4K pages
KMALLOC_MAX_SIZE = 1 << KMALLOC_SHIFT_MAX              # 4 MiB
KMALLOC_MAX_ORDER = KMALLOC_SHIFT_MAX - PAGE_SHIFT

L1_CACHE_BYTES = 64            # cache_line_size() on x86_64
POINTER_SIZE = 8               # sizeof(void *)

PAGE_TYPE_SLAB = PAGE_TYPE(PGTY_slab)
PAGE_TYPE_LARGE_KMALLOC = PAGE_TYPE(PGTY_large_kmalloc)

# mm/slub.c tunables
MIN_PARTIAL = 5
MAX_PARTIAL = 10
MAX_OBJS_PER_PAGE = 32767
SLUB_MAX_ORDER = PAGE_ALLOC_COSTLY_ORDER   # slab_max_order
SLUB_MIN_ORDER = 0
SLUB_MIN_OBJECTS = 0
LEAK_LIST_MAX = 64             # "Object 0x... @offset=" lines per destroy report

# mm/slab_common.c: kmalloc_size_index[(size - 1) / 8] for size <= 192.
kmalloc_size_index = (3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7,
                      2, 2, 2, 2, 2, 2, 2, 2)
# kmalloc_info[]: index -> (short name, size); 0 is unused.
_KMALLOC_INFO = {1: ("96", 96), 2: ("192", 192),
                 **{i: (f"{1 << i}" if i < 10 else f"{1 << (i - 10)}k", 1 << i)
                    for i in range(KMALLOC_SHIFT_LOW, KMALLOC_SHIFT_HIGH + 1)}}
# enum kmalloc_cache_type
KMALLOC_NORMAL, KMALLOC_RECLAIM, KMALLOC_DMA, KMALLOC_CGROUP = range(4)
_KMALLOC_PREFIX = ("kmalloc-", "kmalloc-rcl-", "dma-kmalloc-", "kmalloc-cg-")
_KMALLOC_TYPE_FLAGS = (0, SLAB_RECLAIM_ACCOUNT, SLAB_CACHE_DMA, SLAB_ACCOUNT)
KMALLOC_NOT_NORMAL_BITS = gfp_t.RECLAIMABLE | gfp_t.DMA | gfp_t.ACCOUNT

# mm/internal.h
GFP_RECLAIM_MASK = (gfp_t.RECLAIM | gfp_t.HIGH | gfp_t.IO | gfp_t.FS | gfp_t.NOWARN
                    | gfp_t.RETRY_MAYFAIL | gfp_t.NOFAIL | gfp_t.NORETRY | gfp_t.MEMALLOC
                    | gfp_t.NOMEMALLOC | gfp_t.NOLOCKDEP)
GFP_CONSTRAINT_MASK = gfp_t.HARDWALL | gfp_t.THISNODE

# Unmangled GFP names for the hot paths.
_DIRECT_RECLAIM = gfp_t.DIRECT_RECLAIM
_ZERO = gfp_t.ZERO
_THISNODE = gfp_t.THISNODE
_NOWARN = gfp_t.NOWARN

# Reasons :meth:`Slab.check_free` gives.
FREE_WRONG_CACHE = "wrong-cache"        # kmem_cache_free(s, x) with x from another cache
FREE_NOT_SLAB = "not-slab"              # x is neither a slab object nor a large kmalloc
FREE_INVALID_POINTER = "invalid-free"   # x points into an object (or a large kmalloc)
FREE_DOUBLE_FREE = "double-free"        # x is an object start, and the object is free


def ZERO_OR_NULL_PTR(x: int) -> bool:
    """``ZERO_OR_NULL_PTR(x)``: NULL or ``ZERO_SIZE_PTR`` (or below it)."""
    return x <= ZERO_SIZE_PTR


def get_order(size: int) -> int:
    """``get_order(size)``: the smallest order whose block holds ``size`` bytes."""
    return max(0, (size - 1).bit_length() - PAGE_SHIFT) if size > 0 else 0


def _align(x: int, a: int) -> int:
    return (x + a - 1) & -a


def _c_hex(x: int) -> str:
    """printf ``%#x``: ``0`` for zero, ``0x...`` otherwise."""
    return f"{x:#x}" if x else "0"


# ---------------------------------------------------------------- struct kmem_cache

class reciprocal_value(ctypes.Structure):
    """``struct reciprocal_value`` (include/linux/reciprocal_div.h)."""
    _fields_ = [("m", ctypes.c_uint32), ("sh1", ctypes.c_uint8), ("sh2", ctypes.c_uint8)]


class struct_kmem_cache(ctypes.Structure):
    """``struct kmem_cache`` (mm/slab.h), the fields kernel code reads, in kernel order.

    ``oo``/``min`` are ``struct kmem_cache_order_objects`` (``order << 16 | objects``);
    ``ctor`` holds an opaque id (0 = no constructor); ``cpu_sheaves`` is 0 (the per-CPU
    arrays are Python lists). The ``node[]`` array that follows in the kernel is left
    zero.
    """
    _fields_ = [
        ("cpu_sheaves", ctypes.c_uint64),     # struct slub_percpu_sheaves __percpu *
        ("flags", ctypes.c_uint32),           # slab_flags_t
        ("min_partial", ctypes.c_uint64),     # unsigned long
        ("size", ctypes.c_uint32),            # object size including metadata
        ("object_size", ctypes.c_uint32),     # object size without metadata
        ("reciprocal_size", reciprocal_value),
        ("offset", ctypes.c_uint32),          # free pointer offset
        ("sheaf_capacity", ctypes.c_uint32),
        ("oo", ctypes.c_uint32),
        ("min", ctypes.c_uint32),
        ("allocflags", ctypes.c_uint32),      # gfp_t
        ("refcount", ctypes.c_int32),
        ("ctor", ctypes.c_uint64),            # void (*ctor)(void *)
        ("inuse", ctypes.c_uint32),           # offset to metadata
        ("align", ctypes.c_uint32),
        ("red_left_pad", ctypes.c_uint32),
        ("name", ctypes.c_uint64),            # const char *
    ]


def calculate_alignment(flags: int, align: int, size: int) -> int:
    """``calculate_alignment()``: HWCACHE_ALIGN halves the cache line while the object
    fits twice; never below ``ARCH_SLAB_MINALIGN``; a multiple of the pointer size."""
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = L1_CACHE_BYTES
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_SLAB_MINALIGN)
    return _align(align, POINTER_SIZE)


def order_objects(order: int, size: int) -> int:
    return (PAGE_SIZE << order) // size


def calc_slab_order(size: int, min_order: int, max_order: int, fract_leftover: int) -> int:
    order = min_order
    while order <= max_order:
        slab_size = PAGE_SIZE << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


def calculate_order(size: int, nr_cpus: int) -> int:
    """``calculate_order()``: the smallest order up to ``slab_max_order`` (3) that holds
    ``4 * (fls(nr_cpus) + 1)`` objects with at most 1/16 (then 1/8, 1/4, 1/2) waste."""
    min_objects = SLUB_MIN_OBJECTS or 4 * (nr_cpus.bit_length() + 1)
    max_objects = max(order_objects(SLUB_MAX_ORDER, size), 1)
    min_objects = min(min_objects, max_objects)
    min_order = max(SLUB_MIN_ORDER, get_order(min_objects * size))
    if order_objects(min_order, size) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE) - 1
    fraction = 16
    while fraction > 1:
        order = calc_slab_order(size, min_order, SLUB_MAX_ORDER, fraction)
        if order <= SLUB_MAX_ORDER:
            return order
        fraction //= 2
    order = get_order(size)
    return order if order <= MAX_PAGE_ORDER else -1


def calculate_sheaf_capacity(size: int) -> int:
    """Objects per sheaf (6.18 ``calculate_sheaf_capacity()``, before its rounding of
    the sheaf itself up to a kmalloc size)."""
    if size >= PAGE_SIZE:
        return 4
    if size >= 1024:
        return 12
    if size >= 256:
        return 26
    return 60


def reciprocal_value_of(d: int) -> tuple[int, int, int]:
    """``reciprocal_value(d)``: (m, sh1, sh2)."""
    bits = (d - 1).bit_length()   # the kernel's l = fls(d - 1)
    m = ((1 << 32) * ((1 << bits) - d)) // d + 1
    return m & 0xFFFFFFFF, min(bits, 1), max(bits - 1, 0)


# ---------------------------------------------------------------- one slab

class SlabInfo:
    """A slab: its head page and the free objects in it (``struct slab``'s Python half).

    ``free`` lists the free object addresses, lowest address last (the next to be
    handed out); ``inuse`` is ``objects - len(free)`` and counts objects sitting in
    per-CPU arrays too, as the kernel's ``slab->inuse`` does. Guarded by the cache's
    lock.
    """

    __slots__ = ("cache", "pfn", "page", "base", "nid", "order", "objects", "free")

    def __init__(self, cache, pfn: int, page: int, base: int, nid: int, order: int,
                 objects: int):
        self.cache = cache
        self.pfn = pfn
        self.page = page
        self.base = base
        self.nid = nid
        self.order = order
        self.objects = objects
        self.free: list[int] = []

    @property
    def inuse(self) -> int:
        return self.objects - len(self.free)

    def __repr__(self) -> str:
        return (f"<slab {self.page:#x} of {self.cache.name}: node {self.nid}, order "
                f"{self.order}, {self.inuse}/{self.objects} in use>")


# ---------------------------------------------------------------- one cache

class KmemCache:
    """A slab cache: the Python side of one ``struct kmem_cache``.

    The geometry (``size``, ``object_size``, ``offset``, ``align``, ``flags``, the
    orders) is fixed at creation: it is written once into the struct, which is what
    kernel code reads, and kept here as plain attributes for the allocator. The
    reference count lives only in the struct. ``addr`` is the ``struct kmem_cache *``.
    """

    def __init__(self, sl: "Slab", name: str, object_size: int, align: int, flags: int,
                 ctor, useroffset: int = 0):
        self.sl = sl
        self.name = name
        self.object_size = object_size
        self.flags = flags
        self.ctor = ctor
        if ctor is not None and not callable(ctor):
            raise TypeError(f"kmem_cache_create({name!r}): ctor must be a callable taking "
                            f"the object address, or None; got {ctor!r}")
        self.kasan = sl.machine.kasan if sl.machine.kasan.enabled else None
        if self.kasan is not None:
            self.flags |= SLAB_KASAN   # kasan_cache_create()
        # calculate_sizes()
        self.align = calculate_alignment(flags, align, object_size)
        size = _align(object_size, POINTER_SIZE)
        self.inuse = size
        if flags & SLAB_TYPESAFE_BY_RCU or ctor is not None:
            self.offset = size         # the free pointer may not overlap the object
            size += POINTER_SIZE
        else:
            self.offset = (object_size // 2) & -POINTER_SIZE
        if self.kasan is not None:   # room for KASAN's metadata and redzone
            free_meta_inside = object_size >= 16 and ctor is None and \
                not flags & SLAB_TYPESAFE_BY_RCU
            size = self.kasan.cache_size(object_size, size, free_meta_inside)
        self.size = size = _align(size, self.align)
        self.order = calculate_order(size, sl.nr_cpus)
        self.objects = order_objects(self.order, size)
        self.min_order = get_order(size)
        self.min_objects = order_objects(self.min_order, size)
        self.min_partial = max(MIN_PARTIAL, min(MAX_PARTIAL, (size.bit_length() - 1) // 2))
        self.sheaf_capacity = calculate_sheaf_capacity(size)
        self.pcs_max = 2 * self.sheaf_capacity     # main + spare sheaf
        allocflags = gfp_t.COMP if self.order else 0
        if flags & SLAB_CACHE_DMA:
            allocflags |= gfp_t.DMA
        if flags & SLAB_CACHE_DMA32:
            allocflags |= gfp_t.DMA32
        if flags & SLAB_RECLAIM_ACCOUNT:
            allocflags |= gfp_t.RECLAIMABLE
        self.allocflags = allocflags
        self.stat_item = ("nr_slab_reclaimable" if flags & SLAB_RECLAIM_ACCOUNT
                          else "nr_slab_unreclaimable")
        self.kmalloc_index = 0       # for kmalloc caches: index into kmalloc_caches[]
        self.addr = 0
        self.struct: struct_kmem_cache | None = None
        self.lock = threading.Lock()   # kmem_cache_node.list_lock, one for all nodes
        self.live: dict[int, int] = {}   # allocated object -> requested size
        self.slabs: dict[int, SlabInfo] = {}    # head pfn -> every slab of the cache
        self.partial: list[dict[int, SlabInfo]] = [{} for _ in range(sl.nr_nodes)]
        self.pcs: list[list[int]] = [[] for _ in range(sl.nr_cpus)]
        # Hot-path constants
        self._fault = sl.machine.fault
        self._point = sl.machine.sched.point
        self._tags = sl.machine.alloc_tags
        self._failslab = sl.machine.fault.failslab
        self._cache_failslab = bool(flags & SLAB_FAILSLAB)
        self._bootstrap = False
        self._zero = sl.zero_bytes(object_size)
        self._mv = sl.space.mv
        self._space_base = sl.space.base

    def __repr__(self) -> str:
        return f"<kmem_cache {self.name!r} at {self.addr:#x}: object_size {self.object_size}>"

    # ------------------------------------------------------------ the struct

    def publish(self, addr: int, name_ptr: int) -> None:
        """Fill ``struct kmem_cache`` at ``addr`` (zeroed memory) from the geometry."""
        st = struct_kmem_cache.from_address(addr)
        st.flags = self.flags
        st.min_partial = self.min_partial
        st.size = self.size
        st.object_size = self.object_size
        st.reciprocal_size.m, st.reciprocal_size.sh1, st.reciprocal_size.sh2 = \
            reciprocal_value_of(self.size)
        st.offset = self.offset
        st.sheaf_capacity = self.sheaf_capacity
        st.oo = self.order << 16 | self.objects
        st.min = self.min_order << 16 | self.min_objects
        st.allocflags = self.allocflags
        st.refcount = 1
        st.ctor = self.sl.ctor_id(self.ctor) if self.ctor is not None else 0
        st.inuse = self.inuse
        st.align = self.align
        st.name = name_ptr
        self.addr = addr
        self.struct = st

    # ------------------------------------------------------------ slabinfo

    def slabinfo(self) -> dict:
        """The numbers of one /proc/slabinfo line (``get_slabinfo()``): objects in
        per-CPU arrays count as active, as in SLUB."""
        with self.lock:
            num_slabs = len(self.slabs)
            num_objs = sum(s.objects for s in self.slabs.values())
            free = sum(len(s.free) for part in self.partial for s in part.values())
        return {"name": self.name, "active_objs": num_objs - free, "num_objs": num_objs,
                "object_size": self.object_size, "size": self.size,
                "objs_per_slab": self.objects, "order": self.order,
                "pagesperslab": 1 << self.order, "active_slabs": num_slabs,
                "num_slabs": num_slabs}

    @property
    def active_objs(self) -> int:
        return self.slabinfo()["active_objs"]

    @property
    def num_objs(self) -> int:
        return self.slabinfo()["num_objs"]

    @property
    def num_slabs(self) -> int:
        return len(self.slabs)

    active_slabs = num_slabs

    @property
    def objs_per_slab(self) -> int:
        return self.objects

    @property
    def nr_live(self) -> int:
        """Objects handed out and not yet freed."""
        return len(self.live)

    # ------------------------------------------------------------ allocation

    def slab_alloc(self, gfp: int, node: int, size: int, task) -> int:
        """``slab_alloc_node()``: one object (``void *``) or 0; ``size`` is what the caller
        asked for (``object_size`` for kmem_cache_alloc). A preemption point."""
        self._point(task)
        if gfp & _DIRECT_RECLAIM and (task.preempt_count or task.irqs_off):
            sched.might_sleep()   # might_alloc()
        # should_failslab() is always False while probability and fail-nth are 0.
        if (self._failslab.probability or task.fail_nth) and self._fault.should_failslab(
                self.name, self.object_size, gfp, self._cache_failslab, self._bootstrap):
            return 0
        objs = self.pcs[task.cpu.id]
        if node == NUMA_NO_NODE and objs:
            try:
                obj = objs.pop()
            except IndexError:   # another task flushed the array meanwhile
                obj = self._alloc_slow(gfp, node, task)
        else:
            obj = self._alloc_slow(gfp, node, task)
        if not obj:
            return 0
        self.live[obj] = size
        if self.kasan is not None:
            self.kasan.slab_alloc(self, obj, size, bool(self.flags & SLAB_KMALLOC), task)
        if self._tags.enabled:   # alloc_tagging_slab_alloc_hook()
            self._tags.charge(obj, self.size, task.alloc_tag)
        if gfp & _ZERO:
            off = obj - self._space_base
            self._mv[off:off + self.object_size] = self._zero
        return obj

    def boot_alloc(self, size: int, task) -> int:
        """An object while the allocator itself is being set up (no hooks that need a
        running machine, but KASAN's: the object is allocated like any other)."""
        obj = self._alloc_slow(gfp_t.NOWAIT, NUMA_NO_NODE, task)
        if obj:
            self.live[obj] = size
            if self.kasan is not None:
                self.kasan.slab_alloc(self, obj, size, bool(self.flags & SLAB_KMALLOC), task)
        return obj

    def _alloc_slow(self, gfp: int, node: int, task) -> int:
        """Refill this CPU's array from the slabs, or allocate straight from a slab of
        another node."""
        sl = self.sl
        if node != NUMA_NO_NODE:
            if not -1 <= node < sl.nr_nodes:
                raise bug.AddressError(f"allocation from {self.name} on node {node}: no "
                                       f"such node (machine has {sl.nr_nodes})")
            if node not in sl.slab_nodes:   # no lowmem there: any node will do
                node = NUMA_NO_NODE
        cpu, local = task.cpu.id, task.cpu.node
        if node == NUMA_NO_NODE or node == local:
            objs = self.pcs[cpu]
            try:
                obj = objs.pop()
            except IndexError:
                obj = 0
            if obj:
                if node == NUMA_NO_NODE or \
                        sl.pfn_slab[(obj - sl.page_offset) >> PAGE_SHIFT].nid == node:
                    return obj
                objs.append(obj)   # a remote object: ALLOC_NODE_MISMATCH
            else:
                got = self._get_objects(gfp, node, task, self.sheaf_capacity)
                if not got:
                    return 0
                objs.extend(got[:0:-1])
                return got[0]
        got = self._get_objects(gfp, node, task, 1)
        return got[0] if got else 0

    def _get_objects(self, gfp: int, node: int, task, want: int) -> list[int]:
        """Take up to ``want`` objects (at least one, or none on failure) from partial
        slabs or a new slab, as ``___slab_alloc()`` does: the requested (or local)
        node's partial slabs; other nodes' unless ``__GFP_THISNODE``; a new slab. With a
        node and no ``__GFP_THISNODE``, that node is tried alone first, with
        ``GFP_NOWAIT | __GFP_THISNODE`` for the new slab."""
        sl = self.sl
        local = task.cpu.node
        search = local if node == NUMA_NO_NODE else node
        try_thisnode = node != NUMA_NO_NODE and not gfp & _THISNODE
        while True:
            pc_flags = (gfp_t.NOWAIT | _THISNODE) if try_thisnode else gfp
            got: list[int] = []
            with self.lock:
                self._take_partial(search, want, got)
                if not got and not (node != NUMA_NO_NODE and pc_flags & _THISNODE):
                    for nid in sl.node_order[search]:
                        if nid != search and self.partial[nid]:
                            self._take_partial(nid, want, got)
                            break
            if got:
                return got
            slab = self._new_slab(pc_flags, node, task)
            if slab is None:
                if try_thisnode:
                    try_thisnode = False
                    continue
                slab_out_of_memory(self, gfp, node, task)
                return got
            with self.lock:
                self.slabs[slab.pfn] = slab
                free = slab.free
                n = min(want, len(free))
                got = free[-n:]
                del free[-n:]
                got.reverse()
                if free:
                    self.partial[slab.nid][slab.pfn] = slab
                sl.sync_slab(slab)
            return got

    def _take_partial(self, nid: int, want: int, got: list[int]) -> None:
        """``get_from_partial_node()``: objects from ``nid``'s partial slabs; lock held."""
        part = self.partial[nid]
        sync = self.sl.sync_slab
        while part and len(got) < want:
            pfn = next(iter(part))
            slab = part[pfn]
            free = slab.free
            n = min(want - len(got), len(free))
            taken = free[-n:]
            del free[-n:]
            taken.reverse()
            got.extend(taken)
            if not free:
                del part[pfn]
            sync(slab)

    def _new_slab(self, gfp: int, node: int, task) -> SlabInfo | None:
        """``new_slab()`` + ``allocate_slab()``: pages, struct slab fields, ctor."""
        sl = self.sl
        if gfp & GFP_SLAB_BUG_MASK:
            gfp = kmalloc_fix_flags(gfp, task)
        if self.ctor is not None and gfp & _ZERO:
            bug.WARN_ON_ONCE(True)    # s->ctor && (flags & __GFP_ZERO)
        flags = (gfp & (GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK)) | self.allocflags
        # Let the preferred order fail quietly under pressure, then try the minimum.
        alloc_gfp = (flags | gfp_t.NOWARN | gfp_t.NORETRY) & ~gfp_t.NOFAIL
        if alloc_gfp & _DIRECT_RECLAIM and self.order > self.min_order:
            alloc_gfp = (alloc_gfp | gfp_t.NOMEMALLOC) & ~gfp_t.RECLAIM
        order, objects = self.order, self.objects
        pfn = sl.alloc_slab_pages(alloc_gfp, order, node, task)
        if pfn < 0:
            order, objects = self.min_order, self.min_objects
            pfn = sl.alloc_slab_pages(flags, order, node, task)
            if pfn < 0:
                return None
        page = sl.memmap.page_of(pfn)
        base = sl.page_offset + (pfn << PAGE_SHIFT)
        slab = SlabInfo(self, pfn, page, base, sl.memmap.nid(pfn), order, objects)
        size = self.size
        slab.free = list(range(base + (objects - 1) * size, base - 1, -size))
        sl.slab.slab_cache[pfn] = self.addr
        sl.slab.slab_list_next[pfn] = sl.slab.slab_list_prev[pfn] = 0   # on no list
        sl.page._mapcount[pfn] = PAGE_TYPE_SLAB   # __SetPageSlab()
        sl.page._refcount[pfn] = 0                # a frozen page
        sl.sync_slab(slab)
        kasan = self.kasan
        if kasan is not None:
            kasan.poison_slab(base, PAGE_SIZE << order)
        if self.ctor is not None:   # setup_object(), before the slab is visible
            try:
                for obj in reversed(slab.free):
                    if kasan is not None:
                        kasan.unpoison_new_object(self, obj)
                    self.ctor(obj)
                    if kasan is not None:
                        kasan.poison_new_object(self, obj)
            except BaseException:
                sl.free_slab_pages(slab, task)
                raise
        pfn_slab = sl.pfn_slab
        for p in range(pfn, pfn + (1 << order)):
            pfn_slab[p] = slab
        sl.vmstat.mod(self.stat_item, 1 << order)
        return slab

    # ------------------------------------------------------------ freeing

    def slab_free(self, x: int, slab: SlabInfo, task) -> None:
        """``slab_free()``: ``x`` lies in ``slab`` of this cache. A preemption point."""
        self._point(task)
        kasan = self.kasan
        if kasan is not None:   # kasan_slab_pre_free(): the quick test inline
            start = slab.base + min((x - slab.base) // self.size, slab.objects - 1) * self.size
            if (start != x or not kasan.byte_accessible(x)) and \
                    kasan.check_slab_allocation(self, x, start):
                return   # reported, not freed
        if self.live.pop(x, -1) < 0:
            self.sl.bad_free(self, x, task)
            return
        if self._tags.enabled:
            self._tags.uncharge(x)
        if kasan is not None and kasan.slab_free(self, x, task):
            return   # in the quarantine for now
        self.free_object(x, slab, task)

    def free_object(self, x: int, slab: SlabInfo, task) -> None:
        """The free itself, checks done: to this CPU's array or the slab."""
        if slab.nid != task.cpu.node and task.cpu.node in self.sl.slab_nodes:
            # !can_free_to_pcs(): a remote object goes straight to its slab
            self.free_to_slabs([x], task)
            return
        objs = self.pcs[task.cpu.id]
        objs.append(x)
        if len(objs) > self.pcs_max:
            self.flush_array(objs, self.sheaf_capacity, task)

    def free_from_quarantine(self, x: int, task) -> None:
        """The quarantine lets go of ``x``: it really becomes a free object."""
        sl = self.sl
        if task.cpu.id < sl.nr_cpus:
            self.free_object(x, sl.pfn_slab[(x - sl.page_offset) >> PAGE_SHIFT], task)
        else:   # a kernel thread: no per-CPU array of its own
            self.free_to_slabs([x], task)

    def flush_array(self, objs: list[int], n: int, task) -> None:
        """Move up to ``n`` objects (all for ``n`` < 0) from a per-CPU array to slabs."""
        batch = []
        pop = objs.pop
        try:
            while n:
                batch.append(pop())
                n -= 1
        except IndexError:
            pass
        if batch:
            self.free_to_slabs(batch, task)

    def free_to_slabs(self, batch: list[int], task, keep_empty: bool = True) -> None:
        """``__slab_free()`` for each object; empty slabs beyond ``min_partial`` (all of
        them unless ``keep_empty``) go back to the page allocator."""
        sl = self.sl
        pfn_slab, po = sl.pfn_slab, sl.page_offset
        discard = []
        with self.lock:
            touched = {}
            for x in batch:
                slab = pfn_slab[(x - po) >> PAGE_SHIFT]
                if not slab.free:   # was full: back on the partial list
                    self.partial[slab.nid][slab.pfn] = slab
                slab.free.append(x)
                touched[slab.pfn] = slab
            for slab in touched.values():
                part = self.partial[slab.nid]
                if len(slab.free) == slab.objects and \
                        (not keep_empty or len(part) > self.min_partial):
                    del part[slab.pfn]
                    del self.slabs[slab.pfn]
                    discard.append(slab)
                else:
                    sl.sync_slab(slab)
        for slab in discard:
            sl.discard_slab(slab, task)

    def flush_all(self, task) -> None:
        """``flush_all()``: every CPU's array back to the slabs."""
        for objs in self.pcs:
            self.flush_array(objs, -1, task)

    def shrink(self, task) -> None:
        """``__kmem_cache_do_shrink()``: flush the arrays, free every empty slab."""
        if self.kasan is not None:
            self.kasan.quarantine_remove_cache(self)   # kasan_cache_shrink()
        self.flush_all(task)
        discard = []
        with self.lock:
            for part in self.partial:
                for pfn, slab in list(part.items()):
                    if len(slab.free) == slab.objects:
                        del part[pfn]
                        del self.slabs[pfn]
                        discard.append(slab)
        for slab in discard:
            self.sl.discard_slab(slab, task)

    # ------------------------------------------------------------ consistency

    def validate(self) -> list[str]:
        """``validate_slab_cache()``: problems found (empty if consistent). Every object
        must be exactly one of: allocated (``live``), free in its slab, free in a
        per-CPU array; counters and struct pages must agree."""
        sl = self.sl
        problems = []
        with self.lock:
            seen: dict[int, str] = {}
            for objs in self.pcs:
                for x in list(objs):
                    if x in seen:
                        problems.append(f"{x:#x} twice in per-CPU arrays")
                    seen[x] = "cpu"
            all_objs: set[int] = set()
            for pfn, slab in self.slabs.items():
                span = range(slab.base, slab.base + slab.objects * self.size, self.size)
                all_objs.update(span)
                for x in slab.free:
                    if x in seen:
                        problems.append(f"{x:#x} free in its slab and in a per-CPU array"
                                        if seen[x] == "cpu" else f"{x:#x} twice free")
                    seen[x] = "slab"
                    if x not in span:
                        problems.append(f"{x:#x} on the free list of a slab it is not in")
                cache, counters = sl.slab.slab_cache[pfn], sl.slab.counters[pfn]
                if cache != self.addr:
                    problems.append(f"slab pfn {pfn:#x}: slab_cache {cache:#x}")
                if counters != slab.inuse | slab.objects << 16:
                    problems.append(f"slab pfn {pfn:#x}: counters {counters:#x} but inuse "
                                    f"{slab.inuse} objects {slab.objects}")
                if sl.memmap.page_type(pfn) != PGTY_slab:
                    problems.append(f"slab pfn {pfn:#x}: page type is not slab")
                part = self.partial[slab.nid]
                if bool(slab.free) != (pfn in part):
                    problems.append(f"slab pfn {pfn:#x}: {len(slab.free)} free but "
                                    f"{'' if pfn in part else 'not '}on the partial list")
            live = set(self.live)
            if self.kasan is not None:   # quarantined: freed, but still SLUB's to give
                live |= {o for c, o in list(self.kasan.quarantine) if c is self}
            both = live & set(seen)
            if both:
                problems.append(f"{len(both)} objects both allocated and free, e.g. "
                                f"{min(both):#x}")
            missing = all_objs - live - set(seen)
            if missing:
                problems.append(f"{len(missing)} objects neither allocated nor free, e.g. "
                                f"{min(missing):#x}")
            stray = (live | set(seen)) - all_objs
            if stray:
                problems.append(f"{len(stray)} objects outside the cache's slabs, e.g. "
                                f"{min(stray):#x}")
        return problems


# ---------------------------------------------------------------- the machine's allocator

class SlabReport:
    """One bad-free or leak report: ``kind`` (a ``FREE_*`` reason or ``"leak"``),
    ``addr``, ``cache`` (name or None) and ``text`` as printed."""

    __slots__ = ("kind", "addr", "cache", "text")

    def __init__(self, kind: str, addr: int, cache: str | None, text: str):
        self.kind, self.addr, self.cache, self.text = kind, addr, cache, text

    def __repr__(self) -> str:
        return f"<SlabReport {self.kind} {self.addr:#x} in {self.cache}>"


class _BootTask:
    """Stands in for ``current`` while the machine boots (no task exists yet)."""
    preempt_count = 0
    irqs_off = False
    fail_nth = 0
    pid = 0
    alloc_tag = None

    def __init__(self, cpu):
        self.cpu = cpu


class Slab:
    """The slab allocator of one machine (``machine.slab``): the cache list, the
    kmalloc caches, the bootstrap cache and the address indexes."""

    def __init__(self, machine):
        self.machine = machine
        self.memmap = mm = machine.memmap
        self.page, self.slab = mm.page, mm.slab   # struct page / struct slab fields
        self.page_alloc = machine.page_alloc
        self.vmstat = machine.vmstat
        self.space = machine.space
        self.page_offset = mm.page_offset
        self.nr_cpus = len(machine.sched.cpus)
        self.nr_nodes = len(machine.nodes)
        # slab_nodes: nodes with normal (non-highmem, non-movable) memory
        self.slab_nodes = [n.node_id for n in machine.nodes
                           if any(z.managed_pages for z in n.node_zones[:ZONE_HIGHMEM])]
        dist = machine.numa_distance
        self.node_order = [sorted(self.slab_nodes, key=lambda n, i=i: (dist[i][n], n))
                           for i in range(self.nr_nodes)]
        self.mutex = threading.RLock()            # slab_mutex
        self.caches: dict[int, KmemCache] = {}    # struct kmem_cache * -> cache
        self.slab_caches: list[KmemCache] = []    # in creation order
        self.pfn_slab: dict[int, SlabInfo] = {}   # every pfn of every slab -> its slab
        self.large: dict[int, list[int]] = {}     # large kmalloc address -> [pfn, order, size]
        self.reports: list[SlabReport] = []
        self._ctor_ids: dict[int, int] = {}
        self.ctors: dict[int, object] = {}
        self._zero: dict[int, bytes] = {}
        self._oom_lock = threading.Lock()
        self._oom_at: collections.deque = collections.deque(maxlen=10)
        self.kmalloc_caches: list[list[KmemCache | None]] = [
            [None] * (KMALLOC_SHIFT_HIGH + 1) for _ in _KMALLOC_PREFIX]
        self._bootstrap(_BootTask(machine.sched.cpus[0]))

    # ------------------------------------------------------------ boot

    def _bootstrap(self, boot) -> None:
        """``kmem_cache_init()`` + ``create_kmalloc_caches()``: the cache of caches holds
        its own descriptor; then the kmalloc caches; then the names, kmalloc'ed."""
        kc = KmemCache(self, "kmem_cache",
                       ctypes.sizeof(struct_kmem_cache) + POINTER_SIZE * self.nr_nodes, 0,
                       SLAB_HWCACHE_ALIGN | SLAB_NO_OBJ_EXT, None)
        kc._bootstrap = True
        self.kmem_cache = kc
        addr = kc.boot_alloc(kc.object_size, boot)
        if not addr:
            raise bug.MachineError("slab bootstrap: no memory for the kmem_cache cache")
        self._zero_obj(addr, kc.object_size)
        kc.publish(addr, 0)
        self._register(kc)
        # The slab of the cache of caches was set up before its address was known.
        for slab in kc.slabs.values():
            self.slab.slab_cache[slab.pfn] = addr
        for i in sorted(_KMALLOC_INFO, key=lambda i: _KMALLOC_INFO[i][1]):
            if self._create_kmalloc_cache(KMALLOC_NORMAL, i, boot) is None:
                raise bug.MachineError("slab bootstrap: no memory for the kmalloc caches")
        # Every index a kmalloc size maps to has its normal cache from here on.
        self.kmalloc_normal = typing.cast(list[KmemCache], self.kmalloc_caches[KMALLOC_NORMAL])
        for s in list(self.slab_caches):
            assert s.struct is not None
            s.struct.name = self._kstrdup(s.name, boot)

    def _create_kmalloc_cache(self, kind: int, index: int, task) -> KmemCache | None:
        """``new_kmalloc_cache()``: ``kmalloc_caches[kind][index]``."""
        short, size = _KMALLOC_INFO[index]
        flags = _KMALLOC_TYPE_FLAGS[kind] | SLAB_KMALLOC
        # kmalloc caches are aligned to the largest power of two dividing the size.
        s = KmemCache(self, _KMALLOC_PREFIX[kind] + short, size, size & -size, flags, None)
        s.kmalloc_index = index
        # Made at boot for KMALLOC_NORMAL, on first use (maybe in atomic context) else.
        if not self._publish_new(s, task, gfp_t.NOWAIT):
            return None
        self.kmalloc_caches[kind][index] = s
        return s

    def _publish_new(self, s: KmemCache, task, gfp: int) -> bool:
        """Give ``s`` its struct (from the cache of caches) and name; False if out of
        memory."""
        kc = self.kmem_cache
        boot = isinstance(task, _BootTask)
        addr = kc.boot_alloc(kc.object_size, task) if boot else \
            kc.slab_alloc(gfp, NUMA_NO_NODE, kc.object_size, task)
        if not addr:
            return False
        self._zero_obj(addr, kc.object_size)
        name = 0
        if not boot:
            name = self._kstrdup(s.name, task, gfp)
            if not name:
                kc.slab_free(addr, self.pfn_slab[(addr - self.page_offset) >> PAGE_SHIFT],
                             task)
                return False
        s.publish(addr, name)
        self._register(s)
        return True

    def _register(self, s: KmemCache) -> None:
        with self.mutex:
            self.caches[s.addr] = s
            self.slab_caches.append(s)

    def _kstrdup(self, text: str, task, gfp: int = gfp_t.NOWAIT) -> int:
        """``kstrdup_const()``: the name as a NUL-terminated string in kmalloc memory."""
        data = text.encode() + b"\0"
        if isinstance(task, _BootTask):
            p = self.kmalloc_normal[kmalloc_index(len(data))].boot_alloc(len(data), task)
        else:
            p = self.kmalloc(len(data), gfp, NUMA_NO_NODE, task)
        if p:
            off = p - self.space.base
            self.space.mv[off:off + len(data)] = data
        return p

    def _zero_obj(self, addr: int, n: int) -> None:
        off = addr - self.space.base
        self.space.mv[off:off + n] = self.zero_bytes(n)

    def zero_bytes(self, n: int) -> bytes:
        z = self._zero.get(n)
        if z is None:
            z = self._zero[n] = bytes(n)
        return z

    def ctor_id(self, ctor) -> int:
        """The opaque value stored in ``s->ctor`` for a Python constructor."""
        with self.mutex:
            cid = self._ctor_ids.get(id(ctor))
            if cid is None:
                cid = self._ctor_ids[id(ctor)] = len(self._ctor_ids) + 1
                self.ctors[cid] = ctor
            return cid

    # ------------------------------------------------------------ slab pages

    def alloc_slab_pages(self, gfp: int, order: int, node: int, task) -> int:
        """``alloc_slab_page()``: a (compound) block for a slab; pfn or -1."""
        pa = self.page_alloc
        if isinstance(task, _BootTask) or task is None:
            nid = self.slab_nodes[0] if node == NUMA_NO_NODE else node
            zones = [z for z in pa.zonelist(nid, bool(gfp & _THISNODE))
                     if z.idx <= gfp_zone(gfp)]
            pfn = pa.get_page_from_freelist(gfp, order, ALLOC_WMARK_LOW, zones,
                                            gfp_zone(gfp), None, 0)
        elif self.machine.alloc_tags.enabled:   # slab pages are charged to this site
            pfn = self.machine.alloc_tags.call(task, sys._getframe(), pa.alloc, gfp, order,
                                               node, None, task)
        else:
            pfn = pa.alloc(gfp, order, node, None, task)
        return pfn

    def sync_slab(self, slab: SlabInfo) -> None:
        """Mirror ``freelist`` and ``counters`` into the head ``struct page``."""
        st, free = self.slab, slab.free
        st.freelist[slab.pfn] = free[-1] if free else 0
        st.counters[slab.pfn] = (slab.objects - len(free)) | slab.objects << 16

    def discard_slab(self, slab: SlabInfo, task) -> None:
        """``discard_slab()``: the slab is off every list; unindex and free it."""
        pfn_slab = self.pfn_slab
        for p in range(slab.pfn, slab.pfn + (1 << slab.order)):
            pfn_slab.pop(p, None)
        self.vmstat.mod(slab.cache.stat_item, -(1 << slab.order))
        self.free_slab_pages(slab, task)

    def free_slab_pages(self, slab: SlabInfo, task) -> None:
        """``__free_slab()``: clear the slab fields and give the pages back."""
        pg, pfn = self.page, slab.pfn
        lru = slab.page + PAGE_LRU
        pg.lru_next[pfn] = pg.lru_prev[pfn] = lru   # INIT_LIST_HEAD(&page->lru)
        pg.mapping[pfn] = pg.index[pfn] = pg.private[pfn] = 0
        pg._mapcount[pfn] = NO_PAGE_TYPE            # __ClearPageSlab()
        pg._refcount[pfn] = 1                       # free_frozen_pages()
        self.page_alloc.free_pages(slab.page, slab.order,
                                   None if isinstance(task, _BootTask) else task)

    # ------------------------------------------------------------ kmalloc

    def kmalloc_cache(self, size: int, gfp: int, task=None) -> KmemCache | None:
        """``kmalloc_slab()``: the cache for ``0 < size <= KMALLOC_MAX_CACHE_SIZE`` (None
        only if a cache made on first use found no memory)."""
        index = kmalloc_index(size)
        kind = kmalloc_type(gfp)
        s = self.kmalloc_caches[kind][index]
        if s is None:
            with self.mutex:
                s = self.kmalloc_caches[kind][index]
                if s is None:   # the rcl/dma/cg kinds are made on first use
                    s = self._create_kmalloc_cache(kind, index, task or current())
        return s

    def kmalloc(self, size: int, gfp: int, node: int, task) -> int:
        """``__do_kmalloc_node()``."""
        if size <= 192:
            if size <= 0:
                if size == 0:
                    return ZERO_SIZE_PTR
                raise ValueError(f"kmalloc({size}): size_t cannot be negative")
            s = self.kmalloc_normal[kmalloc_size_index[(size - 1) >> 3]]
        elif size <= KMALLOC_MAX_CACHE_SIZE:
            s = self.kmalloc_normal[(size - 1).bit_length()]
        else:
            return self.kmalloc_large(size, gfp, node, task)
        if gfp & KMALLOC_NOT_NORMAL_BITS:
            other = self.kmalloc_cache(size, gfp, task)
            if other is None:
                return 0
            s = other
        return s.slab_alloc(gfp, node, size, task)

    def kmalloc_large(self, size: int, gfp: int, node: int, task) -> int:
        """``___kmalloc_large_node()``: a compound block of type ``PGTY_large_kmalloc``."""
        if node != NUMA_NO_NODE and not 0 <= node < self.nr_nodes:
            raise bug.AddressError(f"kmalloc_node({size}, node {node}): no such node "
                                   f"(machine has {self.nr_nodes})")
        if gfp & GFP_SLAB_BUG_MASK:
            gfp = kmalloc_fix_flags(gfp, task)
        if size > self.machine.SIZE_MAX:
            raise ValueError(f"kmalloc({size}): larger than size_t")
        order = get_order(size)
        pfn = self.page_alloc.alloc(gfp | gfp_t.COMP, order, node, None, task)
        if pfn < 0:
            return 0
        self.page._mapcount[pfn] = PAGE_TYPE_LARGE_KMALLOC
        addr = self.page_offset + (pfn << PAGE_SHIFT)
        self.large[addr] = [pfn, order, size]
        if self.machine.kasan.enabled:
            self.machine.kasan.kmalloc_large(addr, size, PAGE_SIZE << order)
        self.vmstat.mod("nr_slab_unreclaimable", 1 << order)
        return addr

    def free_large_kmalloc(self, x: int, task) -> None:
        kasan = self.machine.kasan
        pfn = (x - self.page_offset) >> PAGE_SHIFT
        if kasan.enabled and 0 <= pfn < self.memmap.max_low_pfn and \
                self.memmap.pfn_valid(pfn):
            head = self.memmap.compound_head(pfn)
            if kasan.check_page_allocation(x, self.page_offset + (head << PAGE_SHIFT)):
                return   # kasan_kfree_large(): reported, not freed
        ent = self.large.pop(x, None)
        if ent is None:
            self.bad_free(None, x, task)
            return
        pfn, order, _ = ent
        self.vmstat.mod("nr_slab_unreclaimable", -(1 << order))
        self.page._mapcount[pfn] = NO_PAGE_TYPE   # __ClearPageLargeKmalloc()
        self.page_alloc.free_pages(self.memmap.page_of(pfn), order, task)

    # ------------------------------------------------------------ lookups

    def slab_of(self, x: int) -> SlabInfo | None:
        """The slab whose pages hold ``x``, or None."""
        return self.pfn_slab.get((x - self.page_offset) >> PAGE_SHIFT)

    def cache_of(self, cachep: int, what: str) -> KmemCache:
        s = self.caches.get(cachep)
        if s is None:
            raise bug.AddressError(f"{what}({cachep:#x}): not a struct kmem_cache * of "
                                   f"machine {self.machine.name!r} (never created, or "
                                   "destroyed)")
        return s

    def object_requested_size(self, x: int) -> int | None:
        """The size the caller asked for when ``x`` (an object start) was allocated, or
        None if ``x`` is not an allocated slab object or large kmalloc."""
        slab = self.pfn_slab.get((x - self.page_offset) >> PAGE_SHIFT)
        if slab is not None:
            return slab.cache.live.get(x)
        ent = self.large.get(x)
        return ent[2] if ent is not None else None

    def object_start(self, x: int) -> int | None:
        """``nearest_obj()``: the start of the slab object holding ``x``, or None."""
        slab = self.slab_of(x)
        if slab is None:
            return None
        s = slab.cache   # the slab's tail belongs to its last object
        return slab.base + min((x - slab.base) // s.size, slab.objects - 1) * s.size

    def ksize(self, x: int) -> int:
        """``__ksize()``, after ``kasan_check_byte()``: 0 (reported) for a freed object."""
        kasan = self.machine.kasan
        if kasan.enabled and not kasan.check_access(x, 1, False):
            return 0
        slab = self.pfn_slab.get((x - self.page_offset) >> PAGE_SHIFT)
        if slab is not None:
            s = slab.cache
            if s.flags & (SLAB_RED_ZONE | SLAB_POISON | SLAB_KASAN):
                return s.object_size
            if s.flags & (SLAB_TYPESAFE_BY_RCU | SLAB_STORE_USER):
                return s.inuse
            return s.size
        ent = self.large.get(x)
        if ent is not None:
            return PAGE_SIZE << ent[1]
        self.memmap.direct_map_pa(x, "ksize")   # raises for a non-direct-map address
        bug.WARN_ON(True)                         # WARN_ON(!slab)
        return PAGE_SIZE

    # ------------------------------------------------------------ bad frees

    def check_free(self, x: int, s: KmemCache | None = None) -> tuple:
        """Whether freeing ``x`` is wrong, and why: ``(reason, cache, slab)``.

        ``s`` is the cache ``kmem_cache_free`` was given (None for ``kfree``).
        ``reason`` is None (a good free), :data:`FREE_WRONG_CACHE` (``x`` is a live
        object of ``cache``, not of ``s``), :data:`FREE_NOT_SLAB` (``x`` lies in no slab
        and is no large kmalloc), :data:`FREE_INVALID_POINTER` (``x`` points into an
        object or a large kmalloc but not at its start) or :data:`FREE_DOUBLE_FREE`
        (``x`` is an object start and the object is free). ``cache``/``slab`` are where
        ``x`` lies (None outside slabs).
        """
        slab = self.pfn_slab.get((x - self.page_offset) >> PAGE_SHIFT)
        if slab is None:
            if x in self.large:
                return (None if s is None else FREE_NOT_SLAB), None, None
            if s is None and self._large_containing(x) is not None:
                return FREE_INVALID_POINTER, None, None
            return FREE_NOT_SLAB, None, None
        t = slab.cache
        if s is not None and t is not s:
            return FREE_WRONG_CACHE, t, slab
        off = x - slab.base
        if off % t.size or off >= slab.objects * t.size:
            return FREE_INVALID_POINTER, t, slab
        if x not in t.live:
            return FREE_DOUBLE_FREE, t, slab
        return None, t, slab

    def _large_containing(self, x: int):
        for addr, (_pfn, order, _) in list(self.large.items()):
            if addr <= x < addr + (PAGE_SIZE << order):
                return addr
        return None

    def bad_free(self, s: KmemCache | None, x: int, task) -> None:
        """Report a free that :meth:`check_free` rejects, as the kernel would, and
        leave everything as it was. ``s`` is the cache the object was freed to (None
        for a non-slab pointer)."""
        reason, t, slab = self.check_free(x)
        if reason is None and slab is not None:
            reason = FREE_DOUBLE_FREE   # freed twice at once: the other free won
        if slab is None:
            text = free_large_kmalloc_report(self, x, task)
            self.reports.append(SlabReport(reason or FREE_NOT_SLAB, x, None, text))
            return
        lines: list[str] = []
        if reason == FREE_INVALID_POINTER:
            slab_err(t, slab, f"Invalid object pointer 0x{x:016x}", task, lines)
        else:
            object_err(t, slab, x, "Object already free", task, lines)
        slab_fix(t, f"Object at 0x{x:016x} not freed", lines)
        text = "\n".join(lines)
        self.machine.warnings.append(text)
        self.reports.append(SlabReport(reason, x, t.name, text))

    # ------------------------------------------------------------ whole-allocator views

    def shrink(self) -> None:
        """``kmem_cache_shrink()`` on every cache: per-CPU arrays flushed, empty slabs
        freed (call ``page_alloc.drain_all_pages()`` too to see them as free pages)."""
        task = current()
        for s in list(self.slab_caches):
            s.shrink(task)

    def slabinfo(self) -> list[dict]:
        """The numbers of /proc/slabinfo, one dict per cache, newest cache first."""
        return [s.slabinfo() for s in reversed(list(self.slab_caches))]

    def validate(self) -> list[str]:
        """Consistency problems in any cache (empty if none)."""
        return [f"{s.name}: {p}" for s in list(self.slab_caches) for p in s.validate()]

    def find_cache(self, name: str) -> KmemCache | None:
        """The newest cache called ``name``, or None."""
        for s in reversed(list(self.slab_caches)):
            if s.name == name:
                return s
        return None


# ---------------------------------------------------------------- reports (mm/slub.c)

def _pr(machine, lines: list[str], text: str, level: int = KERN_ERR) -> None:
    machine.log.printk(text, level)
    lines.append(text)


def slab_bug(s: KmemCache | None, message: str, lines: list[str]) -> None:
    """``slab_bug()``: the ruler, ``BUG <cache> (<taint>): <message>``, the dashes."""
    machine = s.sl.machine if s is not None else current().machine
    _pr(machine, lines, "\n".join([
        "=" * 77,
        f"BUG {s.name if s is not None else '<unknown>'} ({machine.bugs.tainted()}): "
        f"{message}",
        "-" * 77]))
    _pr(machine, lines, "")   # the "\n\n" after the dashes: an empty line


def slab_fix(s: KmemCache, message: str, lines: list[str]) -> None:
    """``slab_fix()``: ``FIX <cache>: <message>``."""
    _pr(s.sl.machine, lines, f"FIX {s.name}: {message}")


def print_slab_info(slab: SlabInfo, lines: list[str]) -> None:
    """``print_slab_info()``."""
    sl = slab.cache.sl
    fp = sl.slab.freelist[slab.pfn]
    _pr(sl.machine, lines,
        f"Slab 0x{slab.page:016x} objects={slab.objects} used={slab.inuse} "
        f"fp=0x{fp:016x} flags={format_page_flags(sl.page.flags[slab.pfn])}")


def print_section(machine, lines: list[str], text: str, addr: int, length: int) -> None:
    """``print_section()``: ``print_hex_dump(DUMP_PREFIX_ADDRESS, 16, 1, ascii)``."""
    mv, base = machine.space.mv, machine.space.base
    out = []
    for row in range(addr, addr + length, 16):
        data = bytes(mv[row - base:row - base + min(16, addr + length - row)])
        hexpart = " ".join(f"{b:02x}" for b in data)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
        out.append(f"{text}{row:016x}: {hexpart:<49}{asc}")
    _pr(machine, lines, "\n".join(out))


def print_trailer(s: KmemCache, slab: SlabInfo, p: int, lines: list[str]) -> None:
    """``print_trailer()``: slab info, the object's offset and free pointer, bytes."""
    machine = s.sl.machine
    print_slab_info(slab, lines)
    mv, base = machine.space.mv, machine.space.base
    fp = int.from_bytes(mv[p + s.offset - base:p + s.offset - base + 8], "little") \
        if s.offset + 8 <= s.size else 0
    _pr(machine, lines, f"Object 0x{p:016x} @offset={p - slab.base} fp=0x{fp:016x}")
    _pr(machine, lines, "")
    if p > slab.base + 16:
        print_section(machine, lines, "Bytes b4 ", p - 16, 16)
    print_section(machine, lines, "Object   ", p, min(s.object_size, PAGE_SIZE))
    off = s.inuse + POINTER_SIZE if s.offset >= s.inuse else s.inuse   # get_info_end()
    if off != s.size:   # the beginning of the filler is the free pointer
        print_section(machine, lines, "Padding  ", p + off, s.size - off)


def _warn_on(machine, task, frame, lines: list[str], message: str | None = None) -> None:
    """``WARN_ON(1)``/``WARN(1, message)`` at ``frame``, its text kept in ``lines``."""
    if isinstance(task, _BootTask):
        task = None
    text = bug.warn_report(machine, task, frame, message)
    lines.append(text)


def object_err(s: KmemCache, slab: SlabInfo, obj: int, reason: str, task,
               lines: list[str]) -> None:
    """``object_err()``: header, trailer, taint B, ``WARN_ON(1)``."""
    slab_bug(s, reason, lines)
    print_trailer(s, slab, obj, lines)
    s.sl.machine.bugs.add_taint("BAD_PAGE")
    _warn_on(s.sl.machine, task, sys._getframe(), lines)


def __slab_err(slab: SlabInfo, task, lines: list[str]) -> None:
    """``__slab_err()``: slab info, taint B, ``WARN_ON(1)``."""
    machine = slab.cache.sl.machine
    print_slab_info(slab, lines)
    machine.bugs.add_taint("BAD_PAGE")
    _warn_on(machine, task, sys._getframe(), lines)


def slab_err(s: KmemCache, slab: SlabInfo, message: str, task, lines: list[str]) -> None:
    """``slab_err()``: header, then ``__slab_err()``."""
    slab_bug(s, message, lines)
    __slab_err(slab, task, lines)


def list_slab_objects(s: KmemCache, slab: SlabInfo, live: list[int], task,
                      lines: list[str]) -> None:
    """``list_slab_objects()``: the objects still allocated in ``slab`` (capped)."""
    machine = s.sl.machine
    slab_bug(s, "Objects remaining on __kmem_cache_shutdown()", lines)
    shown = live[:LEAK_LIST_MAX]
    text = "\n".join(f"Object 0x{p:016x} @offset={p - slab.base}" for p in shown)
    if len(live) > len(shown):
        text += f"\n({len(live) - len(shown)} more objects in this slab not listed)"
    if text:
        _pr(machine, lines, text)
    __slab_err(slab, task, lines)


def free_large_kmalloc_report(sl: Slab, x: int, task) -> str:
    """``free_large_kmalloc()`` on a page that is no large kmalloc: ``WARN_ON_ONCE`` and
    ``dump_page(page, "Not a kmalloc allocation")``; the page is left alone."""
    machine = sl.machine
    lines: list[str] = []
    frame = sys._getframe()
    if machine.bugs.once(frame):
        _warn_on(machine, task, frame, lines)
    try:
        pfn = sl.memmap.direct_map_pa(x, "kfree") >> PAGE_SHIFT
    except bug.AddressError as exc:   # the kernel would compute a bogus struct page
        _pr(machine, lines, f"kfree: {exc}: Not a kmalloc allocation", KERN_WARNING)
        return "\n".join(lines)
    text = sl.page_alloc.dump_page(pfn, "Not a kmalloc allocation")
    lines.append(text)
    return "\n".join(lines)


def cache_from_obj(sl: Slab, s: KmemCache, x: int, task):
    """``cache_from_obj()`` (``CONFIG_SLAB_FREELIST_HARDENED``): the cache ``x`` really
    belongs to, with a WARN if it is not ``s``; None (and a WARN_ONCE) if ``x`` is in
    no slab."""
    slab = sl.pfn_slab.get((x - sl.page_offset) >> PAGE_SHIFT)
    if slab is None:   # virt_to_cache()
        lines: list[str] = []
        frame = sys._getframe()
        if sl.machine.bugs.once(frame):
            _warn_on(sl.machine, task, frame, lines,
                     "virt_to_cache: Object is not a Slab page!")
        sl.reports.append(SlabReport(FREE_NOT_SLAB, x, s.name, "\n".join(lines)))
        return None, None
    t = slab.cache
    if t is not s:
        lines = []
        _warn_on(sl.machine, task, sys._getframe(), lines,
                 f"cache_from_obj: Wrong slab cache. {s.name} but object is from {t.name}")
        sl.reports.append(SlabReport(FREE_WRONG_CACHE, x, s.name, "\n".join(lines)))
    return t, slab


def kmalloc_fix_flags(flags: int, task) -> int:
    """``kmalloc_fix_flags()``: strip ``GFP_SLAB_BUG_MASK`` bits, say so, dump the stack."""
    invalid = flags & GFP_SLAB_BUG_MASK
    flags &= ~GFP_SLAB_BUG_MASK & 0xFFFFFFFF
    machine = task.machine if not isinstance(task, _BootTask) and task is not None \
        else current().machine
    machine.log.printk(
        f"Unexpected gfp: {_c_hex(invalid)} ({format_flags(invalid, gfpflag_names)}). "
        f"Fixing up to gfp: {_c_hex(flags)} ({format_flags(flags, gfpflag_names)}). "
        "Fix your code!", KERN_WARNING)
    bug.dump_stack(machine, None if isinstance(task, _BootTask) else task,
                   sys._getframe(1), KERN_WARNING)
    return flags


def slab_out_of_memory(s: KmemCache, gfp: int, nid: int, task) -> None:
    """``slab_out_of_memory()`` (rate-limited: 10 per 5 s), unless ``__GFP_NOWARN``."""
    if gfp & _NOWARN:
        return
    sl = s.sl
    machine = sl.machine
    clock = machine.clock
    now = clock.jiffies()
    with sl._oom_lock:
        if len(sl._oom_at) == 10 and (now - sl._oom_at[0]) & clock.mask < 5 * clock.hz:
            return
        sl._oom_at.append(now)
    cpu = task.cpu
    lines = [f"SLUB: Unable to allocate memory on CPU {cpu.id} (of node {cpu.node}) on "
             f"node {nid}, gfp={format_gfp(gfp)}",
             f"  cache: {s.name}, object size: {s.object_size}, buffer size: {s.size}, "
             f"default order: {s.order}, min order: {s.min_order}"]
    with s.lock:
        for node in sl.slab_nodes:
            slabs = [sb for sb in s.slabs.values() if sb.nid == node]
            free = sum(len(sb.free) for sb in s.partial[node].values())
            lines.append(f"  node {node}: slabs: {len(slabs)}, "
                         f"objs: {sum(sb.objects for sb in slabs)}, free: {free}")
    machine.log.printk("\n".join(lines), KERN_WARNING)


# ---------------------------------------------------------------- helpers

def kmalloc_index(size: int) -> int:
    """The ``kmalloc_caches[][]`` index for ``0 < size <= KMALLOC_MAX_CACHE_SIZE``."""
    if size <= 192:
        return kmalloc_size_index[(size - 1) >> 3]
    return (size - 1).bit_length()


def kmalloc_type(flags: int) -> int:
    """``kmalloc_type()``: DMA before RECLAIMABLE before ACCOUNT."""
    if not flags & KMALLOC_NOT_NORMAL_BITS:
        return KMALLOC_NORMAL
    if flags & gfp_t.DMA:
        return KMALLOC_DMA
    if flags & gfp_t.RECLAIMABLE:
        return KMALLOC_RECLAIM
    return KMALLOC_CGROUP


_current = current
_MASK64 = (1 << 64) - 1   # (unsigned long) of a negative pointer int


def _slab():
    return current().machine.slab


# ---------------------------------------------------------------- the API: caches

def kmem_cache_create(name: str, size: int, align: int, flags: int, ctor=None) -> int:
    """``kmem_cache_create(name, size, align, flags, ctor)``.

    :param name: ``const char *`` — copied into kmalloc memory; duplicates are allowed
    :param size: ``unsigned int`` object size
    :param align: ``unsigned int`` minimum alignment (0 or a power of two)
    :param flags: ``slab_flags_t`` (``SLAB_HWCACHE_ALIGN``, ``SLAB_PANIC``, ...)
    :param ctor: ``void (*)(void *)`` — a Python callable taking the object address,
        called for every object when a new slab is populated; or None
    :return: ``struct kmem_cache *``, or 0 on failure (``SLAB_PANIC``: panic instead)
    """
    task = _current()
    sl = task.machine.slab
    if task.preempt_count or task.irqs_off:
        sched.might_sleep()   # mutex_lock(&slab_mutex)
    if not isinstance(size, int) or not isinstance(align, int) or not isinstance(flags, int):
        raise TypeError("kmem_cache_create(name, size, align, flags, ctor): size, align "
                        "and flags are ints")
    if align < 0 or align & (align - 1):
        raise ValueError(f"kmem_cache_create({name!r}): align {align} is not a power of two")
    err = 0
    if not isinstance(name, str) or not name or sched.in_interrupt() or \
            not 0 < size <= KMALLOC_MAX_SIZE:
        task.machine.log.printk(f"kmem_cache_create({name}) integrity check failed",
                                KERN_ERR)
        err = -22   # -EINVAL
    elif flags & ~SLAB_FLAGS_PERMITTED:
        err = -22
    if not err:
        with sl.mutex:
            s = KmemCache(sl, name, size, align, flags, ctor)
            if sl._publish_new(s, task, gfp_t.KERNEL):
                return s.addr
        err = -12   # -ENOMEM
    if flags & SLAB_PANIC:
        bug.panic(f"__kmem_cache_create_args: Failed to create slab '{name}'. Error {err}")
    task.machine.log.printk(f"__kmem_cache_create_args({name}) failed with error {err}",
                            KERN_WARNING)
    bug.dump_stack(task.machine, task, sys._getframe(1), KERN_WARNING)
    return 0


def kmem_cache_destroy(s: int) -> None:
    """``kmem_cache_destroy(struct kmem_cache *s)``: NULL is a no-op.

    Flushes the per-CPU arrays and frees the empty slabs; if objects remain, prints
    SLUB's "Objects remaining" report per slab and the "Slab cache still has objects"
    WARN, and the cache stays alive (as in the kernel).
    """
    if not s:
        return
    task = _current()
    sl = task.machine.slab
    if task.preempt_count or task.irqs_off:
        sched.might_sleep()
    with sl.mutex:
        cache = sl.cache_of(s, "kmem_cache_destroy")
        if cache is sl.kmem_cache or cache.flags & SLAB_KMALLOC:
            raise bug.AddressError(f"kmem_cache_destroy({s:#x}): {cache.name} is a boot "
                                   "cache of the slab allocator")
        st = cache.struct
        st.refcount -= 1
        if st.refcount:
            return
        cache.shrink(task)   # __kmem_cache_shutdown(): flush_all(), free_partial()
        if cache.slabs:
            lines: list[str] = []
            with cache.lock:
                slabs = sorted(cache.slabs.values(), key=lambda sb: sb.page)
                live = sorted(cache.live)
            for slab in slabs:
                end = slab.base + slab.objects * cache.size
                list_slab_objects(cache, slab, [p for p in live if slab.base <= p < end],
                                  task, lines)
            caller = sys._getframe(1)
            _warn_on(task.machine, task, sys._getframe(), lines,
                     f"kmem_cache_destroy {cache.name}: Slab cache still has objects when "
                     f"called from {bug.symbol(caller)}")
            text = "\n".join(lines)
            task.machine.warnings.append(text)
            sl.reports.append(SlabReport("leak", s, cache.name, text))
            return   # the cache stays, with refcount 0, as in the kernel
        del sl.caches[s]
        sl.slab_caches.remove(cache)
        name = st.name
    kfree(name)
    kmem_cache_free(sl.kmem_cache.addr, s)


def kmem_cache_shrink(cachep: int) -> int:
    """``kmem_cache_shrink(s)``: flush the per-CPU arrays, free empty slabs; 0."""
    task = _current()
    task.machine.slab.cache_of(cachep, "kmem_cache_shrink").shrink(task)
    return 0


def kmem_cache_size(cachep: int) -> int:
    """``kmem_cache_size(s)``: ``s->object_size``."""
    return _slab().cache_of(cachep, "kmem_cache_size").object_size


# ---------------------------------------------------------------- the API: objects

def kmem_cache_alloc_node_noprof(cachep: int, flags: int, node: int) -> int:
    """``kmem_cache_alloc_node(s, gfpflags, node)``: ``void *`` or 0."""
    task = _current()
    s = task.machine.slab.caches.get(cachep)
    if s is None:
        s = task.machine.slab.cache_of(cachep, "kmem_cache_alloc")
    return s.slab_alloc(flags, node, s.object_size, task)


kmem_cache_alloc_node = alloc_hooks(kmem_cache_alloc_node_noprof)


def kmem_cache_alloc_noprof(cachep: int, flags: int) -> int:
    """``kmem_cache_alloc(s, gfpflags)``: ``void *`` or 0 (NULL)."""
    task = _current()
    s = task.machine.slab.caches.get(cachep)
    if s is None:
        s = task.machine.slab.cache_of(cachep, "kmem_cache_alloc")
    return s.slab_alloc(flags, NUMA_NO_NODE, s.object_size, task)


kmem_cache_alloc = alloc_hooks(kmem_cache_alloc_noprof)


def kmem_cache_zalloc_noprof(cachep: int, flags: int) -> int:
    """``kmem_cache_zalloc(s, flags)``: ``kmem_cache_alloc`` with ``__GFP_ZERO``."""
    return kmem_cache_alloc_noprof(cachep, flags | _ZERO)


kmem_cache_zalloc = alloc_hooks(kmem_cache_zalloc_noprof)


def kmem_cache_free(s: int, x: int) -> None:
    """``kmem_cache_free(struct kmem_cache *s, void *x)``.

    An object of another cache is freed to its own cache after the kernel's "Wrong
    slab cache" WARN; a pointer into no slab is ignored after a WARN_ONCE.
    """
    task = _current()
    sl = task.machine.slab
    cache = sl.caches.get(s)
    if cache is None:
        cache = sl.cache_of(s, "kmem_cache_free")
    slab = sl.pfn_slab.get((x - sl.page_offset) >> PAGE_SHIFT)
    if slab is None or slab.cache is not cache:
        cache, slab = cache_from_obj(sl, cache, x, task)
        if cache is None:
            return
    cache.slab_free(x, slab, task)


def kmalloc_noprof(size: int, flags: int) -> int:
    """``kmalloc(size, flags)``: ``void *``, ``ZERO_SIZE_PTR`` for 0, or 0 (NULL)."""
    task = _current()
    return task.machine.slab.kmalloc(size, flags, NUMA_NO_NODE, task)


kmalloc = alloc_hooks(kmalloc_noprof)


def kmalloc_node_noprof(size: int, flags: int, node: int) -> int:
    """``kmalloc_node(size, flags, node)``: memory on ``node`` (``NUMA_NO_NODE``: any)."""
    task = _current()
    return task.machine.slab.kmalloc(size, flags, node, task)


kmalloc_node = alloc_hooks(kmalloc_node_noprof)


def kzalloc_noprof(size: int, flags: int) -> int:
    """``kzalloc(size, flags)``: zeroed ``kmalloc``."""
    task = _current()
    return task.machine.slab.kmalloc(size, flags | _ZERO, NUMA_NO_NODE, task)


kzalloc = alloc_hooks(kzalloc_noprof)


def kzalloc_node_noprof(size: int, flags: int, node: int) -> int:
    """``kzalloc_node(size, flags, node)``."""
    task = _current()
    return task.machine.slab.kmalloc(size, flags | _ZERO, node, task)


kzalloc_node = alloc_hooks(kzalloc_node_noprof)


def kmalloc_array_node_noprof(n: int, size: int, flags: int, node: int) -> int:
    """``kmalloc_array_node(n, size, flags, node)``: NULL if ``n * size`` overflows
    ``size_t``."""
    task = _current()
    bytes_ = n * size
    if bytes_ > task.machine.SIZE_MAX or n < 0 or size < 0:   # check_mul_overflow()
        return 0
    return task.machine.slab.kmalloc(bytes_, flags, node, task)


kmalloc_array_node = alloc_hooks(kmalloc_array_node_noprof)


def kmalloc_array_noprof(n: int, size: int, flags: int) -> int:
    """``kmalloc_array(n, size, flags)``."""
    return kmalloc_array_node_noprof(n, size, flags, NUMA_NO_NODE)


kmalloc_array = alloc_hooks(kmalloc_array_noprof)


def kcalloc_noprof(n: int, size: int, flags: int) -> int:
    """``kcalloc(n, size, flags)``: zeroed ``kmalloc_array``."""
    return kmalloc_array_node_noprof(n, size, flags | _ZERO, NUMA_NO_NODE)


kcalloc = alloc_hooks(kcalloc_noprof)


def kcalloc_node_noprof(n: int, size: int, flags: int, node: int) -> int:
    """``kcalloc_node(n, size, flags, node)``."""
    return kmalloc_array_node_noprof(n, size, flags | _ZERO, node)


kcalloc_node = alloc_hooks(kcalloc_node_noprof)


def kfree(objp: int) -> None:
    """``kfree(const void *objp)``: NULL and ``ZERO_SIZE_PTR`` are ignored; a pointer
    that is no kmalloc/slab object is reported and ignored. A negative int is the
    same pointer as its two's complement (an ``ERR_PTR``), which is no such object."""
    if objp <= ZERO_SIZE_PTR:
        if objp >= 0:
            return
        objp &= _MASK64
    task = _current()
    sl = task.machine.slab
    slab = sl.pfn_slab.get((objp - sl.page_offset) >> PAGE_SHIFT)
    if slab is not None:
        slab.cache.slab_free(objp, slab, task)
    else:
        sl.free_large_kmalloc(objp, task)


def kfree_sensitive(objp: int) -> None:
    """``kfree_sensitive(p)``: zero all ``ksize(p)`` bytes, then ``kfree``."""
    ks = ksize(objp)
    if ks:
        sl = _slab()
        sl._zero_obj(objp, ks)
    kfree(objp)


def ksize(objp: int) -> int:
    """``ksize(objp)``: the full size of the allocation (0 for NULL/``ZERO_SIZE_PTR``)."""
    if objp <= ZERO_SIZE_PTR:
        return 0
    return _slab().ksize(objp)


def kmalloc_size_roundup(size: int) -> int:
    """``kmalloc_size_roundup(size)``: what ``kmalloc(size)`` really gives."""
    if 0 < size <= KMALLOC_MAX_CACHE_SIZE:
        return _KMALLOC_INFO[kmalloc_index(size)][1]
    if 0 < size <= KMALLOC_MAX_SIZE:
        return PAGE_SIZE << get_order(size)
    return size


def krealloc_node_align_noprof(p: int, new_size: int, align: int, flags: int,
                               nid: int) -> int:
    """``krealloc_node_align(p, new_size, align, flags, nid)``.

    Grows or shrinks ``p`` in place when ``new_size`` still fits its bucket, else
    allocates anew, copies the old requested size and frees ``p``. ``new_size`` 0 frees
    ``p`` and returns ``ZERO_SIZE_PTR``; ``p`` NULL is ``kmalloc``.
    """
    if not new_size:
        kfree(p)
        return ZERO_SIZE_PTR
    ret = _do_krealloc(p, new_size, align, flags, nid)
    if ret and p != ret:
        kfree(p)
    return ret


def _do_krealloc(p: int, new_size: int, align: int, flags: int, nid: int) -> int:
    task = _current()
    sl = task.machine.slab
    ks = orig = 0
    if p > ZERO_SIZE_PTR:
        if p % max(align, 1) or new_size < align:
            return 0
        slab = sl.pfn_slab.get((p - sl.page_offset) >> PAGE_SHIFT)
        if slab is not None:
            s = slab.cache
            orig = s.live.get(p, -1)
            ks = s.object_size
        else:
            ent = sl.large.get(p)
            s = None
            orig = ent[2] if ent is not None else -1
            ks = PAGE_SIZE << ent[1] if ent is not None else 0
        if orig < 0:   # no live allocation at p: report it as kfree would
            sl.bad_free(s, p, task)
            return 0
        same_node = not (flags & _THISNODE and nid != NUMA_NO_NODE and
                         sl.memmap.nid((p - sl.page_offset) >> PAGE_SHIFT) != nid)
        if new_size <= ks and same_node:
            if flags & _ZERO:   # want_init_on_alloc()
                if orig < new_size:
                    sl._zero_obj(p + orig, new_size - orig)
                else:
                    sl._zero_obj(p + new_size, ks - new_size)
            if s is not None:
                s.live[p] = new_size
                if s.kasan is not None:   # kasan_krealloc(): the new size is usable
                    s.kasan.kmalloc_redzone(s, p, new_size)
            else:
                sl.large[p][2] = new_size
                if sl.machine.kasan.enabled:
                    sl.machine.kasan.kmalloc_large(p, new_size, ks)
            return p
    ret = sl.kmalloc(new_size, flags, nid, task)
    if ret and p > ZERO_SIZE_PTR:
        n = orig or ks
        mv, base = sl.space.mv, sl.space.base
        mv[ret - base:ret - base + n] = mv[p - base:p - base + n]
    return ret


def krealloc_noprof(p: int, new_size: int, flags: int) -> int:
    """``krealloc(p, new_size, flags)``."""
    return krealloc_node_align_noprof(p, new_size, 1, flags, NUMA_NO_NODE)


krealloc = alloc_hooks(krealloc_noprof)


def virt_to_cache(obj: int) -> int:
    """``virt_to_cache(obj)``: the ``struct kmem_cache *`` of the slab holding ``obj``
    (read from its head ``struct page``), or 0 if it is in no slab."""
    sl = _slab()
    mm = sl.memmap
    pfn = mm.direct_map_pa(obj, "virt_to_cache") >> PAGE_SHIFT
    pfn = mm.compound_head(pfn)
    if mm.page_type(pfn) != PGTY_slab:
        return 0
    return sl.slab.slab_cache[pfn]
