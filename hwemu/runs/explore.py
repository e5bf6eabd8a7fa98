"""``hwemu run CONFIG --explore N --jobs J``: a run under N schedules, J at a time.

Schedule K (0-based) is the run with ``machine.sched.seed`` = the config's + K, a job
of a fleet (:mod:`hwemu.runs.fleet`), each in a machine of its own in a worker
process. The schedule reported is the lowest failing one: once one fails, the
schedules after it are dropped and those before it run to the end, so the answer is
the one a single worker would give, whatever the timing. Lines go out in schedule
order as the schedules before them are done; the rate (schedules per second, wall
time) at most once a second.

With ``pct`` the expected number of steps (``machine.sched.steps``, below which PCT
draws its priority change points) adapts as :func:`hwemu.explore` makes it, but
without waiting on every schedule: schedule 0 runs first with the config's steps,
and every later one expects the steps schedule 0 took. The replay line carries them.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, TextIO

from ..config.source import config_path
from .fleet import Done, Job

RATE_SECONDS = 1.0   # wall time between rate lines


@dataclasses.dataclass
class Exploration:
    """What an exploration did: every schedule up to the failing one, in ``done``."""
    strategy: str
    seed: int             # the first schedule's
    schedules: int
    done: dict[int, Done]
    failed: Done | None   # the lowest failing schedule, if one failed
    wall: float
    passed: int = 0       # schedules 0 .. passed - 1 passed
    interrupted: bool = False   # then ``failed`` may not be the lowest: not reported

    @property
    def interleavings(self) -> int:
        """Distinct interleavings among the schedules that gave a result."""
        return len({d.result["schedule"]["interleaving"] for d in self.done.values()
                    if d.result is not None})


def failed(done: Done) -> bool:
    """Whether a schedule failed: it gave no result, or ``hwemu run`` would exit
    non-zero for it."""
    return done.result is None or done.result["exit_code"] != 0


def schedule_job(config: str, overrides: dict[str, Any], strategy: str, seed: int,
                 k: int, steps: int | None) -> Job:
    """Schedule ``k``: the run with ``machine.sched.seed`` = ``seed + k``."""
    seeds: dict[str, Any] = {"machine.sched.strategy": strategy, "machine.sched.seed": seed + k}
    if steps is not None:
        seeds["machine.sched.steps"] = steps
    # A worker may start elsewhere: the file's absolute path (a packaged config's too).
    return Job(k, os.path.abspath(config_path(config)), overrides, seeds)


class _Lines:
    """The per-schedule lines, in schedule order, and the rate lines."""

    def __init__(self, exploring: Exploration, out: TextIO):
        self.x, self.out = exploring, out
        self.next = 0   # the next schedule to print
        self.start = self.last = time.monotonic()

    def add(self, done: Done) -> None:
        x = self.x
        x.done[done.job.index] = done
        while self.next in x.done and (x.failed is None or self.next <= x.failed.job.index):
            self._line(x.done[self.next])
            self.next += 1
        now = time.monotonic()
        if now - self.last >= RATE_SECONDS:
            self.last = now
            print(f"hwemu: {len(x.done)} of {x.schedules} schedules run, "
                  f"{self.rate():.1f} schedules/s", file=self.out)

    def rate(self) -> float:
        return len(self.x.done) / max(time.monotonic() - self.start, 1e-9)

    def _line(self, done: Done) -> None:
        x, k = self.x, done.job.index
        head = f"hwemu: schedule {k + 1}/{x.schedules}: {x.strategy} seed {x.seed + k}"
        if done.result is None:
            print(f"{head}: FAILED ({done.error})", file=self.out)
            return
        did = done.result["schedule"]
        print(f"{head}: {did['steps']} points, {did['switches']} switches: "
              f"{'FAILED' if failed(done) else 'ok'}", file=self.out)


def explore(config: str, overrides: dict[str, Any], strategy: str, seed: int,
            schedules: int, steps: int | None, fleet, out: TextIO | None = None
            ) -> Exploration:
    """Run ``schedules`` schedules of ``config`` (a path) with ``overrides`` on
    ``fleet``; ``steps``: pct's expected steps for schedule 0 (None for the other
    strategies). Stops at the lowest failing schedule; a ``KeyboardInterrupt`` (Ctrl-C,
    or a stop signal that the command raises it for) stops the workers at once and
    ends the exploration, ``interrupted``."""
    out = out or sys.stderr
    x = Exploration(strategy, seed, schedules, {}, None, 0.0)
    lines = _Lines(x, out)

    def lost(jobs: list[Job]) -> None:
        names = ", ".join(str(j.index + 1) for j in jobs)
        print(f"hwemu: a worker died: schedules {names} run again, each alone", file=out)

    def batch(jobs: list[Job]) -> None:
        for done in fleet.run(jobs, on_lost=lost):
            if failed(done) and (x.failed is None or done.job.index < x.failed.job.index):
                x.failed = done
                fleet.cut_after(done.job.index)   # later ones cannot be the answer
            lines.add(done)

    try:
        jobs = [schedule_job(config, overrides, strategy, seed, 0, steps)]
        if steps is not None and schedules > 1:   # pct: schedule 0 first, its steps after
            batch(jobs)
            jobs = []
            if x.failed is None:
                steps = x.done[0].result["schedule"]["steps"]   # type: ignore[index]
        if x.failed is None:
            batch(jobs + [schedule_job(config, overrides, strategy, seed, k, steps)
                          for k in range(1, schedules)])
    except KeyboardInterrupt:   # Ctrl-C, or a stop signal the command raised it for
        fleet.stop()
        x.interrupted = True
    # The schedules done in a row from the first (a stop signal may come between a
    # schedule's line and the count of printed lines: count what was done).
    run = 0
    while run in x.done:
        run += 1
    x.passed = min(run, x.failed.job.index) if x.failed else run
    x.wall = time.monotonic() - lines.start
    print(f"hwemu: {len(x.done)} schedules in {x.wall:.1f}s wall, {lines.rate():.1f} "
          f"schedules/s on {fleet.describe()}", file=out)
    return x
