"""What KASAN costs: the same operations with KASAN on against KASAN off, both sides
measured in the same repetition.

Three machines from configs/tiny.yaml: KASAN off, booted once beforehand; KASAN on
(``kasan.stacktrace: true``: every allocation and free records its stack) and KASAN on
without stack traces, each booted for each of its cases and shut down after (a live
KASAN machine switches the KASAN static key on for every machine, so the KASAN off
cases run without one, as a kernel booted without KASAN). Each case runs in the booting
thread as its task on its machine (``current`` switched as hwemu/pytest_plugin.py's
``_call_on`` does) and is thread CPU ns per operation of N: a ``kmalloc(64,
GFP_KERNEL)`` + ``kfree`` pair, or a checked 8-byte load (``hwemu.load(obj, 8)``) of a
live 64-byte kmalloc object. The ratio of a
row is its KASAN on case over the KASAN off case of the same repetition (median over
the repetitions).

Every repetition runs every case once, in rotating order (bench/common.py). Targets,
when the C accelerator is active only: kmalloc pair with stack traces <= 2x, checked
load <= 1.5x; the kmalloc pair without stack traces has none. The script exits 1 if a
target that applies is missed.

    python bench/kasan.py [--reps R] [--n N]
"""
from __future__ import annotations

import argparse
import os
import statistics

from common import (Target, booted_with, call_on, cpu_ns_per, exit_if_missed, median_ratio,
                    mode, rotate)

import hwemu

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "tiny.yaml")
MACHINES = {"off": {"kasan.enabled": False, "kasan.stacktrace": True},
            "on": {"kasan.enabled": True, "kasan.stacktrace": True},
            "on, no stacks": {"kasan.enabled": True, "kasan.stacktrace": False}}
# row: (operation, KASAN on machine, target)
ROWS = {"kmalloc(64) pair, stack traces on": ("pair", "on", Target("<=", 2)),
        "checked 8-byte load": ("load", "on", Target("<=", 1.5)),
        "kmalloc(64) pair, stack traces off": ("pair", "on, no stacks", None)}
PAIRS_PER_LOAD = 4   # a pair costs several loads: fewer of them


def loads(obj: int, n: int) -> None:
    load = hwemu.load
    for _ in range(n):
        load(obj, 8)


def pairs(n: int) -> None:
    kmalloc, kfree, gfp = hwemu.kmalloc, hwemu.kfree, hwemu.GFP_KERNEL
    for _ in range(n):
        kfree(kmalloc(64, gfp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--n", type=int, default=40000,
                        help=f"loads per case (pairs: N/{PAIRS_PER_LOAD})")
    args = parser.parse_args()
    n_loads, n_pairs = args.n, args.n // PAIRS_PER_LOAD
    def with_object(kasan: str):
        """The machine ``kasan`` with a live kmalloc(64) object: (machine, object)."""
        return booted_with(TINY, MACHINES[kasan], lambda: hwemu.kmalloc(64, hwemu.GFP_KERNEL),
                           hwemu.kfree)

    with with_object("off") as off:
        def measure(op: str, machine, obj) -> float:
            if op == "load":
                return call_on(machine, lambda: cpu_ns_per(lambda k: loads(obj, k), n_loads))
            return call_on(machine, lambda: cpu_ns_per(pairs, n_pairs))

        def case(op: str, kasan: str):
            if kasan == "off":
                return lambda: measure(op, *off)

            def booted() -> float:
                with with_object(kasan) as on:
                    return measure(op, *on)
            return booted

        cases = {f"{op}, KASAN {kasan}": case(op, kasan)
                 for op, kasan in [("pair", "off"), ("pair", "on"), ("pair", "on, no stacks"),
                                   ("load", "off"), ("load", "on")]}
        results = rotate(cases, args.reps)

    print(mode())
    missed = []
    print(f"{'operation':<36} {'KASAN off ns':>12} {'KASAN on ns':>12} {'ratio':>7} "
          f"{'target':>13}")
    for name, (op, kasan, target) in ROWS.items():
        on, off = f"{op}, KASAN {kasan}", f"{op}, KASAN off"
        ratio = median_ratio(results, on, off)
        if target is not None and target.missed(ratio):
            missed.append(f"{name} ({target.cell}x)")
        print(f"{name:<36} {statistics.median(results[off]):12.0f} "
              f"{statistics.median(results[on]):12.0f} {ratio:7.3f} "
              f"{target.cell if target else '':>13}")
    print(f"\nmedians of {args.reps} repetitions, {n_pairs} pairs or {n_loads} loads per "
          "case, thread CPU time")
    exit_if_missed(missed)


if __name__ == "__main__":
    main()
