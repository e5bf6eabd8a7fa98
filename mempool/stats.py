"""Observability of memory pools: per-pool counters and a one-call description of any
element address. Not part of mm/mempool.c (the kernel has no such counters); the port
in :mod:`mempool._mempool` reports into it at the points named below.
"""
from __future__ import annotations

import random
import threading
import weakref

from hwemu import sched
from hwemu.access import load
from hwemu.page import I_REFCOUNT
from hwemu.vmem import PAGE_SHIFT, PAGE_SIZE

# Counters, in the order they are shown.
COUNTERS = (
    "preallocated",        # elements allocated to fill the reserve (init, resize)
    "alloc_allocator",     # mempool_alloc*(): element from alloc_fn
    "alloc_reserve",       # mempool_alloc*(): element from the reserve
    "alloc_null",          # mempool_alloc*(): NULL returned
    "waits",               # sleeps on pool->wait
    "wait_ns",             # total emulated time slept there
    "max_wait_ns",
    "free_reserve",        # mempool_free*(): element kept in the reserve
    "free_allocator",      # mempool_free(): element handed to free_fn
    "kasan_dropped",       # element rejected by KASAN on its way into the reserve
)
# Sleeps kept for percentiles: a uniform sample (reservoir) once there are more.
WAIT_SAMPLES = 10_000


class PoolStats:
    """The counters of one pool."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTERS, 0)
        self._waits: list[int] = []
        self._rng = random.Random(0)
        self._lowest: int | None = None   # curr_nr after a reserve allocation

    def reserve_left(self, curr_nr: int) -> None:
        """An allocation from the reserve left ``curr_nr`` elements in it."""
        with self._lock:
            if self._lowest is None or curr_nr < self._lowest:
                self._lowest = curr_nr

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def wait(self, ns: int) -> None:
        """One sleep on pool->wait that lasted ``ns`` of emulated time."""
        with self._lock:
            values = self._values
            values["waits"] += 1
            values["wait_ns"] += ns
            values["max_wait_ns"] = max(values["max_wait_ns"], ns)
            if len(self._waits) < WAIT_SAMPLES:
                self._waits.append(ns)
            elif (slot := self._rng.randrange(values["waits"])) < WAIT_SAMPLES:
                self._waits[slot] = ns

    def snapshot(self) -> dict:
        """The counters, and ``lowest_fill``: the fewest elements a reserve allocation
        left in the reserve (None if the reserve was never used)."""
        with self._lock:
            return dict(self._values, lowest_fill=self._lowest)

    def wait_percentile(self, p: float) -> int:
        """The ``p``-th percentile (0..100) of the sleeps, in ns; 0 without any."""
        with self._lock:
            waits = sorted(self._waits)
        return waits[min(len(waits) - 1, int(len(waits) * p / 100))] if waits else 0


# id(machine) -> {struct mempool * -> PoolStats}; dropped with the machine.
_POOLS: dict[int, dict[int, PoolStats]] = {}
_POOLS_LOCK = threading.Lock()


def _pools() -> dict[int, PoolStats]:
    machine = sched.current().machine
    pools = _POOLS.get(id(machine))
    if pools is None:
        with _POOLS_LOCK:
            pools = _POOLS.get(id(machine))
            if pools is None:
                pools = _POOLS[id(machine)] = {}
                weakref.finalize(machine, _POOLS.pop, id(machine), None)
    return pools


def stats_of(pool: int) -> PoolStats:
    """The counters of ``pool`` (created on first use)."""
    pools = _pools()
    stats = pools.get(pool)
    if stats is None:
        with _POOLS_LOCK:
            stats = pools.setdefault(pool, PoolStats())
    return stats


def forget(pool: int) -> None:
    """``pool`` was exited: its address may be reused by another pool."""
    _pools().pop(pool, None)


def mempool_stats(pool: int) -> dict[str, int]:
    """The counters of ``struct mempool *pool`` (see :data:`COUNTERS`), ``lowest_fill``
    and ``p99_wait_ns``: the 99th percentile of its sleeps."""
    stats = stats_of(pool)
    return stats.snapshot() | {"p99_wait_ns": stats.wait_percentile(99)}


def describe(addr: int) -> str:
    """What ``addr`` is: an element in some pool's reserve, a slab object (allocated,
    free or quarantined), a large kmalloc, a page, or a vmalloc area."""
    from ._mempool import F   # the port reports into this module
    machine = sched.current().machine
    for pool in list(_pools()):
        curr_nr, elements = load(pool + F["curr_nr"], 4), load(pool + F["elements"], 8)
        for i in range(curr_nr if elements else 0):
            if load(elements + 8 * i, 8) == addr:
                return (f"{addr:#x}: element in the reserve of pool {pool:#x} "
                        f"(slot {i} of {curr_nr})")
    return f"{addr:#x}: {_memory_state(machine, addr)}"


def _memory_state(machine, addr: int) -> str:
    memmap, sl = machine.memmap, machine.slab
    if memmap.start <= addr < memmap.end:
        pfn = memmap.page_to_pfn(addr)
        refcount = machine.page_alloc.ints[pfn * 16 + I_REFCOUNT]
        return f"struct page of pfn {pfn:#x}, refcount {refcount}"
    slab = sl.slab_of(addr)
    if slab is not None:
        obj = sl.object_start(addr)
        cache = slab.cache
        where = "" if obj == addr else f" ({addr - obj} bytes into it)"
        if obj in cache.live:
            state = f"allocated, {cache.live[obj]} bytes asked for"
        elif machine.kasan.enabled and any(o == obj for _, o in list(machine.kasan.quarantine)):
            state = "freed, in the KASAN quarantine"
        else:
            state = "free"
        return f"object {obj:#x} of cache {cache.name}{where}: {state}"
    for start, (pfn, order, size) in list(sl.large.items()):
        if start <= addr < start + (PAGE_SIZE << order):
            return f"large kmalloc of {size} bytes at {start:#x} (order {order}): allocated"
    vm = machine.vmalloc
    if vm.VMALLOC_START <= addr < vm.VMALLOC_END:
        area = vm.find_vmap_area(addr)
        return (f"vmalloc area [{area.addr:#x}, {area.addr + area.size:#x})"
                if area else "unallocated vmalloc space")
    pa = memmap.page_offset
    if pa <= addr < memmap.lowmem_virt(memmap.max_low_pfn):
        pfn = (addr - pa) >> PAGE_SHIFT
        refcount = machine.page_alloc.ints[pfn * 16 + I_REFCOUNT]
        return f"direct-map page pfn {pfn:#x}: {'allocated' if refcount else 'free'}"
    return "not memory of this machine's allocators"
