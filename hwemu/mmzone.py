"""Emulation of include/linux/mmzone.h: NUMA nodes (``pg_data_t``) and their zones.

Nodes are contiguous physical ranges (holes between nodes are allowed); each node is
cut into zones by the architecture's boundaries: ``ZONE_DMA`` below 16 MiB,
``ZONE_DMA32`` below 4 GiB (x86_64), ``ZONE_NORMAL`` up to the end of lowmem (896 MiB
on i386), ``ZONE_HIGHMEM`` above it (i386), and ``ZONE_MOVABLE`` taken from the top of
each node (``movablecore=``).

The zone enum is fixed at all five zones whatever the config, so ``ZONE_NORMAL`` has
the same number on every machine; zones a config leaves out are simply empty (the
kernel numbers only the configured ones). Not emulated: ``ZONE_DEVICE``, memory
hotplug.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .current import current
from .errors import AddressError
from .page_types import PAGE_SHIFT

ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_HIGHMEM, ZONE_MOVABLE = range(5)
MAX_NR_ZONES = 5
ZONE_NAMES = ("DMA", "DMA32", "Normal", "HighMem", "Movable")
MAX_DMA_ADDRESS = 16 << 20
MAX_DMA32_ADDRESS = 4 << 30
NODES_SHIFT = 6
MAX_NUMNODES = 1 << NODES_SHIFT
NUMA_NO_NODE = -1
LOCAL_DISTANCE, REMOTE_DISTANCE = 10, 20
MAX_PAGE_ORDER = 10
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1
WMARK_MIN, WMARK_LOW, WMARK_HIGH = 0, 1, 2


@dataclass
class zone:
    """``struct zone``: one zone of one node (``[zone_start_pfn, zone_end_pfn)``)."""
    name: str
    idx: int
    node: int
    zone_start_pfn: int = 0
    spanned_pages: int = 0
    # The page allocator's part (mm/page_alloc.c sets it up at boot).
    managed_pages: int = 0
    _watermark: list[int] = field(default_factory=lambda: [0, 0, 0])
    lowmem_reserve: list[int] = field(default_factory=lambda: [0] * MAX_NR_ZONES)
    # free_area[order]: free block head pfns, newest last; nr_free counts blocks,
    # including max-order blocks not yet handed to the free lists (deferred init).
    free_area: list[dict] = field(default_factory=lambda: [{} for _ in range(NR_PAGE_ORDERS)])
    nr_free: list[int] = field(default_factory=lambda: [0] * NR_PAGE_ORDERS)
    free_pages: int = 0  # NR_FREE_PAGES
    # Not in the kernel, for runs: the lowest free_pages seen by an allocation, and
    # page-cache pages reclaimed from the zone (pgsteal per zone).
    free_low: int = 1 << 62
    nr_reclaimed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # [deferred_pfn, deferred_end): max-order blocks free but not yet on free_area.
    deferred_pfn: int = 0
    deferred_end: int = 0
    per_cpu_pageset: list = field(default_factory=list, repr=False)

    def min_wmark_pages(self) -> int:
        return self._watermark[WMARK_MIN]

    def low_wmark_pages(self) -> int:
        return self._watermark[WMARK_LOW]

    def high_wmark_pages(self) -> int:
        return self._watermark[WMARK_HIGH]

    @property
    def present_pages(self) -> int:
        return self.spanned_pages  # nodes have no holes inside

    @property
    def zone_end_pfn(self) -> int:
        return self.zone_start_pfn + self.spanned_pages

    def populated(self) -> bool:
        return self.present_pages > 0

    def __contains__(self, pfn: int) -> bool:
        return self.zone_start_pfn <= pfn < self.zone_end_pfn


@dataclass
class pglist_data:
    """``pg_data_t``: a NUMA node, its pfn span and its zones."""
    node_id: int
    node_start_pfn: int
    node_spanned_pages: int
    node_zones: list[zone] = field(default_factory=list)

    @property
    def node_present_pages(self) -> int:
        return self.node_spanned_pages

    @property
    def node_end_pfn(self) -> int:
        return self.node_start_pfn + self.node_spanned_pages


def zone_limits(cfg) -> list[tuple[int, int, int]]:
    """Physical ``(zone, start, end)`` ranges of the non-movable zones on this arch."""
    limits, lo = [], 0
    if cfg.zone_dma:
        limits.append((ZONE_DMA, 0, MAX_DMA_ADDRESS))
        lo = MAX_DMA_ADDRESS
    if cfg.dma32_enabled:
        limits.append((ZONE_DMA32, lo, MAX_DMA32_ADDRESS))
        lo = MAX_DMA32_ADDRESS
    top = cfg.lowmem_limit if cfg.highmem_enabled else 1 << 64
    limits.append((ZONE_NORMAL, lo, top))
    if cfg.highmem_enabled:
        limits.append((ZONE_HIGHMEM, top, 1 << 64))
    return limits


def build_nodes(cfg) -> list[pglist_data]:
    """The nodes of a machine config, each cut into its five zones."""
    nodes = []
    limits = zone_limits(cfg)
    for nid, (start, end) in enumerate(cfg.node_ranges):
        movable = end - cfg.movable_per_node
        spans = {z: (max(start, lo), min(movable, hi)) for z, lo, hi in limits}
        spans[ZONE_MOVABLE] = (movable, end)
        pgdat = pglist_data(nid, start >> PAGE_SHIFT, (end - start) >> PAGE_SHIFT)
        for z in range(MAX_NR_ZONES):
            lo, hi = spans.get(z, (start, start))
            first = lo >> PAGE_SHIFT if hi > lo else pgdat.node_start_pfn
            pgdat.node_zones.append(zone(ZONE_NAMES[z], z, nid, first,
                                         max(hi - lo, 0) >> PAGE_SHIFT))
        nodes.append(pgdat)
    return nodes


def _machine():
    return current().machine


def NODE_DATA(nid: int) -> pglist_data:
    """``NODE_DATA(nid)`` of the current machine."""
    nodes = _machine().nodes
    if not 0 <= nid < len(nodes):
        raise AddressError(f"NODE_DATA({nid}): no such node (machine has "
                           f"{len(nodes)} node(s))")
    return nodes[nid]


def for_each_online_node():
    """``for_each_online_node(nid)``: the node ids of the current machine."""
    return iter(range(len(_machine().nodes)))


def num_online_nodes() -> int:
    return len(_machine().nodes)


def node_distance(a: int, b: int) -> int:
    """``node_distance(a, b)`` from the SLIT matrix of the config."""
    NODE_DATA(a), NODE_DATA(b)
    return _machine().numa_distance[a][b]


def cpu_to_node(cpu: int) -> int:
    return _machine().sched.cpus[cpu].node
