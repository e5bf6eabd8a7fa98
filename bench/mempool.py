"""mempool pairs against a naive pool, and 8 tasks sharing one pool against one task.

The baseline is a pool of ints in a Python list under a ``threading.Lock`` (alloc pops,
free pushes: ``list_lock_pairs`` in bench/common.py). The pair rows run on a kmalloc
pool of 16 elements of 64 bytes on configs/tiny.yaml, one machine with KASAN off booted
once beforehand, and one with KASAN on booted for each KASAN row and shut down after it
(a live KASAN machine switches the KASAN static key on for every machine, as one kernel
booted with KASAN would: the KASAN off rows measure a process without one). The
reserve pair is
``mempool_alloc_preallocated`` + ``mempool_free`` (the element leaves and rejoins the
reserve), the allocator pair ``mempool_alloc(pool, GFP_KERNEL)`` + ``mempool_free`` on
the full pool (the element comes from kmalloc and goes back to kfree). Each row is
thread CPU ns per pair of N pairs, run in the booting thread.

"8 tasks on one pool": a third machine (tiny, ``machine.cpus: 9``) with one pool of
the same kind; 8 tasks spawned together do N/8 reserve pairs each on it, against one
task doing N alone. Every task runs in the booting thread (one at a time, see
hwemu/sched.py), so each case is the booting thread's CPU time from the spawns to the
last join. The figure is the 8 tasks' pairs per CPU second over the lone task's.

Every repetition runs every case once, in rotating order (bench/common.py); a ratio is
the median of the per-repetition ratios against the baseline of the same repetition.
Targets (C accelerator active; pure Python in parentheses): reserve pair, KASAN off
<= 3x (<= 5x); allocator pair, KASAN off <= 4x (<= 6x); 8 tasks >= 0.9 of one task
(accelerated only). The KASAN on rows have no target. The script exits 1 if a target
that applies is missed.

    python bench/mempool.py [--reps R] [--pairs N]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

from common import (Target, booted_with, call_on, cpu_ns_per, exit_if_missed, median_ratio,
                    mode, naive_pair_ns, pair_table, rotate)

import hwemu
import mempool

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "tiny.yaml")
BASELINE = "naive pool (baseline)"
TARGETS = {"reserve, KASAN off": Target("<=", 3, 5),
           "allocator, KASAN off": Target("<=", 4, 6),
           "reserve, KASAN on": None,
           "allocator, KASAN on": None}
ONE, EIGHT = "1 task", "8 tasks"
TASKS_TARGET = Target(">=", 0.9)


def reserve_pairs(pool: int, n: int) -> None:
    """``n`` reserve pairs; the reserve must never be empty (a NULL would be free)."""
    alloc, free = mempool.mempool_alloc_preallocated, mempool.mempool_free
    for _ in range(n):
        element = alloc(pool)
        if not element:
            raise RuntimeError("mempool_alloc_preallocated() returned NULL")
        free(element, pool)


def allocator_pairs(pool: int, n: int) -> None:
    """``n`` allocator pairs on a full pool."""
    alloc, free, gfp = mempool.mempool_alloc, mempool.mempool_free, hwemu.GFP_KERNEL
    for _ in range(n):
        free(alloc(pool, gfp), pool)


def tasks_ns(machine, pool: int, tasks: int, pairs: int) -> float:
    """Thread CPU ns per pair of ``tasks`` tasks doing ``pairs // tasks`` reserve pairs
    each on ``pool``, spawns to last join."""
    each = pairs // tasks

    def run() -> float:
        t = time.thread_time_ns()
        handles = [machine.spawn(reserve_pairs, pool, each, name=f"pairs{i}")
                   for i in range(tasks)]
        for handle in handles:
            handle.join()
        return (time.thread_time_ns() - t) / (each * tasks)

    return call_on(machine, run)


def kmalloc_pool(overrides: dict):
    """A machine booted from configs/tiny.yaml with ``overrides``, with a kmalloc pool
    of 16 elements of 64 bytes: ``(machine, pool)``."""
    return booted_with(TINY, overrides, lambda: mempool.mempool_create_kmalloc_pool(16, 64),
                       mempool.mempool_destroy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=8000, help="pairs per case")
    args = parser.parse_args()
    n = args.pairs
    with contextlib.ExitStack() as stack:
        machines, pools = {}, {}
        for name, overrides in {"off": {"kasan.enabled": False},
                                "tasks": {"kasan.enabled": False, "machine.cpus": 9}}.items():
            machine, pool = stack.enter_context(kmalloc_pool(overrides))
            machines[name], pools[name] = machine, pool

        def pairs_case(kind: str, fn) -> float:
            if kind == "on":
                with kmalloc_pool({"kasan.enabled": True}) as (machine, pool):
                    return call_on(machine, lambda: cpu_ns_per(lambda k: fn(pool, k), n))
            return call_on(machines[kind], lambda: cpu_ns_per(lambda k: fn(pools[kind], k), n))

        cases = {BASELINE: lambda: naive_pair_ns(n),
                 "reserve, KASAN off": lambda: pairs_case("off", reserve_pairs),
                 "allocator, KASAN off": lambda: pairs_case("off", allocator_pairs),
                 "reserve, KASAN on": lambda: pairs_case("on", reserve_pairs),
                 "allocator, KASAN on": lambda: pairs_case("on", allocator_pairs),
                 ONE: lambda: tasks_ns(machines["tasks"], pools["tasks"], 1, n),
                 EIGHT: lambda: tasks_ns(machines["tasks"], pools["tasks"], 8, n)}
        results = rotate(cases, args.reps)

    print(mode())
    missed = pair_table(results, BASELINE, TARGETS, 28)

    print(f"\n{'8 tasks on one pool':<28} {'pairs/CPU s':>11} {'x 1 task':>8} {'target':>13}")
    # Throughput is the inverse of ns per pair: 8 tasks / 1 task = 1 task ns / 8 tasks ns.
    ratio = median_ratio(results, ONE, EIGHT)
    for name in (ONE, EIGHT):
        rate = 1e9 / statistics.median(results[name])
        cell = TASKS_TARGET.cell if name == EIGHT else ""
        print(f"{name:<28} {rate:11.0f} {ratio if name == EIGHT else 1.0:8.3f} {cell:>13}")
    if TASKS_TARGET.missed(ratio):
        missed.append(f"8 tasks on one pool ({TASKS_TARGET.cell} of 1 task)")
    print(f"\nmedians of {args.reps} repetitions, {n} pairs per case (8 tasks: {n // 8} "
          "each), thread CPU time")
    exit_if_missed(missed)


if __name__ == "__main__":
    main()
