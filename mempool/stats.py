"""Observability of memory pools: per-pool counters. Not part of mm/mempool.c (the
kernel has no such counters); the port in :mod:`mempool._mempool` reports into it at the
points named below.
"""
from __future__ import annotations

import random
import threading
import weakref

from hwemu.current import current

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
    machine = current().machine
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


def live_pools() -> list[int]:
    """The ``struct mempool *`` of every pool of this machine that has counters."""
    return list(_pools())


def forget(pool: int) -> None:
    """``pool`` was exited: its address may be reused by another pool."""
    _pools().pop(pool, None)


def mempool_stats(pool: int) -> dict[str, int]:
    """The counters of ``struct mempool *pool`` (see :data:`COUNTERS`), ``lowest_fill``
    and ``p99_wait_ns``: the 99th percentile of its sleeps."""
    stats = stats_of(pool)
    return stats.snapshot() | {"p99_wait_ns": stats.wait_percentile(99)}
