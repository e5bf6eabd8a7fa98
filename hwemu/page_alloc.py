"""Emulation of mm/page_alloc.c: the buddy page allocator.

Each zone keeps ``free_area[order]`` lists of free blocks (orders 0..MAX_PAGE_ORDER);
free block heads are marked in their ``struct page`` as the kernel does (``page_type``
buddy, ``private`` = order, ``_refcount`` 0), so a page's state is read from its struct
page and the lists only index it. Allocation walks a zonelist (nodes by distance, then
zones from the highest the gfp mask allows down), checks the zone's watermarks with
the kernel's reserve rules, and splits blocks; freeing merges buddies back.

Order-0 pages go through per-CPU lists (``per_cpu_pageset``), each with its own lock as
in 6.x. Max-order blocks are handed to the free lists on first need, a section at a
time (``CONFIG_DEFERRED_STRUCT_PAGE_INIT``), and a free max-order block gives its RAM
back to the host (hole punch) once more than ``PUNCH_SLACK`` of them sit free.

Reclaim and the OOM killer plug in through :attr:`PageAlloc.reclaimers` (mm/vmscan.c
and mm/oom_kill.c arrive with them). Not emulated: migratetypes and pageblocks,
compaction, CMA, memory cgroups, page_owner.
"""
from __future__ import annotations

import collections
import sys
import threading

import numpy as np

from . import bug, sched, vmem
from .access import memset
from .alloc_tag import alloc_hooks
from .current import current
from .gfp import __GFP_HIGHMEM, __GFP_ZERO, format_gfp, gfp_t, gfp_zone
from .highmem import kmap_local_page, kunmap_local
from .kasan_shadow import KASAN_PAGE_FREE
from .mmzone import (MAX_NR_ZONES, MAX_NUMNODES, MAX_PAGE_ORDER, NR_PAGE_ORDERS, NUMA_NO_NODE,
                     WMARK_HIGH, WMARK_LOW, WMARK_MIN, ZONE_HIGHMEM, ZONE_MOVABLE, ZONE_NAMES,
                     ZONE_NORMAL)
from .page import (NO_PAGE_TYPE, NODES_MASK, NODES_PGSHIFT, PAGE_FLAGS_CHECK_AT_FREE, PAGE_LRU,
                   PAGE_TYPE, PAGE_TYPE_NAMES, PFN_SECTION_SHIFT, STRUCT_PAGE_SHIFT,
                   STRUCT_PAGE_SIZE, ZONES_MASK, ZONES_PGSHIFT, PG_head, PG_reserved, PGTY_buddy,
                   format_page_flags, format_page_head, page_type_of, virt_to_page)
from .page_types import PAGE_SHIFT, PAGE_SIZE
from .printk import KERN_ALERT, KERN_WARNING, RateLimit

__all__ = ["PageAlloc", "MAX_PAGE_ORDER", "PAGE_ALLOC_COSTLY_ORDER", "__alloc_pages",
           "alloc_pages", "alloc_pages_node", "alloc_page", "__free_pages", "__free_page",
           "__get_free_pages", "__get_free_page", "get_zeroed_page", "free_pages",
           "free_page", "get_page", "put_page", "nr_free_pages", "__alloc_pages_noprof",
           "alloc_pages_noprof", "alloc_pages_node_noprof", "alloc_page_noprof",
           "__get_free_pages_noprof", "__get_free_page_noprof", "get_zeroed_page_noprof"]

PAGE_ALLOC_COSTLY_ORDER = 3
MAX_RECLAIM_RETRIES = 16
SWAP_CLUSTER_MAX = 32
MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER

# mm/internal.h alloc_flags
ALLOC_WMARK_MIN, ALLOC_WMARK_LOW, ALLOC_WMARK_HIGH = WMARK_MIN, WMARK_LOW, WMARK_HIGH
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20   # == __GFP_HIGH
ALLOC_CPUSET = 0x40
ALLOC_HIGHATOMIC = 0x200
ALLOC_KSWAPD = 0x800       # == __GFP_KSWAPD_RECLAIM
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

_EVENT_ZONE = ("dma", "dma32", "normal", "high", "movable")  # zone part of event names

# The gfp bits that choose the zones (and so key the cached allocation context), and
# the ones post_alloc_hook() has work for.
_CONTEXT_BITS = gfp_t.ZONEMASK | gfp_t.THISNODE
_PREP_BITS = gfp_t.ZERO | gfp_t.COMP

# page_type: the top byte of the _mapcount word; -1 means "no type".
PAGE_TYPE_BUDDY = PAGE_TYPE(PGTY_buddy)

_CHECK_ORDER0 = PAGE_FLAGS_CHECK_AT_FREE | 1 << PG_head  # a plain page may not have these

LOW_RESERVED = 1 << 20       # x86 always reserves the first 1 MiB of RAM
PUNCH_SLACK = 32             # free max-order blocks a zone keeps before punching holes
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0, 0)


class PageAlloc:
    """The buddy allocator of one machine (``machine.page_alloc``)."""

    def __init__(self, machine, vm):
        """:param vm: the ``vm:`` section of the config (its sysctls)"""
        self.machine = machine
        self.memmap = mm = machine.memmap
        self.page = mm.page   # struct page fields, by pfn
        self.point = machine.sched.point
        self.zones = [z for n in machine.nodes for z in n.node_zones]
        self.reclaimers: list = []   # fn(zone, nr_pages, gfp) -> pages freed
        self.wakeup_kswapd = None    # fn(zone), set by vmscan
        self.vmstat = machine.vmstat
        self.kasan = machine.kasan if machine.kasan.enabled else None
        self.tags = machine.alloc_tags
        self.pgalloc = [0] * MAX_NR_ZONES    # hot counters, reported to vmstat
        self.pgfree = 0
        self.alloc_failures = 0  # hwemu's own counters, not in /proc/vmstat
        self.punched_pages = 0
        machine.vmstat.sources.append(self._counters)
        self._zero = {}
        self._unpunched: collections.OrderedDict = collections.OrderedDict()
        self.nopage_rs = RateLimit(machine.log, machine.clock, 10 * machine.clock.hz, 1,
                                   "warn_alloc")
        self.totalreserve = 0
        zones = [z for z in self.zones if z.populated()]
        edges = [self._init_zone(zone, len(machine.sched.cpus)) for zone in zones]
        # Every zone's deferred range is known before any struct page is touched.
        mm.section_init_hook = self._init_deferred
        if mm.pfn_valid(0):
            reserved = min(LOW_RESERVED >> PAGE_SHIFT, machine.nodes[0].node_end_pfn)
            mm.ensure(0, reserved)
            mm.pages[:reserved]["flags"] |= np.uint64(1 << PG_reserved)
        for zone, ranges in zip(zones, edges):
            for start, end in ranges:
                self._free_range(zone, start, end)
        self.watermark_scale_factor = vm.watermark_scale_factor
        self.setup_per_zone_wmarks(vm.min_free_kbytes)
        self.setup_per_zone_lowmem_reserve()
        self._node_order = self.build_node_orders()
        self._contexts: dict[int, tuple] = {}
        self._fail = machine.fault.fail_page_alloc

    # ------------------------------------------------------------ boot

    def _init_zone(self, zone, nr_cpus: int) -> tuple:
        """Size the zone; aligned max-order blocks are deferred, the unaligned edge
        ranges (returned) are freed right away by the caller."""
        start, end = zone.zone_start_pfn, zone.zone_end_pfn
        start = max(start, min(end, LOW_RESERVED >> PAGE_SHIFT))  # memblock_reserve(0, 1M)
        zone.managed_pages = end - start
        lo = -(-start // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
        hi = end // MAX_ORDER_NR_PAGES * MAX_ORDER_NR_PAGES
        if lo >= hi:
            lo = hi = end
        zone.deferred_pfn, zone.deferred_end = lo, hi
        blocks = (hi - lo) >> MAX_PAGE_ORDER
        zone.nr_free[MAX_PAGE_ORDER] += blocks
        zone.free_pages += blocks << MAX_PAGE_ORDER
        batch = zone_batchsize(zone.managed_pages)
        zone.pcp_batch, zone.pcp_high = batch, batch * 6
        zone.per_cpu_pageset = [([], threading.Lock()) for _ in range(nr_cpus)]
        return (start, lo), (hi, end)

    def _free_range(self, zone, start: int, end: int) -> None:
        """``memblock_free_pages()``: free ``[start, end)`` in the largest aligned blocks."""
        if start >= end:
            return
        self.memmap.ensure(start, end)
        self.memmap.pages[start:end]["_refcount"] = 0
        if self.kasan is not None:
            self._kasan_poison_range(start, end)
        pfn = start
        while pfn < end:
            order = min(MAX_PAGE_ORDER, (pfn & -pfn).bit_length() - 1 if pfn else MAX_PAGE_ORDER,
                        (end - pfn).bit_length() - 1)
            self._add_free(zone, pfn, order)
            pfn += 1 << order

    def _init_deferred(self, lo: int, hi: int) -> None:
        """Struct pages of ``[lo, hi)`` were just initialised: mark the free blocks in it
        that are not on the lists yet as free (refcount 0, buddy heads of max order)."""
        pages = self.memmap.pages
        for zone in self.zones:
            a, b = max(lo, zone.deferred_pfn), min(hi, zone.deferred_end)
            if a < b:
                if self.kasan is not None:
                    self._kasan_poison_range(a, b)
                pages[a:b]["_refcount"] = 0
                pages[a:b:MAX_ORDER_NR_PAGES]["_mapcount"] = PAGE_TYPE_BUDDY
                pages[a:b:MAX_ORDER_NR_PAGES]["private"] = MAX_PAGE_ORDER

    def _kasan_poison_range(self, lo: int, hi: int) -> None:
        """Free pages ``[lo, hi)`` read as freed (``KASAN_PAGE_FREE``) to KASAN, lowmem
        only."""
        hi = min(hi, self.memmap.max_low_pfn)
        if lo < hi:
            self.kasan.poison(self.memmap.lowmem_virt(lo), (hi - lo) << PAGE_SHIFT,
                              KASAN_PAGE_FREE)

    def _grow(self, zone) -> bool:
        """``deferred_grow_zone()``: put the next section's max-order blocks on the list."""
        lo = zone.deferred_pfn
        if lo >= zone.deferred_end:
            return False
        hi = min(zone.deferred_end, ((lo >> PFN_SECTION_SHIFT) + 1) << PFN_SECTION_SHIFT)
        self.memmap.ensure(lo, hi)  # struct pages in their free state
        area = zone.free_area[MAX_PAGE_ORDER]
        for pfn in range(lo, hi, MAX_ORDER_NR_PAGES):
            area[pfn] = None
        zone.deferred_pfn = hi
        return True

    def _grow_to(self, zone, pfn: int) -> None:
        """Make sure ``pfn``'s block is on the free lists (a free of a never-used page)."""
        while zone.deferred_pfn <= pfn < zone.deferred_end:
            self._grow(zone)

    def setup_per_zone_wmarks(self, min_free_kbytes: int | None = None):
        """``__setup_per_zone_wmarks()``: min/low/high of every zone; ``None`` computes
        ``min_free_kbytes`` as ``calculate_min_free_kbytes()`` does."""
        lowmem = [z for z in self.zones if z.idx < ZONE_HIGHMEM and z.managed_pages]
        lowmem_pages = sum(z.managed_pages for z in lowmem)
        if min_free_kbytes is None:  # calculate_min_free_kbytes()
            kbytes = lowmem_pages * (PAGE_SIZE >> 10)
            min_free_kbytes = min(max(int((kbytes * 16) ** 0.5), 128), 262144)
        self.min_free_kbytes = min_free_kbytes
        pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
        for z in self.zones:
            tmp = pages_min * z.managed_pages // lowmem_pages if lowmem_pages else 0
            if z.idx in (ZONE_HIGHMEM, ZONE_MOVABLE):
                zmin = min(max(z.managed_pages // 1024, SWAP_CLUSTER_MAX), 128)
            else:
                zmin = tmp
            step = max(tmp >> 2, z.managed_pages * self.watermark_scale_factor // 10000)
            z._watermark[:] = [zmin, zmin + step, zmin + 2 * step]

    def setup_per_zone_lowmem_reserve(self) -> None:
        """Keep lower zones from being eaten by allocations that could go higher."""
        for node in self.machine.nodes:
            for i, z in enumerate(node.node_zones):
                ratio = LOWMEM_RESERVE_RATIO[i]
                upper = 0
                for j in range(i + 1, MAX_NR_ZONES):
                    upper += node.node_zones[j].managed_pages
                    z.lowmem_reserve[j] = upper // ratio if ratio and z.managed_pages else 0
        # calculate_totalreserve_pages(): what userspace cannot count on, per zone at most
        # the zone itself.
        self.totalreserve = sum(min(max(z.lowmem_reserve[z.idx:]) + z.high_wmark_pages(),
                                    z.managed_pages) for z in self.zones)

    def _counters(self) -> dict[str, int]:
        return {"pgfree": self.pgfree,
                **{f"pgalloc_{n}": self.pgalloc[i] for i, n in enumerate(_EVENT_ZONE)}}

    # ------------------------------------------------------------ struct page state

    def _zone_of(self, pfn: int):
        flags = self.page.flags[pfn]
        node = self.machine.nodes[flags >> NODES_PGSHIFT & NODES_MASK]
        return node.node_zones[flags >> ZONES_PGSHIFT & ZONES_MASK]

    def _is_buddy(self, pfn: int, order: int) -> bool:
        return (self.page._mapcount[pfn] == PAGE_TYPE_BUDDY
                and self.page.private[pfn] == order)

    def _add_free(self, zone, pfn: int, order: int) -> None:
        """``__add_to_free_list()`` + ``set_buddy_order()``; zone lock held."""
        self.page._mapcount[pfn] = PAGE_TYPE_BUDDY
        self.page.private[pfn] = order
        zone.free_area[order][pfn] = None
        zone.nr_free[order] += 1
        zone.free_pages += 1 << order

    def _del_free(self, zone, pfn: int, order: int) -> None:
        """``del_page_from_free_list()``; zone lock held."""
        del zone.free_area[order][pfn]
        zone.nr_free[order] -= 1
        zone.free_pages -= 1 << order
        self.page._mapcount[pfn] = NO_PAGE_TYPE
        self.page.private[pfn] = 0
        if order == MAX_PAGE_ORDER:
            self._unpunched.pop(pfn, None)

    # ------------------------------------------------------------ buddy core

    def __rmqueue_smallest(self, zone, order: int) -> int:
        """Take the smallest free block of at least ``order`` and split it; -1 if none."""
        for current_order in range(order, NR_PAGE_ORDERS):
            area = zone.free_area[current_order]
            if not area and current_order == MAX_PAGE_ORDER and self._grow(zone):
                area = zone.free_area[current_order]
            if area:
                pfn = next(reversed(area))   # the most recently freed block
                self._del_free(zone, pfn, current_order)
                while current_order > order:  # expand(): give back the upper halves
                    current_order -= 1
                    self._add_free(zone, pfn + (1 << current_order), current_order)
                if zone.free_pages < zone.free_low:
                    zone.free_low = zone.free_pages
                return pfn
        return -1

    def _free_one(self, zone, pfn: int, order: int) -> None:
        """``__free_one_page()``: merge with free buddies, then list; zone lock held."""
        while order < MAX_PAGE_ORDER:
            buddy = pfn ^ (1 << order)
            if buddy not in zone or not self._is_buddy(buddy, order):
                break
            self._del_free(zone, buddy, order)
            pfn &= buddy
            order += 1
        self._add_free(zone, pfn, order)
        if order == MAX_PAGE_ORDER:
            self._maybe_punch(zone, pfn)

    def _maybe_punch(self, zone, pfn: int) -> None:
        """Give RAM of long-free max-order blocks back to the host."""
        self._unpunched[pfn] = zone
        while len(self._unpunched) > PUNCH_SLACK:
            old, _ = self._unpunched.popitem(last=False)
            self.machine.ram.punch_hole(old << PAGE_SHIFT, MAX_ORDER_NR_PAGES << PAGE_SHIFT)
            self.punched_pages += MAX_ORDER_NR_PAGES

    def rmqueue(self, zone, order: int, cpu: int) -> int:
        """One block from ``zone``: order 0 via ``cpu``'s list, else the buddy lists."""
        if order == 0 and cpu < len(zone.per_cpu_pageset):
            pages, lock = zone.per_cpu_pageset[cpu]
            lock.acquire()
            if pages:
                pfn = pages.pop()
                lock.release()
                return pfn
            try:
                with zone.lock:  # rmqueue_bulk()
                    for _ in range(zone.pcp_batch):
                        pfn = self.__rmqueue_smallest(zone, 0)
                        if pfn < 0:
                            break
                        pages.append(pfn)
                return pages.pop() if pages else -1
            finally:
                lock.release()
        with zone.lock:
            return self.__rmqueue_smallest(zone, order)

    def free_one_pfn(self, zone, pfn: int, order: int, cpu: int) -> None:
        """``free_unref_page()``/``__free_pages_ok()``: to ``cpu``'s list or the buddy."""
        if self.kasan is not None:
            self.kasan.poison_pages(pfn, order)
        if order == 0 and cpu < len(zone.per_cpu_pageset):
            pages, lock = zone.per_cpu_pageset[cpu]
            lock.acquire()
            pages.append(pfn)
            if len(pages) <= zone.pcp_high:
                lock.release()
                return
            try:
                with zone.lock:  # free_pcppages_bulk(): the oldest go back
                    for _ in range(zone.pcp_batch):
                        self._free_one(zone, pages.pop(0), 0)
            finally:
                lock.release()
            return
        with zone.lock:
            self._free_one(zone, pfn, order)

    def drain_all_pages(self) -> None:
        """Return every per-CPU list to the buddy lists."""
        for zone in self.zones:
            for pages, lock in zone.per_cpu_pageset:
                with lock, zone.lock:
                    while pages:
                        self._free_one(zone, pages.pop(), 0)

    def nr_pcp_pages(self) -> int:
        return sum(len(pages) for z in self.zones for pages, _ in z.per_cpu_pageset)

    # ------------------------------------------------------------ watermarks

    def zone_watermark_ok(self, z, order: int, mark: int, highest_zoneidx: int,
                          alloc_flags: int) -> bool:
        """``__zone_watermark_ok()`` on the zone's free page count."""
        free_pages = z.free_pages - ((1 << order) - 1)
        min_ = mark
        if alloc_flags & ALLOC_RESERVES:
            if alloc_flags & ALLOC_MIN_RESERVE:  # __GFP_HIGH: half the min reserve
                min_ -= min_ // 2
                if alloc_flags & ALLOC_NON_BLOCK:  # GFP_ATOMIC: a quarter more
                    min_ -= min_ // 4
            if alloc_flags & ALLOC_OOM:
                min_ -= min_ // 2
        if free_pages <= min_ + z.lowmem_reserve[highest_zoneidx]:
            return False
        if order == 0:
            return True
        return any(z.nr_free[o] for o in range(order, NR_PAGE_ORDERS))

    def zonelist(self, nid: int, thisnode: bool) -> list:
        """Zones in fallback order: ``nid``'s node order (or ``nid`` alone with
        ``__GFP_THISNODE``), each node's populated zones from high to low."""
        nodes = [nid] if thisnode else self._node_order[nid]
        return [self.machine.nodes[n].node_zones[z] for n in nodes
                for z in reversed(range(MAX_NR_ZONES))
                if self.machine.nodes[n].node_zones[z].managed_pages]

    def build_node_orders(self) -> list[list[int]]:
        """``build_all_zonelists()``: every node's fallback order of nodes.

        ``find_next_best_node()``: the nearest unused node, a node below the local one
        and a node with CPUs a little farther, and ``node_load[]`` (shared by every
        node's build) spreading equidistant nodes round-robin.
        """
        dist = self.machine.numa_distance
        nr = len(dist)
        with_cpus = {cpu.node for cpu in self.machine.sched.cpus}
        node_load = [0] * nr
        orders = []
        for local in range(nr):
            order: list[int] = []
            used: set[int] = set()
            load, prev = nr, local
            while len(used) < nr:
                if local not in used:
                    best = local
                else:
                    best = min((m for m in range(nr) if m not in used), key=lambda m: (
                        (dist[local][m] + (m < local) + (m in with_cpus)) * MAX_NUMNODES
                        + node_load[m], m))
                used.add(best)
                if dist[local][best] != dist[local][prev]:
                    node_load[best] = load
                order.append(best)
                prev, load = best, load - 1
            orders.append(order)
        return orders

    def get_page_from_freelist(self, gfp: int, order: int, alloc_flags: int, zones,
                               highest_zoneidx: int, nodemask, cpu: int) -> int:
        """Try each allowed zone in order; ``zones`` has no zone above the highest."""
        for z in zones:
            if nodemask is not None and z.node not in nodemask:
                continue
            if not alloc_flags & ALLOC_NO_WATERMARKS:
                mark = z._watermark[alloc_flags & ALLOC_WMARK_MASK]
                # zone_watermark_fast(): order 0 clear of the mark needs no more checks
                if not (order == 0 and
                        z.free_pages > mark + z.lowmem_reserve[highest_zoneidx]) and \
                        not self.zone_watermark_ok(z, order, mark, highest_zoneidx,
                                                   alloc_flags):
                    continue
            pfn = self.rmqueue(z, order, cpu)
            if pfn >= 0:
                self.page._refcount[pfn] = 1  # set_page_refcounted()
                if self.kasan is not None:
                    self.kasan.unpoison_pages(pfn, order)
                if gfp & _PREP_BITS:
                    self.prep_new_page(pfn, order, gfp)
                self.pgalloc[z.idx] += 1 << order
                return pfn
        return -1

    # ------------------------------------------------------------ the allocation

    def alloc(self, gfp: int, order: int, preferred_nid: int, nodemask=None,
              task=None) -> int:
        """``__alloc_pages()``: the pfn of the new block, or -1. A preemption point."""
        if task is None:
            task = current()
        self.point(task)
        if not 0 <= order <= MAX_PAGE_ORDER:   # unsigned int: -1 is 4294967295
            bug.WARN_ON_ONCE(not gfp & gfp_t.NOWARN)
            return -1
        if gfp & gfp_t.DIRECT_RECLAIM and (task.preempt_count or task.irqs_off):
            sched.might_sleep()  # might_alloc()
        # should_fail_alloc_page() rejects orders below min-order first; test that here.
        if order >= self._fail.min_order and self.machine.fault.should_fail_alloc_page(gfp, order):
            return -1
        nid = task.cpu.node if preferred_nid == NUMA_NO_NODE else preferred_nid
        ctx = self._contexts.get(gfp & _CONTEXT_BITS | nid << 32) or self._context(gfp, nid)
        zones, highest = ctx
        pfn = self.get_page_from_freelist(gfp, order, ALLOC_WMARK_LOW, zones, highest,
                                          nodemask, task.cpu.id)
        if pfn < 0:
            pfn = self._slowpath(gfp, order, (zones, highest, nodemask, task.cpu.id))
        if pfn >= 0 and self.tags.enabled:   # pgalloc_tag_add()
            self.tags.charge(self.memmap.page_of(pfn), PAGE_SIZE << order,
                             getattr(task, "alloc_tag", None))
        return pfn

    def _context(self, gfp: int, nid: int) -> tuple:
        """``prepare_alloc_pages()``: the zones this mask may use, in fallback order,
        and the highest zone index; cached per (zone bits, THISNODE, node)."""
        highest = gfp_zone(gfp)
        zones = [z for z in self.zonelist(nid, bool(gfp & gfp_t.THISNODE)) if z.idx <= highest]
        ctx = self._contexts[gfp & _CONTEXT_BITS | nid << 32] = (zones, highest)
        return ctx

    def gfp_to_alloc_flags(self, gfp: int, order: int) -> int:
        flags = ALLOC_WMARK_MIN | ALLOC_CPUSET | (gfp & (gfp_t.HIGH | gfp_t.KSWAPD_RECLAIM))
        if not gfp & gfp_t.DIRECT_RECLAIM:
            if not gfp & gfp_t.NOMEMALLOC:  # atomic: may dig a little deeper
                flags |= ALLOC_NON_BLOCK | (ALLOC_HIGHATOMIC if order else 0)
            if flags & ALLOC_MIN_RESERVE:
                flags &= ~ALLOC_CPUSET
        return flags

    @staticmethod
    def gfp_pfmemalloc_flags(gfp: int, task) -> int:
        """``__gfp_pfmemalloc_flags()``: NOMEMALLOC forbids the emergency reserves;
        an OOM victim may use part of them to exit."""
        if gfp & gfp_t.NOMEMALLOC:
            return 0
        if gfp & gfp_t.MEMALLOC:
            return ALLOC_NO_WATERMARKS
        in_interrupt = task.preempt_count & sched.IRQ_COUNT_MASK
        if task.oom_victim and not in_interrupt:
            return ALLOC_OOM
        return 0

    def _slowpath(self, gfp: int, order: int, args: tuple) -> int:
        """``__alloc_pages_slowpath()``; ``args`` is (zonelist, highest zone, nodemask, cpu)."""
        can_reclaim = bool(gfp & gfp_t.DIRECT_RECLAIM)
        costly = order > PAGE_ALLOC_COSTLY_ORDER
        alloc_flags = self.gfp_to_alloc_flags(gfp, order)
        if alloc_flags & ALLOC_KSWAPD and self.wakeup_kswapd is not None:
            for zone in args[0]:
                if zone.idx <= args[1]:
                    self.wakeup_kswapd(zone)
        pfn = self.get_page_from_freelist(gfp, order, alloc_flags, *args)
        if pfn >= 0:
            return pfn
        reserve = self.gfp_pfmemalloc_flags(gfp, current())
        if reserve:
            alloc_flags = reserve
        no_progress = 0
        while True:
            pfn = self.get_page_from_freelist(gfp, order, alloc_flags, *args)
            if pfn >= 0:
                return pfn
            if not can_reclaim:
                break
            self.vmstat.mod(f"allocstall_{_EVENT_ZONE[args[1]]}", 1)
            progress = self.direct_reclaim(gfp, order, args[0], args[1])
            pfn = self.get_page_from_freelist(gfp, order, alloc_flags, *args)
            if pfn >= 0:
                return pfn
            if gfp & gfp_t.NORETRY or (costly and not gfp & gfp_t.RETRY_MAYFAIL):
                break
            no_progress = 0 if progress else no_progress + 1
            if no_progress <= MAX_RECLAIM_RETRIES:
                continue
            if self.may_oom(gfp, order, args):
                no_progress = 0
                continue
            break
        # __GFP_NOFAIL must be allowed to sleep; without that it fails like any other.
        if gfp & gfp_t.NOFAIL and not bug.WARN_ON_ONCE(not can_reclaim):
            return self._nofail(gfp, order, args)
        self.alloc_failures += 1
        self.warn_alloc(gfp, args[2], f"page allocation failure: order:{order}",
                        bug.caller(3))
        return -1

    def may_oom(self, gfp: int, order: int, args: tuple) -> bool:
        """``__alloc_pages_may_oom()``: True if the allocation should be retried."""
        if gfp & (gfp_t.RETRY_MAYFAIL | gfp_t.THISNODE) or \
                order > PAGE_ALLOC_COSTLY_ORDER or args[1] < ZONE_NORMAL:
            return False
        if not self.machine.oom.out_of_memory(gfp, order, args[2]):
            return False
        if not gfp & gfp_t.FS:  # IO-less: nothing killed, wait for others to free
            sched.set_current_state(sched.TASK_UNINTERRUPTIBLE)
            sched.schedule_timeout(1)
        return True

    def _nofail(self, gfp: int, order: int, args: tuple) -> int:
        """``__GFP_NOFAIL``: never fail; sleep a jiffy between tries, dip into reserves."""
        bug.WARN_ON_ONCE(order > 1)
        while True:
            pfn = self.get_page_from_freelist(gfp, order, ALLOC_MIN_RESERVE, *args)
            if pfn >= 0:
                return pfn
            self.direct_reclaim(gfp, order, args[0], args[1])
            sched.set_current_state(sched.TASK_UNINTERRUPTIBLE)
            sched.schedule_timeout(1)

    def direct_reclaim(self, gfp: int, order: int, zonelist, highest: int) -> int:
        """Ask every reclaimer for pages on behalf of this allocation; pages freed."""
        want = max(SWAP_CLUSTER_MAX, 1 << order)
        freed = 0
        for zone in zonelist:
            if zone.idx > highest:
                continue
            for reclaim in self.reclaimers:
                freed += reclaim(zone, want - freed, gfp)
                if freed >= want:
                    return freed
        return freed

    # ------------------------------------------------------------ new and freed pages

    def prep_new_page(self, pfn: int, order: int, gfp: int) -> None:
        """``post_alloc_hook()`` for ``__GFP_ZERO`` and ``__GFP_COMP``."""
        if gfp & gfp_t.ZERO:
            self.clear_pages(pfn, order)
        if gfp & gfp_t.COMP and order:
            self.prep_compound_page(pfn, order)

    def clear_pages(self, pfn: int, order: int) -> None:
        """``clear_highpage()`` for every page of the block."""
        mm = self.memmap
        n = PAGE_SIZE << order
        if pfn + (1 << order) <= mm.max_low_pfn:
            zero = self._zero.get(order) or self._zero.setdefault(order, bytes(n))
            off = mm.lowmem_virt(pfn) - self.machine.space.base
            self.machine.space.mv[off:off + n] = zero
            return
        for p in range(pfn, pfn + (1 << order)):
            addr = kmap_local_page(mm.pfn_to_page(p))
            memset(addr, 0, PAGE_SIZE)
            kunmap_local(addr)

    def prep_compound_page(self, pfn: int, order: int) -> None:
        """Head gets PG_head, page 1 the order, tails ``compound_head = head | 1``."""
        pg = self.page
        head = self.memmap.page_of(pfn)
        pg.flags[pfn] |= 1 << PG_head
        pg.flags[pfn + 1] = (pg.flags[pfn + 1] & ~0xFF) | order
        for p in range(pfn + 1, pfn + (1 << order)):
            pg.lru_next[p] = head | 1

    def free_pages_prepare(self, pfn: int, order: int) -> bool:
        """Check every page of the block and reset it; False (leak it) if one is bad."""
        pg = self.page
        bad = False
        compound = bool(pg.flags[pfn] >> PG_head & 1)
        if compound:
            head = self.memmap.page_of(pfn)
            pg.flags[pfn] &= ~(1 << PG_head)
            pg.flags[pfn + 1] &= ~0xFF
            for p in range(pfn + 1, pfn + (1 << order)):  # free_tail_page_prepare()
                tail = pg.lru_next[p]
                if not tail & 1 or tail != head | 1:
                    self.bad_page(p, "compound_head not consistent" if tail & 1
                                  else "PageTail not set")
                    bad = True
                pg.lru_next[p] = self.memmap.page_of(p) + PAGE_LRU
        for p in range(pfn, pfn + (1 << order)):
            reason = self.page_bad_reason(p)
            if reason:
                self.bad_page(p, reason)
                bad = True
        return not bad

    def page_bad_reason(self, pfn: int) -> str | None:
        """``page_bad_reason()``: why a page may not be freed, or None; as in the
        kernel each check overrides the ones before it."""
        reason = None
        if self.page._mapcount[pfn] != -1:
            reason = "nonzero mapcount"
        if self.page.mapping[pfn]:
            reason = "non-NULL mapping"
        if self.page._refcount[pfn]:
            reason = "nonzero _refcount"
        if self.page.flags[pfn] & PAGE_FLAGS_CHECK_AT_FREE:
            reason = "PAGE_FLAGS_CHECK_AT_FREE flag(s) set"
        return reason

    def free_pages(self, page: int, order: int, task=None) -> None:
        """``__free_pages()``: drop a reference; free the block when it was the last. A
        preemption point of ``task`` (None: boot code, or a page of another machine)."""
        if task is not None:
            self.point(task)
        mm = self.memmap
        # mm.page_to_pfn() inlined, by shifts and masks of its constants, the raising
        # call kept for a bad pointer: this is the hottest free path (bench/alloc.py).
        off = page - mm.start
        pfn = off >> STRUCT_PAGE_SHIFT
        if off & (STRUCT_PAGE_SIZE - 1) or not mm.pfn_valid(pfn):
            mm.page_to_pfn(page)  # raises, saying what is wrong with the pointer
        if order and (not 0 < order <= MAX_PAGE_ORDER or pfn & ((1 << order) - 1) or
                      not mm.pfn_valid(pfn + (1 << order) - 1)):
            if not 0 < order <= MAX_PAGE_ORDER:   # unsigned int: -1 is 4294967295
                raise bug.AddressError(
                    f"__free_pages({page:#x}, {order}): order is an unsigned int, "
                    f"{order & 0xFFFFFFFF} > MAX_PAGE_ORDER ({MAX_PAGE_ORDER}): no block "
                    "is that large")
            raise bug.AddressError(f"__free_pages({page:#x}, {order}): pfn {pfn:#x} is not "
                                   f"the head of an order-{order} block")
        if not mm._ready[pfn >> PFN_SECTION_SHIFT]:  # a page nobody has looked at yet
            mm.ensure(pfn, pfn + 1)
        flags = self.page.flags[pfn]
        zone = self.machine.nodes[flags >> NODES_PGSHIFT & NODES_MASK].node_zones[
            flags >> ZONES_PGSHIFT & ZONES_MASK]
        if zone.deferred_pfn <= pfn < zone.deferred_end:
            with zone.lock:  # a page the allocator never handed out
                self._grow_to(zone, pfn)
        ref = self.page._refcount[pfn]
        if ref <= 0:  # put_page_testzero() on a free page: VM_BUG_ON_PAGE
            self.dump_page(pfn, "VM_BUG_ON_PAGE(page_ref_count(page) == 0)")
            bug.BUG()
        head = flags >> PG_head & 1
        self.page._refcount[pfn] = ref - 1
        cpu = (task or current()).cpu.id
        if ref == 1 and self.tags.enabled:   # pgalloc_tag_sub()
            self.tags.uncharge(page)
        if ref == 1 and order == 0 and not flags & _CHECK_ORDER0 and \
                self.page._mapcount[pfn] == -1 and not self.page.mapping[pfn]:
            self.pgfree += 1  # a plain page in a clean state: nothing to prepare
            self.free_one_pfn(zone, pfn, 0, cpu)
        elif ref == 1:
            self._free_block(zone, pfn, order, cpu)
        elif not head:  # someone holds the first page: free the rest
            while order > 0:
                order -= 1
                self._free_block(zone, pfn + (1 << order), order, cpu)

    def _free_block(self, zone, pfn: int, order: int, cpu: int) -> None:
        if self.free_pages_prepare(pfn, order):
            self.pgfree += 1 << order
            self.free_one_pfn(zone, pfn, order, cpu)

    # ------------------------------------------------------------ reports

    def dump_page(self, pfn: int, reason: str) -> str:
        """``dump_page()``: :meth:`format_page`, logged."""
        text = self.format_page(pfn, reason)
        self.machine.log.printk(text, KERN_ALERT)
        return text

    def format_page(self, pfn: int, reason: str) -> str:
        """``__dump_page()``'s text: the page's fields, flags and raw words."""
        pg = self.page
        mapcount = pg._mapcount[pfn]
        pgty = page_type_of(mapcount)
        flags = pg.flags[pfn]
        lines = [format_page_head(pfn, pg._refcount[pfn], mapcount, pg.mapping[pfn],
                                  pg.index[pfn]),
                 f"flags: {format_page_flags(flags)}"]
        if flags >> PG_head & 1:   # __dump_folio() of a large folio
            lines.insert(1, f"head: order:{self.memmap.compound_order(pfn)} mapcount:0 "
                            "entire_mapcount:0 nr_pages_mapped:0 pincount:0")
        if pgty is not None:
            lines.append(f"page_type: {pgty:x}({PAGE_TYPE_NAMES.get(pgty, '?')})")
        raw = self.memmap.raw_words(pfn)
        lines += ["raw: " + " ".join(f"{w:016x}" for w in raw[:4]),
                  "raw: " + " ".join(f"{w:016x}" for w in raw[4:]),
                  f"page dumped because: {reason}"]
        return "\n".join(lines)

    def bad_page(self, pfn: int, reason: str) -> None:
        """``bad_page()``: report, taint B, and leave the page out of the allocator."""
        task = current()
        machine = self.machine
        machine.log.printk(f"BUG: Bad page state in process {task.comm}  pfn:{pfn:05x}",
                           KERN_ALERT)
        text = self.dump_page(pfn, reason)
        machine.log.printk("Modules linked in:", KERN_ALERT)
        bug.dump_stack(machine, task, bug.caller(3), KERN_ALERT)
        machine.bugs.add_taint("BAD_PAGE", lockdep_unreliable=True)
        machine.warnings.append(f"BUG: Bad page state in process {task.comm}  "
                                f"pfn:{pfn:05x}\n{text}")

    def warn_alloc(self, gfp: int, nodemask, message: str, frame=None) -> None:
        """``warn_alloc(gfp, nodemask, fmt, ...)``: an allocation-failure splat, one per
        10 s (``nopage_rs``), with the stack of ``frame`` (default: the caller's)."""
        if gfp & gfp_t.NOWARN or not self.nopage_rs():
            return
        machine, task = self.machine, current()
        machine.log.printk(f"{task.comm}: {message}, mode:{format_gfp(gfp)}, "
                           f"nodemask={nodelist(nodemask)},cpuset=/,"
                           f"mems_allowed={nodelist(range(len(machine.nodes)))}",
                           KERN_WARNING)
        bug.dump_stack(machine, task, frame or bug.caller(), KERN_WARNING)
        machine.log.printk(self.show_mem(), KERN_WARNING)

    def show_mem(self) -> str:
        """``show_free_areas()``, short: per-zone free/watermarks and buddy counts."""
        lines = ["Mem-Info:"]
        for z in self.zones:
            if not z.managed_pages:
                continue
            k = PAGE_SIZE >> 10
            lines.append(
                f"Node {z.node} {ZONE_NAMES[z.idx]} free:{z.free_pages * k}kB "
                f"min:{z.min_wmark_pages() * k}kB low:{z.low_wmark_pages() * k}kB "
                f"high:{z.high_wmark_pages() * k}kB present:{z.present_pages * k}kB "
                f"managed:{z.managed_pages * k}kB")
            counts = " ".join(f"{z.nr_free[o]}*{k << o}kB" for o in range(NR_PAGE_ORDERS))
            lines.append(f"Node {z.node} {ZONE_NAMES[z.idx]}: {counts} = "
                         f"{z.free_pages * k}kB")
        return "\n".join(lines)


def nodelist(nodes) -> str:
    """``%*pbl`` of a nodemask: ``0-3``, ``0,2``; ``(null)`` for no mask."""
    if nodes is None:
        return "(null)"
    runs: list[list[int]] = []
    for n in sorted(set(nodes)):
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def zone_batchsize(managed: int) -> int:
    """``zone_batchsize()``: pages moved between a per-CPU list and the buddy at once."""
    batch = min(managed >> 10, (1 << 20) // PAGE_SIZE) // 4
    batch = max(batch, 1)
    return (1 << ((batch + batch // 2).bit_length() - 1)) - 1 or 1


# ---------------------------------------------------------------- the API

def _pa():
    return current().machine.page_alloc


def __alloc_pages_noprof(gfp: int, order: int, preferred_nid: int, nodemask=None) -> int:
    """``__alloc_pages(gfp, order, preferred_nid, nodemask)``.

    :param gfp: ``gfp_t``
    :param nodemask: ``nodemask_t *`` as an iterable of node ids, or None
    :return: ``struct page *`` of the first page, or 0 (NULL)
    """
    task = current()
    pa = task.machine.page_alloc
    pfn = pa.alloc(gfp, order, preferred_nid, nodemask, task)
    return 0 if pfn < 0 else pa.memmap.page_of(pfn)


__alloc_pages = alloc_hooks(__alloc_pages_noprof)


def alloc_pages_noprof(gfp: int, order: int) -> int:
    """``alloc_pages(gfp, order)`` on the current CPU's node: ``struct page *`` or 0."""
    return __alloc_pages_noprof(gfp, order, NUMA_NO_NODE)


def alloc_pages(gfp: int, order: int) -> int:
    """``alloc_pages(gfp, order)`` on the current CPU's node: ``struct page *`` or 0."""
    task = current()  # the hottest entry: __alloc_pages() and alloc_hooks() inlined
    pa = task.machine.page_alloc
    if pa.tags.enabled:
        return pa.tags.call(task, sys._getframe(1), alloc_pages_noprof, gfp, order)
    pfn = pa.alloc(gfp, order, NUMA_NO_NODE, None, task)
    # pa.memmap.page_of(pfn) inlined as a shift by its constant: no call on this path.
    return 0 if pfn < 0 else pa.memmap.start + (pfn << STRUCT_PAGE_SHIFT)


def alloc_pages_node_noprof(nid: int, gfp: int, order: int) -> int:
    """``alloc_pages_node(nid, gfp, order)``: prefer node ``nid`` (NUMA_NO_NODE: local)."""
    if nid != NUMA_NO_NODE:
        nodes = current().machine.nodes
        if not 0 <= nid < len(nodes):
            raise bug.AddressError(f"alloc_pages_node({nid}): no such node "
                                   f"(machine has {len(nodes)})")
    return __alloc_pages_noprof(gfp, order, nid)


alloc_pages_node = alloc_hooks(alloc_pages_node_noprof)


def alloc_page_noprof(gfp: int) -> int:
    return alloc_pages_noprof(gfp, 0)


alloc_page = alloc_hooks(alloc_page_noprof)


def __free_pages(page: int, order: int) -> None:
    """``__free_pages(struct page *page, unsigned int order)``."""
    task = current()
    pa = task.machine.page_alloc
    if pa.memmap.start <= page < pa.memmap.end:
        pa.free_pages(page, order, task)
    else:  # another machine's page, or no page at all (raises)
        vmem.space_of(page).machine.page_alloc.free_pages(page, order)


def __free_page(page: int) -> None:
    __free_pages(page, 0)


def __get_free_pages_noprof(gfp: int, order: int) -> int:
    """``__get_free_pages()``: the direct-map address of new lowmem pages, or 0."""
    page = alloc_pages_noprof(gfp & ~__GFP_HIGHMEM, order)
    if not page:
        return 0
    pa = _pa()
    return pa.memmap.lowmem_virt(pa.memmap.pfn_of(page))


__get_free_pages = alloc_hooks(__get_free_pages_noprof)


def get_zeroed_page_noprof(gfp: int) -> int:
    return __get_free_pages_noprof(gfp | __GFP_ZERO, 0)


get_zeroed_page = alloc_hooks(get_zeroed_page_noprof)


def __get_free_page_noprof(gfp: int) -> int:
    return __get_free_pages_noprof(gfp, 0)


__get_free_page = alloc_hooks(__get_free_page_noprof)


def free_pages(addr: int, order: int) -> None:
    """``free_pages(unsigned long addr, order)``: 0 is ignored, as in the kernel."""
    if addr:
        __free_pages(virt_to_page(addr), order)


def free_page(addr: int) -> None:
    free_pages(addr, 0)


def _folio(page: int) -> tuple[PageAlloc, int]:
    """``page_folio()``: the allocator and the head pfn of ``page``'s compound page."""
    pa = vmem.space_of(page).machine.page_alloc
    return pa, pa.memmap.compound_head(pa.memmap.page_to_pfn(page))


def get_page(page: int) -> None:
    """``get_page()``: take a reference on the folio ``page`` belongs to."""
    pa, pfn = _folio(page)
    bug.BUG_ON(pa.page._refcount[pfn] <= 0)
    pa.page._refcount[pfn] += 1


def put_page(page: int) -> None:
    """``put_page()``: drop a reference; the last one frees the whole folio."""
    pa, pfn = _folio(page)
    pa.free_pages(pa.memmap.page_of(pfn), pa.memmap.compound_order(pfn))


def nr_free_pages() -> int:
    """Free pages in the buddy lists of every zone (``NR_FREE_PAGES``)."""
    return sum(z.free_pages for z in _pa().zones)
