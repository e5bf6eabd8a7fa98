"""mempool pairs against a naive pool measured in the same run.

The baseline is a pool of ints in a Python list under a ``threading.Lock`` (alloc pops,
free pushes: bench/common.py). The reserve pair is ``mempool_alloc_preallocated`` +
``mempool_free``; the allocator pair is ``mempool_alloc(GFP_KERNEL)`` + ``mempool_free`` on a full
kmalloc pool (the element comes from kmalloc and goes back to kfree).

    python bench/mempool.py [--pairs N]
"""
from __future__ import annotations

import argparse
import os
import sys

from common import best_ns, list_lock_pairs

# This file is named after the package it measures: keep its own folder off the
# import path, or "import mempool" would import this script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]

import hwemu  # noqa: E402
import mempool  # noqa: E402

TARGETS = {"reserve, debug off": 1.5, "allocator, KASAN off": 5.0}


def measure(kasan: bool, pairs: int) -> tuple[float, float]:
    """(reserve pair ns, allocator pair ns) on a fresh machine."""
    with hwemu.boot("configs/tiny.yaml", overrides={"kasan.enabled": kasan}):
        pool = mempool.mempool_create_kmalloc_pool(16, 64)

        def reserve(k: int) -> None:
            for _ in range(k):
                mempool.mempool_free(mempool.mempool_alloc_preallocated(pool), pool)

        def allocator(k: int) -> None:
            for _ in range(k):
                mempool.mempool_free(mempool.mempool_alloc(pool, hwemu.GFP_KERNEL), pool)

        result = best_ns(reserve, pairs), best_ns(allocator, pairs)
        mempool.mempool_destroy(pool)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10000)
    args = parser.parse_args()
    base = best_ns(list_lock_pairs, args.pairs)
    off = measure(False, args.pairs)
    on = measure(True, args.pairs)
    print(f"{'pair':<24} {'ns':>8} {'x baseline':>11} {'target':>7}")
    print(f"{'baseline':<24} {base:8.0f} {1.0:11.2f}")
    rows = [("reserve, debug off", off[0]), ("allocator, KASAN off", off[1]),
            ("reserve, KASAN on", on[0]), ("allocator, KASAN on", on[1])]
    for name, ns in rows:
        target = TARGETS.get(name)
        mark = f"<= {target:g}" if target else ""
        print(f"{name:<24} {ns:8.0f} {ns / base:11.2f} {mark:>7}")


if __name__ == "__main__":
    main()
