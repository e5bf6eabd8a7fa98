"""Task switches of the scheduler against host threads measured in the same repetition.

The baseline is two host threads bouncing through two ``threading.Event`` objects
(set, wait, clear): each thread times itself in thread CPU time and the round trip (two
switches) costs the sum over N. The task switch rows are two tasks of a booted tiny
machine (configs/tiny.yaml) ping-ponging N times with completions (one ``complete(x);
wait_for_completion(y)``, the other the mirror), timed in thread CPU time of the
booting thread, in which every task runs (boot excluded): "on wait" switches only when
a task blocks in ``wait_for_completion()`` (the random strategy with ``preempt: 0``),
"preempted" switches at the preemption point of each wake-up (``round_robin``). The
default scenario (the packaged config, ``run.duration`` shortened) is reported as
thread CPU seconds, and wall seconds, per emulated second; it has no baseline.

Every repetition runs every case once, in rotating order (bench/common.py); a ratio is
the median of the per-repetition ratios. The baseline's threads are pinned to one CPU:
on two idle cores a round trip costs several times more (cross-core wake-ups), so an
unpinned baseline would move with the host's load; pinned, it is the cheapest a host
thread switch gets. Target: a task switch round trip at most 1.0x that; the script
exits 1 if a row misses it.

    python bench/sched.py [--reps R] [--n N] [--duration D]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from common import median_ratio, mode, rotate

# This file has the name of the standard library's sched module: keep its own folder
# off the import path, or "import sched" anywhere would import this script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]

import hwemu  # noqa: E402
from hwemu.runs import Run  # noqa: E402

BASELINE = "threading.Event ping-pong"
SWITCH_ROWS = {"task switch, on wait": {"machine.sched.preempt": 0},
               "task switch, preempted": {"machine.sched.strategy": "round_robin"}}
TARGET = 1.0
SCENARIO = "default scenario"
TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "tiny.yaml")


def event_ping_pong(n: int) -> float:
    """Thread CPU ns of both threads per round trip of ``n`` Event round trips."""
    ping, pong = threading.Event(), threading.Event()
    spent = [0, 0]

    cpu = {min(os.sched_getaffinity(0))}

    def side(me: int, mine: threading.Event, theirs: threading.Event) -> None:
        """Thread ``me``: 0 serves first, 1 answers."""
        os.sched_setaffinity(threading.get_native_id(), cpu)
        t = time.thread_time_ns()
        for _ in range(n):
            if me == 0:
                theirs.set()
            mine.wait()
            mine.clear()
            if me == 1:
                theirs.set()
        spent[me] = time.thread_time_ns() - t

    threads = [threading.Thread(target=side, args=(0, pong, ping)),
               threading.Thread(target=side, args=(1, ping, pong))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(spent) / n


def task_ping_pong(n: int, overrides: dict) -> float:
    """Thread CPU ns per round trip of ``n`` completion round trips of two tasks."""
    with hwemu.boot(TINY, overrides=overrides) as machine:
        x, y = hwemu.init_completion(), hwemu.init_completion()

        def ping() -> None:
            for _ in range(n):
                hwemu.complete(x)
                hwemu.wait_for_completion(y)

        def pong() -> None:
            for _ in range(n):
                hwemu.wait_for_completion(x)
                hwemu.complete(y)

        tasks = [machine.spawn(ping, name="ping"), machine.spawn(pong, name="pong")]
        t = time.thread_time_ns()
        for task in tasks:
            task.join()
        spent = time.thread_time_ns() - t
        if any(task.task.nvcsw != n for task in tasks):
            raise RuntimeError(f"not a pure ping-pong with {overrides}: switches "
                               f"{[task.task.nvcsw for task in tasks]}, expected {n} each")
        return spent / n


def scenario(duration: str) -> tuple[float, float]:
    """(thread CPU s, wall s) per emulated second of the default scenario."""
    config = hwemu.load_config(overrides={"run.duration": duration})
    cpu, wall = time.thread_time(), time.perf_counter()
    result = Run(config).execute()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return cpu / result["emulated_seconds"], wall / result["emulated_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--n", type=int, default=20000, help="round trips per case")
    parser.add_argument("--duration", default="0.5s",
                        help="emulated run.duration of the default scenario")
    args = parser.parse_args()
    cases = {BASELINE: lambda: event_ping_pong(args.n)}
    for name, overrides in SWITCH_ROWS.items():
        cases[name] = lambda o=overrides: task_ping_pong(args.n, o)
    cases[SCENARIO] = lambda: scenario(args.duration)
    results = rotate(cases, args.reps)

    print(mode())
    print(f"{'round trip':<26} {'ns':>8} {'ns/switch':>10} {'x baseline':>11} {'target':>7}")
    missed = []
    for name in [BASELINE, *SWITCH_ROWS]:
        ns = statistics.median(results[name])
        ratio = median_ratio(results, name, BASELINE)
        mark = f"<= {TARGET:g}" if name in SWITCH_ROWS else ""
        if name in SWITCH_ROWS and ratio > TARGET:
            missed.append(name)
        print(f"{name:<26} {ns:8.0f} {ns / 2:10.0f} {ratio:11.3f} {mark:>7}")
    cpu = statistics.median(r[0] for r in results[SCENARIO])
    wall = statistics.median(r[1] for r in results[SCENARIO])
    print(f"\n{SCENARIO} (run.duration {args.duration}): {cpu:.3f} CPU s and {wall:.3f} "
          "wall s per emulated second")
    print(f"medians of {args.reps} repetitions, {args.n} round trips each")
    if missed:
        print(f"missed the target (<= {TARGET:g}x baseline): {', '.join(missed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
