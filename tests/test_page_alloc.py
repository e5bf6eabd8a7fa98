"""The buddy page allocator (hwemu/page_alloc.py), checked against mm/page_alloc.c (6.x).

Buddy split/merge and struct page state, zonelists and NUMA fallback, zone selection,
watermarks and the reserve rules of __zone_watermark_ok()/gfp_to_alloc_flags(), the
allocation failure warning, __GFP_ZERO/__GFP_COMP, refcounting, __get_free_pages,
bad frees, deferred struct page init, hole punching, fault injection and a
multi-task stress test. Most tests end with :func:`audit`: the free lists, the
counters and the struct pages of free memory agree.

Exhausting memory uses ``GFP_KERNEL | __GFP_NORETRY``: it stops at the same (min)
watermark as GFP_KERNEL, but fails instead of invoking the OOM killer, which for a
plain order-0 GFP_KERNEL request with nothing to kill panics, as in the kernel.
"""
import math
import random
import sys
import time

import pytest

import hwemu
from hwemu.bug import TAINT, AddressError, KernelBug, KernelPanic
from hwemu.gfp import (__GFP_COMP, __GFP_DIRECT_RECLAIM, __GFP_DMA, __GFP_DMA32, __GFP_HIGH,
                       __GFP_HIGHMEM, __GFP_MEMALLOC, __GFP_MOVABLE, __GFP_NOMEMALLOC,
                       __GFP_NORETRY, __GFP_NOWARN, __GFP_RETRY_MAYFAIL, __GFP_THISNODE, __GFP_ZERO,
                       GFP_ATOMIC, GFP_DMA, GFP_DMA32, GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE,
                       GFP_KERNEL, GFP_NOWAIT, format_gfp)
from hwemu.mmzone import ZONE_DMA, ZONE_DMA32, ZONE_HIGHMEM, ZONE_MOVABLE, ZONE_NORMAL
from hwemu.page_alloc import (MAX_PAGE_ORDER, PUNCH_SLACK, __alloc_pages, __free_page, __free_pages,
                              __get_free_pages, alloc_page, alloc_pages, alloc_pages_node,
                              free_pages, get_page, get_zeroed_page, nr_free_pages, put_page)

PAGE_SIZE = 4096
# struct page (64-bit): flags, lru.next (compound_head), lru.prev, mapping, index,
# private, _mapcount (page_type in its top byte), _refcount, memcg_data.
OFF_FLAGS, OFF_LRU_NEXT, OFF_MAPPING = 0, 8, 24
OFF_PRIVATE, OFF_MAPCOUNT, OFF_REFCOUNT = 40, 48, 52
PG_lru, PG_head = 5, 6
PGTY_BUDDY_WORD = 0xF0000000   # _mapcount word of a buddy head: page_type 0xf0, as a u32
NO_TYPE_WORD = 0xFFFFFFFF      # _mapcount -1: no page_type, not mapped
KERNEL_NORETRY = GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN  # fails instead of OOM-killing
BIG = {"machine": {"name": "big64g", "arch": "x86_64", "cpus": 2,
                   "nodes": [{"mem": "16G"}] * 4}}


# ---------------------------------------------------------------- helpers

def zones_of(m):
    return [z for z in m.page_alloc.zones if z.managed_pages]


def zone(m, nid, idx):
    return m.nodes[nid].node_zones[idx]


def vm_events(m):
    """(pages allocated, pages freed) as /proc/vmstat counts them."""
    s = m.vmstat.snapshot()
    return (sum(v for k, v in s.items() if k.startswith("pgalloc_")),
            s["pgfree"])


def snapshot(m):
    """Per zone (nr_free[], free_pages), after returning every per-CPU page."""
    m.page_alloc.drain_all_pages()
    return [(z.nr_free[:], z.free_pages) for z in zones_of(m)]


def free_total(m):
    """Free pages in the buddy lists plus those cached on per-CPU lists."""
    return sum(z.free_pages for z in zones_of(m)) + m.page_alloc.nr_pcp_pages()


def assert_restored(m, initial):
    """Every page is back: the free counts of ``snapshot`` ``initial``, and ``audit``."""
    assert snapshot(m) == initial
    audit(m)


def audit(m):
    """Free lists, counters and struct pages agree; no two free blocks overlap."""
    pages = m.memmap.pages
    blocks = []
    for z in m.page_alloc.zones:
        if not z.managed_pages:
            assert not any(z.nr_free) and z.free_pages == 0
            continue
        with z.lock:
            assert sum(n << o for o, n in enumerate(z.nr_free)) == z.free_pages, z.name
            deferred = max(0, z.deferred_end - z.deferred_pfn) >> MAX_PAGE_ORDER
            for o in range(MAX_PAGE_ORDER + 1):
                area = list(z.free_area[o])
                assert z.nr_free[o] == len(area) + (deferred if o == MAX_PAGE_ORDER else 0)
                for pfn in area:
                    assert pfn % (1 << o) == 0
                    assert z.zone_start_pfn <= pfn and pfn + (1 << o) <= z.zone_end_pfn
                    assert int(pages[pfn]["_mapcount"]) & 0xFFFFFFFF == PGTY_BUDDY_WORD
                    assert int(pages[pfn]["private"]) == o
                    assert int(pages[pfn]["_refcount"]) == 0
                    blocks.append((pfn, pfn + (1 << o)))
            for pcp, _ in z.per_cpu_pageset:
                for pfn in list(pcp):
                    assert pfn in z
                    assert int(pages[pfn]["_refcount"]) == 0
                    assert int(pages[pfn]["_mapcount"]) == -1
                    blocks.append((pfn, pfn + 1))
    blocks.sort()
    for (_, end), (start, _) in zip(blocks, blocks[1:]):
        assert end <= start, f"free blocks overlap at pfn {start:#x}"


def fill(gfp, order=0, limit=1 << 30):
    """Allocate until the allocator says no (or ``limit`` blocks); the pages."""
    got = []
    while len(got) < limit:
        page = alloc_pages(gfp, order)
        if not page:
            break
        got.append(page)
    return got


def free_all(pages, order=0):
    for page in pages:
        __free_pages(page, order)


def pfn_of(page):
    return hwemu.page_to_pfn(page)


def raw32(page, off):
    return hwemu.load(page + off, 4)


def free_block_of(pfn):
    """The (head pfn, order) of the free buddy block holding ``pfn``, or None."""
    for order in range(MAX_PAGE_ORDER + 1):
        head = pfn & ~((1 << order) - 1)
        page = hwemu.pfn_to_page(head)
        if raw32(page, OFF_MAPCOUNT) == PGTY_BUDDY_WORD and \
                hwemu.load(page + OFF_PRIVATE, 8) == order:
            return head, order
    return None


def log_lines(m):
    """dmesg without timestamps."""
    return [line.split("] ", 1)[1] for line in m.dmesg().splitlines()]


def run_on_node(m, nid, fn, *args, name="nodetask"):
    """Run ``fn`` in a task on a free CPU of node ``nid``; its result."""
    cpu = next(c.id for c in m.sched.cpus if c.node == nid and c.task is None)
    return m.spawn(fn, *args, name=name, cpu=cpu).join(timeout=60)


def tainted(m, name):
    return bool(m.bugs.taint >> TAINT[name] & 1)


def vm_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def kernel_watermarks(managed):
    """``calculate_min_free_kbytes()`` + ``__setup_per_zone_wmarks()`` for zones given
    as {zone index: managed pages} (4K pages)."""
    lowmem = sum(n for idx, n in managed.items() if idx not in (ZONE_HIGHMEM, ZONE_MOVABLE))
    min_free_kbytes = min(max(math.isqrt(lowmem * 4 * 16), 128), 262144)
    pages_min = min_free_kbytes >> 2
    marks = {}
    for idx, n in managed.items():
        tmp = pages_min * n // lowmem
        zmin = min(max(n // 1024, 32), 128) if idx in (ZONE_HIGHMEM, ZONE_MOVABLE) else tmp
        step = max(tmp >> 2, n * 10 // 10000)
        marks[idx] = [zmin, zmin + step, zmin + 2 * step]
    return min_free_kbytes, marks


def kernel_lowmem_reserve(managed):
    """``setup_per_zone_lowmem_reserve()`` with sysctl_lowmem_reserve_ratio."""
    ratio = {ZONE_DMA: 256, ZONE_DMA32: 256, ZONE_NORMAL: 32, ZONE_HIGHMEM: 0, ZONE_MOVABLE: 0}
    out = {}
    for i in managed:
        res, upper = [0] * 5, 0
        for j in range(i + 1, 5):
            upper += managed.get(j, 0)
            res[j] = upper // ratio[i] if ratio[i] and managed[i] else 0
        out[i] = res
    return out


# ---------------------------------------------------------------- struct page, split/merge

def test_struct_page_state_after_alloc_and_free(machine):
    m = machine
    m.page_alloc.drain_all_pages()
    page = alloc_pages(GFP_KERNEL, 3)
    pfn = pfn_of(page)
    assert pfn % 8 == 0
    s = hwemu.page_struct(page)
    assert (s._refcount, s._mapcount, s.private) == (1, -1, 0)   # page_type cleared
    assert raw32(page, OFF_MAPCOUNT) == NO_TYPE_WORD and raw32(page, OFF_REFCOUNT) == 1
    for i in range(1, 8):  # a non-compound block: only the head is refcounted
        tail = page + 64 * i
        assert raw32(tail, OFF_REFCOUNT) == 0 and raw32(tail, OFF_MAPCOUNT) == NO_TYPE_WORD
    __free_pages(page, 3)
    head, order = free_block_of(pfn)
    assert head <= pfn and pfn + 8 <= head + (1 << order) and order >= 3
    hs = hwemu.page_struct(hwemu.pfn_to_page(head))
    assert (hs._refcount, hs.private) == (0, order)
    assert (hs._mapcount >> 24) & 0xFF == 0xF0                   # PageBuddy

    one = alloc_page(GFP_KERNEL)
    assert hwemu.page_ref_count(one) == 1
    __free_page(one)                   # to the per-CPU list: free, but not a buddy yet
    assert hwemu.page_ref_count(one) == 0 and raw32(one, OFF_MAPCOUNT) == NO_TYPE_WORD
    m.page_alloc.drain_all_pages()
    head, order = free_block_of(pfn_of(one))
    assert raw32(hwemu.pfn_to_page(head), OFF_REFCOUNT) == 0
    audit(m)


def test_buddy_split_and_merge_restore_counts(machine):
    m = machine
    initial = snapshot(m)
    rng = random.Random(20261125)
    orders = [o for o in range(MAX_PAGE_ORDER + 1) for _ in range(3)]
    orders += [rng.randrange(5) for _ in range(60)]
    rng.shuffle(orders)
    held, spans = [], []
    events = vm_events(m)
    for order in orders:
        page = alloc_pages(GFP_KERNEL, order)
        assert page, f"order {order} failed"
        pfn = pfn_of(page)
        assert pfn % (1 << order) == 0
        assert raw32(page, OFF_REFCOUNT) == 1 and raw32(page, OFF_MAPCOUNT) == NO_TYPE_WORD
        held.append((page, order))
        spans.append((pfn, pfn + (1 << order)))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "blocks overlap"
    used = sum(1 << o for o in orders)
    assert free_total(m) == sum(n for _, n in initial) - used
    audit(m)
    rng.shuffle(held)
    for page, order in held:
        __free_pages(page, order)
    assert snapshot(m) == initial
    assert vm_events(m) == (events[0] + used, events[1] + used)   # pgalloc_*, pgfree
    audit(m)


# ---------------------------------------------------------------- NUMA

def _local_allocations(nid):
    assert hwemu.numa_node_id() == nid
    pages = [(alloc_pages(GFP_KERNEL, o), o) for o in (0, 0, 0, 1, 3, 10)]
    nids = [hwemu.page_to_nid(p) for p, _ in pages]
    for p, o in pages:
        __free_pages(p, o)
    return nids


def test_numa_allocations_come_from_the_local_node(boot):
    m = boot("x86_64-numa4")
    for nid in range(4):
        assert run_on_node(m, nid, _local_allocations, nid) == [nid] * 6
    for nid in range(4):  # alloc_pages_node()/__alloc_pages() prefer the node asked for
        page = alloc_pages_node(nid, GFP_KERNEL, 0)
        big = __alloc_pages(GFP_KERNEL, 2, nid)
        assert hwemu.page_to_nid(page) == hwemu.page_to_nid(big) == nid
        __free_page(page)
        __free_pages(big, 2)
    audit(m)


def _exhaust_local_node(nid):
    """Allocate max-order blocks until one comes from another node: the node order."""
    held, seq = [], []
    try:
        while len(seq) < 2:
            page = alloc_pages(KERNEL_NORETRY, MAX_PAGE_ORDER)
            assert page, "machine exhausted before leaving the node"
            held.append(page)
            n = hwemu.page_to_nid(page)
            if not seq or seq[-1][0] != n:
                seq.append([n, 0])
            seq[-1][1] += 1
    finally:
        free_all(held, MAX_PAGE_ORDER)
    return seq


def test_numa_fallback_goes_to_the_nearest_node(boot):
    m = boot("x86_64-numa4")
    dist = m.config.machine.distances
    for nid in range(4):
        (first, n_local), (second, _) = run_on_node(m, nid, _exhaust_local_node, nid)
        assert first == nid
        assert n_local >= 240          # the local node is drained first (256 blocks of 4M)
        nearest = min(dist[nid][o] for o in range(4) if o != nid)
        assert dist[nid][second] == nearest, (nid, second)
    audit(m)


def test_numa_fallback_tie_break_matches_kernel(boot):
    m = boot("x86_64-numa4")
    kernel_next = {1: 2, 2: 3}
    got = {nid: run_on_node(m, nid, _exhaust_local_node, nid)[1][0] for nid in kernel_next}
    assert got == kernel_next


def _thisnode(nid):
    held = fill(GFP_KERNEL | __GFP_THISNODE | __GFP_NOWARN, MAX_PAGE_ORDER)
    small = fill(GFP_KERNEL | __GFP_THISNODE | __GFP_NOWARN, 0)
    nodes = {hwemu.page_to_nid(p) for p in held + small}
    blocks, pages = len(held), len(small)
    quiet = not any("page allocation failure" in ln for ln in log_lines(hwemu.current().machine))
    assert not alloc_pages(GFP_KERNEL | __GFP_THISNODE, MAX_PAGE_ORDER)    # warns
    other = alloc_pages(GFP_KERNEL, 0)     # without THISNODE the nearest node serves
    other_nid = hwemu.page_to_nid(other)
    __free_page(other)
    free_all(held, MAX_PAGE_ORDER)
    free_all(small)
    return nodes, blocks, pages, quiet, other_nid


def test_thisnode_never_leaves_the_node(boot):
    m = boot("x86_64-numa4")
    nodes, blocks, pages, quiet, other = run_on_node(m, 2, _thisnode, 2, name="thisnode")
    assert nodes == {2} and blocks >= 250 and pages > 0
    assert quiet                        # __GFP_NOWARN failures print nothing
    assert other != 2
    assert ("thisnode: page allocation failure: order:10, "
            "mode:0x200cc0(GFP_KERNEL|__GFP_THISNODE), nodemask=(null),cpuset=/,"
            "mems_allowed=0-3") in log_lines(m)
    audit(m)


def test_warn_alloc_prints_the_nodemask_as_a_bitmap_list(boot):
    m = boot("x86_64-numa4", machine__nodes=[{"mem": "64M"}] * 4)
    held = []
    while True:
        page = __alloc_pages(KERNEL_NORETRY, MAX_PAGE_ORDER, 1, [1, 2, 3])
        if not page:
            break
        assert hwemu.page_to_nid(page) in (1, 2, 3)
        held.append(page)
    assert not __alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER, 1, [1, 2, 3])
    free_all(held, MAX_PAGE_ORDER)
    text = "\n".join(log_lines(m))
    assert "page allocation failure: order:10" in text
    assert "nodemask=1-3,cpuset=/,mems_allowed=0-3" in text


# ---------------------------------------------------------------- zones

def test_zone_selection_on_tiny(machine):
    m = machine
    assert zone(m, 0, ZONE_NORMAL).managed_pages == 0   # 64M x86_64: DMA and DMA32 only
    held = []
    for gfp, order, want in ((GFP_KERNEL, 0, ZONE_DMA32), (GFP_KERNEL, 2, ZONE_DMA32),
                             (GFP_DMA32, 0, ZONE_DMA32), (GFP_DMA, 0, ZONE_DMA),
                             (GFP_DMA, 3, ZONE_DMA), (GFP_KERNEL | __GFP_MOVABLE, 0, ZONE_DMA32)):
        for _ in range(20):
            page = alloc_pages(gfp, order)
            assert hwemu.page_zonenum(page) == want, format_gfp(gfp)
            held.append((page, order))
    for page, order in held:
        __free_pages(page, order)
    # GFP_DMA never leaves ZONE_DMA: it fails at the DMA min watermark (no lowmem
    # reserve applies to a DMA-only request) while DMA32 is untouched.
    dma, dma32 = zone(m, 0, ZONE_DMA), zone(m, 0, ZONE_DMA32)
    before32 = dma32.free_pages
    got = fill(GFP_DMA | __GFP_NORETRY | __GFP_NOWARN)
    assert {hwemu.page_zonenum(p) for p in got} == {ZONE_DMA}
    assert dma.free_pages <= dma.min_wmark_pages() < dma.free_pages + dma.pcp_batch
    assert dma32.free_pages == before32
    kernel_page = alloc_pages(GFP_KERNEL, 0)
    assert hwemu.page_zonenum(kernel_page) == ZONE_DMA32
    __free_page(kernel_page)
    free_all(got)
    audit(m)


def test_zone_selection_with_highmem(highmem_machine):
    m = highmem_machine
    high = alloc_pages(GFP_HIGHUSER, 0)      # HighMem is tried first
    assert hwemu.PageHighMem(high) and hwemu.page_zonenum(high) == ZONE_HIGHMEM
    assert hwemu.page_address(high) == 0     # not kmapped: no kernel address
    __free_page(high)
    for gfp in (GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE):   # no ZONE_MOVABLE configured
        pages = [alloc_pages(gfp, 0) for _ in range(50)]
        assert all(hwemu.page_zonenum(p) == ZONE_HIGHMEM for p in pages)
        free_all(pages)
    for gfp in (GFP_KERNEL, GFP_KERNEL | __GFP_MOVABLE, GFP_ATOMIC):
        pages = [alloc_pages(gfp, o) for o in (0, 1, 5) for _ in range(30)]
        assert not any(hwemu.PageHighMem(p) for p in pages), format_gfp(gfp)
        assert all(hwemu.page_zonenum(p) == ZONE_NORMAL for p in pages)
        assert all(hwemu.page_address(p) for p in pages)
        for i, p in enumerate(pages):
            __free_pages(p, (0, 1, 5)[i // 30])
    # HighMem (288 blocks of 4M) exhausted: GFP_HIGHUSER goes on in Normal.
    blocks = fill(GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN, MAX_PAGE_ORDER, limit=400)
    zones = [hwemu.page_zonenum(p) for p in blocks]
    assert len(blocks) == 400 and zones[0] == ZONE_HIGHMEM and ZONE_NORMAL in zones
    assert zones == sorted(zones, reverse=True)        # HighMem, then Normal
    free_all(blocks, MAX_PAGE_ORDER)
    audit(m)


def test_movable_zone_needs_highmem_and_movable(boot):
    m = boot("i386-highmem", machine__movablecore="256M")
    assert zone(m, 0, ZONE_MOVABLE).managed_pages == 65536
    cases = ((GFP_HIGHUSER_MOVABLE, ZONE_MOVABLE), (__GFP_HIGHMEM | __GFP_MOVABLE, ZONE_MOVABLE),
             (GFP_HIGHUSER, ZONE_HIGHMEM), (GFP_KERNEL | __GFP_MOVABLE, ZONE_NORMAL),
             (GFP_DMA | __GFP_MOVABLE, ZONE_DMA))
    for gfp, want in cases:
        pages = [alloc_pages(gfp, 0) for _ in range(10)]
        assert [hwemu.page_zonenum(p) for p in pages] == [want] * 10, format_gfp(gfp)
        free_all(pages)
    audit(m)


@pytest.mark.parametrize("gfp", [GFP_DMA | __GFP_HIGHMEM, __GFP_DMA | __GFP_DMA32,
                                 __GFP_DMA32 | __GFP_HIGHMEM,
                                 GFP_KERNEL | __GFP_DMA | __GFP_HIGHMEM])
def test_invalid_zone_modifiers_raise(machine, gfp):
    before = snapshot(machine)
    with pytest.raises(ValueError, match="GFP_ZONE_BAD"):
        alloc_pages(gfp, 0)
    assert snapshot(machine) == before


# ---------------------------------------------------------------- watermarks

def test_watermarks_and_lowmem_reserve_tiny(machine):
    m = machine
    managed = {ZONE_DMA: (16 << 20) - (1 << 20) >> 12,       # memblock_reserve(0, 1M)
               ZONE_DMA32: (64 << 20) - (16 << 20) >> 12}
    assert {z.idx: z.managed_pages for z in zones_of(m)} == managed
    min_free_kbytes, marks = kernel_watermarks(managed)
    assert min_free_kbytes == math.isqrt(16128 * 4 * 16) == 1015
    assert m.page_alloc.min_free_kbytes == min_free_kbytes
    assert marks == {ZONE_DMA: [60, 75, 90], ZONE_DMA32: [192, 240, 288]}
    reserve = kernel_lowmem_reserve(managed)
    assert reserve[ZONE_DMA] == [0, 48, 48, 48, 48]            # 12288 / 256
    for z in zones_of(m):
        assert z._watermark == marks[z.idx], z.name
        assert (z.min_wmark_pages(), z.low_wmark_pages(), z.high_wmark_pages()) == \
            tuple(marks[z.idx])
        assert z.lowmem_reserve == reserve[z.idx], z.name


def test_watermarks_and_lowmem_reserve_highmem(boot):
    m = boot("i386-highmem", machine__movablecore="256M")
    managed = {z.idx: z.managed_pages for z in zones_of(m)}
    assert managed == {ZONE_DMA: 3840, ZONE_NORMAL: (896 - 16) << 8,
                       ZONE_HIGHMEM: (1152 - 256) << 8, ZONE_MOVABLE: 256 << 8}
    min_free_kbytes, marks = kernel_watermarks(managed)
    assert m.page_alloc.min_free_kbytes == min_free_kbytes == 3829
    assert marks[ZONE_HIGHMEM][0] == 128 and marks[ZONE_MOVABLE][0] == 64   # clamp(n/1024)
    reserve = kernel_lowmem_reserve(managed)
    assert reserve[ZONE_NORMAL][ZONE_HIGHMEM] == 229376 // 32
    for z in zones_of(m):
        assert z._watermark == marks[z.idx], z.name
        assert z.lowmem_reserve == reserve[z.idx], z.name


def _floor(z, kind, highest=ZONE_NORMAL):
    """Free pages below which ``kind`` of allocation may not take ``z`` (kernel rules)."""
    mn = z.min_wmark_pages()
    if kind == "high":        # ALLOC_MIN_RESERVE: min -= min / 2
        mn -= mn // 2
    elif kind == "atomic":    # ... and ALLOC_NON_BLOCK: min -= min / 4
        mn -= mn // 2
        mn -= mn // 4
    return mn + z.lowmem_reserve[highest]


def _at_floor(m, kind):
    for z in zones_of(m):
        floor = _floor(z, kind)
        assert floor - z.pcp_batch < z.free_pages <= floor, (z.name, kind, z.free_pages)


def test_watermark_reserves_by_gfp(machine):
    m = machine
    initial = snapshot(m)
    held = fill(KERNEL_NORETRY)               # no reclaimable memory: fails at min
    assert len(held) > 15000
    _at_floor(m, "kernel")
    counts = {}
    for name, gfp in (("nowait", GFP_NOWAIT),                       # non-blocking, no HIGH
                      ("kernel|nomemalloc", KERNEL_NORETRY | __GFP_NOMEMALLOC),
                      ("high", KERNEL_NORETRY | __GFP_HIGH),         # half the min
                      ("atomic|nomemalloc", GFP_ATOMIC | __GFP_NOMEMALLOC | __GFP_NOWARN),
                      ("atomic", GFP_ATOMIC | __GFP_NOWARN),         # a quarter more
                      ("nomemalloc|memalloc",
                       KERNEL_NORETRY | __GFP_NOMEMALLOC | __GFP_MEMALLOC)):
        got = fill(gfp)
        counts[name] = len(got)
        held += got
        if name == "high":
            _at_floor(m, "high")
        if name == "atomic":
            _at_floor(m, "atomic")
    assert counts["nowait"] == 0 and counts["kernel|nomemalloc"] == 0
    assert counts["high"] > 0
    assert counts["atomic|nomemalloc"] == 0   # NOMEMALLOC: no ALLOC_NON_BLOCK bonus
    assert counts["atomic"] > counts["nowait"]
    assert counts["nomemalloc|memalloc"] == 0  # NOMEMALLOC wins over MEMALLOC
    _at_floor(m, "atomic")
    got = fill(KERNEL_NORETRY | __GFP_MEMALLOC)   # ALLOC_NO_WATERMARKS: everything
    assert got
    held += got
    assert [z.free_pages for z in zones_of(m)] == [0, 0] and m.page_alloc.nr_pcp_pages() == 0
    assert len({pfn_of(p) for p in held}) == len(held) == sum(n for _, n in initial)
    audit(m)
    free_all(held)
    assert_restored(m, initial)


def test_high_order_watermark_needs_a_free_block(machine):
    m = machine
    initial = snapshot(m)
    blocks = fill(KERNEL_NORETRY, MAX_PAGE_ORDER)
    assert len(blocks) > 5
    for z in zones_of(m):  # __zone_watermark_ok(): free - (2^order - 1) <= min + reserve
        assert z.free_pages - 1023 <= z.min_wmark_pages() + z.lowmem_reserve[ZONE_NORMAL] \
            or z.nr_free[MAX_PAGE_ORDER] == 0
    small = fill(KERNEL_NORETRY, 0, limit=100)    # order-0 memory is still there
    assert len(small) == 100
    free_all(small)
    free_all(blocks, MAX_PAGE_ORDER)
    assert_restored(m, initial)


def test_order_above_max_fails_with_a_warning(machine):
    m = machine
    assert alloc_pages(GFP_KERNEL | __GFP_NOWARN, MAX_PAGE_ORDER + 1) == 0
    assert not m.warnings
    assert alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER + 1) == 0
    assert len(m.warnings) == 1 and "WARNING:" in m.warnings[0]
    assert tainted(m, "WARN")


# ---------------------------------------------------------------- the failure warning

@pytest.fixture
def fake_jiffies(monkeypatch):
    """Freeze ``machine.clock.jiffies()``; returns a setter to move it."""
    def install(m):
        now = [m.clock.jiffies()]
        monkeypatch.setattr(m.clock, "jiffies", lambda: now[0])

        def advance(seconds):
            now[0] += int(seconds * m.clock.hz)
        return advance
    return install


def _failures(m):
    return [ln for ln in log_lines(m) if "page allocation failure" in ln]


def test_alloc_failure_warning_text(machine, fake_jiffies):
    m = machine
    advance = fake_jiffies(m)
    held = fill(KERNEL_NORETRY)
    fails = m.page_alloc.alloc_failures
    start = len(log_lines(m))
    assert alloc_pages(GFP_KERNEL, 4) == 0     # costly order: no OOM killer, fails
    new = log_lines(m)[start:]
    head = ("init: page allocation failure: order:4, mode:0xcc0(GFP_KERNEL), "
            "nodemask=(null),cpuset=/,mems_allowed=0")
    assert head in new
    i = new.index(head)
    rest = new[i + 1:]
    assert rest[0].startswith("CPU: 0 UID: 0 PID: 1 Comm: init")
    assert rest.index("Call Trace:") < rest.index("Mem-Info:")
    assert any(ln.startswith("Node 0 DMA32 free:") for ln in rest)
    assert m.page_alloc.alloc_failures == fails + 1

    advance(11)
    assert alloc_pages(GFP_KERNEL | __GFP_RETRY_MAYFAIL, 0) == 0   # order 0, no OOM
    assert _failures(m)[-1] == ("init: page allocation failure: order:0, "
                                "mode:0x4cc0(GFP_KERNEL|__GFP_RETRY_MAYFAIL), "
                                "nodemask=(null),cpuset=/,mems_allowed=0")
    advance(11)
    n = len(_failures(m))
    for gfp, order in ((GFP_KERNEL | __GFP_NOWARN, 4), (GFP_NOWAIT, 0), (KERNEL_NORETRY, 0)):
        assert alloc_pages(gfp, order) == 0
    assert len(_failures(m)) == n               # __GFP_NOWARN: silent
    free_all(held)
    audit(m)


def test_gfp_kernel_order0_ooms_instead_of_failing(machine):
    """A small GFP_KERNEL allocation is not allowed to fail: with nothing to reclaim
    the OOM killer runs, and with no task to kill the kernel panics."""
    m = machine
    fill(KERNEL_NORETRY)
    with pytest.raises(KernelPanic, match="System is deadlocked on memory"):
        alloc_pages(GFP_KERNEL, 0)
    text = "\n".join(log_lines(m))
    assert "init invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0" in text
    assert "Out of memory and no killable processes..." in text
    assert "page allocation failure" not in text


def test_alloc_failure_warning_is_ratelimited(machine, fake_jiffies):
    m = machine
    advance = fake_jiffies(m)
    held = fill(KERNEL_NORETRY)
    for _ in range(15):
        assert alloc_pages(GFP_KERNEL, 4) == 0
    burst = len(_failures(m))
    assert 1 <= burst <= 10                  # 6.x: 1 per 10 s; older kernels: 10 per 5 s
    assert m.page_alloc.alloc_failures >= 15
    advance(1)
    assert alloc_pages(GFP_KERNEL, 4) == 0
    assert len(_failures(m)) == burst        # still inside the interval
    advance(11)
    assert alloc_pages(GFP_KERNEL, 4) == 0
    assert len(_failures(m)) == burst + 1    # a new interval prints again
    free_all(held)


def test_alloc_failure_ratelimit_matches_kernel(machine, fake_jiffies):
    m = machine
    advance = fake_jiffies(m)
    held = fill(KERNEL_NORETRY)
    try:
        for _ in range(5):
            alloc_pages(GFP_KERNEL, 4)
        assert len(_failures(m)) == 1
        advance(5)
        alloc_pages(GFP_KERNEL, 4)
        assert len(_failures(m)) == 1
        advance(5.01)
        alloc_pages(GFP_KERNEL, 4)
        lines = log_lines(m)
        assert len(_failures(m)) == 2
        assert "warn_alloc: 5 callbacks suppressed" in lines
    finally:
        free_all(held)


# ---------------------------------------------------------------- zeroing, compound, refs

def test_gfp_zero_zeroes_a_recycled_page(machine):
    m = machine
    page = alloc_page(GFP_KERNEL)
    addr = hwemu.page_address(page)
    hwemu.memset(addr, 0xA5, PAGE_SIZE)
    __free_page(page)
    again = alloc_page(GFP_KERNEL)     # per-CPU lists are LIFO: the same page, still dirty
    assert again == page
    assert hwemu.read_bytes(addr, PAGE_SIZE) == b"\xa5" * PAGE_SIZE
    __free_page(again)
    zeroed = alloc_page(GFP_KERNEL | __GFP_ZERO)
    assert zeroed == page
    assert hwemu.read_bytes(addr, PAGE_SIZE) == bytes(PAGE_SIZE)
    __free_page(zeroed)
    # Higher orders: dirty 64 blocks, free them, and every __GFP_ZERO block that
    # reuses any of that memory must come back all zeroes.
    dirty = set()
    blocks = [alloc_pages(GFP_KERNEL, 2) for _ in range(64)]
    for b in blocks:
        hwemu.memset(hwemu.page_address(b), 0x3C, 4 * PAGE_SIZE)
        dirty.update(range(pfn_of(b), pfn_of(b) + 4))
    free_all(blocks, 2)
    zeroed = [alloc_pages(GFP_KERNEL | __GFP_ZERO, 2) for _ in range(64)]
    reused = [b for b in zeroed if dirty & set(range(pfn_of(b), pfn_of(b) + 4))]
    assert len(reused) > 32
    for b in zeroed:
        assert hwemu.read_bytes(hwemu.page_address(b), 4 * PAGE_SIZE) == bytes(4 * PAGE_SIZE)
    free_all(zeroed, 2)
    audit(m)


def test_gfp_zero_highmem_page(highmem_machine):
    page = alloc_pages(GFP_HIGHUSER, 0)
    addr = hwemu.kmap_local_page(page)
    hwemu.memset(addr, 0x5A, PAGE_SIZE)
    hwemu.kunmap_local(addr)
    __free_page(page)
    again = alloc_pages(GFP_HIGHUSER | __GFP_ZERO, 0)
    assert again == page and hwemu.PageHighMem(again)
    addr = hwemu.kmap_local_page(again)
    assert hwemu.read_bytes(addr, PAGE_SIZE) == bytes(PAGE_SIZE)
    hwemu.kunmap_local(addr)
    __free_page(again)


def test_compound_page_layout_and_put_page(machine):
    m = machine
    initial = snapshot(m)
    head = alloc_pages(GFP_KERNEL | __GFP_COMP, 3)
    flags = hwemu.load(head + OFF_FLAGS, 8)
    assert flags >> PG_head & 1                                  # PG_head
    assert hwemu.load(head + 64 + OFF_FLAGS, 8) & 0xFF == 3      # folio order in page[1]
    for i in range(1, 8):
        tail = head + 64 * i
        assert hwemu.load(tail + OFF_LRU_NEXT, 8) == head | 1    # compound_head
        assert raw32(tail, OFF_REFCOUNT) == 0
    assert hwemu.page_ref_count(head) == 1
    get_page(head)
    assert hwemu.page_ref_count(head) == 2
    put_page(head)
    assert hwemu.page_ref_count(head) == 1 and free_block_of(pfn_of(head)) is None
    put_page(head)                    # the last reference frees the whole folio
    assert not hwemu.load(head + OFF_FLAGS, 8) >> PG_head & 1
    assert hwemu.load(head + 64 + OFF_FLAGS, 8) & 0xFF == 0
    assert snapshot(m) == initial
    plain = alloc_pages(GFP_KERNEL | __GFP_COMP, 0)              # order 0: not compound
    assert not hwemu.load(plain + OFF_FLAGS, 8) >> PG_head & 1
    put_page(plain)
    assert_restored(m, initial)


def test_get_page_put_page_refcounting(machine):
    m = machine
    initial = snapshot(m)
    page = alloc_page(GFP_KERNEL)
    get_page(page)
    assert hwemu.page_ref_count(page) == 2
    put_page(page)
    assert hwemu.page_ref_count(page) == 1         # still allocated
    m.page_alloc.drain_all_pages()
    assert free_block_of(pfn_of(page)) is None
    put_page(page)
    assert hwemu.page_ref_count(page) == 0
    assert snapshot(m) == initial                  # freed
    with pytest.raises(KernelBug):                 # get_page() on a free page
        get_page(page)
    audit(m)


def test_free_pages_with_an_extra_reference_frees_the_tail(machine):
    """__free_pages() of a non-compound block someone else holds a reference to:
    the pages after the first are freed now, the first on the last put_page()."""
    m = machine
    initial = snapshot(m)
    page = alloc_pages(GFP_KERNEL, 2)
    get_page(page)
    __free_pages(page, 2)
    m.page_alloc.drain_all_pages()
    pfn = pfn_of(page)
    assert hwemu.page_ref_count(page) == 1 and free_block_of(pfn) is None
    assert all(free_block_of(pfn + i) for i in (1, 2, 3))
    put_page(page)
    assert_restored(m, initial)


def test_get_put_page_on_a_tail_page_use_the_head(machine):
    m = machine
    initial = snapshot(m)
    head = alloc_pages(GFP_KERNEL | __GFP_COMP, 2)
    tail = head + 2 * 64
    get_page(tail)
    assert hwemu.page_ref_count(head) == 2
    put_page(tail)
    put_page(tail)
    assert snapshot(m) == initial


# ---------------------------------------------------------------- __get_free_pages

def test_get_free_pages_round_trip(machine):
    m = machine
    initial = snapshot(m)
    lo, hi = m.memmap.page_offset, m.memmap.lowmem_virt(m.memmap.max_low_pfn)
    addr = __get_free_pages(GFP_KERNEL, 2)
    assert lo <= addr < hi and (addr - lo) % (4 * PAGE_SIZE) == 0
    assert hwemu.virt_addr_valid(addr)
    page = hwemu.virt_to_page(addr)
    assert hwemu.page_address(page) == addr and hwemu.page_ref_count(page) == 1
    hwemu.memset(addr, 0xEE, PAGE_SIZE)
    free_pages(addr, 2)
    assert snapshot(m) == initial
    dirty = __get_free_pages(GFP_KERNEL, 0)
    hwemu.memset(dirty, 0x77, PAGE_SIZE)
    free_pages(dirty, 0)
    zeroed = get_zeroed_page(GFP_KERNEL)
    assert zeroed == dirty                   # the same page, off the per-CPU list
    assert hwemu.read_bytes(zeroed, PAGE_SIZE) == bytes(PAGE_SIZE)
    free_pages(zeroed, 0)
    free_pages(0, 0)                         # NULL: ignored
    free_pages(0, 3)
    assert_restored(m, initial)


def test_get_free_pages_never_returns_highmem(highmem_machine):
    m = highmem_machine
    addrs = [__get_free_pages(GFP_HIGHUSER, 0) for _ in range(100)]
    addrs += [__get_free_pages(GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 1) for _ in range(20)]
    lowmem_end = m.memmap.lowmem_virt(m.memmap.max_low_pfn)
    assert all(m.memmap.page_offset <= a < lowmem_end for a in addrs)
    assert not any(hwemu.PageHighMem(hwemu.virt_to_page(a)) for a in addrs)
    for i, a in enumerate(addrs):
        free_pages(a, 0 if i < 100 else 1)
    audit(m)


# ---------------------------------------------------------------- bad frees

def test_double_free_is_a_vm_bug(machine):
    m = machine
    page = alloc_page(GFP_KERNEL)
    __free_page(page)
    before = [(z.nr_free[:], z.free_pages, [list(p) for p, _ in z.per_cpu_pageset])
              for z in zones_of(m)]
    with pytest.raises(KernelBug):
        __free_page(page)
    text = "\n".join(log_lines(m))
    assert f"pfn:{pfn_of(page):#x}" in text
    assert "page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)" in text
    assert "kernel BUG at " in text
    after = [(z.nr_free[:], z.free_pages, [list(p) for p, _ in z.per_cpu_pageset])
             for z in zones_of(m)]
    assert after == before
    audit(m)


def _adjacent_pages(m, n=4):
    """Allocate order-0 pages until ``n`` of them form an aligned run; (run, others)."""
    held = {}
    while True:
        page = alloc_page(GFP_KERNEL)
        pfn = pfn_of(page)
        held[pfn] = page
        base = pfn & ~(n - 1)
        if all(base + i in held for i in range(n)):
            run = [held.pop(base + i) for i in range(n)]
            return run, list(held.values())


def _all_pfns_distinct_after_filling(m, leaked):
    got = fill(KERNEL_NORETRY | __GFP_MEMALLOC)
    pfns = [pfn_of(p) for p in got]
    assert len(set(pfns)) == len(pfns), "a page was handed out twice"
    assert not set(leaked) & set(pfns), "a page in a bad state was handed out"
    free_all(got)
    return len(pfns)


def test_free_with_wrong_order_over_pages_in_use(machine):
    m = machine
    run, others = _adjacent_pages(m, 4)
    free_before = free_total(m)
    __free_pages(run[0], 2)          # the caller got an order-0 page: pages 1-3 are in use
    text = "\n".join(log_lines(m))
    for page in run[1:]:
        assert f"BUG: Bad page state in process init  pfn:{pfn_of(page):05x}" in text
    assert text.count("page dumped because: nonzero _refcount") == 3
    assert tainted(m, "BAD_PAGE") and "B" in m.tainted
    assert free_total(m) == free_before   # nothing freed: the block is leaked
    audit(m)
    for page in run[1:]:
        __free_page(page)                  # the real owners free theirs: fine
    free_all(others)
    assert free_total(m) == free_before + 3 + len(others)
    n = _all_pfns_distinct_after_filling(m, [pfn_of(run[0])])
    assert n == free_before + 3 + len(others)
    audit(m)


def test_free_with_wrong_order_over_a_free_buddy(machine):
    m = machine
    (first, second), others = _adjacent_pages(m, 2)
    __free_page(second)
    m.page_alloc.drain_all_pages()
    assert free_block_of(pfn_of(second)) == (pfn_of(second), 0)   # its buddy is in use
    __free_pages(first, 1)
    text = "\n".join(log_lines(m))
    assert f"BUG: Bad page state in process init  pfn:{pfn_of(second):05x}" in text
    assert "page dumped because: nonzero mapcount" in text
    assert tainted(m, "BAD_PAGE")
    free_all(others)
    _all_pfns_distinct_after_filling(m, [pfn_of(first)])
    audit(m)


def test_free_of_a_page_with_a_mapping(machine):
    m = machine
    page = alloc_page(GFP_KERNEL)
    hwemu.store(page + OFF_MAPPING, 8, 0xFFFF888000123400)
    before = free_total(m)
    __free_page(page)
    text = "\n".join(log_lines(m))
    assert f"BUG: Bad page state in process init  pfn:{pfn_of(page):05x}" in text
    assert "page dumped because: non-NULL mapping" in text
    assert tainted(m, "BAD_PAGE")
    assert free_total(m) == before and free_block_of(pfn_of(page)) is None
    flagged = alloc_page(GFP_KERNEL)
    before = free_total(m)
    hwemu.store(flagged + OFF_FLAGS, 8, hwemu.load(flagged + OFF_FLAGS, 8) | 1 << PG_lru)
    __free_page(flagged)
    assert "page dumped because: PAGE_FLAGS_CHECK_AT_FREE flag(s) set" in log_lines(m)
    assert free_total(m) == before
    _all_pfns_distinct_after_filling(m, [pfn_of(page), pfn_of(flagged)])
    audit(m)


def test_bad_page_reason_priority_matches_kernel(machine):
    m = machine
    (first, second), others = _adjacent_pages(m, 2)
    hwemu.store(second + OFF_MAPPING, 8, 0xFFFF888000123400)   # in use and mapped
    __free_pages(first, 1)
    dumped = [ln for ln in log_lines(m) if ln.startswith("page dumped because:")]
    assert dumped == ["page dumped because: nonzero _refcount"]


def test_corrupted_tail_page_reason_matches_kernel(machine):
    m = machine
    head = alloc_pages(GFP_KERNEL | __GFP_COMP, 2)
    other = alloc_pages(GFP_KERNEL | __GFP_COMP, 2)
    hwemu.store(head + 64 + OFF_LRU_NEXT, 8, other | 1)        # tail 1 claims another head
    put_page(head)
    assert "page dumped because: compound_head not consistent" in log_lines(m)


def test_free_of_an_unaligned_block_raises(machine):
    m = machine
    page = alloc_pages(GFP_KERNEL, 1)
    before = free_total(m)
    with pytest.raises(AddressError, match="not the head of an order-1 block"):
        __free_pages(page + 64, 1)
    with pytest.raises(AddressError):
        __free_pages(page, MAX_PAGE_ORDER + 1)
    assert free_total(m) == before and hwemu.page_ref_count(page) == 1
    __free_pages(page, 1)
    audit(m)


def test_free_of_a_never_allocated_deferred_page_is_a_vm_bug(boot):
    m = boot(BIG)
    deep = m.nodes[3].node_start_pfn + 3 * 32768 + 5   # in node 3, never touched
    z = zone(m, 3, ZONE_NORMAL)
    assert z.deferred_pfn <= deep < z.deferred_end
    before = snapshot(m)
    with pytest.raises(KernelBug):
        __free_page(hwemu.pfn_to_page(deep))
    assert "page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)" in log_lines(m)
    assert snapshot(m) == before
    audit(m)


def test_never_allocated_page_dump_names_its_node_and_zone(boot):
    m = boot(BIG)
    deep = m.nodes[3].node_start_pfn + 3 * 32768 + 5
    with pytest.raises(KernelBug):
        __free_page(hwemu.pfn_to_page(deep))
    lines = log_lines(m)
    assert any(ln.startswith("flags: ") and ln.endswith("(node=3|zone=2)") for ln in lines)
    assert any(ln.startswith("page: refcount:0 mapcount:0 ") for ln in lines)


# ---------------------------------------------------------------- deferred init, punching

def test_deferred_init_big_machine(boot):
    rss0 = vm_rss_kb()
    t0 = time.monotonic()
    m = boot(BIG)
    assert time.monotonic() - t0 < 2.0
    z3 = zone(m, 3, ZONE_NORMAL)
    assert z3.managed_pages == 16 << 18 and z3.nr_free[MAX_PAGE_ORDER] == 4096
    assert z3.deferred_end - z3.deferred_pfn == 16 << 18     # nothing handed out yet
    before = snapshot(m)
    page = alloc_pages_node(3, GFP_KERNEL, MAX_PAGE_ORDER)
    assert hwemu.page_to_nid(page) == 3 and hwemu.page_zonenum(page) == ZONE_NORMAL
    assert z3.nr_free[MAX_PAGE_ORDER] == 4095 and z3.free_pages == (16 << 18) - 1024
    audit(m)
    pages = [alloc_pages_node(n, GFP_KERNEL, o) for n in range(4) for o in (0, 5)]
    assert [hwemu.page_to_nid(p) for p in pages] == [0, 0, 1, 1, 2, 2, 3, 3]
    audit(m)
    for i, p in enumerate(pages):
        __free_pages(p, (0, 5)[i % 2])
    __free_pages(page, MAX_PAGE_ORDER)
    assert snapshot(m) == before
    assert nr_free_pages() == sum(z.free_pages for z in zones_of(m))
    audit(m)
    assert vm_rss_kb() - rss0 < 128 * 1024     # 64G of RAM, 1G of struct pages: untouched


def test_hole_punching_returns_free_blocks_to_the_host(boot):
    m = boot("tiny", machine__nodes=[{"mem": "512M"}])
    ram = m.ram
    n = PUNCH_SLACK + 16
    written = 4 * PAGE_SIZE
    blocks = [alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER) for _ in range(n)]
    for page in blocks:
        hwemu.memset(hwemu.page_address(page), 0xC3, written)
    punched0 = m.page_alloc.punched_pages
    resident = ram.resident_bytes()
    assert resident >= n * written
    for page in blocks:
        __free_pages(page, MAX_PAGE_ORDER)
    expected = n - PUNCH_SLACK                 # the oldest free blocks beyond the slack
    assert m.page_alloc.punched_pages - punched0 == expected << MAX_PAGE_ORDER
    assert resident - ram.resident_bytes() >= expected * written
    audit(m)
    punched = {pfn_of(p) for p in blocks[:expected]}
    again = [alloc_pages(GFP_KERNEL, MAX_PAGE_ORDER) for _ in range(n)]
    back = [p for p in again if pfn_of(p) in punched]
    assert len(back) == expected
    for page in back:                           # a punched block reads back as zeroes
        assert hwemu.read_bytes(hwemu.page_address(page), written) == bytes(written)
    free_all(again, MAX_PAGE_ORDER)
    audit(m)


# ---------------------------------------------------------------- fault injection

def test_fail_page_alloc_times(machine):
    m = machine
    fpa = m.fault.fail_page_alloc
    fpa.probability, fpa.times = 100, 3
    held = [alloc_pages(GFP_ATOMIC, 0),                  # below min-order
            alloc_pages(GFP_KERNEL, 1),                  # ignore-gfp-wait
            alloc_pages(GFP_HIGHUSER & ~__GFP_DIRECT_RECLAIM, 2)]   # ignore-gfp-highmem
    assert all(held) and fpa.times == 3
    results = [alloc_pages(GFP_ATOMIC, 1) for _ in range(5)]
    assert [bool(p) for p in results] == [False, False, False, True, True]
    assert fpa.times == 0
    text = "\n".join(log_lines(m))
    assert text.count("FAULT_INJECTION: forcing a failure.") == 3
    assert "name fail_page_alloc, interval 1, probability 100, space 0, times 3" in text
    assert "page allocation failure" not in text   # injected: no warn_alloc()
    __free_pages(held[0], 0)
    __free_pages(held[1], 1)
    __free_pages(held[2], 2)
    for p in results[3:]:
        __free_pages(p, 1)
    audit(m)


def test_fail_nth_fails_the_nth_eligible_allocation(machine):
    m = machine
    task = hwemu.current()
    task.fail_nth = 3
    got = []
    for order in (1, 0, 1, 0, 1, 1):           # order 0 is below min-order: not counted
        got.append((alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order), order))
    assert [bool(p) for p, _ in got] == [True, True, True, True, False, True]
    assert task.fail_nth == 0
    for p, order in got:
        if p:
            __free_pages(p, order)
    audit(m)


# ---------------------------------------------------------------- concurrency

STRESS_GFP = (GFP_KERNEL, GFP_ATOMIC, GFP_KERNEL | __GFP_ZERO, GFP_ATOMIC | __GFP_ZERO)


def _stress(tid, seed, nops):
    rng = random.Random(seed)
    held, stamp = [], tid << 48
    injected = allocated = freed = 0

    def release(entry):
        page, order, value = entry
        addr = hwemu.page_address(page)
        size = PAGE_SIZE << order
        assert hwemu.load(addr, 8) == value, "block changed under its owner"
        assert hwemu.load(addr + size - 8, 8) == value
        __free_pages(page, order)
        return 1 << order

    for _ in range(nops):
        if held and (len(held) >= 48 or rng.random() < 0.45):
            freed += release(held.pop(rng.randrange(len(held))))
            continue
        order, gfp = rng.randrange(4), rng.choice(STRESS_GFP)
        page = alloc_pages(gfp, order)
        if not page:
            assert order >= 1 and not gfp & __GFP_DIRECT_RECLAIM, format_gfp(gfp)
            injected += 1
            continue
        assert hwemu.page_ref_count(page) == 1
        addr = hwemu.page_address(page)
        size = PAGE_SIZE << order
        if gfp & __GFP_ZERO:
            assert hwemu.read_bytes(addr, size) == bytes(size)
        stamp += 1
        hwemu.store(addr, 8, stamp)
        hwemu.store(addr + size - 8, 8, stamp)
        held.append((page, order, stamp))
        allocated += 1 << order
    for entry in held:
        freed += release(entry)
    return injected, allocated, freed


def test_concurrent_alloc_free_accounts_for_every_page(machine):
    m = machine
    fpa = m.fault.fail_page_alloc
    fpa.probability, fpa.times, fpa.verbose = 5, -1, 0
    initial = snapshot(m)
    events = vm_events(m)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)           # switch tasks often: more interleavings
    try:
        tasks = [m.spawn(_stress, tid, 1000 + tid, 2500, name=f"stress{tid}")
                 for tid in range(4)]
        results = [t.join(timeout=120) for t in tasks]
    finally:
        sys.setswitchinterval(interval)
    injected, allocated, freed = (sum(col) for col in zip(*results))
    assert injected > 0 and allocated == freed > 10000
    assert snapshot(m) == initial           # every page is back where it started
    assert vm_events(m) == (events[0] + allocated, events[1] + freed)
    assert m.tainted == "Not tainted"
    audit(m)


def test_nr_free_pages_consistent_through_random_operations(machine):
    m = machine
    rng = random.Random(7)
    held = []
    total = free_total(m)
    for step in range(1500):
        if held and rng.random() < 0.48:
            page, order = held.pop(rng.randrange(len(held)))
            __free_pages(page, order)
        else:
            order = rng.choice((0, 0, 0, 1, 2, 3, 5, 8))
            gfp = rng.choice((GFP_KERNEL, GFP_DMA, GFP_ATOMIC, GFP_DMA32 | __GFP_COMP))
            page = alloc_pages(gfp, order)
            assert page
            held.append((page, order))
        if step % 100 == 0:
            if step % 300 == 0:
                m.page_alloc.drain_all_pages()
            for z in zones_of(m):
                assert sum(n << o for o, n in enumerate(z.nr_free)) == z.free_pages
            assert free_total(m) == total - sum(1 << o for _, o in held)
            assert nr_free_pages() == sum(z.free_pages for z in zones_of(m))
    audit(m)
    for page, order in held:
        __free_pages(page, order)
    assert free_total(m) == total
    audit(m)
