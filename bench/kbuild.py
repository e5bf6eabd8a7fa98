"""Kernel C (hwemu.kbuild) against a naive pool: the reserve pair of a C reserve pool
called from Python, and what a call costs each way.

The C is tests/kbuild/respool.c (a reserve pool written for hwemu's tests from the
spec), built with ``hwemu.kbuild.load()`` (once, then from its cache) for a machine
booted from configs/tiny.yaml with KASAN off. The baseline is a pool of ints in a
Python list under a ``threading.Lock`` (``list_lock_pairs`` in bench/common.py).

Rows, in thread CPU ns, each against the baseline of the same repetition:

- "C reserve pair, from Python": ``respool_alloc`` (from the reserve, under the pool's
  spinlock) + ``respool_free`` (back to the reserve) of a kmalloc pool of 16 elements
  of 64 bytes, two calls from Python per pair. Target: < 1x the naive pool.
- "C reserve pair, in C": the same pairs looped in C (``respool_pairs``), one call
  from Python for all of them; no target (what the spinlock's calls into hwemu cost).
- "empty C export from Python": one call of an exported ``void empty(void)``.
- "C -> hwemu call": one ``__hw_rt->task_info(0)`` made from C (``hwemu_calls(n)``,
  per call). The last two have no target.

Every repetition runs every case once, in rotating order (bench/common.py); a ratio is
the median of the per-repetition ratios. The script exits 1 if a target is missed.

    python bench/kbuild.py [--reps R] [--pairs N]
"""
from __future__ import annotations

import argparse
import os
import statistics

from common import (Target, booted_with, call_on, cpu_ns_per, exit_if_missed, mode,
                    naive_pair_ns, pair_table, rotate)

from hwemu import kbuild

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "configs", "tiny.yaml")
RESPOOL = os.path.join(HERE, "..", "tests", "kbuild", "respool.c")
BASELINE = "naive pool (baseline)"
PAIR, PAIR_C = "C reserve pair, from Python", "C reserve pair, in C"
EMPTY, CALL = "empty C export from Python", "C -> hwemu call"
TARGETS = {PAIR: Target("<", 1.0, 1.0), PAIR_C: None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=8000, help="pairs (calls) per case")
    args = parser.parse_args()
    n = args.pairs
    made = {}

    def make():
        made["mod"] = mod = kbuild.load(RESPOOL)
        return mod.respool_create(16, 64)

    with booted_with(TINY, {"kasan.enabled": False}, make,
                     lambda pool: made["mod"].respool_destroy(pool)) as (machine, pool):
        mod = made["mod"]
        alloc, free = mod.respool_alloc, mod.respool_free

        def pairs(k: int) -> None:
            for _ in range(k):
                element = alloc(pool)
                if not element:
                    raise RuntimeError("respool_alloc() returned NULL")
                free(pool, element)

        def empties(k: int) -> None:
            empty = mod.empty
            for _ in range(k):
                empty()

        def c_pairs(k: int) -> None:
            if mod.respool_pairs(pool, k):
                raise RuntimeError("respool_pairs(): the reserve ran dry")

        def on(fn):
            return lambda: call_on(machine, lambda: cpu_ns_per(fn, n))

        cases = {BASELINE: lambda: naive_pair_ns(n),
                 PAIR: on(pairs),
                 PAIR_C: on(c_pairs),
                 EMPTY: on(empties),
                 CALL: on(mod.hwemu_calls)}
        results = rotate(cases, args.reps)

    print(mode())
    missed = pair_table(results, BASELINE, TARGETS, 30)
    print(f"\n{'one call':<30} {'ns':>8}")
    for name in (EMPTY, CALL):
        print(f"{name:<30} {statistics.median(results[name]):8.0f}")
    print(f"\nmedians of {args.reps} repetitions, {n} pairs (calls) per case, "
          "thread CPU time")
    exit_if_missed(missed)


if __name__ == "__main__":
    main()
