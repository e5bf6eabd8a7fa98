"""Allocator fast paths against a naive Python baseline measured in the same repetition.

The baseline is the least an allocator written in Python can cost: a free list of
ints (a Python list) under a ``threading.Lock``, one pop and one push per pair
(``list_lock_pairs`` in bench/common.py). The rows run on one machine booted
beforehand from configs/tiny.yaml (KASAN off), in the booting thread: ``kmalloc(64,
GFP_KERNEL)`` + ``kfree``, ``alloc_pages(GFP_KERNEL, 0)`` + ``__free_pages`` (order-0
page pair), and ``kmem_cache_alloc`` + ``kmem_cache_free`` on a cache of 64-byte
objects. Each case is thread CPU ns per pair of N pairs.

Every repetition runs every case once, in rotating order (bench/common.py); a ratio is
the median of the per-repetition ratios against the baseline of the same repetition.
Targets, when the C accelerator is active only: kmalloc(64) <= 1.5x, order-0 page
<= 2.5x; kmem_cache(64) has none. The script exits 1 if a target that applies is
missed.

    python bench/alloc.py [--reps R] [--pairs N]
"""
from __future__ import annotations

import argparse
import os

from common import (Target, call_on, cpu_ns_per, exit_if_missed, mode, naive_pair_ns,
                    pair_table, rotate)

import hwemu
from hwemu import slab
from hwemu.gfp import GFP_KERNEL
from hwemu.page_alloc import __free_pages, alloc_pages

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "tiny.yaml")
BASELINE = "naive pool (baseline)"
TARGETS = {"kmalloc(64)": Target("<=", 1.5),
           "page order-0": Target("<=", 2.5),
           "kmem_cache(64)": None}


def kmalloc_pairs(n: int) -> None:
    kmalloc, kfree = slab.kmalloc, slab.kfree
    for _ in range(n):
        kfree(kmalloc(64, GFP_KERNEL))


def page_pairs(n: int) -> None:
    for _ in range(n):
        __free_pages(alloc_pages(GFP_KERNEL, 0), 0)


def cache_pairs(cache: int, n: int) -> None:
    alloc, free = slab.kmem_cache_alloc, slab.kmem_cache_free
    for _ in range(n):
        free(cache, alloc(cache, GFP_KERNEL))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=20000, help="pairs per case")
    args = parser.parse_args()
    n = args.pairs
    with hwemu.boot(TINY, overrides={"kasan.enabled": False}) as machine:
        cache = slab.kmem_cache_create("bench", 64, 0, 0, None)

        def on(fn) -> float:
            return call_on(machine, lambda: cpu_ns_per(fn, n))

        cases = {BASELINE: lambda: naive_pair_ns(n),
                 "kmalloc(64)": lambda: on(kmalloc_pairs),
                 "page order-0": lambda: on(page_pairs),
                 "kmem_cache(64)": lambda: on(lambda k: cache_pairs(cache, k))}
        results = rotate(cases, args.reps)
        slab.kmem_cache_destroy(cache)

    print(mode())
    missed = pair_table(results, BASELINE, TARGETS, 24)
    print(f"\nmedians of {args.reps} repetitions, {n} pairs per case, thread CPU time")
    exit_if_missed(missed)


if __name__ == "__main__":
    main()
