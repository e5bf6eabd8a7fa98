"""Runs at scale: schedules per second with 1 and 2 local workers, and what a job costs.

A schedule is one job of ``hwemu run CONFIG --explore N`` (hwemu/runs/fleet.py): the
config run in a worker process with ``machine.sched.seed`` = K, its result shipped
back. Each repetition runs every case once, in rotating order (bench/common.py):

- ``1 local worker`` and ``2 local workers``: S schedules (seeds 0..S-1) on a
  :class:`~hwemu.runs.fleet.LocalPool` of that many processes, started and warmed up
  (one job per worker) before the first repetition, so that pool start-up is not
  counted;
- ``in-process run``: the same S runs one after another in this process, as the job
  function runs them (:func:`~hwemu.runs.fleet.run_job`): the work itself;
- ``hwemu run``: R of them as ``python -m hwemu.cli run CONFIG --sched-seed K``
  processes, one after another: what a shell loop over seeds costs.

The work spans processes, so everything is timed in **wall time** (not thread CPU
time). Figures: schedules per second; the ratio of the 2-worker rate to the 1-worker
rate of the same repetition (median over repetitions), target >= 1.7 when this process
may run on 2 cores or more; and the overhead per job of a worker: its wall time per
schedule minus the in-process run's (median of per-repetition differences), with the
same against a ``hwemu run`` process. The script exits 1 if the ratio misses its
target.

    python bench/sweep.py [--reps R] [--schedules S] [--processes R] [--config PATH]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from common import Target, median_ratio, mode, rotate

from hwemu.runs.fleet import Job, LocalPool, run_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "sizing.yaml")
TARGET = Target(">=", 1.7, 1.7)
ONE, TWO, INLINE, COMMAND = "1 local worker", "2 local workers", "in-process run", "hwemu run"


def jobs(config: str, schedules: int) -> list[Job]:
    return [Job(k, config, {}, {"machine.sched.seed": k}) for k in range(schedules)]


def on_pool(pool: LocalPool, todo: list[Job]) -> float:
    """Wall seconds per job of ``todo`` on ``pool``; every job must give a result."""
    start = time.perf_counter()
    done = list(pool.run(todo))
    wall = time.perf_counter() - start
    errors = [d.error for d in done if d.result is None]
    if errors or len(done) != len(todo):
        raise RuntimeError(f"jobs lost: {errors}")
    return wall / len(todo)


def in_process(todo: list[Job]) -> float:
    """Wall seconds per job of ``todo`` run here, one after another."""
    start = time.perf_counter()
    for job in todo:
        run_job(job.config, job.overrides, job.seeds)
    return (time.perf_counter() - start) / len(todo)


def commands(config: str, runs: int) -> float:
    """Wall seconds per ``hwemu run`` process of the config, seeds 0..runs-1."""
    start = time.perf_counter()
    for k in range(runs):
        r = subprocess.run([sys.executable, "-m", "hwemu.cli", "run", config,
                            "--sched-seed", str(k)], capture_output=True, cwd=ROOT)
        if r.returncode not in (0, 1):
            raise RuntimeError(r.stderr.decode())
    return (time.perf_counter() - start) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--schedules", type=int, default=16, help="schedules per case")
    parser.add_argument("--processes", type=int, default=3,
                        help="hwemu run processes per repetition")
    parser.add_argument("--config", default=CONFIG)
    args = parser.parse_args()
    todo = jobs(os.path.abspath(args.config), args.schedules)
    with LocalPool(1) as one, LocalPool(2) as two:
        one.start(), two.start()   # both forked (bench/common.py is not importable again)
        for pool in (one, two):   # start and warm every worker: not counted
            on_pool(pool, todo[:pool.workers])
        results = rotate({ONE: lambda: on_pool(one, todo), TWO: lambda: on_pool(two, todo),
                          INLINE: lambda: in_process(todo),
                          COMMAND: lambda: commands(args.config, args.processes)},
                         args.reps)
    report(results, args)


def report(results: dict[str, list[float]], args) -> None:
    """The table, the overheads, and exit 1 on a missed target."""
    cores = len(os.sched_getaffinity(0))
    target = TARGET if cores >= 2 else None
    speedup = median_ratio(results, ONE, TWO)   # seconds per job: 1 worker / 2 workers
    print(mode())
    print(f"{'case':<22} {'wall ms/job':>11} {'schedules/s':>11} {'x 1 worker':>10} "
          f"{'target':>8}")
    for name in (ONE, TWO, INLINE, COMMAND):
        per_job = statistics.median(results[name])
        ratio = {ONE: "1.000", TWO: f"{speedup:.3f}"}.get(name, "")
        cell = target.cell if name == TWO and target else ""
        print(f"{name:<22} {per_job * 1e3:11.1f} {1 / per_job:11.1f} {ratio:>10} {cell:>8}")
    overhead = statistics.median(w - r for w, r in zip(results[ONE], results[INLINE]))
    inline = statistics.median(results[INLINE])
    saved = statistics.median(c - w for c, w in zip(results[COMMAND], results[ONE]))
    print(f"\noverhead per job of a worker: {overhead * 1e3:+.1f} ms "
          f"({overhead / inline:+.1%}) against the same run in-process; "
          f"{saved * 1e3:.0f} ms less than a `hwemu run` process")
    print(f"config {os.path.relpath(args.config, ROOT)}, {args.schedules} schedules per case, "
          f"{args.processes} hwemu run processes; medians of {args.reps} repetitions; "
          f"wall time (the work spans processes); {cores} cores")
    if target is None:
        print("the 1.7 target needs 2 cores: not checked")
    elif target.missed(speedup):
        print(f"missed the target: {TWO} ({target.cell}x 1 worker)")
        sys.exit(1)


if __name__ == "__main__":
    main()
