"""Allocator fast paths against a naive Python baseline measured in the same run.

The baseline is the least an allocator written in Python can cost: a free list of
ints (a Python list) under a ``threading.Lock``. Each row is ns per alloc+free pair
and its ratio to the baseline pair.

    python bench/alloc.py [--pairs N]
"""
from __future__ import annotations

import argparse

from common import best_ns, list_lock_pairs

import hwemu
from hwemu.gfp import GFP_KERNEL
from hwemu.page_alloc import __free_pages, alloc_pages

TARGETS = {"page order-0": 6.0, "kmalloc(64)": 4.0}


def pages(pairs: int) -> None:
    for _ in range(pairs):
        __free_pages(alloc_pages(GFP_KERNEL, 0), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20000)
    args = parser.parse_args()
    rows = {"page order-0": pages}
    try:
        from hwemu import slab
    except ImportError:
        slab = None
    if slab is not None:
        def kmalloc(pairs: int) -> None:
            for _ in range(pairs):
                slab.kfree(slab.kmalloc(64, GFP_KERNEL))

        cache = None

        def kmem_cache(pairs: int) -> None:
            for _ in range(pairs):
                slab.kmem_cache_free(cache, slab.kmem_cache_alloc(cache, GFP_KERNEL))
        rows["kmalloc(64)"] = kmalloc
        rows["kmem_cache(64)"] = kmem_cache
    with hwemu.boot("configs/tiny.yaml"):
        if slab is not None:
            cache = slab.kmem_cache_create("bench", 64, 0, 0, None)
        base = best_ns(list_lock_pairs, args.pairs)
        print(f"{'pair':<16} {'ns':>8} {'x baseline':>11} {'target':>7}")
        print(f"{'baseline':<16} {base:8.0f} {1.0:11.2f}")
        for name, fn in rows.items():
            ns = best_ns(fn, args.pairs)
            target = TARGETS.get(name)
            mark = f"<= {target:.0f}" if target else ""
            print(f"{name:<16} {ns:8.0f} {ns / base:11.2f} {mark:>7}")
        if slab is not None:
            slab.kmem_cache_destroy(cache)


if __name__ == "__main__":
    main()
