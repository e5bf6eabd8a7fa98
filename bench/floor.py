"""The floor: the least a mempool reserve pair written in Python can cost, however lean.

Not hwemu: a model of ``mempool_alloc_preallocated()`` + ``mempool_free()`` stripped
to what any Python port keeps, against the naive pool of bench/common.py. Its
``struct mempool`` and element array are typed memoryviews of a bytearray (reads and
writes with no check at all); taking and dropping the pool lock is one call of a C
builtin each (the cost of the C accelerator's spinlock word, with no preemption point
and no preempt/IRQ bookkeeping); ``remove_element()``/``add_element()`` are written
out in their callers, as the compiler inlines them; there are no counters, no KASAN
or slub_debug hooks and no wait-queue test. What is left are the four functions of
mm/mempool.c's structure (``mempool_alloc_preallocated()``,
``mempool_alloc_from_pool()``, ``mempool_free()``, ``mempool_free_bulk()``), the
one-element arrays they pass, and the reads and writes of the pool.

The figure is the floor under bench/mempool.py's reserve pair: a port that keeps
mm/mempool.c's functions in Python cannot go below it, whatever the accelerator does
beneath. A second model adds the least of what hwemu keeps on that path (see
:class:`KeptPool`). Every repetition runs every case once in rotating order; the ratio is the
median of per-repetition ratios, thread CPU time. No target: it is a measurement.

    python bench/floor.py [--reps R] [--pairs N]
"""
from __future__ import annotations

import argparse
import contextvars
import statistics
import time

from common import median_ratio, naive_pair_ns, rotate

MIN_NR, CURR_NR, ELEMENTS = 24, 28, 32   # struct mempool's offsets (64-bit)
POOL, ARRAY, NR = 0x100, 0x1000, 16      # where the model's pool and array lie


class LeanPool:
    """A reserve of ``NR`` elements in a bytearray, and the four functions."""

    def __init__(self):
        buf = bytearray(1 << 14)
        memoryview(buf).cast("Q")[(POOL + 64) >> 3] = POOL + 64   # an empty wait list
        self.u32, self.u64 = memoryview(buf).cast("I"), memoryview(buf).cast("Q")
        self.u32[(POOL + MIN_NR) >> 2] = self.u32[(POOL + CURR_NR) >> 2] = NR
        self.u64[(POOL + ELEMENTS) >> 3] = ARRAY
        for i in range(NR):
            self.u64[(ARRAY >> 3) + i] = 0x2000 + 64 * i

    def alloc_from_pool(self, pool: int, elems: list, count: int, allocated: int) -> int:
        u32, u64 = self.u32, self.u64
        flags = divmod(pool, 3)          # spin_lock_irqsave(): one C call
        curr = u32[(pool + CURR_NR) >> 2]
        if curr < count - allocated:
            divmod(pool, 5)              # spin_unlock_irqrestore()
            return allocated
        while allocated < count:         # remove_element(), inlined
            curr -= 1
            u32[(pool + CURR_NR) >> 2] = curr
            elems[allocated] = u64[(u64[(pool + ELEMENTS) >> 3] >> 3) + curr]
            allocated += 1
        divmod(pool, 5)
        del flags
        return allocated

    def alloc_preallocated(self, pool: int) -> int:
        elems = [0]
        self.alloc_from_pool(pool, elems, 1, 0)
        return elems[0]

    def free_bulk(self, pool: int, elems: list, count: int) -> int:
        u32, u64 = self.u32, self.u64
        freed = 0
        if u32[(pool + CURR_NR) >> 2] < u32[(pool + MIN_NR) >> 2]:
            divmod(pool, 3)
            while freed < count:         # add_element(), inlined
                curr = u32[(pool + CURR_NR) >> 2]
                if curr >= u32[(pool + MIN_NR) >> 2]:
                    break
                u64[(u64[(pool + ELEMENTS) >> 3] >> 3) + curr] = elems[freed]
                u32[(pool + CURR_NR) >> 2] = curr + 1
                freed += 1
            divmod(pool, 5)
        return freed

    def free(self, element: int, pool: int) -> None:
        if element and not self.free_bulk(pool, [element], 1):
            raise RuntimeError("the reserve was full: the model has no allocator")


class Counters:
    """A pool's counters, as mempool/stats.py keeps them."""

    __slots__ = ("alloc_reserve", "free_reserve")

    def __init__(self):
        self.alloc_reserve = self.free_reserve = 0


class KeptPool(LeanPool):
    """The lean model plus the least of what hwemu must keep on this path: ``current``
    (a context variable), a preemption point at each lock and unlock (a countdown, as
    hwemu/sched.py's point()), the pool's counters (found once per call, one counted),
    and the wait-queue test of ``mempool_free_bulk()``. The two functions that change
    are written out again, so that neither model pays for the other."""

    def __init__(self):
        super().__init__()
        self.current: contextvars.ContextVar = contextvars.ContextVar("current")
        self.current.set(self)
        self.countdown = 1 << 62
        self.stats = {POOL: Counters()}

    def point(self, task) -> None:
        if task is self:
            self.countdown -= 1

    def alloc_from_pool(self, pool: int, elems: list, count: int, allocated: int) -> int:
        u32, u64 = self.u32, self.u64
        task = self.current.get()
        self.point(task)
        flags = divmod(pool, 3)
        curr = u32[(pool + CURR_NR) >> 2]
        if curr < count - allocated:
            divmod(pool, 5)
            self.point(task)
            return allocated
        self.stats[pool].alloc_reserve += count - allocated
        while allocated < count:
            curr -= 1
            u32[(pool + CURR_NR) >> 2] = curr
            elems[allocated] = u64[(u64[(pool + ELEMENTS) >> 3] >> 3) + curr]
            allocated += 1
        divmod(pool, 5)
        self.point(task)
        del flags
        return allocated

    def free_bulk(self, pool: int, elems: list, count: int) -> int:
        u32, u64 = self.u32, self.u64
        freed = 0
        if u32[(pool + CURR_NR) >> 2] < u32[(pool + MIN_NR) >> 2]:
            task = self.current.get()
            self.point(task)
            divmod(pool, 3)
            while freed < count:
                curr = u32[(pool + CURR_NR) >> 2]
                if curr >= u32[(pool + MIN_NR) >> 2]:
                    break
                u64[(u64[(pool + ELEMENTS) >> 3] >> 3) + curr] = elems[freed]
                u32[(pool + CURR_NR) >> 2] = curr + 1
                freed += 1
            divmod(pool, 5)
            self.point(task)
        if freed and u64[(pool + 64) >> 3] != pool + 64:   # wq_has_sleeper()
            raise RuntimeError("no task sleeps in the model")
        if freed:
            self.stats[pool].free_reserve += freed
        return freed


def pair_ns(model: LeanPool, pairs: int) -> float:
    """Thread CPU ns per reserve pair of ``model``."""
    alloc, free = model.alloc_preallocated, model.free
    t = time.thread_time_ns()
    for _ in range(pairs):
        free(alloc(POOL), POOL)
    return (time.thread_time_ns() - t) / pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=50000)
    args = parser.parse_args()
    results = rotate({"naive": lambda: naive_pair_ns(args.pairs),
                      "lean": lambda: pair_ns(LeanPool(), args.pairs),
                      "kept": lambda: pair_ns(KeptPool(), args.pairs)}, args.reps)
    print(f"{'pair':<44} {'ns':>8} {'x naive':>8}")
    for name, label in (("naive", "naive pool (baseline)"),
                        ("lean", "lean Python reserve pair (floor)"),
                        ("kept", "floor + current, points, counters, wait")):
        print(f"{label:<44} {statistics.median(results[name]):8.0f} "
              f"{median_ratio(results, name, 'naive'):8.3f}")
    print(f"\nmedians of {args.reps} repetitions, {args.pairs} pairs per case, "
          "thread CPU time")


if __name__ == "__main__":
    main()
