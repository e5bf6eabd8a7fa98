"""The main job: time per completed request of the default scenario, in naive pairs.

The default scenario is the packaged config (``hwemu run``) with ``run.duration``
set to D and its submitters in a closed loop (``run.bio.interval`` 0: a request
whenever one completes, not the demo's bursts every 100 ms, which leave the CPU to the
hog and would time the hog per request):
``hwemu.runs.Run(hwemu.load_config(None, ...)).execute()``, boot and shutdown
included. Its completed requests are ``result["workloads"]["bio"]["completed"]`` (a
function of the config and seed: the same in every repetition).
Every task of the machine runs in the calling thread (hwemu/sched.py), so the run is
timed in thread CPU time of the calling thread; wall time is printed for information.
The figure is (CPU ns per completed request) / (ns per naive pair): the naive pair is
``list_lock_pairs`` of bench/common.py (a pop and a push on a Python list under a
``threading.Lock``), N pairs timed in thread CPU time in the same repetition.

The default D is 3s: the memory hog fills memory in about 2 s of emulated time, after
which kswapd reclaims and the bio pool draws on its reserve (the steady state), so the
run covers both. Every repetition runs both cases once, in rotating order
(bench/common.py); the figure is the median of the per-repetition figures. Target, when
the C accelerator is active only: <= 50 naive pairs per completed request. The script
exits 1 if a target that applies is missed.

    python bench/run.py [--reps R] [--duration D] [--pairs N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from common import Target, median_ratio, mode, naive_pair_ns, rotate

import hwemu
from hwemu.runs import Run

BASELINE = "naive pair"
JOB = "main job"
TARGET = Target("<=", 50)


def main_job(duration: str) -> tuple[float, float, int]:
    """(thread CPU ns, wall ns) per completed request of the default scenario, and how
    many requests completed."""
    config = hwemu.load_config(None, overrides={"run.duration": duration,
                                                 "run.bio.interval": 0})
    cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
    result = Run(config).execute()
    cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
    completed = result["workloads"]["bio"]["completed"]
    if not completed:
        raise RuntimeError(f"no request completed in {duration}")
    return cpu / completed, wall / completed, completed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", default="3s",
                        help="emulated run.duration of the default scenario")
    parser.add_argument("--pairs", type=int, default=20000, help="naive pairs per case")
    args = parser.parse_args()
    results = rotate({BASELINE: lambda: naive_pair_ns(args.pairs),
                      JOB: lambda: main_job(args.duration)}, args.reps)
    jobs = results.pop(JOB)
    results[JOB] = [cpu for cpu, _, _ in jobs]
    figure = median_ratio(results, JOB, BASELINE)
    completed = {n for _, _, n in jobs}

    print(mode())
    print(f"{'case':<30} {'CPU ns':>10} {'wall ns':>10} {'naive pairs':>11} {'target':>13}")
    print(f"{BASELINE:<30} {statistics.median(results[BASELINE]):10.0f} {'':>10} "
          f"{1.0:11.3f}")
    print(f"{JOB + ', per completed request':<30} {statistics.median(results[JOB]):10.0f} "
          f"{statistics.median(w for _, w, _ in jobs):10.0f} {figure:11.3f} "
          f"{TARGET.cell:>13}")
    print(f"\ndefault scenario, run.duration {args.duration}, closed loop: "
          f"{', '.join(map(str, sorted(completed)))} requests completed")
    print(f"medians of {args.reps} repetitions, {args.pairs} naive pairs per repetition, "
          "thread CPU time")
    if TARGET.missed(figure):
        print(f"missed the target: {JOB} ({TARGET.cell} naive pairs per request)")
        sys.exit(1)


if __name__ == "__main__":
    main()
