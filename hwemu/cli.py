"""The ``hwemu`` command (also ``python -m hwemu``).

``hwemu run [CONFIG] [--set key=value ...] [--seed N] [--strategy S] [--sched-seed K]
[--duration D] [--json OUT] [--plot DIR] [--ktap [OUT]] [--quiet] [--timeout T]
[--explore N [--jobs J]]`` boots the machine a config describes and runs its ``run:`` scenario
(hwemu.runs): progress on stderr, then the summary, the expectations and any KASAN
reports on stdout; a run that fails ends with the ``Replay:`` command that runs it
again, the same on any host. ``--json OUT`` and ``--ktap OUT`` write the result as
JSON and KTAP to OUT; ``-`` (``--ktap``'s default) is stdout, and then the summary goes
to stderr, so that stdout is the JSON or KTAP alone. ``--quiet`` prints neither the
progress nor the summary (errors and the exit code stay). ``--timeout T`` is a guard in
host (wall-clock) time: when T has passed, the run stops as on Ctrl-C, with its partial
summary, and the command exits 124. ``--explore N`` runs N schedules
(hwemu/explore.py's idea for runs), ``--jobs J`` at a time in worker processes (or on a
Dask cluster: ``--executor dask [--scheduler ADDRESS]``), and reports the lowest one
that fails.
A config without ``run:`` gets the bring-up job instead: a page of every zone of every
node is allocated, written and read back through kmap and kmap_local (highmem from
every CPU), and the boot log, memory map and /proc/buddyinfo are printed.
``--show-config`` prints the resolved config.

``hwemu sweep CONFIG --set KEY=V1,V2,... --seeds A-B`` runs the config over a grid of
settings and seeds on the same workers and prints a table, a row per setting: each
expectation's pass rate and the chosen metrics' median, p99 and max over the seeds
(hwemu/runs/sweep.py).

``hwemu validate [CONFIG]`` checks a config and reports every problem; ``hwemu show
[CONFIG]`` prints the memory layout the kernel prints at boot; ``hwemu proc [CONFIG]
PATH`` boots and prints one /proc file (CONFIG defaults to the packaged one for all
three); ``hwemu config-reference`` prints every config key
(docs/config.md); ``hwemu shell [CONFIG] [-c CODE]`` boots and opens a Python REPL on
the machine (hwemu/shell.py), or runs CODE there.

Exit codes: 0 success; 1 the machine failed or deadlocked, a workload died or an
expectation did not hold; 2 bad config or usage; 124 ``--timeout`` stopped the run
(after the partial summary); 128 + the signal's number when SIGINT (Ctrl-C: 130),
SIGTERM (143) or SIGHUP (129) stopped the run (after the partial summary) or its
start-up.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import sys
import threading

from .bug import KernelError
from .gfp import (__GFP_NOWARN, __GFP_THISNODE, GFP_DMA, GFP_DMA32, GFP_HIGHUSER,
                  GFP_HIGHUSER_MOVABLE, GFP_KERNEL, format_gfp)
from .mmzone import ZONE_HIGHMEM, ZONE_NAMES
from .page_types import PAGE_SHIFT, PAGE_SIZE
from .strategy import STRATEGIES


def _overrides(pairs: list[str]) -> dict:
    """``--set key=value`` pairs; values are YAML scalars/flows (``8``, ``2G``, ``[1]``),
    read with a config file's caps (hwemu.config.parse_overrides)."""
    from .config import parse_overrides
    return parse_overrides(pairs)


# The mask whose highest zone is each zone (gfp_zone()), for allocating from it.
ZONE_GFP = (GFP_DMA, GFP_DMA32, GFP_KERNEL, GFP_HIGHUSER, GFP_HIGHUSER_MOVABLE)


def check_zone(zone) -> None:
    """Allocate a page from ``zone``, write and read it back through every mapping
    that reaches it (kmap and kmap_local for highmem), and free it."""
    from . import access, highmem, page, page_alloc
    gfp = ZONE_GFP[zone.idx] | __GFP_THISNODE | __GFP_NOWARN
    pg = page_alloc.alloc_pages_node(zone.node, gfp, 0)
    if not pg or page.page_zone(pg) is not zone:
        raise KernelError(f"node {zone.node} {ZONE_NAMES[zone.idx]}: no page from "
                          f"alloc_pages_node({zone.node}, {format_gfp(gfp)}, 0)")
    maps = ((highmem.kmap, highmem.kunmap, True), (highmem.kmap_local_page,
                                                    highmem.kunmap_local, False))
    try:
        for pattern, (map_fn, unmap_fn, by_page) in enumerate(maps, 0x5A5A):
            addr = map_fn(pg)
            access.store(addr, 8, pattern)
            ok = access.load(addr, 8) == pattern
            unmap_fn(pg if by_page else addr)
            if not ok:
                raise KernelError(f"pfn {page.page_to_pfn(pg):#x}: read back differs "
                                  f"through {map_fn.__name__}")
    finally:
        page_alloc.__free_pages(pg, 0)


def bring_up(machine) -> list[str]:
    """Check a page of every zone of every node; highmem from every CPU."""
    from .config import format_size
    rows = []
    zones = [z for n in machine.nodes for z in n.node_zones if z.managed_pages]
    for z in zones:
        check_zone(z)
        rows.append(f"  node {z.node} {ZONE_NAMES[z.idx]:<8} pfn {z.zone_start_pfn:#9x}-"
                    f"{z.zone_end_pfn:#9x}  {format_size(z.spanned_pages * PAGE_SIZE):>6}  ok")
    high = [z for z in zones if z.idx == ZONE_HIGHMEM]
    if high:
        tasks = [machine.spawn(check_zone, high[0], cpu=cpu)
                 for cpu in range(1, len(machine.sched.cpus))]
        for t in tasks:
            t.join()
        rows.append(f"  highmem mapped from {len(tasks) + 1} CPU(s): ok")
    return rows


def cmd_run(args) -> int:
    from .config import dump_config, load_config, resolve
    overrides = _overrides(args.set)
    if args.seed is not None:
        overrides["fault_injection.seed"] = args.seed
    if args.strategy is not None:
        overrides["machine.sched.strategy"] = args.strategy
    if args.sched_seed is not None:
        overrides["machine.sched.seed"] = args.sched_seed
    config = load_config(args.config, overrides=overrides, check=_importable)
    if config.run is not None and (args.seed is not None or args.duration is not None):
        # Only a config that has a run gets one from these flags.
        run = {"run.seed": args.seed, "run.duration": args.duration}
        overrides |= {k: v for k, v in run.items() if v is not None}
        config = load_config(args.config, overrides=overrides, check=_importable)
    if args.show_config:
        sys.stdout.write(dump_config(resolve(config)))
        return 0
    if config.run is None:
        asked = [flag for flag, value in (("--json", args.json), ("--ktap", args.ktap),
                                          ("--plot", args.plot), ("--explore", args.explore))
                 if value]
        if asked:
            print(f"hwemu: {', '.join(asked)}: {config_name(args)} has no run: section "
                  "(only a run has a result); add one, or leave "
                  f"{'them' if len(asked) > 1 else 'it'} out", file=sys.stderr)
            return 2
        return bring_up_job(config)
    if args.explore:
        return explore_job(config, args, overrides)
    return run_job(config, args)


def replay_line(args, schedule: dict, steps: int | None = None) -> str:
    """The command that runs ``schedule`` again: this command with its schedule."""
    words = ["hwemu", "run"] + ([args.config] if args.config else [])
    sets = args.set + ([f"machine.sched.steps={steps}"] if steps is not None else [])
    words += [w for pair in sets for w in ("--set", pair)]
    for flag, value in (("--seed", args.seed), ("--duration", args.duration)):
        if value is not None:
            words += [flag, str(value)]
    words += ["--strategy", schedule["strategy"], "--sched-seed", str(schedule["seed"])]
    return " ".join(shlex.quote(w) for w in words)


def bring_up_job(config) -> int:
    """A config without ``run:``: boot, bring every zone up, print the machine."""
    from .config import format_size
    from .machine import boot
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


def run_job(config, args) -> int:
    """The scenario of ``config.run``: progress on stderr, the summary on stdout (on
    stderr when stdout carries the JSON or KTAP), KASAN reports after it; JSON, KTAP
    and plots where asked."""
    from .config import dump_config, format_duration, resolve
    from .runs import Run, report
    from .runs.progress import Progress
    if args.json == "-" and args.ktap == "-":
        print("hwemu: --json - and --ktap -: only one of them can be stdout",
              file=sys.stderr)
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401  checked before a long run, not after it
        except ImportError:
            print("hwemu: --plot needs matplotlib: pip install 'hwemu[plot]'",
                  file=sys.stderr)
            return 2
    try:   # everything that can fail before the run, not after it
        for out in (args.json, args.ktap):
            if out and out != "-":
                open(out, "a").close()
        if args.plot:
            os.makedirs(args.plot, exist_ok=True)
        run = Run(config)
    except (ImportError, OSError) as exc:
        print(f"hwemu: {exc}", file=sys.stderr)
        return 2
    # stdout is the JSON or KTAP alone when one of them goes there.
    human = sys.stderr if "-" in (args.json, args.ktap) else sys.stdout
    if not args.quiet:
        print(f"hwemu: running {config.machine.name} for at most "
              f"{format_duration(config.run.duration)} of emulated time (seed "
              f"{config.run.seed})", file=sys.stderr)
    progress = None if args.quiet else Progress(sys.stderr)
    timer = threading.Timer(args.timeout, run.time_out) if args.timeout else None
    try:
        with args.stop_signals.running(run):
            if timer:
                timer.daemon = True
                timer.start()
            result = run.execute(progress, signals=False)
    finally:
        if timer:
            timer.cancel()
        if progress:
            progress.close()
    code = result["exit_code"]
    if result["timed_out"]:
        print(f"hwemu: --timeout {args.timeout:g}s (wall clock) passed: the run was "
              "stopped", file=sys.stderr)
    if not args.quiet:
        _report(result, out=human)
    if args.ktap:
        _write(args.ktap, report.ktap(result))
    if args.json:
        _write(args.json, json.dumps(result, indent=1) + "\n")
    if args.plot:
        from .runs.plot import plot
        for path in plot(result, args.plot):
            print(f"hwemu: wrote {path}", file=sys.stderr)
        with open(os.path.join(args.plot, "config.yaml"), "w") as f:
            f.write(dump_config(resolve(config)))
    # A run that failed, or where the kernel complained, can be run again as it was.
    if not args.quiet and (code == 1 or result["kasan_reports"] or result["bugs"] or
                           result["hung_tasks"]):
        print(f"\nReplay: {replay_line(args, result['schedule'])}", file=human)
    return code


def _write(out: str, text: str) -> None:
    """``text`` to the file ``out``, or to stdout for ``-``."""
    if out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with open(out, "w") as f:
        f.write(text)


def config_name(args) -> str:
    """How the command names its config: the argument, or the packaged default."""
    return args.config or "the packaged config"


def _importable(config):
    """A load_config check: every custom workload function imports as the run will
    import it (:func:`hwemu.runs.workload_path`), or its problem is placed at
    ``run.custom.N.function``'s line."""
    from .runs import workload_path, workloads
    search = workload_path(config)
    for i, custom in enumerate(config.run.custom if config.run else ()):
        try:
            workloads.import_function(custom.function, search)
        except ImportError as exc:
            yield ("run", "custom", i, "function"), str(exc)


def _report(result: dict, *, out=None) -> int:
    """Print the summary and the KASAN reports of a run (on ``out``, default stdout);
    its exit code."""
    out = out or sys.stdout
    from .runs import report
    out.write(report.summary(result))
    for n, kasan in enumerate(result["kasan_reports"], 1):
        print(f"\nKASAN report {n} of {len(result['kasan_reports'])}:\n{kasan['text']}",
              file=out)
    if result["blocked_tasks"]:
        print(f"\n{result['blocked_tasks']}", file=out)
    return result["exit_code"]


def explore_job(config, args, overrides: dict) -> int:
    """``--explore N``: the run under N schedules (machine.sched.seed, seed + 1...),
    ``--jobs`` at a time in worker processes (hwemu/runs/explore.py), one line each on
    stderr in schedule order; the lowest that fails is reported in full with its
    replay line. With pct, every schedule after the first expects the steps it took."""
    from .config import DEFAULT_CONFIG
    from .runs.explore import explore
    from .runs.fleet import executor
    sched = config.machine.sched
    steps = sched.steps if sched.strategy == "pct" else None
    try:
        fleet = executor(args.executor, args.jobs, args.scheduler)
    except ValueError as exc:   # dask missing, --scheduler without it
        print(f"hwemu: {exc}", file=sys.stderr)
        return 2
    with fleet:
        found = explore(args.config or str(DEFAULT_CONFIG), overrides, sched.strategy,
                        sched.seed, args.explore, steps, fleet)
    if found.interrupted:   # what ran before the signal passed; the rest is unknown
        print(f"hwemu: interrupted after {found.passed} of {args.explore} schedules, "
              "all passed", file=sys.stderr)
        return 128 + signal.SIGINT   # main() makes it the stop signal's
    done = found.failed
    if done is None:
        print(f"hwemu: {args.explore} schedules ({sched.strategy}, seeds {sched.seed}.."
              f"{sched.seed + args.explore - 1}) passed; {found.interleavings} distinct "
              "interleavings")
        return 0
    k = done.job.index
    if done.result is None:   # its worker died twice, or the job raised
        print(f"hwemu: schedule {k + 1}: {done.error}")
    else:
        _report(done.result)
    schedule = {"strategy": sched.strategy, "seed": sched.seed + k}
    steps = done.job.seeds.get("machine.sched.steps")
    print(f"\nReplay: {replay_line(args, schedule, steps)}")
    print(f"hwemu: schedule {k + 1} of {args.explore} failed; {k} passed before it")
    return 1


def cmd_sweep(args) -> int:
    from .runs import sweep
    return sweep.command(args, check=_importable)


def cmd_validate(args) -> int:
    from .config import load_config
    load_config(args.config, overrides=_overrides(args.set), check=_importable)
    print(f"{args.config or 'the packaged config'}: ok")
    return 0


def virtual_layout(machine) -> str:
    """The virtual kernel memory layout, highest region first, as i386's mem_init()
    printed it (``    vmalloc : 0x... - 0x...   ( 128 MB)``)."""
    lines = ["Virtual kernel memory layout:"]
    for r in sorted(machine.space.regions, key=lambda r: r.start, reverse=True):
        size = r.end - r.start
        amount = f"{size >> 10:4d} kB" if size < 1 << 20 else f"{size >> 20:4d} MB"
        node = f" node{r.node}" if r.node is not None else ""
        lines.append(f"    {r.label + node:<18}: {r.start:#018x} - {r.end:#018x}   ({amount})")
    return "\n".join(lines) + "\n"


def cmd_show(args) -> int:
    from .config import load_config
    from .machine import boot
    config = load_config(args.config, overrides=_overrides(args.set))
    with boot(config) as machine:
        sys.stdout.write(machine.dmesg())
        sys.stdout.write(virtual_layout(machine))
    return 0


def cmd_proc(args) -> int:
    from .config import load_config
    from .machine import boot
    config = load_config(args.config, overrides=_overrides(args.set))
    with boot(config) as machine:
        try:
            sys.stdout.write(machine.procfs.read(args.path))
        except FileNotFoundError:
            print(f"hwemu: {args.path}: No such file or directory; the machine has "
                  f"{', '.join(sorted(machine.procfs.files))}", file=sys.stderr)
            return 2
    return 0


def cmd_config_reference(args) -> int:
    from .config import config_reference
    print(config_reference(), end="")
    return 0


def cmd_shell(args) -> int:
    from .config import load_config
    from .machine import boot
    from .shell import interact
    config = load_config(args.config, overrides=_overrides(args.set))
    with boot(config) as machine:
        return interact(machine, args.command_text)


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a number >= 1")
    return n


def _timeout(text: str) -> float:
    """``--timeout``: host seconds, as a number (``90``) or a duration (``90s``,
    ``500ms``)."""
    try:
        seconds = float(text)
    except ValueError:
        from .config import parse_duration
        try:
            seconds = parse_duration(text) / 1e9
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: expected a time > 0, e.g. 90 or 90s")
    return seconds


def _output(text: str) -> str:
    """``--json``/``--ktap`` OUT: a file to write, or ``-`` for stdout; not a config."""
    if text != "-" and text.endswith((".yaml", ".yml")) and os.path.isfile(text):
        raise argparse.ArgumentTypeError(
            f"{text}: a YAML file, not an output (put CONFIG before the option, or "
            "name an output)")
    return text


def plain_text(text: str) -> str:
    """Docstring text as --help shows it: no reST markup (``x``, :role:`x`)."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _fleet_options(cmd, when: str) -> None:
    """``--jobs``, ``--executor`` and ``--scheduler``: where runs go (hwemu/runs/fleet.py)."""
    cmd.add_argument("--jobs", type=_positive, metavar="J",
                     help=when + "run J at a time (default: one per core)")
    cmd.add_argument("--executor", choices=("local", "dask"), default="local",
                     help=when + "local worker processes, or a Dask cluster (pip install "
                          "'hwemu[dask]')")
    cmd.add_argument("--scheduler", metavar="ADDRESS",
                     help=when + "the Dask scheduler (default: $DASK_SCHEDULER_ADDRESS, "
                          "else a LocalCluster of --jobs workers)")


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="hwemu", description=plain_text(__doc__.split("\n\n")[0]),
        epilog=plain_text(__doc__.split("\n\n")[-1]))
    parser.add_argument("--version", action="version", version=f"hwemu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, fn, text: str, default_config: bool = False):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("config", nargs="?" if default_config else None,
                         help="YAML config: a path, or a packaged config's name (tiny)"
                         + (" (default: the packaged one)" if default_config else ""))
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config key, e.g. --set machine.cpus=8")
        cmd.set_defaults(fn=fn)
        return cmd

    run = command("run", cmd_run, "boot a machine and run its scenario (run:)",
                  default_config=True)
    run.add_argument("--show-config", action="store_true",
                     help="print the fully resolved config (YAML) and exit")
    run.add_argument("--seed", type=int, help="seed of the run and of fault injection")
    run.add_argument("--strategy", choices=STRATEGIES,
                     help="the scheduler's strategy (machine.sched.strategy)")
    run.add_argument("--sched-seed", type=int, metavar="K",
                     help="the seed of the schedule (machine.sched.seed)")
    run.add_argument("--explore", type=_positive, metavar="N",
                     help="run N schedules (seeds K, K+1...); stop at the first that "
                          "fails and print its replay line")
    run.add_argument("--duration", metavar="D",
                     help="emulated time the run lasts at most, e.g. 10s or 500ms")
    run.add_argument("--json", metavar="OUT", type=_output,
                     help="write the result (format 1) and resolved config as JSON to "
                          "OUT; - is stdout (the summary then goes to stderr)")
    run.add_argument("--plot", metavar="DIR",
                     help="write PNG plots of pool fill and free memory, and config.yaml")
    run.add_argument("--ktap", metavar="OUT", nargs="?", const="-", type=_output,
                     help="write the expectations as KTAP version 1 to OUT; - (the "
                          "default) is stdout (the summary then goes to stderr)")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print neither the progress nor the summary; errors and the "
                          "exit code stay")
    run.add_argument("--timeout", type=_timeout, metavar="T",
                     help="wall-clock (host) time the run may take, e.g. 600 or 600s; "
                          "then it stops as on Ctrl-C and exits 124")
    _fleet_options(run, "with --explore: ")
    sweep = command("sweep", cmd_sweep, "run a config over a grid of --set values and "
                    "seeds; a table, a row per setting")
    sweep.add_argument("--seeds", default="0", metavar="A-B",
                       help="the seeds of every setting (run, fault injection and "
                            "schedule), e.g. 0-9 (default: 0)")
    sweep.add_argument("--metric", action="append", metavar="NAME",
                       help="a metric of the table: an expectation's value (max_wait_ms, "
                            "waits...) or a result path (pools.bio.lowest_fill); default: "
                            "max_wait_ms, waits, alloc_reserve")
    sweep.add_argument("--json", metavar="OUT", help="write a record per run (JSON list)")
    sweep.add_argument("--csv", metavar="OUT", help="write a record per run (CSV)")
    sweep.add_argument("--plot", metavar="DIR",
                       help="write PNG plots of each metric against the setting")
    _fleet_options(sweep, "")
    command("validate", cmd_validate, "check a config; every problem as file:line",
            default_config=True)
    command("show", cmd_show, "print the memory layout the kernel prints at boot",
            default_config=True)
    proc = command("proc", cmd_proc, "boot and print a /proc file, e.g. /proc/zoneinfo",
                   default_config=True)
    proc.add_argument("path", help="a /proc path, e.g. /proc/buddyinfo")
    shell = command("shell", cmd_shell, "boot and open a Python REPL on the machine, with "
                    "describe(addr), stack_trace(task) and drgn's prog", default_config=True)
    shell.add_argument("-c", dest="command_text", metavar="CODE",
                       help="run CODE in the shell's namespace instead of the REPL")
    ref = sub.add_parser("config-reference", help="print every config key (Markdown)")
    ref.set_defaults(fn=cmd_config_reference, set=[])
    return parser


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A stop signal ended the command before its run started (``signum``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """The handler of :data:`STOP_SIGNALS` while ``hwemu run`` runs (a context manager),
    in three phases:

    - **start-up** (imports, loading the config and custom workloads, booting): the
      first signal ends the command at once; :class:`Interrupted` is raised where it
      is, and the command exits 128 + the signal's number with one line.
    - **the run** (from the booted machine to the result): the first signal stops the
      run (:meth:`hwemu.runs.Run.stop`, which only sets flags: the handler runs between
      two bytecodes of whatever runs, a workload's task included); the workloads stop
      and the partial summary, the JSON and KTAP follow. A second Ctrl-C quits at once
      (exit 130, no summary); another SIGTERM or SIGHUP is ignored, the stop being
      under way.
    - **the output** (summary, JSON, KTAP, plots): signals wait until it is written.

    Whenever a stop signal came, the command exits 128 + its number.

    :param process: the process ends with the command (``hwemu`` on the command line):
        a second Ctrl-C may end it at once with ``os._exit()``, and the signals are
        ignored once the command is done (the interpreter resets Python handlers to
        the default while it exits, and a late Ctrl-C would then kill it by SIGINT
        instead of letting it exit 130). Otherwise a second Ctrl-C raises
        :class:`KeyboardInterrupt` and the handlers are restored at the end.
    """

    def __init__(self, process: bool):
        self.process = process
        self.signum: int | None = None   # the first stop signal
        self.phase = "start-up"          # start-up, run or output
        self.run = None                  # the Run that a signal stops, in the run phase
        self._saved: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._saved[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, signal.SIG_IGN if self.process else handler)

    def exit_code(self, code: int) -> int:
        """The command's exit code: 128 + the stop signal's number if one came."""
        return code if self.signum is None else 128 + self.signum

    @contextlib.contextmanager
    def running(self, run):
        """The run phase of ``run`` (a :class:`hwemu.runs.Run`): a signal stops it once
        its machine is up; one that came before (between two runs) stops it at once."""
        self.run, self.phase = run, "run"
        if self.signum is not None:
            run.stop(self.signum)
        try:
            yield
        finally:
            self.run, self.phase = None, "output"

    def _handler(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        run = self.run
        if run is not None and run.machine is not None:
            if first:
                run.stop(signum)
            elif signum == signal.SIGINT:
                self._quit()
        elif first and self.phase != "output":
            raise Interrupted(signum)
        # Otherwise: the output is being written, or start-up's Interrupted is on its way.

    def _quit(self) -> None:
        """The second Ctrl-C of a run: end now, without the summary."""
        if not self.process:
            raise KeyboardInterrupt
        with contextlib.suppress(Exception):   # it may have interrupted a write
            sys.stdout.flush()
        text = "hwemu: interrupted again: quitting without the summary\n"
        if os.isatty(2):
            text = "\x1b[?25h\n" + text   # the live display hid the cursor
        with contextlib.suppress(OSError):
            os.write(2, text.encode())
        os._exit(128 + signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    """The command; ``argv`` None: the process's own (it ends with the command)."""
    words = sys.argv[1:] if argv is None else argv
    # hwemu run handles its stop signals from here on, its start-up's imports included.
    stop = StopSignals(process=argv is None) if words[:1] == ["run"] else None
    try:
        with stop or contextlib.nullcontext():
            parser = _parser()
            args = parser.parse_args(argv)   # first: --help and usage errors need no
            args.stop_signals = stop         # config models
            code = _command(parser, args)
            sys.stdout.flush()   # here, where a closed pipe is caught, not at exit
    except KeyboardInterrupt as exc:   # an Interrupted has the signal
        signum = getattr(exc, "signum", signal.SIGINT)
        how = "" if signum == signal.SIGINT else f" by {exc}"
        print(f"hwemu: interrupted{how}", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # The reader went away (`hwemu show | head`): end as a C tool killed by SIGPIPE
        # would, with nothing more written (stdout to /dev/null, so the interpreter's
        # last flush cannot fail again).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return stop.exit_code(code) if stop else code


def _command(parser, args) -> int:
    """Run the subcommand of ``args``; a config or kernel error is one line of text."""
    from .config import ConfigError
    try:
        for pair in args.set:
            if "=" not in pair or pair.startswith("="):
                parser.error(f"--set {pair!r}: expected KEY=VALUE")
        if args.fn is cmd_run and not args.explore and \
                (args.jobs or args.scheduler or args.executor != "local"):
            parser.error("--jobs, --executor and --scheduler go with --explore")
        return args.fn(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KernelError as exc:
        print(f"hwemu: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
