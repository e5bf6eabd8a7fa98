"""Machine runs (``hwemu run``): a config's ``run:`` scenario on a booted machine.

:class:`Run` boots the machine, creates the pools, starts every workload as a task on
a CPU of its own (CPU 0, the booting thread, watches: every ``SAMPLE_NS`` of emulated
time it samples pool fill levels and free memory for the progress display and the
plots), stops the workloads when the duration has passed, the counted workloads are
done, or the user pressed Ctrl-C (or sent SIGTERM/SIGHUP), and gathers the result: a
JSON-ready dict, complete (its expectations evaluated, its exit code and status set),
that :mod:`hwemu.runs.report` turns into the summary and KTAP. Everything but
``wall_seconds`` is a function of the config and its seeds: the machine is
deterministic (see :mod:`hwemu.sched`).

The result's layout is versioned: ``result["format"]`` is :data:`RESULT_FORMAT`, raised
whenever a key changes meaning or goes away (keys may be added within a format).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import mempool
from mempool.stats import stats_of

from ..access import load
from ..bug import Deadlock, MachineDown, MachineError
from ..config import Config, RunConfig, resolve
from ..config import plain as _plain
from ..current import current
from ..gfp import GFP_KERNEL
from ..machine import boot
from ..mmzone import ZONE_NAMES
from ..printk import KERN_ERR
from ..sched import (TASK_COMM_LEN, TASK_INTERRUPTIBLE, schedule_hrtimeout, set_current_state,
                     try_to_wake_up)
from ..slab import kmem_cache_create, kmem_cache_destroy
from ..timer import NSEC_PER_SEC
from . import report, workloads
from .workloads import Counters

SAMPLE_NS = 50_000_000  # emulated time between samples of CPU 0
JOIN_SECONDS = 30       # emulated time stopping workloads may take before shutdown
SHUTDOWN_SECONDS = 5    # and then how long shutdown waits for what is left
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
RESULT_FORMAT = 1       # result["format"]: the layout of the result (and of --json)


@dataclasses.dataclass
class Pool:
    """A pool of the run: its config and ``struct mempool *``."""
    name: str
    type: str
    size: int
    order: int
    min_nr: int
    addr: int = 0
    cache: int = 0      # struct kmem_cache * of a slab pool


class Run:
    """One run of ``config.run`` (see the module docstring).

    :param search: directories to import custom workload modules from, before the
        config file's directory (where :func:`hwemu.load_config` read it) and the
        working directory, which are always searched.
    """

    def __init__(self, config: Config, search: tuple[str, ...] = ()):
        if config.run is None:
            raise ValueError("the config has no run: section")
        self.config = config
        self.cfg: RunConfig = config.run
        self.seed = self.cfg.seed
        self.stopped = False                 # the workloads must stop now
        self.stop_signal: int | None = None   # the signal that stopped the run
        self.timed_out = False               # stopped by time_out() (hwemu run --timeout)
        self.pools: dict[str, Pool] = {}
        self.customs = []
        where = workload_path(config, search)
        for i, custom in enumerate(self.cfg.custom):
            try:
                fn = workloads.import_function(custom.function, where)
                if isinstance(fn, workloads.CFunction):
                    fn.build(config)   # gcc's errors before the run, not in it
                self.customs.append(fn)
            except ImportError as exc:
                raise ImportError(f"run.custom.{i}.function: {exc}") from None
        self.tasks: list[Task] = []
        self.samples: dict = {"t": [], "ops": [], "pools": {}, "nodes": {}}
        self.blocked = ""   # the stacks of the tasks that did not stop, if any
        self.deadlock = ""  # what the deadlock report said, if the machine deadlocked
        self.end_ns = 0
        self.wall_seconds = 0.0   # host time of the run, start to end_ns
        self.machine: Any = None   # set by execute(): the booted machine
        self.clock: Any = None
        self.deadline = self.start_ns = 0

    # -- what workloads use --------------------------------------------------

    def rng(self, name: str) -> random.Random:
        """A random number generator of its own for ``name``, seeded by the run's seed."""
        return random.Random(f"hwemu run {self.seed} {name}")

    def stopping(self) -> bool:
        """Whether workloads should stop: duration over (on the asking CPU's clock), or
        the run was stopped."""
        return self.stopped or self.clock.now_ns() >= self.deadline

    def min_nr(self, name: str) -> int:
        """``pool->min_nr`` now (a resize workload changes it)."""
        return load(self.pools[name].addr + MIN_NR, 4)

    # -- the run ---------------------------------------------------------------

    def stop(self, signum: int | None = None) -> None:
        """Stop the run early: the workloads see :meth:`stopping` at once, the watcher
        stops them at its next sample. Safe in a signal handler (it only sets flags);
        ``signum`` is the signal that asked, the first one is kept."""
        if signum is not None and self.stop_signal is None:
            self.stop_signal = signum
        self.stopped = True

    def time_out(self) -> None:
        """Stop the run early as :meth:`stop` does, because a host-time limit passed
        (``hwemu run --timeout``; callable from any thread: it only sets flags)."""
        self.timed_out = True
        self.stopped = True

    def execute(self, progress=None, signals: bool = True) -> dict:
        """Boot, run, stop and return the result, complete: its ``expectations``
        evaluated, its ``exit_code`` and ``status`` set (see :func:`report.exit_code`).
        ``progress(run, samples)`` is called after every sample. With ``signals`` (in
        the main thread), Ctrl-C, SIGTERM or SIGHUP stops the run early
        (``result["interrupted"]``); a caller that handles them itself passes False and
        calls :meth:`stop`."""
        machine = self.machine = boot(self.config)
        try:
            with self._signals() if signals else contextlib.nullcontext():
                result = self._run(progress)
        except BaseException:
            machine.shutdown(SHUTDOWN_SECONDS)
            raise
        try:
            machine.shutdown(SHUTDOWN_SECONDS)
        except MachineError as exc:   # a task that ignores stopping(): still a result
            result["task_errors"].append(str(exc))
        result["wall_seconds"] = round(self.wall_seconds, 3)
        result["expectations"] = report.expectations(result, self.config.expect)
        result["exit_code"] = report.exit_code(result)
        result["status"] = report.status(result)
        return result

    def _mempool_source(self) -> Path | None:
        """The config's ``mempool.source``, relative to the config's directory."""
        source = self.config.mempool.source
        if source is None:
            return None
        base = Path(getattr(self.config, "source_file", "") or ".").parent
        return (base / source).resolve()

    def _run(self, progress) -> dict:
        source = self._mempool_source()
        if source is None:
            return self._run_pools(progress)
        from ..kbuild import use_mempool
        use_mempool(source)
        try:
            return self._run_pools(progress)
        finally:
            use_mempool(None)

    def _run_pools(self, progress) -> dict:
        self.clock = self.machine.clock
        for zone in self.machine.page_alloc.zones:
            zone.free_low = zone.free_pages
        self._create_pools()
        self.start_ns = self.clock.now_ns()
        self.deadline = self.start_ns + self.cfg.duration
        wall = time.monotonic()
        self._start()
        # The run is its workloads' time: from their start to the watcher's last sample
        # (stopping them, the pools' teardown and shutdown come after, and are not in
        # the samples either: a run's last sample is the state it ended in).
        deadlock = self._watch(progress)
        self.end_ns = self.clock.now_ns()
        self.wall_seconds = time.monotonic() - wall
        interrupted = self.stop_signal is not None or self.timed_out
        self.stopped = True   # everyone, whatever their clocks say
        # After a deadlock no task can run: nothing to join, shutdown stops them.
        errors = [] if deadlock else self._stop_tasks()
        pools = self._pool_results()
        if not errors and not deadlock:   # a task may hold elements: leave the pools be
            self._destroy_pools()   # a leaked element WARNs, and counts
        return self._result(pools, interrupted, errors)

    def _create_pools(self) -> None:
        for p in self.cfg.pools:
            pool = Pool(p.name, p.type, p.size, p.order, p.min_nr)
            if p.type == "slab":
                pool.cache = kmem_cache_create(p.name, p.size, 0, 0)
                fns, data = (mempool.MEMPOOL_ALLOC_SLAB, mempool.MEMPOOL_FREE_SLAB), pool.cache
            elif p.type == "kmalloc":
                fns, data = (mempool.MEMPOOL_KMALLOC, mempool.MEMPOOL_KFREE), p.size
            else:
                fns, data = (mempool.MEMPOOL_ALLOC_PAGES, mempool.MEMPOOL_FREE_PAGES), p.order
            pool.addr = mempool.mempool_create_node(p.min_nr, *fns, data, GFP_KERNEL, p.node)
            if not pool.addr:
                raise MachineError(f"run.pools: cannot create pool {p.name!r} "
                                   f"({p.min_nr} elements): out of memory")
            self.pools[p.name] = pool
            self.samples["pools"][p.name] = []

    def _destroy_pools(self) -> None:
        for pool in self.pools.values():
            mempool.mempool_destroy(pool.addr)
            kmem_cache_destroy(pool.cache)

    def _spawn(self, workload: str, name: str, fn, counters: Counters,
               foreground: bool = True) -> None:
        """Run ``fn()`` as task ``name`` on the next free CPU (CPU 0 is the watcher's)."""
        handle = self.machine.spawn(fn, name=name, cpu=len(self.tasks) + 1)
        self.tasks.append(Task(workload, name, handle, counters, foreground))

    def _start(self) -> None:
        cfg = self.cfg
        if cfg.bio:
            disk = workloads.Disk(self, cfg.bio)
            for i in range(cfg.bio.submitters):
                submitter = workloads.Submitter(self, disk, i)
                self._spawn("bio", f"bio/{i}", submitter, submitter.counters)
            # The disk's interrupts arrive on an otherwise idle CPU: its swapper.
            self._spawn("bio", f"swapper/{len(self.tasks) + 1}", disk.run_disk,
                        disk.counters, foreground=False)
        for key, foreground in (("net_rx", True), ("memory_hog", False), ("resize", False)):
            if getattr(cfg, key):
                counters = Counters()
                fn = functools.partial(getattr(workloads, key), self, getattr(cfg, key),
                                       counters)
                self._spawn(key, key, fn, counters, foreground)
        for i, (custom, fn) in enumerate(zip(cfg.custom, self.customs)):
            for j in range(custom.tasks):
                task = workloads.CustomTask(self, custom, f"custom{i}/{j}", Counters())
                suffix = f"/{j}"   # the comm is 15 characters at most
                name = fn.__name__[:TASK_COMM_LEN - 1 - len(suffix)] + suffix
                self._spawn(custom.function, name, functools.partial(fn, task),
                            task.counters)

    def _watch(self, progress) -> bool:
        """CPU 0: sample until the foreground workloads are done (if there are any),
        time is up, the kernel panicked (a real machine stops there) or the machine
        deadlocked (then ``self.deadlock`` says so and True is returned). The watcher is
        an observer: its wake-ups do not keep a deadlocked machine going."""
        foreground = [t for t in self.tasks if t.foreground]
        current().observer = True
        try:
            while True:
                self._sample()
                done = self.stopping() or self.machine.bugs.panic or (
                    foreground and not any(t.handle.is_alive() for t in foreground))
                if progress:   # after the check: it sees a signal that stops the run
                    progress(self, self.samples)
                if done:
                    return False
                set_current_state(TASK_INTERRUPTIBLE)
                schedule_hrtimeout(SAMPLE_NS)
        except Deadlock as exc:
            self.blocked, self.deadlock = exc.text, str(exc)
            return True
        finally:
            current().observer = False

    @contextlib.contextmanager
    def _signals(self):
        """The first SIGINT, SIGTERM or SIGHUP stops the workloads (a partial result);
        a second SIGINT interrupts at once (``KeyboardInterrupt``)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def first(signum, frame):
            if self.stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop(signum)

        saved = {}
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is not None:
                saved[signum] = signal.signal(signum, first)
        try:
            yield
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)

    def ops(self) -> int:
        """Operations so far: elements allocated from every pool."""
        counts = [stats_of(p.addr).snapshot() for p in self.pools.values()]
        return sum(c["alloc_allocator"] + c["alloc_reserve"] for c in counts)

    def free_pages(self) -> dict[int, int]:
        """Free pages per node now."""
        return {node.node_id: sum(z.free_pages for z in node.node_zones)
                for node in self.machine.nodes}

    def _sample(self) -> None:
        samples = self.samples
        samples["t"].append((self.clock.now_ns() - self.start_ns) / 1e9)
        samples["ops"].append(self.ops())
        for name, pool in self.pools.items():
            samples["pools"][name].append(load(pool.addr + CURR_NR, 4))
        for nid, free in self.free_pages().items():
            samples["nodes"].setdefault(nid, []).append(free)
        self._sample_events()

    def _sample_events(self) -> None:
        """What the plots mark besides the fill: per pool, its min_nr, the lowest fill
        since the previous sample (the reserve can run dry and refill between two),
        and running totals of allocations, frees, waits and NULLs; KASAN reports."""
        samples = self.samples
        for name, pool in self.pools.items():
            stats = stats_of(pool.addr)
            fill = samples["pools"][name]
            low = min(n for n in (*fill[-2:], stats.take_lowest_recent()) if n is not None)
            events = samples.setdefault("pool_events", {}).setdefault(name, {
                "min_nr": [], "lowest": [], "allocs": [], "frees": [], "waits": [],
                "nulls": []})
            for key, value in (("min_nr", self.min_nr(name)), ("lowest", low),
                               ("allocs", stats.alloc_allocator + stats.alloc_reserve),
                               ("frees", stats.free_allocator + stats.free_reserve),
                               ("waits", stats.waits), ("nulls", stats.alloc_null)):
                events[key].append(value)
        samples.setdefault("kasan_reports", []).append(len(self.machine.kasan.reports))

    def _stop_tasks(self) -> list[str]:
        """``kthread_stop()`` for every workload: tell it to stop and wake it from the
        sleep it is in (a schedule_timeout(), a wait queue, an msleep()), all of them
        before waiting for any (one may wait for another), then join them."""
        for task in self.tasks:
            t = task.handle.task
            if not t.exited:
                t.should_stop = True
                if t.spinning_on is None:   # a spinner waits for the lock, not for time
                    try_to_wake_up(t)
        return self._join()

    def _join(self) -> list[str]:
        """Wait for every task (``JOIN_SECONDS`` of emulated time in all); what killed
        one, or keeps it from stopping, is returned as a line of text, with the stacks
        of the tasks that are stuck."""
        errors = []
        deadline = self.clock.now_ns() + JOIN_SECONDS * NSEC_PER_SEC
        stuck = False
        for task in self.tasks:
            left = max(0, deadline - self.clock.now_ns()) / NSEC_PER_SEC
            try:
                task.handle.join(left)
            except TimeoutError:
                errors.append(f"{task.name}: still running {JOIN_SECONDS}s (emulated) "
                              "after the stop")
                stuck = True
            except Deadlock as exc:
                errors.append(f"{task.name}: {exc}")
                self.blocked = exc.text
                break
            except MachineDown:
                pass
            except Exception as exc:   # what the task died of; already in the log
                errors.append(f"{task.name}: {type(exc).__name__}: {exc}")
        if stuck and not self.blocked:
            self.blocked = self.machine.sched.blocked_report(
                "hwemu run: tasks that did not stop; the blocked ones:")
            self.machine.log.printk(self.blocked, KERN_ERR)
        return errors

    def _pool_results(self) -> dict[str, dict]:
        """Each pool's config and counters (read before the pools are destroyed)."""
        pools = {}
        for name, pool in self.pools.items():
            stats = mempool.mempool_stats(pool.addr)
            if stats["lowest_fill"] is None:   # the reserve was never touched
                stats["lowest_fill"] = pool.min_nr
            pools[name] = {"type": pool.type, "size": pool.size, "order": pool.order,
                           "min_nr": self.min_nr(name), **stats}
        return pools

    def _result(self, pools: dict, interrupted: bool, errors: list[str]) -> dict:
        """Everything the report needs, as plain data (the JSON written by --json)."""
        machine = self.machine
        work: dict[str, Counters] = {}
        for task in self.tasks:
            work.setdefault(task.workload, Counters()).update(task.counters)
        zones = [{"node": z.node, "zone": ZONE_NAMES[z.idx], "managed": z.managed_pages,
                  "free": z.free_pages, "min_free": min(z.free_low, z.free_pages),
                  "min": z.min_wmark_pages(), "low": z.low_wmark_pages(),
                  "high": z.high_wmark_pages(), "reclaimed": z.nr_reclaimed}
                 for z in machine.page_alloc.zones if z.managed_pages]
        vm = machine.vmstat.snapshot()
        sched, sched_cfg = machine.sched, self.config.machine.sched
        return {
            "format": RESULT_FORMAT,
            "machine": machine.name,
            "seed": self.seed,
            "schedule": {"strategy": sched_cfg.strategy, "seed": sched_cfg.seed,
                         "steps": sched.steps, "switches": sched.switches,
                         "interleaving": f"{sched.interleaving:016x}"},
            "interrupted": interrupted,   # by a signal or by time_out()
            "signal": (signal.Signals(self.stop_signal).name
                       if self.stop_signal is not None else None),
            "timed_out": self.timed_out and self.stop_signal is None,
            "wall_seconds": 0.0,   # set once the machine is down
            "emulated_seconds": round((self.end_ns - self.start_ns) / NSEC_PER_SEC, 3),
            "pools": pools,
            "workloads": {k: dict(sorted(c.items())) for k, c in work.items()},
            "zones": zones,
            "vm": {k: v for k, v in vm.items() if k.startswith(VM_EVENTS)},
            "kasan_reports": [r.as_dict() for r in machine.kasan.reports],
            "bugs": machine.bugs.die_counter,
            "panic": machine.bugs.panic,
            "warnings": len(machine.warnings),
            "warning_reports": list(machine.warnings),   # their text, as in dmesg
            "tainted": machine.tainted,
            "task_errors": errors,
            "deadlock": self.deadlock,
            "blocked_tasks": self.blocked,
            "hung_tasks": list(machine.bugs.hung_tasks),
            "dmesg": machine.dmesg(),   # OOM reports, WARNs, fault injection...
            "samples": self.samples,
            "config": _plain(resolve(self.config), None),
        }


def workload_path(config: Config, search: tuple[str, ...] = ()) -> list[str]:
    """Where a run of ``config`` imports its custom workloads from: the directory of
    the file it was loaded from (if it was), then ``search``, then the current one."""
    source = getattr(config, "source_file", None)
    here = [os.path.dirname(os.path.abspath(source))] if source else []
    return [*here, *search, os.getcwd()]


@dataclasses.dataclass
class Task:
    """A workload's task: which workload, its handle and its counters."""
    workload: str
    name: str
    handle: Any
    counters: Counters
    foreground: bool   # the run ends when every foreground task has


CURR_NR = mempool.struct_mempool.curr_nr.offset
MIN_NR = mempool.struct_mempool.min_nr.offset
VM_EVENTS = ("allocstall", "pgscan", "pgsteal", "kswapd_wake", "oom_kill")
