"""Boot time and host memory of machines of growing RAM size (8 NUMA nodes each).

Each case boots one machine of its size (1G, 64G, 1T of RAM over 8 nodes, 8 CPUs) in a
fresh interpreter, with hwemu already imported, and reports the booting thread's CPU
time of ``hwemu.boot()`` (every task of a machine runs in the booting thread), its
wall time (for information), and the RSS growth: the resident set after boot minus
before, exactly what booting costs. The child also touches one struct page of the last
section (deferred init must stay cheap).

Every repetition runs every size once, in rotating order (bench/common.py). The 1 GiB
machine is the baseline: a ratio is the median of the per-repetition ratios of a
size's boot CPU time to the 1G boot of the same repetition; times and RSS growths are
medians. Targets: boot time 1T / 1G < 2, RSS growth booting 1T < 256 MiB, with or
without the C accelerator. The script exits 1 if one is missed.

    python bench/boot.py [--reps R]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from common import Target, exit_if_missed, median_ratio, mode, rotate

SIZES = {"1G": 1 << 30, "64G": 64 << 30, "1T": 1 << 40}
NODES = 8
RATIO_TARGET = Target("<", 2, 2)
RSS_TARGET = Target("<", 256, 256)   # MiB, booting 1T

CHILD = r"""
import json, time
import hwemu

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

node = {node}
cfg = {{"machine": {{"name": "bench", "cpus": 8,
        "nodes": [{{"mem": node}} for _ in range({nodes})]}}}}
config = hwemu.load_config(cfg)
before = rss()
cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
m = hwemu.boot(config)
cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
grown = rss() - before
last = hwemu.pfn_to_page(m.memmap.max_pfn - 1)
assert hwemu.page_to_nid(last) == {nodes} - 1
m.shutdown()
print(json.dumps({{"cpu_ns": cpu, "wall_ns": wall, "rss": grown}}))
"""


def measure(ram: int) -> dict:
    """One boot of a machine of ``ram`` bytes in a fresh interpreter."""
    code = CHILD.format(node=ram // NODES, nodes=NODES)
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    runs = rotate({name: lambda ram=ram: measure(ram) for name, ram in SIZES.items()},
                  args.reps)
    cpu = {name: [r["cpu_ns"] for r in rs] for name, rs in runs.items()}

    print(mode())
    print(f"{'RAM':>5} {'boot CPU ms':>11} {'wall ms':>8} {'x 1G':>6} {'target':>7} "
          f"{'RSS growth MiB':>15} {'target':>7}")
    missed = []
    for name in SIZES:
        ratio = median_ratio(cpu, name, "1G")
        rss = statistics.median(r["rss"] for r in runs[name]) / 2**20
        last = name == "1T"
        if last and RATIO_TARGET.missed(ratio):
            missed.append(f"boot time 1T / 1G ({RATIO_TARGET.cell})")
        if last and RSS_TARGET.missed(rss):
            missed.append(f"RSS growth booting 1T ({RSS_TARGET.cell} MiB)")
        print(f"{name:>5} {statistics.median(cpu[name]) / 1e6:11.2f} "
              f"{statistics.median(r['wall_ns'] for r in runs[name]) / 1e6:8.2f} "
              f"{ratio:6.2f} {RATIO_TARGET.cell if last else '':>7} {rss:15.2f} "
              f"{RSS_TARGET.cell if last else '':>7}")
    print(f"\nmedians of {args.reps} repetitions, one boot per size each, in a fresh "
          "interpreter; boot time in thread CPU time")
    exit_if_missed(missed)


if __name__ == "__main__":
    main()
