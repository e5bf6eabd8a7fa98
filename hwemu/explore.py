"""Schedule exploration: run the same tasks under many seeded schedules, replay a failure.

The machine is deterministic (:mod:`hwemu.sched`): a run is a function of its config
and of ``machine.sched`` (strategy and seed). :func:`explore` boots a fresh machine per
schedule, seed after seed, runs ``fn(machine)`` in its first task (``fn`` spawns the
tasks to test and may join them; the ones it leaves are joined after it) and stops at
the first schedule that fails: ``fn`` or one of the tasks raised, the machine
deadlocked, a task hung, or the kernel complained (a KASAN report, an oops, a WARN or
BUG splat). :class:`ExploreFailure` then names the schedule and the call that
:func:`replay` s it exactly, as syzkaller's reproducers do.

With ``pct`` the number of steps a schedule is expected to take (``machine.sched.steps``,
below which PCT draws its priority change points) adapts: the first schedule uses the
config's, each later one the most steps any schedule before it took, as AWS's shuttle
does; the replay call carries it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .config import Config, load_config, plain
from .machine import boot
from .strategy import STRATEGIES

JOIN_SECONDS = 3600   # emulated time the tasks ``fn`` left may take to finish


class ExploreFailure(AssertionError):
    """A schedule failed. ``schedule`` is its :class:`Schedule`; ``cause`` what ``fn``
    or a task raised (None for a kernel report); ``replay`` the call that replays it;
    ``problems`` what went wrong, one text each."""

    def __init__(self, message: str, schedule: "Schedule", problems: list[str],
                 cause: BaseException | None, replay: str):
        super().__init__(message)
        self.schedule = schedule
        self.problems = problems
        self.cause = cause
        self.replay = replay


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One schedule: what ``machine.sched`` gets."""
    strategy: str
    seed: int
    steps: int | None = None   # pct's expected steps; None: the config's

    def overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {"machine.sched.strategy": self.strategy,
                               "machine.sched.seed": self.seed}
        if self.steps is not None:
            out["machine.sched.steps"] = self.steps
        return out


@dataclasses.dataclass
class Outcome:
    """What one schedule did."""
    schedule: Schedule
    steps: int            # scheduling points taken
    switches: int         # context switches
    interleaving: int     # fingerprint of the order the tasks ran in
    problems: list[str]
    cause: BaseException | None


@dataclasses.dataclass
class Exploration:
    """What :func:`explore` tried: every schedule passed."""
    strategy: str
    seeds: range
    outcomes: list[Outcome]

    @property
    def schedules(self) -> int:
        return len(self.outcomes)

    @property
    def interleavings(self) -> int:
        """Distinct interleavings among the schedules."""
        return len({o.interleaving for o in self.outcomes})


def run_schedule(fn: Callable, schedule: Schedule, config=None,
                 overrides: dict | None = None, check: Callable | None = None) -> Outcome:
    """Boot a machine for ``schedule``, run ``fn(machine)`` and its tasks, shut down;
    what went wrong is in the outcome's ``problems``. ``check(machine)``, when given,
    returns more problems, once every task is done (a test's leak check)."""
    machine = boot(_config(config, {**(overrides or {}), **schedule.overrides()}))
    sched = machine.sched
    problems: list[str] = []
    cause: BaseException | None = None
    kasan_before = len(machine.kasan.reports)
    try:
        try:
            fn(machine)
            for task in list(sched.tasks.values()):
                if task is not sched.boot:
                    sched.join(task, JOIN_SECONDS)
            if check is not None:
                problems += check(machine)
        except Exception as exc:   # what fn raised, a deadlock, a join that timed out
            cause = exc
            problems.append(f"{type(exc).__name__}: {exc}")
        for task, died in sched.died:
            problems.append(f"task {task.comm}/{task.pid} died: {type(died).__name__}: "
                            f"{died}")
            cause = cause or died
        problems += [r.text for r in machine.kasan.reports[kasan_before:] if not r.expected]
        problems += machine.bugs.hung_tasks + machine.warnings
        if machine.bugs.die_counter:
            problems.append(f"{machine.bugs.die_counter} oops(es); see the kernel log")
        outcome = Outcome(schedule, sched.steps, sched.switches, sched.interleaving,
                          problems, cause)
    finally:
        machine.shutdown()
    return outcome


def explore(fn: Callable, schedules: int = 100, strategy: str = "pct", seed: int = 0,
            config=None, overrides: dict | None = None,
            check: Callable | None = None) -> Exploration:
    """Run ``fn(machine)`` under ``schedules`` schedules (seeds ``seed``,
    ``seed + 1``...); raise :class:`ExploreFailure` at the first that fails.

    :param fn: builds the test on a fresh machine: spawns tasks, may join them
    :param config: a path, a dict or a :class:`~hwemu.config.Config` (None: the
        packaged default); ``overrides`` are dotted keys applied on top
    :param check: ``check(machine)`` -> problems (texts), once every task is done
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    steps = None
    if strategy == "pct":
        steps = _config(config, overrides or {}).machine.sched.steps
    outcomes = []
    for k in range(schedules):
        schedule = Schedule(strategy, seed + k, steps)
        outcome = run_schedule(fn, schedule, config, overrides, check)
        if outcome.problems:
            raise _failure(fn, outcome, f"schedule {k + 1} of {schedules}", config)
        outcomes.append(outcome)
        if steps is not None:   # the first guess is the config's, then what was seen
            steps = max(o.steps for o in outcomes)
    return Exploration(strategy, range(seed, seed + schedules), outcomes)


def replay(fn: Callable, strategy: str, seed: int, steps: int | None = None,
           config=None, overrides: dict | None = None,
           check: Callable | None = None) -> Outcome:
    """Run ``fn(machine)`` under one schedule, as :func:`explore` ran it; raise
    :class:`ExploreFailure` if it fails."""
    outcome = run_schedule(fn, Schedule(strategy, seed, steps), config, overrides, check)
    if outcome.problems:
        raise _failure(fn, outcome, "the schedule", config)
    return outcome


def replay_call(fn: Callable, schedule: Schedule, config=None) -> str:
    """The Python call that replays ``schedule``."""
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"
    steps = f", steps={schedule.steps}" if schedule.steps is not None else ""
    where = "" if config is None else \
        f", config={str(config)!r}" if not isinstance(config, (dict, Config)) else \
        ", config=..."
    return f"hwemu.replay({name}, strategy={schedule.strategy!r}, " \
           f"seed={schedule.seed}{steps}{where})"


def _failure(fn: Callable, outcome: Outcome, which: str, config) -> ExploreFailure:
    schedule = outcome.schedule
    call = replay_call(fn, schedule, config)
    message = "\n".join([
        f"{which} failed (strategy {schedule.strategy}, seed {schedule.seed}, "
        f"{outcome.steps} steps, {outcome.switches} switches):",
        *outcome.problems, f"replay: {call}"])
    return ExploreFailure(message, schedule, outcome.problems, outcome.cause, call)


def _config(config, overrides: dict) -> Config:
    if isinstance(config, Config):   # dumped as YAML data loads back equal
        config = plain(config, None)
    return load_config(config, overrides=overrides)
