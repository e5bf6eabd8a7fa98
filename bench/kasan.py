"""What KASAN costs: checked against unchecked loads, kmalloc/kfree with KASAN on and off.

All numbers come from one run on the tiny config, each the best of several rounds;
the baselines are the same operations on a machine without KASAN.

    python bench/kasan.py [--n N]
"""
from __future__ import annotations

import argparse

from common import best_ns

import hwemu

TARGETS = {"load": 4.0, "kmalloc (stacktrace on)": 3.0}


def measure(kasan: bool, stacktrace: bool, n: int) -> tuple[float, float]:
    """(ns per 8-byte load, ns per kmalloc(64)+kfree pair) on a fresh machine."""
    overrides = {"kasan.enabled": kasan, "kasan.stacktrace": stacktrace}
    with hwemu.boot("configs/tiny.yaml", overrides=overrides):
        obj = hwemu.kmalloc(64, hwemu.GFP_KERNEL)

        def loads(k: int) -> None:
            load = hwemu.load
            for _ in range(k):
                load(obj, 8)

        def pairs(k: int) -> None:
            kmalloc, kfree, gfp = hwemu.kmalloc, hwemu.kfree, hwemu.GFP_KERNEL
            for _ in range(k):
                kfree(kmalloc(64, gfp))

        result = best_ns(loads, n), best_ns(pairs, n // 4)
        hwemu.kfree(obj)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40000)
    args = parser.parse_args()
    off_load, off_pair = measure(False, True, args.n)
    on_load, on_pair = measure(True, True, args.n)
    _, nostack_pair = measure(True, False, args.n)
    rows = [("load", off_load, on_load),
            ("kmalloc (stacktrace on)", off_pair, on_pair),
            ("kmalloc (stacktrace off)", off_pair, nostack_pair)]
    print(f"{'operation':<26} {'KASAN off ns':>12} {'KASAN on ns':>12} {'ratio':>6} {'target':>7}")
    for name, off, on in rows:
        target = TARGETS.get(name)
        mark = f"<= {target:.0f}" if target else ""
        print(f"{name:<26} {off:12.0f} {on:12.0f} {on / off:6.2f} {mark:>7}")


if __name__ == "__main__":
    main()
