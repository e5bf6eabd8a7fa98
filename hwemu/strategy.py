"""The schedulers' strategies: which runnable task runs next, chosen from a seed.

One task of a machine runs at a time (:mod:`hwemu.sched`); whenever the running task
blocks, and at the preemption points a strategy asks to be consulted at, the strategy
picks the next one. They are those of the tools that test concurrent code by
controlling the schedule (AWS's shuttle, tokio's loom):

``random``
    At a preemption point, switch with probability ``preempt`` to a task chosen
    uniformly among the runnable ones (the running one included); when a task blocks,
    any runnable task, uniformly.
``pct``
    Probabilistic Concurrency Testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
    "A Randomized Scheduler with Probabilistic Guarantees of Finding Bugs", ASPLOS
    2010): every task gets a random priority, the highest-priority runnable task
    always runs, and at ``depth - 1`` steps chosen at random below ``steps`` the
    running task drops below every other. A bug of depth ``d`` is found with
    probability at least ``1 / (n * k ** (d - 1))`` per schedule.
``round_robin``
    Switch to the next runnable task (by pid) at every preemption point.

Same seed, same choices: a schedule is a function of the seed and of what the tasks
do, never of the host.
"""
from __future__ import annotations

import abc
import math
import random
from typing import Any

STRATEGIES = ("random", "pct", "round_robin")


class Strategy(abc.ABC):
    """The interface: :meth:`choose` picks among ``candidates`` (non-empty; the running
    task ``curr`` is one of them at a preemption point, and is not when it blocks);
    :meth:`countdown` says after how many preemption points to consult it again."""

    def __init__(self, seed: int, cfg: Any):
        self.rng = random.Random(f"hwemu schedule {type(self).__name__} {seed}")

    def on_new_task(self, task) -> None:  # noqa: B027 - most strategies need nothing
        """``task`` was spawned."""

    @abc.abstractmethod
    def choose(self, candidates: list, curr, step: int) -> Any:
        """The task to run; ``step`` counts the scheduling points so far."""

    def countdown(self) -> int:
        return 1


class RandomStrategy(Strategy):
    def __init__(self, seed: int, cfg: Any):
        super().__init__(seed, cfg)
        self.p = cfg.preempt
        # Preemption points between consultations: geometric, so that each point
        # switches with probability p without a random draw at every point.
        self._log = math.log1p(-self.p) if 0 < self.p < 1 else None
        self._random = self.rng.random

    def choose(self, candidates: list, curr, step: int):
        return candidates[self.rng.randrange(len(candidates))]

    def countdown(self) -> int:
        if self._log is None:
            return 1 if self.p >= 1 else 1 << 62
        return int(math.log(1.0 - self._random()) / self._log) + 1


class PCTStrategy(Strategy):
    def __init__(self, seed: int, cfg: Any):
        super().__init__(seed, cfg)
        self.depth = cfg.depth
        steps = max(cfg.steps, self.depth)
        # The d - 1 change points and the low priority each one gives (d-1 .. 1).
        points = sorted(self.rng.sample(range(1, steps + 1), self.depth - 1))
        self.change = {step: self.depth - 1 - i for i, step in enumerate(points)}

    def on_new_task(self, task) -> None:
        task.prio = self.depth + self.rng.random()   # above every change point's

    def choose(self, candidates: list, curr, step: int):
        low = self.change.pop(step, None)
        if low is not None and curr is not None:
            curr.prio = low
        return max(candidates, key=_prio)

    def countdown(self) -> int:
        return 1


def _prio(task) -> float:
    return task.prio


class RoundRobinStrategy(Strategy):
    def choose(self, candidates: list, curr, step: int):
        later = [t for t in candidates if curr is None or t.pid > curr.pid]
        return min(later or candidates, key=_pid)


def _pid(task) -> int:
    return task.pid


def make_strategy(cfg: Any) -> Strategy:
    """The strategy of ``cfg`` (the ``machine.sched`` config section)."""
    kinds: dict[str, type[Strategy]] = {
        "random": RandomStrategy, "pct": PCTStrategy, "round_robin": RoundRobinStrategy}
    kind = kinds[cfg.strategy]
    return kind(cfg.seed, cfg)
