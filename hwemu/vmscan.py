"""Emulation of mm/vmscan.c: the LRU lists, page reclaim and kswapd.

Memory pressure comes from two kinds of consumers, as on a machine without swap:

- **page cache** (``add_to_page_cache``): file pages on the inactive file LRU of their
  zone. Clean pages are freed by reclaim at no cost; dirty pages must be written back
  first, which needs ``__GFP_IO`` and ``__GFP_FS`` and costs emulated IO time.
- **anonymous memory** (``add_anon_pages``): charged to the calling task (its RSS),
  unreclaimable without swap; only the OOM killer gets it back (oom_kill.py).

Direct reclaim runs in the allocating task (the page allocator calls
:meth:`Vmscan.shrink_zone`); ``kswapd<N>``, one kernel thread per node, is woken when an
allocation dips below a zone's low watermark and reclaims until the high one.
Not emulated: active/inactive aging (everything is inactive), swap, workingset
refaults, shrinkers, memory cgroups, writeback throttling.
"""
from __future__ import annotations

import collections
import threading

from . import bug, sched
from .current import current
from .gfp import __GFP_NOWARN, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, gfp_t
from .mmzone import NUMA_NO_NODE
from .page import PG_dirty, PG_lru
from .page_alloc import SWAP_CLUSTER_MAX, alloc_pages_node
from .wait import DEFINE_WAIT, WaitQueueHead, finish_wait, prepare_to_wait

# Page-cache fills do not reclaim other page cache to make room for themselves.
PAGECACHE_GFP = (GFP_HIGHUSER_MOVABLE | __GFP_NOWARN) & ~gfp_t.DIRECT_RECLAIM
WRITEBACK_JIFFIES = 1  # emulated IO time to write back one batch of dirty pages


class Vmscan:
    """LRU lists, reclaim and kswapd of one machine (``machine.vmscan``)."""

    def __init__(self, machine):
        self.machine = machine
        self.pa = machine.page_alloc
        self.vmstat = machine.vmstat
        self.lru_lock = threading.Lock()
        # Per zone: pfn -> dirty, oldest first (the inactive file list).
        self.file_lru: dict[int, collections.OrderedDict] = {
            id(z): collections.OrderedDict() for z in self.pa.zones}
        # Per zone: how many pages of its file LRU are dirty.
        self.file_dirty: dict[int, int] = {id(z): 0 for z in self.pa.zones}
        self.anon: dict[int, list[int]] = collections.defaultdict(list)  # pid -> pfns
        self._next_index = 0
        self.kswapd_wait = [WaitQueueHead() for _ in machine.nodes]
        self.kswapd_pending = [False] * len(machine.nodes)
        # kswapd<N> threads start on their first wake-up, so an idle machine has none.
        self.kswapd_task: list = [None] * len(machine.nodes)
        self.mapping = 0  # struct address_space * of the emulated file cache
        self.pa.reclaimers.append(self.shrink_zone)
        self.pa.wakeup_kswapd = self.wakeup_kswapd

    def start(self) -> None:
        """Set up the page cache's ``struct address_space`` (once the machine is up)."""
        page = alloc_pages_node(0, GFP_KERNEL, 0)
        self.mapping = self.pa.memmap.lowmem_virt(self._pfn(page))

    def _pfn(self, page: int) -> int:
        return self.pa.memmap.pfn_of(page)

    # ------------------------------------------------------------ consumers

    def add_to_page_cache(self, nr_pages: int, nid: int = NUMA_NO_NODE, dirty: bool = False,
                          gfp: int = PAGECACHE_GFP) -> int:
        """Read ``nr_pages`` pages of a file into the page cache; returns how many fit."""
        pg = self.pa.page
        added = []
        for _ in range(nr_pages):
            page = alloc_pages_node(nid, gfp, 0)
            if not page:
                break
            pfn = self._pfn(page)
            pg.flags[pfn] |= 1 << PG_lru | (1 << PG_dirty if dirty else 0)
            pg.mapping[pfn] = self.mapping
            pg.index[pfn] = self._next_index
            self._next_index += 1
            added.append(pfn)
        with self.lru_lock:
            for pfn in added:
                zid = id(self.pa._zone_of(pfn))
                self.file_lru[zid][pfn] = dirty
                self.file_dirty[zid] += dirty
        n = len(added)
        for item in ("nr_file_pages", "nr_inactive_file") + (("nr_dirty",) if dirty else ()):
            self.vmstat.mod(item, n)
        return n

    def add_anon_pages(self, nr_pages: int, gfp: int = GFP_HIGHUSER_MOVABLE) -> int:
        """Fault in ``nr_pages`` of anonymous memory for the current task (no swap:
        only the OOM killer frees them). Returns how many were allocated."""
        task = current()
        got = 0
        try:
            for _ in range(nr_pages):
                if task.oom_victim:
                    raise bug.Killed(f"{task.comm}/{task.pid} was killed by the OOM killer")
                page = alloc_pages_node(NUMA_NO_NODE, gfp, 0)
                if not page:
                    break
                with self.lru_lock:
                    self.anon[task.pid].append(self._pfn(page))
                got += 1
        finally:
            self.vmstat.mod("nr_anon_pages", got)
            self.vmstat.mod("nr_inactive_anon", got)
        return got

    def release_anon_pages(self, task=None) -> int:
        """Free all anonymous memory of ``task`` (default: current); returns pages."""
        task = task or current()
        with self.lru_lock:
            pfns = self.anon.pop(task.pid, [])
        for pfn in pfns:
            self.pa.free_pages(self.pa.memmap.page_of(pfn), 0)
        self.vmstat.mod("nr_anon_pages", -len(pfns))
        self.vmstat.mod("nr_inactive_anon", -len(pfns))
        return len(pfns)

    def lru_pages(self) -> dict[int, dict[str, int]]:
        """Per zone (by ``id``): pages of page cache, dirty page cache and anon memory."""
        with self.lru_lock:
            out = {zid: {"file": len(lru), "dirty": sum(lru.values()), "anon": 0}
                   for zid, lru in self.file_lru.items()}
            anon = [pfn for pfns in self.anon.values() for pfn in pfns]
        for pfn in anon:
            out[id(self.pa._zone_of(pfn))]["anon"] += 1
        return out

    def rss(self, pid: int) -> int:
        return len(self.anon.get(pid, ()))

    def drop_caches(self) -> int:
        """``echo 1 > /proc/sys/vm/drop_caches``: free every clean page-cache page. Not
        reclaim (the kernel invalidates the mappings): no pgscan/pgsteal, no stall."""
        return sum(self.shrink_zone(z, 1 << 62, 0, counted=False) for z in self.pa.zones)

    # ------------------------------------------------------------ reclaim

    def shrink_zone(self, zone, nr_to_reclaim: int, gfp: int, kswapd: bool = False,
                    counted: bool = True) -> int:
        """Free up to ``nr_to_reclaim`` page-cache pages of ``zone``; returns pages freed.

        Dirty pages are written back first, which needs ``__GFP_IO`` and ``__GFP_FS``;
        without them they are rotated and left in place. The pages are counted as
        kswapd's (``kswapd``) or direct reclaim's (``pgscan_*``, ``pgsteal_*``, the
        zone's ``nr_reclaimed``), unless not ``counted`` (drop_caches).
        """
        may_writepage = gfp & gfp_t.IO and gfp & gfp_t.FS
        victims: list[tuple[int, bool]] = []
        with self.lru_lock:
            lru = self.file_lru[id(zone)]
            # Without writeback, a list of dirty pages only would be rotated whole,
            # back into the order it has: nothing to scan.
            all_dirty = self.file_dirty[id(zone)] == len(lru)
            for _ in range(0 if all_dirty and not may_writepage else len(lru)):
                if len(victims) >= nr_to_reclaim:
                    break
                pfn, dirty = lru.popitem(last=False)
                if dirty and not may_writepage:
                    lru[pfn] = dirty  # rotate: cannot clean it in this context
                    continue
                victims.append((pfn, dirty))
            if counted:
                zone.nr_reclaimed += len(victims)
            self.file_dirty[id(zone)] -= sum(d for _, d in victims)
        kind = "kswapd" if kswapd else "direct"
        if counted:
            self.vmstat.mod(f"pgscan_{kind}", len(victims))
        dirty = sum(d for _, d in victims)
        if dirty:  # writeback: emulated IO time, one wait per batch
            for _ in range(-(-dirty // SWAP_CLUSTER_MAX)):
                sched.set_current_state(sched.TASK_UNINTERRUPTIBLE)
                sched.io_schedule_timeout(WRITEBACK_JIFFIES)
        pg = self.pa.page
        for pfn, _ in victims:  # __remove_mapping(), then the last put_page()
            pg.flags[pfn] &= ~(1 << PG_lru | 1 << PG_dirty)
            pg.mapping[pfn] = 0
            pg.index[pfn] = 0
            self.pa.free_pages(self.pa.memmap.page_of(pfn), 0)
        n = len(victims)
        self.vmstat.mod("nr_file_pages", -n)
        self.vmstat.mod("nr_inactive_file", -n)
        self.vmstat.mod("nr_dirty", -dirty)
        if counted:
            self.vmstat.mod(f"pgsteal_{kind}", n)
        return n

    # ------------------------------------------------------------ kswapd

    def wakeup_kswapd(self, zone) -> None:
        """Wake the node's kswapd if ``zone`` is below its low watermark. The first wake
        starts the thread; every wake that gives it new work counts (``kswapd_wake``),
        the first one too, and only a wake that reaches a thread (none starts while the
        machine goes down): kswapd reclaims only after a counted wake."""
        if zone.free_pages < zone.low_wmark_pages():
            nid = zone.node
            if self.kswapd_task[nid] is None and self.machine.going_down:
                return   # no new kernel thread now: nobody to wake
            if not self.kswapd_pending[nid]:   # new work for it (the first wake too)
                self.kswapd_pending[nid] = True
                self.vmstat.mod("kswapd_wake", 1)
            if self.kswapd_task[nid] is None:
                self.kswapd_task[nid] = self.machine.sched.spawn(
                    self.kswapd, nid, name=f"kswapd{nid}", kthread_node=nid)
            self.kswapd_wait[nid].wake_up()

    def kswapd(self, nid: int) -> None:
        """``kswapd()``: sleep until woken, then balance the node."""
        wq = self.kswapd_wait[nid]
        while True:
            wait = DEFINE_WAIT()
            prepare_to_wait(wq, wait, sched.TASK_INTERRUPTIBLE)
            if not self.kswapd_pending[nid]:
                sched.schedule()
            finish_wait(wq, wait)
            self.kswapd_pending[nid] = False
            self.balance_pgdat(nid)

    def balance_pgdat(self, nid: int) -> None:
        """Reclaim until every zone of the node is above its high watermark."""
        for zone in reversed(self.machine.nodes[nid].node_zones):
            while zone.managed_pages and zone.free_pages < zone.high_wmark_pages():
                if not self.shrink_zone(zone, SWAP_CLUSTER_MAX, GFP_KERNEL, kswapd=True):
                    break


# ---------------------------------------------------------------- the API

def _vmscan() -> Vmscan:
    return current().machine.vmscan


def add_to_page_cache(nr_pages: int, nid: int = NUMA_NO_NODE, dirty: bool = False) -> int:
    """Fill ``nr_pages`` of reclaimable page cache (``dirty``: needs writeback first)."""
    return _vmscan().add_to_page_cache(nr_pages, nid, dirty)


def add_anon_pages(nr_pages: int) -> int:
    """Give the current task ``nr_pages`` of unreclaimable anonymous memory."""
    return _vmscan().add_anon_pages(nr_pages)


def release_anon_pages() -> int:
    """Free the current task's anonymous memory."""
    return _vmscan().release_anon_pages()


def drop_caches() -> int:
    """Free all clean page cache now; returns pages freed."""
    return _vmscan().drop_caches()
