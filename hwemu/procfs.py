"""Emulation of the /proc memory views: fs/proc/meminfo.c, mm/vmstat.c, mm/slab_common.c.

``machine.procfs.read(path)`` returns the text the kernel prints for

- ``/proc/buddyinfo`` (``frag_show()``), ``/proc/zoneinfo`` (``zoneinfo_show()``) and
  ``/proc/vmstat`` (``vmstat_show()``) of mm/vmstat.c,
- ``/proc/meminfo`` (``meminfo_proc_show()`` of fs/proc/meminfo.c),
- ``/proc/slabinfo`` (``slab_show()`` of mm/slab_common.c, slabinfo 2.1), once the slab
  allocator (``machine.slab``) exists,

laid out exactly as a 6.18 kernel lays them out (field widths, spacing, order). Each
read renders from one snapshot: every zone's free counts are copied under its
``zone->lock`` (as ``walk_zones_in_node()`` does), the per-CPU lists under their own
locks, the counters with :meth:`VmStat.snapshot`; so reads are safe while other tasks
allocate, and a zone's numbers always agree with each other.

What the kernel would print but the emulator has no such thing for:

- Lines under ``#ifdef`` of options the emulated kernel does not have are left out, as
  that kernel would: ``CONFIG_NUMA`` event counters (``numa_hit``...), ``ZSWAP``,
  ``MEMORY_FAILURE``, ``TRANSPARENT_HUGEPAGE``, ``CMA``, ``UNACCEPTED_MEMORY``,
  ``HUGETLB_PAGE`` lines of meminfo, x86's ``DirectMap*`` lines (the direct map here is
  a host mmap with no page-size split). Only configured zones are listed (no
  ``HighMem`` on x86_64, no ``DMA32`` on i386), as the kernel numbers only those.
- Memory kinds the machine has none of print 0: swap, shmem, mapped file pages,
  kernel stacks, page tables, per-CPU allocator, bounce buffers, committed user memory.
- ``/proc/pagetypeinfo`` does not exist: the emulator has no migratetypes or pageblocks.
- Per-node statistics: the LRU and page-cache items are split by node from vmscan's
  per-zone lists; every other node item is kept machine-wide by vmstat.py and is
  shown under node 0 (other nodes print 0 for it).
- The per-CPU page lists have a fixed ``high`` (no auto-tuning), so ``high_min`` and
  ``high_max`` equal ``high``; ``vm stats threshold`` is 0 because every counter update
  goes straight to the machine-wide counter (no per-CPU deltas).
- Only ``/proc/vmstat`` items the emulator maintains are listed (vmstat.py's items, in
  its order), plus ``nr_free_pages`` and ``nr_free_pages_blocks``.
"""
from __future__ import annotations

import errno

from .mmzone import MAX_PAGE_ORDER, ZONE_HIGHMEM, ZONE_MOVABLE, zone_limits
from .page_types import PAGE_SHIFT
from .vmstat import NODE_STAT_ITEMS, VM_EVENT_ITEMS

__all__ = ["ProcFS"]

# vm_commit_limit(): sysctl vm.overcommit_ratio default (percent of RAM, no swap).
SYSCTL_OVERCOMMIT_RATIO = 50
# pgdat->kswapd_failures threshold for "node_unreclaimable" (mm/internal.h).
MAX_RECLAIM_RETRIES = 16

# Node stat items a per-zone breakdown of vmscan's lists can split by node.
_SPLIT_ITEMS = ("nr_inactive_file", "nr_file_pages", "nr_dirty", "nr_anon_pages",
                "nr_inactive_anon")


def K(pages: int) -> int:
    """``K(x)``: pages to kB."""
    return pages << (PAGE_SHIFT - 10)


def show_val_kb(name: str, pages: int) -> str:
    """``show_val_kb()``: ``name`` (16 columns, padding included) + ``%8lu kB``."""
    return f"{name}{K(pages):8d} kB\n"


def pageblock_order(cfg) -> int:
    """``pageblock_order``: ``HPAGE_PMD_ORDER`` (2 MiB pages: 9; i386 without PAE has
    4 MiB pages: 10), at most ``MAX_PAGE_ORDER``."""
    hpage_shift = 22 if cfg.arch == "i386" and not cfg.pae else 21
    return min(hpage_shift - PAGE_SHIFT, MAX_PAGE_ORDER)


def configured_zones(cfg) -> list[int]:
    """Zone indices the emulated kernel is built with: DMA/DMA32/Normal/HighMem as the
    arch has them, and Movable (always configured)."""
    return [z for z, _, _ in zone_limits(cfg)] + [ZONE_MOVABLE]


class _ZoneSnap:
    """One zone's allocator state, copied under its locks."""
    __slots__ = ("zone", "nr_free", "free_pages", "pcp_count")

    def __init__(self, zone):
        self.zone = zone
        with zone.lock:
            self.nr_free = list(zone.nr_free)
            self.free_pages = zone.free_pages
        self.pcp_count = []
        for pages, lock in zone.per_cpu_pageset:
            with lock:
                self.pcp_count.append(len(pages))


class ProcFS:
    """The /proc files of one machine (``machine.procfs``)."""

    def __init__(self, machine, cfg):
        """``cfg`` is the machine's config section (``config.machine``), handed at boot."""
        self.machine = machine
        self.zone_ids = configured_zones(cfg)
        self.pageblock_order = pageblock_order(cfg)
        self.files = {
            "/proc/buddyinfo": self.buddyinfo,
            "/proc/zoneinfo": self.zoneinfo,
            "/proc/meminfo": self.meminfo,
            "/proc/vmstat": self.vmstat,
            "/proc/slabinfo": self.slabinfo,
            "/proc/allocinfo": machine.alloc_tags.allocinfo,
        }

    def read(self, path: str) -> str:
        """The whole text of ``path``, as ``cat`` would print it.

        :raises FileNotFoundError: ``ENOENT`` for a file this machine does not have.
        """
        show = self.files.get(path)
        if show is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.machine._alive()  # MachineDown after shutdown()
        return show()

    # ------------------------------------------------------------ snapshots

    def _zones(self, pgdat):
        """The node's configured zones, lowest first."""
        return [pgdat.node_zones[z] for z in self.zone_ids]

    def _snap(self) -> dict[int, _ZoneSnap]:
        """Every configured zone's free counts, by ``id(zone)``."""
        return {id(z): _ZoneSnap(z) for n in self.machine.nodes for z in self._zones(n)}

    def _lru_breakdown(self) -> dict[int, dict[str, int]]:
        """Per zone (by ``id``): page-cache, dirty and anonymous pages."""
        return self.machine.vmscan.lru_pages()

    def _counters(self) -> dict[str, int]:
        """``global_node_page_state()`` of every item; negative transients read as 0."""
        items = self.machine.vmstat.snapshot()
        for name in NODE_STAT_ITEMS:
            items[name] = max(items[name], 0)
        return items

    # ------------------------------------------------------------ /proc/buddyinfo

    def buddyinfo(self) -> str:
        """``frag_show()``: free blocks per order of every populated zone."""
        out = []
        for pgdat in self.machine.nodes:
            for zone in self._zones(pgdat):
                if not zone.populated():
                    continue
                snap = _ZoneSnap(zone)
                out.append(f"Node {pgdat.node_id}, zone {zone.name:>8s} "
                           + "".join(f"{n:6d} " for n in snap.nr_free) + "\n")
        return "".join(out)

    # ------------------------------------------------------------ /proc/zoneinfo

    def _free_pages_blocks(self, snap: _ZoneSnap) -> int:
        """``NR_FREE_PAGES_BLOCKS``: free pages in blocks of ``pageblock_order`` or more."""
        return sum(n << o for o, n in enumerate(snap.nr_free) if o >= self.pageblock_order)

    def _node_stats(self, nid: int, counters: dict, lru) -> dict[str, int]:
        """Node ``nid``'s node stat items (see the module docstring for the split)."""
        stats = {name: (counters[name] if nid == 0 else 0) for name in NODE_STAT_ITEMS}
        zones = [lru[id(z)] for z in self.machine.nodes[nid].node_zones]
        file = sum(z["file"] for z in zones)
        anon = sum(z["anon"] for z in zones)
        split = {"nr_inactive_file": file, "nr_file_pages": file, "nr_anon_pages": anon,
                 "nr_inactive_anon": anon, "nr_dirty": sum(z["dirty"] for z in zones)}
        stats.update((name, split[name]) for name in _SPLIT_ITEMS)
        return stats

    def _zone_stats(self, zone, snap: _ZoneSnap, lru) -> list[tuple[str, int]]:
        """``enum zone_stat_item`` of a populated zone, in kernel order (6.18)."""
        items = [("nr_free_pages", snap.free_pages),
                 ("nr_free_pages_blocks", self._free_pages_blocks(snap))]
        mine = lru[id(zone)]
        # Anonymous pages start on the inactive list and nothing ages them; page
        # cache sits on the inactive file list (vmscan has no active lists).
        items += [("nr_zone_inactive_anon", mine["anon"]),
                  ("nr_zone_active_anon", 0),
                  ("nr_zone_inactive_file", mine["file"]),
                  ("nr_zone_active_file", 0),
                  ("nr_zone_unevictable", 0),
                  ("nr_zone_write_pending", mine["dirty"])]
        items += [("nr_mlock", 0), ("nr_free_cma", 0)]
        return items

    def zoneinfo(self) -> str:
        """``zoneinfo_show()``: every configured zone of every node."""
        counters = self._counters()
        lru = self._lru_breakdown()
        nr_cpus = len(self.machine.sched.cpus)
        out = []
        for pgdat in self.machine.nodes:
            zones = self._zones(pgdat)
            first = next((z for z in zones if z.populated()), None)
            for zone in zones:
                snap = _ZoneSnap(zone)
                text = f"Node {pgdat.node_id}, zone {zone.name:>8s}"
                if zone is first:
                    text += "\n  per-node stats"
                    for name, value in self._node_stats(pgdat.node_id, counters,
                                                        lru).items():
                        text += f"\n      {name:<12s} {value}"
                wmin, wlow, whigh = zone._watermark
                promo = whigh + (wlow - wmin)  # _watermark[WMARK_PROMO] = high + tmp
                text += (f"\n  pages free     {snap.free_pages}"
                         f"\n        boost    0"
                         f"\n        min      {wmin}"
                         f"\n        low      {wlow}"
                         f"\n        high     {whigh}"
                         f"\n        promo    {promo}"
                         f"\n        spanned  {zone.spanned_pages}"
                         f"\n        present  {zone.present_pages}"
                         f"\n        managed  {zone.managed_pages}"
                         f"\n        cma      0")
                text += ("\n        protection: ("
                         + ", ".join(str(zone.lowmem_reserve[j]) for j in self.zone_ids)
                         + ")")
                if not zone.populated():  # "If unpopulated, no other information is useful"
                    out.append(text + "\n")
                    continue
                for name, value in self._zone_stats(zone, snap, lru):
                    text += f"\n      {name:<12s} {value}"
                text += "\n  pagesets"
                for cpu in range(nr_cpus):
                    count = snap.pcp_count[cpu] if cpu < len(snap.pcp_count) else 0
                    text += (f"\n    cpu: {cpu}"
                             f"\n              count:    {count}"
                             f"\n              high:     {zone.pcp_high}"
                             f"\n              batch:    {zone.pcp_batch}"
                             f"\n              high_min: {zone.pcp_high}"
                             f"\n              high_max: {zone.pcp_high}"
                             f"\n  vm stats threshold: 0")
                text += (f"\n  node_unreclaimable:  0"
                         f"\n  start_pfn:           {zone.zone_start_pfn}\n")
                out.append(text)
        return "".join(out)

    # ------------------------------------------------------------ /proc/vmstat

    def vmstat(self) -> str:
        """``vmstat_show()``: ``name value`` per line."""
        snaps = self._snap()
        counters = self._counters()
        free = sum(s.free_pages for s in snaps.values())
        blocks = sum(self._free_pages_blocks(s) for s in snaps.values())
        lines = [f"nr_free_pages {free}", f"nr_free_pages_blocks {blocks}"]
        lines += [f"{name} {counters[name]}" for name in NODE_STAT_ITEMS]
        zone_suffix = ("_dma", "_dma32", "_normal", "_high", "_movable")
        skip = {"pgalloc" + zone_suffix[z] for z in range(len(zone_suffix))
                if z not in self.zone_ids}  # TEXTS_FOR_ZONES(): configured zones only
        lines += [f"{name} {counters[name]}" for name in VM_EVENT_ITEMS if name not in skip]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ /proc/meminfo

    def _is_highmem(self, zone) -> bool:
        """``is_highmem(zone)``: HighMem, and Movable when carved out of highmem."""
        if zone.idx == ZONE_HIGHMEM:
            return True
        return (zone.idx == ZONE_MOVABLE and self.machine.highmem is not None
                and zone.zone_start_pfn >= self.machine.memmap.max_low_pfn)

    def mem_available(self, snaps: dict, counters: dict) -> int:
        """``si_mem_available()``: pages userspace could get without swapping."""
        wmark_low = sum(z.low_wmark_pages() for n in self.machine.nodes
                        for z in self._zones(n))
        available = sum(s.free_pages for s in snaps.values()) \
            - self.machine.page_alloc.totalreserve
        pagecache = counters["nr_active_file"] + counters["nr_inactive_file"]
        pagecache -= min(pagecache // 2, wmark_low)
        available += pagecache
        reclaimable = counters["nr_slab_reclaimable"] + counters["nr_kernel_misc_reclaimable"]
        reclaimable -= min(reclaimable // 2, wmark_low)
        available += reclaimable
        return max(available, 0)

    def meminfo(self) -> str:
        """``meminfo_proc_show()``."""
        snaps = self._snap()
        counters = self._counters()
        zones = [s.zone for s in snaps.values()]
        totalram = sum(z.managed_pages for z in zones)
        freeram = sum(s.free_pages for s in snaps.values())
        totalhigh = sum(z.managed_pages for z in zones if self._is_highmem(z))
        freehigh = sum(s.free_pages for s in snaps.values() if self._is_highmem(s.zone))
        bufferram = swapcache = 0
        cached = max(counters["nr_file_pages"] - swapcache - bufferram, 0)
        anon = counters["nr_anon_pages"]
        active_anon, inactive_anon = counters["nr_active_anon"], counters["nr_inactive_anon"]
        active_file, inactive_file = counters["nr_active_file"], counters["nr_inactive_file"]
        sreclaimable = counters["nr_slab_reclaimable"]
        sunreclaim = counters["nr_slab_unreclaimable"]
        vmalloc_total = self.machine.layout["vmalloc"][1]
        s = [show_val_kb("MemTotal:       ", totalram),
             show_val_kb("MemFree:        ", freeram),
             show_val_kb("MemAvailable:   ", self.mem_available(snaps, counters)),
             show_val_kb("Buffers:        ", bufferram),
             show_val_kb("Cached:         ", cached),
             show_val_kb("SwapCached:     ", swapcache),
             show_val_kb("Active:         ", active_anon + active_file),
             show_val_kb("Inactive:       ", inactive_anon + inactive_file),
             show_val_kb("Active(anon):   ", active_anon),
             show_val_kb("Inactive(anon): ", inactive_anon),
             show_val_kb("Active(file):   ", active_file),
             show_val_kb("Inactive(file): ", inactive_file),
             show_val_kb("Unevictable:    ", 0),
             show_val_kb("Mlocked:        ", 0)]
        if self.machine.highmem is not None:  # CONFIG_HIGHMEM
            s += [show_val_kb("HighTotal:      ", totalhigh),
                  show_val_kb("HighFree:       ", freehigh),
                  show_val_kb("LowTotal:       ", totalram - totalhigh),
                  show_val_kb("LowFree:        ", freeram - freehigh)]
        s += [show_val_kb("SwapTotal:      ", 0),
              show_val_kb("SwapFree:       ", 0),
              show_val_kb("Dirty:          ", counters["nr_dirty"]),
              show_val_kb("Writeback:      ", counters["nr_writeback"]),
              show_val_kb("AnonPages:      ", anon),
              show_val_kb("Mapped:         ", 0),
              show_val_kb("Shmem:          ", 0),
              show_val_kb("KReclaimable:   ",
                          sreclaimable + counters["nr_kernel_misc_reclaimable"]),
              show_val_kb("Slab:           ", sreclaimable + sunreclaim),
              show_val_kb("SReclaimable:   ", sreclaimable),
              show_val_kb("SUnreclaim:     ", sunreclaim),
              f"KernelStack:    {0:8d} kB\n",
              show_val_kb("PageTables:     ", 0),
              show_val_kb("SecPageTables:  ", 0),
              show_val_kb("NFS_Unstable:   ", 0),
              show_val_kb("Bounce:         ", 0),
              show_val_kb("WritebackTmp:   ", 0),
              show_val_kb("CommitLimit:    ", totalram * SYSCTL_OVERCOMMIT_RATIO // 100),
              show_val_kb("Committed_AS:   ", 0),
              f"VmallocTotal:   {vmalloc_total >> 10:8d} kB\n",
              show_val_kb("VmallocUsed:    ", counters["nr_vmalloc"]),
              show_val_kb("VmallocChunk:   ", 0),
              show_val_kb("Percpu:         ", 0),
              show_val_kb("Balloon:        ", 0)]
        return "".join(s)

    # ------------------------------------------------------------ /proc/slabinfo

    def slabinfo(self) -> str:
        """``slab_show()``: slabinfo 2.1, newest cache first (``list_add()`` order).

        SLUB has no tunables and no shared arrays: those columns are 0.
        """
        slab = self.machine.slab
        out = ["slabinfo - version: 2.1\n"
               "# name            <active_objs> <num_objs> <objsize> <objperslab> "
               "<pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata "
               "<active_slabs> <num_slabs> <sharedavail>\n"]
        for info in slab.slabinfo():
            out.append(f"{info['name']:<17s} {info['active_objs']:6d} {info['num_objs']:6d} "
                       f"{info['size']:6d} {info['objs_per_slab']:4d} "
                       f"{info['pagesperslab']:4d}"
                       f" : tunables {0:4d} {0:4d} {0:4d}"
                       f" : slabdata {info['active_slabs']:6d} {info['num_slabs']:6d} "
                       f"{0:6d}\n")
        return "".join(out)
