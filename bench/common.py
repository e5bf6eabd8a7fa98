"""What every benchmark here shares: best-of timing and the naive Python baseline."""
from __future__ import annotations

import threading
import time


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
