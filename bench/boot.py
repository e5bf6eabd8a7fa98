"""Boot time and host memory of machines of growing RAM size (8 NUMA nodes each).

Each size boots in a fresh interpreter, several times; the best time is kept. RSS
growth is the resident set after boot minus before (hwemu already imported), so it
counts exactly what booting costs. The 1 GiB machine is the baseline of the ratios.

    python bench/boot.py [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

SIZES = {"1G": 1 << 30, "64G": 64 << 30, "1T": 1 << 40}
NODES = 8

CHILD = r"""
import json, sys, time
import hwemu

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

node = {node}
cfg = {{"machine": {{"name": "bench", "cpus": 8,
        "nodes": [{{"mem": node}} for _ in range({nodes})]}}}}
config = hwemu.load_config(cfg)
before = rss()
t = time.perf_counter()
m = hwemu.boot(config)
elapsed = time.perf_counter() - t
grown = rss() - before
# Touch one struct page in the last section: deferred init must stay cheap.
last = hwemu.pfn_to_page(m.memmap.max_pfn - 1)
assert hwemu.page_to_nid(last) == {nodes} - 1
m.shutdown()
print(json.dumps({{"boot_s": elapsed, "rss": grown}}))
"""


def measure(ram: int, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        code = CHILD.format(node=ram // NODES, nodes=NODES)
        out = subprocess.run([sys.executable, "-c", code], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out))
    return {"boot_s": min(r["boot_s"] for r in runs), "rss": min(r["rss"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = {name: measure(size, args.repeat) for name, size in SIZES.items()}
    base = results["1G"]
    print(f"{'RAM':>5} {'boot ms':>9} {'x 1G':>6} {'RSS growth MiB':>15}")
    for name, r in results.items():
        print(f"{name:>5} {r['boot_s'] * 1e3:9.2f} {r['boot_s'] / base['boot_s']:6.2f} "
              f"{r['rss'] / 2**20:15.2f}")
    ratio = results["1T"]["boot_s"] / base["boot_s"]
    print(f"\nboot time 1T / 1G = {ratio:.2f} (target < 2)")
    print(f"RSS growth booting 1T = {results['1T']['rss'] / 2**20:.1f} MiB (target < 256)")


if __name__ == "__main__":
    main()
