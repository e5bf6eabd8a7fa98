"""Observability of memory pools: per-pool counters. Not part of mm/mempool.c (the
kernel has no such counters); the port in :mod:`mempool._mempool` counts into them at
the points named below.

A pool's counters are made when it is initialised and found from its address once per
call of the port (one task of a machine runs at a time, so they need no lock).
"""
from __future__ import annotations

import random

from hwemu import vmem
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
    """The counters of one pool: ``stats.alloc_reserve += 1``."""

    __slots__ = COUNTERS + ("lowest", "lowest_recent", "_waits", "_rng")
    preallocated: int
    alloc_allocator: int
    alloc_reserve: int
    alloc_null: int
    waits: int
    wait_ns: int
    max_wait_ns: int
    free_reserve: int
    free_allocator: int
    kasan_dropped: int

    def __init__(self):
        for name in COUNTERS:
            setattr(self, name, 0)
        self.lowest: int | None = None   # the fewest a reserve allocation left
        self.lowest_recent: int | None = None   # the same since take_lowest_recent()
        self._waits: list[int] = []
        self._rng = random.Random(0)

    def reserve_left(self, curr_nr: int) -> None:
        """An allocation from the reserve left ``curr_nr`` elements in it."""
        if self.lowest is None or curr_nr < self.lowest:
            self.lowest = curr_nr
        if self.lowest_recent is None or curr_nr < self.lowest_recent:
            self.lowest_recent = curr_nr

    def take_lowest_recent(self) -> int | None:
        """The fewest elements a reserve allocation left since the last call (None if
        there was none), for a sampler that sees the reserve only now and then."""
        lowest, self.lowest_recent = self.lowest_recent, None
        return lowest

    def wait(self, ns: int) -> None:
        """One sleep on pool->wait that lasted ``ns`` of emulated time."""
        self.waits += 1
        self.wait_ns += ns
        self.max_wait_ns = max(self.max_wait_ns, ns)
        if len(self._waits) < WAIT_SAMPLES:
            self._waits.append(ns)
        elif (slot := self._rng.randrange(self.waits)) < WAIT_SAMPLES:
            self._waits[slot] = ns

    def snapshot(self) -> dict:
        """The counters, and ``lowest_fill``: the fewest elements a reserve allocation
        left in the reserve (None if the reserve was never used)."""
        return {name: getattr(self, name) for name in COUNTERS} | {"lowest_fill": self.lowest}

    def wait_percentile(self, p: float) -> int:
        """The ``p``-th percentile (0..100) of the sleeps, in ns; 0 without any."""
        waits = sorted(self._waits)
        return waits[min(len(waits) - 1, int(len(waits) * p / 100))] if waits else 0


# struct mempool * -> its counters, for the pools of every live machine. A machine's
# entries go when it shuts down (its addresses may be another machine's later).
_STATS: dict[int, PoolStats] = {}
_SPACES: set = set()   # the address spaces whose shutdown will drop their entries


def _drop(space) -> None:
    _SPACES.discard(space)
    for pool in [p for p in _STATS if space.base <= p < space.end]:
        del _STATS[pool]


def start(pool: int) -> PoolStats:
    """Fresh counters for ``pool``, being initialised."""
    space = vmem.space_of(pool)
    if space not in _SPACES:   # the machine's first pool
        _SPACES.add(space)
        space.machine.reboot_notifiers.append(lambda: _drop(space))
    stats = _STATS[pool] = PoolStats()
    return stats


def stats_of(pool: int) -> PoolStats:
    """The counters of ``pool`` (made on first use for a pool never initialised)."""
    stats = _STATS.get(pool)
    return stats if stats is not None else start(pool)


def live_pools() -> list[int]:
    """The ``struct mempool *`` of every pool of the current machine that has counters."""
    space = current().machine.space
    return [p for p in _STATS if space.base <= p < space.end]


def forget(pool: int) -> None:
    """``pool`` was exited: its address may be reused by another pool."""
    _STATS.pop(pool, None)


def mempool_stats(pool: int) -> dict[str, int]:
    """The counters of ``struct mempool *pool`` (see :data:`COUNTERS`), ``lowest_fill``
    and ``p99_wait_ns``: the 99th percentile of its sleeps."""
    stats = stats_of(pool)
    return stats.snapshot() | {"p99_wait_ns": stats.wait_percentile(99)}
