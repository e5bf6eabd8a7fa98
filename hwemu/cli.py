"""The ``hwemu`` command.

``hwemu run [CONFIG] [--set key=value ...]`` boots the machine a config describes,
brings it up (touches RAM in every zone of every node through the direct map, and on
highmem machines maps highmem from a task on every CPU with kmap and kmap_local),
prints the boot log, the memory map, a zone summary and /proc/buddyinfo, and shuts
it down.

Exit codes: 0 success, 1 the machine failed (boot or bring-up), 2 bad config or
usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from . import access, highmem, page
from .bug import KernelError
from .config import ConfigError, format_size, load_config
from .machine import boot
from .mmzone import ZONE_NAMES
from .vmem import PAGE_SHIFT, PAGE_SIZE


def _overrides(pairs: list[str]) -> dict:
    """``--set key=value`` pairs; values are YAML scalars/flows (``8``, ``2G``, ``[1]``)."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _check_page(pfn: int, pattern: int) -> None:
    """Write and read back one word of page ``pfn`` through whatever maps it."""
    pg = page.pfn_to_page(pfn)
    if page.PageHighMem(pg):
        for kmap_fn, unmap_fn, arg in ((highmem.kmap, highmem.kunmap, pg),
                                       (highmem.kmap_local_page, highmem.kunmap_local, None)):
            addr = kmap_fn(pg)
            access.store(addr, 8, pattern)
            if access.load(addr, 8) != pattern:
                raise KernelError(f"pfn {pfn:#x}: read back differs through {kmap_fn.__name__}")
            unmap_fn(arg if arg is not None else addr)
    else:
        addr = page.page_address(pg)
        access.store(addr, 8, pattern)
        if access.load(addr, 8) != pattern:
            raise KernelError(f"pfn {pfn:#x}: read back differs through the direct map")


def bring_up(machine) -> list[str]:
    """Touch the first and last page of every zone, highmem from every CPU."""
    rows = []
    zones = [z for n in machine.nodes for z in n.node_zones if z.populated()]
    for z in zones:
        for pfn in (z.zone_start_pfn, z.zone_end_pfn - 1):
            _check_page(pfn, 0x5A5A0000 + pfn)
        rows.append(f"  node {z.node} {ZONE_NAMES[z.idx]:<8} pfn {z.zone_start_pfn:#9x}-"
                    f"{z.zone_end_pfn:#9x}  {format_size(z.spanned_pages * PAGE_SIZE):>6}  ok")
    high = [z for z in zones if z.zone_start_pfn >= machine.memmap.max_low_pfn]
    if high:
        tasks = [machine.spawn(_check_page, high[0].zone_start_pfn + cpu, 0xC0DE + cpu, cpu=cpu)
                 for cpu in range(1, len(machine.sched.cpus))]
        for t in tasks:
            t.join()
        rows.append(f"  highmem mapped from {len(tasks) + 1} CPU(s): ok")
    return rows


def cmd_run(args) -> int:
    config = load_config(args.config, overrides=_overrides(args.set))
    with boot(config) as machine:
        rows = bring_up(machine)
        sys.stdout.write(machine.dmesg())
        print("\nMemory map:")
        sys.stdout.write(machine.maps())
        print("\nBring-up:")
        print("\n".join(rows))
        print("\n/proc/buddyinfo:")
        sys.stdout.write(machine.procfs.read("/proc/buddyinfo"))
        ram = config.machine.ram_end >> PAGE_SHIFT
        print(f"\n{machine.name}: {len(machine.nodes)} node(s), {len(machine.sched.cpus)} "
              f"CPU(s), {format_size(ram * PAGE_SIZE)} RAM, {machine.tainted}")
        return 1 if machine.bugs.taint else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hwemu", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="boot a machine and bring it up")
    run.add_argument("config", nargs="?", help="YAML config (default: the packaged one)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key, e.g. --set machine.cpus=8")
    args = parser.parse_args(argv)
    try:
        for pair in args.set:
            if "=" not in pair or pair.startswith("="):
                parser.error(f"--set {pair!r}: expected KEY=VALUE")
        return cmd_run(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KernelError as exc:
        print(f"hwemu: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hwemu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
