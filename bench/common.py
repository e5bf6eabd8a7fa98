"""What every benchmark here shares: best-of timing, rotating repetitions with ratios
against a baseline measured in the same repetition, and the naive Python baseline."""
from __future__ import annotations

import statistics
import threading
import time
from typing import Any, Callable


def best_ns(fn, n: int, rounds: int = 5) -> float:
    """Best of ``rounds`` runs of ``fn(n)``, in ns per iteration."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t) / n)
    return best


def list_lock_pairs(pairs: int) -> None:
    """The baseline: ``pairs`` pop+push pairs on a Python list of ints under a Lock,
    the least a pool or free list written in Python can cost."""
    lock = threading.Lock()
    free = list(range(1024))
    for _ in range(pairs):
        with lock:
            x = free.pop()
        with lock:
            free.append(x)


def rotate(cases: dict[str, Callable[[], Any]], reps: int) -> dict[str, list]:
    """Run every case once per repetition, ``reps`` repetitions, in rotating order:
    repetition ``r`` starts at case ``r % len(cases)`` (in the dict's order) and wraps
    around, so no case always runs first, or always right after the same one.

    Each case measures itself (so that it can time only its own work, or add up the
    thread CPU time of several threads) and returns its measurement. Returns, for each
    case, the list of its measurements, one per repetition, in repetition order: the
    ``r``-th entries of all cases come from the same repetition.
    """
    names = list(cases)
    results: dict[str, list] = {name: [] for name in names}
    for r in range(reps):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            results[name].append(cases[name]())
    return results


def median_ratio(results: dict[str, list], case: str, baseline: str) -> float:
    """The median over the repetitions of ``case``'s time divided by ``baseline``'s time
    of the same repetition (``results`` as :func:`rotate` returns them)."""
    return statistics.median(t / b for t, b in zip(results[case], results[baseline],
                                                      strict=True))
