"""Wild-access fuzz of the checked accessors (issue 13): seeded, in subprocess batches.

Each batch is a fresh interpreter that boots one machine (i386-highmem or x86_64-1node,
KASAN on or off) and makes its share of the accesses: load, store, read_bytes,
write_bytes, memset and memcpy at addresses from every kind of place (NULL page, host
memory, the reservation, region edges, windows, beyond the machine, the top of the
address space, negative ints, ints past 64 bits) with lengths from 0 to past 2**64,
negative ones included. Every access must be answered, by a value or an exception,
within 100 ms. A batch that dies by a signal counts as a crash (its last access is
named), one that outlives its timeout as a hang, one whose worker fails otherwise as a
worker error.

Prints the counts of outcomes (returned, and each exception kind), crashes, hangs and
the slowest access; exits 1 on a crash, a hang or an access slower than 100 ms.

    python tests/fuzz_access.py [--accesses N] [--seed S] [--batch B] [--slow-ms MS]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("i386-highmem", "x86_64-1node")
SLOW_MS = 100.0
BATCH_TIMEOUT = 120.0   # seconds a batch may take before it is a hang
U64 = 1 << 64
OPS = ("load", "store", "read_bytes", "write_bytes", "memset", "memcpy_src", "memcpy_dst")


# ---------------------------------------------------------------- one batch (the worker)

def places(m) -> dict:
    """Generators of addresses of each kind, for machine ``m``."""
    import hwemu
    from hwemu.vmalloc import vmalloc
    sp = m.space
    regions = [(r.start, r.end) for r in sp.regions]
    windows = [(r.start, r.end) for r in sp.regions if r.kind == "window"]
    edges = [a for s, e in regions for a in (s, e)]
    objs = [hwemu.kmalloc(n, hwemu.GFP_KERNEL) for n in (8, 20, 64, 200, 4000)]
    freed = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
    hwemu.kfree(freed)
    vm = vmalloc(3 * 4096)
    return {
        "null": lambda r: r.randrange(0, 4096),
        "host": lambda r: r.randrange(4096, sp.base),
        "reservation": lambda r: r.randrange(sp.base, sp.end),
        "direct": lambda r: r.randrange(sp.fast_lo, sp.fast_hi),
        "edge": lambda r: r.choice(edges) + r.randrange(-64, 64),
        "window": lambda r: (lambda s, e: r.randrange(s, e))(*r.choice(windows)),
        "object": lambda r: r.choice(objs) + r.randrange(-16, 4100),
        "freed": lambda r: freed + r.randrange(0, 64),
        "vmalloc": lambda r: vm + r.randrange(0, 4 * 4096),
        "beyond": lambda r: sp.end + r.randrange(0, 1 << 44),
        "kernel": lambda r: r.randrange(0xFFFF_8000_0000_0000, U64),
        "top": lambda r: U64 - r.randrange(1, 64),
        "negative": lambda r: -r.randrange(1, 1 << 64),
        "past-64-bits": lambda r: r.randrange(U64, 1 << 80),
    }


def length(r: random.Random) -> int:
    kind = r.random()
    if kind < 0.35:
        return r.choice((1, 2, 4, 8, 16))
    if kind < 0.6:
        return r.randrange(0, 4097)
    if kind < 0.7:
        return r.randrange(4097, 1 << 22)
    if kind < 0.85:
        return r.choice((1 << 32, 1 << 40, 1 << 62, 1 << 63, U64 - 1,
                         r.randrange(1 << 32, U64)))
    if kind < 0.95:
        return -r.randrange(1, 1 << 64)
    return r.choice((U64, 1 << 70))


def one(hwemu, op: str, addr: int, n: int, buf: int):
    if op == "load":
        return hwemu.load(addr, n if n in (1, 2, 4, 8, 16) else 8)
    if op == "store":
        return hwemu.store(addr, n if n in (1, 2, 4, 8, 16) else 8, n & 0xFF)
    if op == "read_bytes":
        return hwemu.read_bytes(addr, n)
    if op == "write_bytes":
        return hwemu.write_bytes(addr, bytes(min(max(n, 0), 4096)))
    if op == "memset":
        return hwemu.memset(addr, n & 0xFF, n)
    if op == "memcpy_src":
        return hwemu.memcpy(buf, addr, n)
    return hwemu.memcpy(addr, buf, n)


def worker(config: str, kasan: bool, seed: int, count: int) -> None:
    """Make ``count`` accesses; print each before it is made (so that a crash names
    it), then one JSON line of counts."""
    import hwemu
    m = hwemu.boot(ROOT / "configs" / f"{config}.yaml",
                   overrides={"kasan.enabled": kasan, "kasan.multi_shot": True,
                              "machine.log_buf_len": "64K"})
    r = random.Random(seed)
    gens = places(m)
    buf = hwemu.kmalloc(1 << 16, hwemu.GFP_KERNEL)
    outcomes: collections.Counter = collections.Counter()
    slowest = (0.0, "")
    out = sys.stdout
    for i in range(count):
        kind = r.choice(sorted(gens))
        addr, n, op = gens[kind](r), length(r), r.choice(OPS)
        what = f"{op}({kind} {addr:#x}, {n:#x})"
        out.write(f"access {i} {what}\n")
        out.flush()
        t0 = time.perf_counter()
        try:
            one(hwemu, op, addr, n, buf)
            outcome = "returned"
        except Exception as exc:   # noqa: BLE001 - every kind is counted
            outcome = type(exc).__name__
        ms = (time.perf_counter() - t0) * 1000
        outcomes[outcome] += 1
        if ms > slowest[0]:
            slowest = (ms, what)
    out.write(json.dumps({"outcomes": outcomes, "slowest_ms": slowest[0],
                          "slowest": slowest[1]}) + "\n")
    os._exit(0)   # the machine's teardown is not what is measured


# ---------------------------------------------------------------- the batches (the parent)

def run_batch(config: str, kasan: bool, seed: int, count: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", config, str(int(kasan)), str(seed), str(count)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=BATCH_TIMEOUT,
                           cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        last = [ln for ln in (exc.stdout or b"").decode(errors="replace").splitlines()
                if ln.startswith("access ")]
        return {"hang": last[-1] if last else "before the first access"}
    lines = p.stdout.splitlines()
    if p.returncode != 0 or not lines or not lines[-1].startswith("{"):
        last = [ln for ln in lines if ln.startswith("access ")]
        at = f"rc {p.returncode} at {last[-1] if last else 'boot'}: " \
             f"{' '.join(p.stderr.strip().splitlines()[-1:])}"
        # Killed by a signal (SIGSEGV: -11) is a crash; a traceback out of the worker
        # (an exception that escaped its try) is counted apart.
        return {"crash": at} if p.returncode < 0 else {"error": at}
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accesses", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--batch", type=int, default=250, help="accesses per subprocess")
    parser.add_argument("--slow-ms", type=float, default=SLOW_MS,
                        help="the slowest an access may be (0: no limit, for the suite)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        config, kasan, seed, count = args.worker
        worker(config, kasan == "1", int(seed), int(count))
        return 0
    groups = [(c, k) for c in CONFIGS for k in (False, True)]
    outcomes: collections.Counter = collections.Counter()
    crashes, hangs, errors, slowest, batches = [], [], [], (0.0, ""), 0
    done = 0
    t0 = time.monotonic()
    while done < args.accesses:
        config, kasan = groups[batches % len(groups)]
        count = min(args.batch, args.accesses - done)
        res = run_batch(config, kasan, args.seed * 1_000_003 + batches, count)
        where = f"{config}, KASAN {'on' if kasan else 'off'}, batch {batches}"
        if "crash" in res:
            crashes.append(f"{where}: {res['crash']}")
        elif "error" in res:
            errors.append(f"{where}: {res['error']}")
        elif "hang" in res:
            hangs.append(f"{where}: {res['hang']}")
        else:
            outcomes.update(res["outcomes"])
            if res["slowest_ms"] > slowest[0]:
                slowest = (res["slowest_ms"], f"{res['slowest']} ({where})")
        done += count
        batches += 1
    print(f"wild-access fuzz: {done} accesses in {batches} batches, seed {args.seed}, "
          f"{time.monotonic() - t0:.1f}s")
    print(f"configs: {', '.join(CONFIGS)}; KASAN on and off")
    print(f"crashes: {len(crashes)}  hangs: {len(hangs)}  worker errors: {len(errors)}")
    for line in crashes + hangs + errors:
        print(f"  {line}")
    for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"  {outcome:<14} {n}")
    print(f"slowest access: {slowest[0]:.1f} ms: {slowest[1]}")
    slow = args.slow_ms > 0 and slowest[0] > args.slow_ms
    if slow:
        print(f"an access took more than {args.slow_ms:.0f} ms")
    return 1 if crashes or hangs or errors or slow else 0


if __name__ == "__main__":
    sys.exit(main())
