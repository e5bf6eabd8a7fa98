"""Emulation of mm/vmstat.c: the machine-wide memory counters and events.

Page counts (``nr_*`` items of ``enum node_stat_item``, kept machine-wide here) and
event counters (``enum vm_event_item``) that /proc/meminfo and /proc/vmstat print.
Free pages are not kept here: they are the zones' own ``free_pages``. Updates are
plain integer additions under one lock; readers get a consistent snapshot.
Not emulated: per-CPU deltas and their thresholds, per-node/per-memcg breakdown.
"""
from __future__ import annotations

import threading

# enum node_stat_item (the ones the emulated subsystems maintain), in /proc/vmstat order.
NODE_STAT_ITEMS = (
    "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file",
    "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_anon_pages", "nr_file_pages",
    "nr_dirty", "nr_writeback", "nr_kernel_misc_reclaimable", "nr_vmalloc",
)
# enum vm_event_item (the ones the emulated subsystems count).
VM_EVENT_ITEMS = (
    "pgalloc_dma", "pgalloc_dma32", "pgalloc_normal", "pgalloc_high", "pgalloc_movable",
    "allocstall_dma", "allocstall_dma32", "allocstall_normal", "allocstall_high",
    "allocstall_movable", "pgfree", "pgsteal_kswapd", "pgsteal_direct", "pgscan_kswapd",
    "pgscan_direct", "kswapd_wake", "oom_kill",
)


class VmStat:
    """Counters of one machine (``machine.vmstat``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items = dict.fromkeys(NODE_STAT_ITEMS + VM_EVENT_ITEMS, 0)
        # Hot paths keep their own plain counters and report them through a source:
        # fn() -> {item: value}, added in at read time.
        self.sources: list = []

    def mod(self, item: str, delta: int) -> None:
        """``mod_node_page_state()`` / ``count_vm_events()``."""
        with self._lock:
            self._items[item] += delta

    def __getitem__(self, item: str) -> int:
        return self.snapshot()[item]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            items = dict(self._items)
        for source in self.sources:
            for item, value in source().items():
                items[item] += value
        return items
