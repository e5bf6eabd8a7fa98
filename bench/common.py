"""What every benchmark here shares: rotating repetitions with ratios against a
baseline measured in the same repetition, thread CPU timing, the naive Python
baseline, targets that depend on the C accelerator, and the table's target column."""
from __future__ import annotations

import contextlib
import operator
import os
import statistics
import sys
import threading
import time
from typing import Any, Callable

# The scripts here are named after what they measure (bench/mempool.py after the
# mempool package, bench/sched.py after the standard library's sched module): once a
# script has imported this module, take their folder off the import path, or "import
# mempool" anywhere (hwemu.runs does) would import a script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]


def accelerated() -> bool:
    """True if the C accelerator is active: ``hwemu._speedups`` imports and
    ``HWEMU_PURE=1`` does not force the pure-Python path."""
    try:
        import hwemu._speedups  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("HWEMU_PURE") != "1"


def mode() -> str:
    """One line saying which path of hwemu is measured (printed above every table)."""
    if os.environ.get("HWEMU_PURE") == "1":
        return "pure Python (HWEMU_PURE=1)"
    return "C accelerator active" if accelerated() else "pure Python (hwemu._speedups not built)"


class Target:
    """The target of one figure: ``op`` (``"<="``, ``"<"`` or ``">="``) and a limit
    when the C accelerator is active, and ``pure`` when it is not (None: the target
    applies only when accelerated, and a pure-Python run shows "(accel only)")."""

    OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}

    def __init__(self, op: str, accel: float, pure: float | None = None):
        self.op, self.accel, self.pure = op, accel, pure

    @property
    def limit(self) -> float | None:
        """The limit that applies in this run, or None."""
        return self.accel if accelerated() else self.pure

    @property
    def cell(self) -> str:
        """The text of the target column."""
        return "(accel only)" if self.limit is None else f"{self.op} {self.limit:g}"

    def missed(self, value: float) -> bool:
        """True if ``value`` misses the limit that applies (never if none applies)."""
        return self.limit is not None and not self.OPS[self.op](value, self.limit)


def pair_table(results: dict[str, list], baseline: str, targets: dict,
               width: int) -> list[str]:
    """Print the baseline's row, then one per case of ``targets`` (name -> Target or
    None): median ns per pair, median ratio to the baseline, the target; returns the
    cases that missed theirs."""
    missed = []
    print(f"{'pair':<{width}} {'ns':>8} {'x baseline':>11} {'target':>13}")
    for name in [baseline, *targets]:
        ns = statistics.median(results[name])
        ratio = median_ratio(results, name, baseline)
        target = targets.get(name)
        if target is not None and target.missed(ratio):
            missed.append(f"{name} ({target.cell}x)")
        print(f"{name:<{width}} {ns:8.0f} {ratio:11.3f} {target.cell if target else '':>13}")
    return missed


def exit_if_missed(missed: list[str]) -> None:
    """Say which targets were missed, and exit 1, if any was."""
    if missed:
        print(f"missed the target: {', '.join(missed)}")
        sys.exit(1)


def cpu_ns_per(fn: Callable[[int], Any], n: int) -> float:
    """``fn(n)`` timed in thread CPU time of the calling thread, in ns per iteration."""
    t = time.thread_time_ns()
    fn(n)
    return (time.thread_time_ns() - t) / n


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


def naive_pair_ns(pairs: int) -> float:
    """Thread CPU ns per pair of :func:`list_lock_pairs`."""
    return cpu_ns_per(list_lock_pairs, pairs)


def call_on(machine, fn: Callable[[], Any]) -> Any:
    """``fn()`` as this thread's task on ``machine`` (as hwemu/pytest_plugin.py's
    ``_call_on``): a thread that booted several machines is a task of each, and
    ``current`` is the newest one, so switch ``current`` for the call."""
    from hwemu.current import current_on, swap

    task = current_on(machine)
    if task is None:
        raise RuntimeError(f"this thread did not boot {machine!r}")
    saved = swap(task)
    try:
        return fn()
    finally:
        swap(saved)


@contextlib.contextmanager
def booted_with(config: str, overrides: dict, make: Callable[[], Any],
                unmake: Callable[[Any], Any]):
    """A machine booted from ``config`` with ``overrides`` and ``make()`` run as its
    task: yields ``(machine, made)``; ``unmake(made)`` runs and the machine shuts down
    after. A case that needs KASAN boots its machine this way for its own run: a live
    KASAN machine switches the KASAN static key on for every machine (as a kernel
    booted with KASAN would), so the KASAN off cases run without one."""
    import hwemu

    with hwemu.boot(config, overrides=overrides) as machine:
        made = call_on(machine, make)
        try:
            yield machine, made
        finally:
            call_on(machine, lambda: unmake(made))


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
