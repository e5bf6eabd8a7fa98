"""Emulation of mm/util.c: what lies at an address (``mem_dump_obj()``), and the kv*
family (``kvmalloc`` and friends: mm/slub.c since 6.12, mm/util.c before).

:func:`locate` is the one answer to "what is at this address" on a machine: a slab
object (of which cache, where it starts, allocated, free or quarantined), a large
kmalloc, a vmalloc area, a page of the direct map, or a ``struct page``. The KASAN
report, :func:`mem_dump_obj` and ``mempool.describe()`` all read it.

kvmalloc tries kmalloc first (quietly, without direct reclaim above a page) and falls
back to vmalloc; :func:`kvfree` frees either. The ``_noprof`` functions call only
``_noprof`` allocators, so that profiling charges the caller of the public name.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from . import access, bug
from .alloc_tag import alloc_hooks, return_address
from .current import current
from .gfp import __GFP_DIRECT_RECLAIM, __GFP_NOFAIL, __GFP_NOWARN, __GFP_RETRY_MAYFAIL, __GFP_ZERO
from .mmzone import NUMA_NO_NODE
from .page_types import PAGE_SHIFT, PAGE_SIZE
from .printk import KERN_INFO
from .slab import ZERO_SIZE_PTR, kfree, kmalloc_node_noprof, krealloc_noprof, ksize
from .vmalloc import (INT_MAX, PAGE_KERNEL, VM_ALLOW_HUGE_VMAP, check_node, check_size,
                      is_vmalloc_addr, vfree, vrealloc_noprof)

__all__ = [
    "kmalloc_gfp_adjust", "kvmalloc", "kvmalloc_noprof", "kvzalloc", "kvzalloc_noprof",
    "kvmalloc_node", "kvmalloc_node_noprof", "kvzalloc_node", "kvzalloc_node_noprof",
    "kvmalloc_array", "kvmalloc_array_noprof", "kvcalloc", "kvcalloc_noprof", "kvrealloc",
    "kvrealloc_noprof", "kvfree", "kvfree_sensitive", "mem_dump_obj",
]


# ---------------------------------------------------------------- what is at an address

@dataclasses.dataclass
class MemObj:
    """What :func:`locate` found at ``addr``.

    ``kind``: ``slab`` (``cache``, ``slab``, ``start`` of the object, ``state``
    allocated/free/quarantined, ``requested`` bytes), ``large_kmalloc`` (``start``,
    ``order``, ``requested``), ``vmalloc`` (``area``, or None for unallocated vmalloc
    space), ``page`` (a direct-map page), ``struct page`` (the ``struct page`` of
    ``pfn``), or None (nothing of this machine's allocators). ``pfn`` is the page
    ``addr`` lies in, when it lies in one (for a vmalloc address, the one mapped there).
    """
    addr: int
    kind: str | None = None
    start: int = 0
    cache: Any = None
    slab: Any = None
    state: str = ""
    requested: int = 0
    order: int = 0
    area: Any = None
    pfn: int | None = None


def locate(machine, addr: int) -> MemObj:
    """What ``addr`` is on ``machine`` (see :class:`MemObj`)."""
    memmap, sl, vm = machine.memmap, machine.slab, machine.vmalloc
    if memmap.start <= addr < memmap.end:
        return MemObj(addr, "struct page", pfn=memmap.pfn_of(addr))
    slab = sl.slab_of(addr)
    if slab is not None:
        start = sl.object_start(addr)
        return MemObj(addr, "slab", start=start, cache=slab.cache, slab=slab,
                      state=_object_state(machine, slab.cache, start),
                      requested=slab.cache.live.get(start, 0),
                      pfn=(addr - memmap.page_offset) >> PAGE_SHIFT)
    for start, (pfn, order, size) in list(sl.large.items()):
        if start <= addr < start + (PAGE_SIZE << order):
            return MemObj(addr, "large_kmalloc", start=start, order=order, requested=size,
                          pfn=pfn, state="allocated")
    if vm.VMALLOC_START <= addr < vm.VMALLOC_END:
        area = vm.find_vmap_area(addr)
        pfn = int(vm.region.ptes[(addr - vm.VMALLOC_START) >> PAGE_SHIFT])
        return MemObj(addr, "vmalloc", start=area.addr if area else 0, area=area,
                      pfn=pfn if pfn >= 0 else None)
    if memmap.page_offset <= addr < memmap.lowmem_virt(memmap.max_low_pfn):
        pfn = (addr - memmap.page_offset) >> PAGE_SHIFT
        if memmap.pfn_valid(pfn):
            return MemObj(addr, "page", pfn=pfn,
                          state="allocated" if memmap.page._refcount[pfn] else "free")
    return MemObj(addr)


def _object_state(machine, cache, obj: int) -> str:
    if obj in cache.live:
        return "allocated"
    kasan = machine.kasan
    if kasan.enabled and any(o == obj for _, o in list(kasan.quarantine)):
        return "quarantined"
    return "free"


def describe_obj(machine, addr: int) -> str:
    """One line saying what ``addr`` is, in more detail than the kernel's
    :func:`mem_dump_obj` (object state, the size a kmalloc caller asked for)."""
    o = locate(machine, addr)
    if o.kind == "struct page":
        return f"struct page of pfn {o.pfn:#x}, refcount {machine.memmap.page._refcount[o.pfn]}"
    if o.kind == "slab":
        where = "" if o.start == addr else f" ({addr - o.start} bytes into it)"
        state = {"allocated": f"allocated, {o.requested} bytes asked for",
                 "quarantined": "freed, in the KASAN quarantine"}.get(o.state, o.state)
        return f"object {o.start:#x} of cache {o.cache.name}{where}: {state}"
    if o.kind == "large_kmalloc":
        return (f"large kmalloc of {o.requested} bytes at {o.start:#x} (order {o.order}): "
                "allocated")
    if o.kind == "vmalloc":
        area = o.area
        return (f"vmalloc area [{area.addr:#x}, {area.addr + area.size:#x})" if area
                else "unallocated vmalloc space")
    if o.kind == "page":
        return f"direct-map page pfn {o.pfn:#x}: {o.state}"
    return "not memory of this machine's allocators"


def mem_dump_obj(object: int) -> str:  # noqa: A002 - the kernel's name
    """``mem_dump_obj(object)``: print (``pr_cont``, after the caller's own text) and
    return what ``object`` is, in the kernel's words (``kmem_dump_obj()``,
    ``vmalloc_dump_obj()``, or the kind of memory)."""
    machine = current().machine
    o = locate(machine, object)
    if o.kind == "slab":
        text = (f" slab {o.cache.name} start {o.start:016x} pointer offset "
                f"{object - o.start} size {o.cache.object_size}")
    elif o.kind == "vmalloc" and o.area is not None:
        text = (f" {o.area.nr_pages}-page vmalloc region starting at {o.area.addr:#x} "
                f"allocated at {o.area.caller}")
    elif o.kind == "vmalloc":
        text = " vmalloc memory"
    elif o.kind in ("page", "large_kmalloc"):
        text = " non-slab/vmalloc memory"
    elif not object:
        text = " NULL pointer"
    elif object == ZERO_SIZE_PTR:
        text = " zero-size pointer"
    else:
        text = " non-paged memory"
    machine.log.printk(text, KERN_INFO)
    return text


# ---------------------------------------------------------------- kvmalloc

def kmalloc_gfp_adjust(flags: int, size: int) -> int:
    """``kmalloc_gfp_adjust()``: the kmalloc attempt of kvmalloc above one page is
    quiet, takes no direct reclaim unless ``__GFP_RETRY_MAYFAIL``, and never NOFAIL
    (6.15+; older kernels used ``__GFP_NORETRY`` instead of dropping reclaim)."""
    if size > PAGE_SIZE:
        flags |= __GFP_NOWARN
        if not flags & __GFP_RETRY_MAYFAIL:
            flags &= ~__GFP_DIRECT_RECLAIM
        flags &= ~__GFP_NOFAIL
    return flags


def _kvmalloc_node(size: int, flags: int, node: int, frame) -> int:
    """``__kvmalloc_node_noprof()``; ``frame`` is the caller named by the vm area."""
    ret = kmalloc_node_noprof(size, kmalloc_gfp_adjust(flags, size), node)
    if ret or size <= PAGE_SIZE:
        return ret
    if size > INT_MAX:
        bug.WARN_ON_ONCE(not flags & __GFP_NOWARN)
        return 0
    vm = current().machine.vmalloc
    huge = VM_ALLOW_HUGE_VMAP if flags & __GFP_DIRECT_RECLAIM else 0
    return vm.vmalloc_node_range(size, 1, vm.VMALLOC_START, vm.VMALLOC_END, flags,
                                 PAGE_KERNEL, huge, node, frame)


def kvmalloc_node_noprof(size: int, flags: int, node: int) -> int:
    """``kvmalloc_node(size, flags, node)``: kmalloc, or vmalloc if that fails.

    The kmalloc attempt uses :func:`kmalloc_gfp_adjust`; requests of one page or less
    never fall back. Non-blocking flags may fall back too (6.19+: vmalloc supports
    them). :return: ``void *`` (free with :func:`kvfree`), or 0
    """
    check_size(size, "kvmalloc_node")
    check_node(node, "kvmalloc_node")
    return _kvmalloc_node(size, flags, node, return_address(1))


kvmalloc_node = alloc_hooks(kvmalloc_node_noprof)


def kvmalloc_noprof(size: int, flags: int) -> int:
    """``kvmalloc(size, flags)``: :func:`kvmalloc_node` on any node."""
    check_size(size, "kvmalloc")
    return _kvmalloc_node(size, flags, NUMA_NO_NODE, return_address(1))


kvmalloc = alloc_hooks(kvmalloc_noprof)


def kvzalloc_noprof(size: int, flags: int) -> int:
    """``kvzalloc(size, flags)``: zeroed :func:`kvmalloc`."""
    check_size(size, "kvzalloc")
    return _kvmalloc_node(size, flags | __GFP_ZERO, NUMA_NO_NODE, return_address(1))


kvzalloc = alloc_hooks(kvzalloc_noprof)


def kvzalloc_node_noprof(size: int, flags: int, node: int) -> int:
    """``kvzalloc_node(size, flags, node)``: zeroed :func:`kvmalloc_node`."""
    check_size(size, "kvzalloc_node")
    check_node(node, "kvzalloc_node")
    return _kvmalloc_node(size, flags | __GFP_ZERO, node, return_address(1))


kvzalloc_node = alloc_hooks(kvzalloc_node_noprof)


def _array_bytes(n: int, size: int, what: str) -> int | None:
    """``n * size``, or None when it overflows the machine's ``size_t``
    (``check_mul_overflow()``)."""
    check_size(n, what)
    check_size(size, what)
    total = n * size
    return None if total > current().machine.SIZE_MAX else total


def kvmalloc_array_noprof(n: int, size: int, flags: int) -> int:
    """``kvmalloc_array(n, size, flags)``: 0 if ``n * size`` overflows ``size_t``."""
    total = _array_bytes(n, size, "kvmalloc_array")
    if total is None:
        return 0
    return _kvmalloc_node(total, flags, NUMA_NO_NODE, return_address(1))


kvmalloc_array = alloc_hooks(kvmalloc_array_noprof)


def kvcalloc_noprof(n: int, size: int, flags: int) -> int:
    """``kvcalloc(n, size, flags)``: zeroed :func:`kvmalloc_array`."""
    total = _array_bytes(n, size, "kvcalloc")
    if total is None:
        return 0
    return _kvmalloc_node(total, flags | __GFP_ZERO, NUMA_NO_NODE, return_address(1))


kvcalloc = alloc_hooks(kvcalloc_noprof)


def kvfree(addr: int) -> None:
    """``kvfree(addr)``: :func:`vfree` for a vmalloc address, ``kfree`` otherwise."""
    if is_vmalloc_addr(addr):
        vfree(addr)
    else:
        kfree(addr)


def kvfree_sensitive(addr: int, len: int) -> None:  # noqa: A002 - the kernel's name
    """``kvfree_sensitive(addr, len)``: clear ``len`` bytes, then :func:`kvfree`."""
    if addr > ZERO_SIZE_PTR:   # !ZERO_OR_NULL_PTR(addr)
        access.memset(addr, 0, len)
        kvfree(addr)


def kvrealloc_noprof(p: int, size: int, flags: int) -> int:
    """``kvrealloc(p, size, flags)``: ``vrealloc`` for a vmalloc address, else
    ``krealloc`` and, if that fails, :func:`kvmalloc` plus a copy of ``ksize(p)``."""
    check_size(size, "kvrealloc")
    if p and is_vmalloc_addr(p):
        return vrealloc_noprof(p, size, flags)
    n = krealloc_noprof(p, size, kmalloc_gfp_adjust(flags, size))
    if not n:
        n = _kvmalloc_node(size, flags, NUMA_NO_NODE, return_address(1))
        if not n:
            return 0
        if p:
            access.memcpy(n, p, ksize(p))
            kfree(p)
    return n


kvrealloc = alloc_hooks(kvrealloc_noprof)
