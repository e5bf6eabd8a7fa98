"""Emulation of include/linux/jiffies.h, kernel/time/timer.c and hrtimer.c: the
machine's time.

Emulated time belongs to the machine, never to the host's clock. Every CPU has a clock
of its own (nanoseconds since boot), which the scheduler (:mod:`hwemu.sched`) advances
by a fixed cost per scheduling point of the task running on it and carries along
whatever passes from one task to another: a woken, spawned or joined task is never
earlier than the task that woke, spawned or left it. A timer fires when the clock of
the running CPU passes its expiry, or, when no task can run, the clocks jump to the
next timer. ``jiffies`` read the running CPU's clock: they start at
``INITIAL_JIFFIES`` (five minutes before the 32-bit wrap, as the kernel does) and are
an ``unsigned long`` of the machine's width.
"""
from __future__ import annotations

import heapq
import itertools
from typing import Any, Callable

from .current import current

NSEC_PER_SEC = 1_000_000_000
NSEC_PER_MSEC = 1_000_000
NSEC_PER_USEC = 1_000
NEVER = 1 << 126   # an expiry no clock reaches


def initial_jiffies(hz: int) -> int:
    """``INITIAL_JIFFIES``: ``(unsigned long)(unsigned int)(-300 * HZ)``."""
    return (-300 * hz) & 0xFFFFFFFF


class Clock:
    """The machine's time as code reads it: the running CPU's nanoseconds since boot
    (``local_clock()``, ``ktime_get()``) and ``jiffies``.

    :param now_ns: the scheduler's reading of the running CPU's clock
    """

    def __init__(self, hz: int, bits_per_long: int, now_ns: Callable[[], int]):
        self.hz = hz
        self.mask = (1 << bits_per_long) - 1  # jiffies is an unsigned long
        self._initial = initial_jiffies(hz)
        self.now_ns = now_ns

    def jiffies(self) -> int:
        return (self._initial + self.now_ns() * self.hz // NSEC_PER_SEC) & self.mask

    def jiffies_to_ns(self, nr_jiffies: int) -> int:
        """How long ``nr_jiffies`` ticks last, rounded up to a nanosecond."""
        return -(-nr_jiffies * NSEC_PER_SEC // self.hz)

    def tick_after(self, now: int, nr_jiffies: int) -> int:
        """The time of the tick ``nr_jiffies`` after the one ``now`` lies in: when a
        timer armed at ``now`` for ``nr_jiffies`` fires (the timer wheel's rounding)."""
        return self.jiffies_to_ns(now * self.hz // NSEC_PER_SEC + nr_jiffies)


class TimerQueue:
    """Pending timers of one machine, earliest first.

    A timer belongs to a task and is live while it is that task's ``timer``; waking the
    task (or arming another timer) cancels it without touching the heap.
    """

    def __init__(self):
        self._heap: list[tuple[int, int, Any]] = []
        self._seq = itertools.count()
        self.next_expiry = NEVER

    def arm(self, task, expires: int) -> None:
        """Make ``task`` wake at ``expires`` (ns) unless it is woken before."""
        entry = (expires, next(self._seq), task)
        task.timer = entry
        heapq.heappush(self._heap, entry)
        if expires < self.next_expiry:
            self.next_expiry = expires

    def _prune(self) -> None:
        heap = self._heap
        while heap and heap[0][2].timer is not heap[0]:
            heapq.heappop(heap)
        self.next_expiry = heap[0][0] if heap else NEVER

    def pop_due(self, now: int) -> list[tuple[int, int, Any]]:
        """The live timers expired at ``now``, removed, earliest first."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if entry[2].timer is entry:
                due.append(entry)
        self._prune()
        return due

    def pop_earliest(self) -> tuple[int, int, Any]:
        """The earliest live timer, removed (IndexError if there is none)."""
        self._prune()
        entry = heapq.heappop(self._heap)
        self._prune()
        return entry

    def any_live(self, pred: Callable[[Any], bool]) -> bool:
        """Whether a live timer's task satisfies ``pred``."""
        return any(task.timer is entry and pred(task)
                   for entry in self._heap for task in (entry[2],))


def jiffies() -> int:
    """The current machine's ``jiffies``."""
    return current().machine.clock.jiffies()


def ktime_get() -> int:
    """``ktime_get()``: the running CPU's clock, ns since boot."""
    return current().machine.clock.now_ns()


def msecs_to_jiffies(m: int) -> int:
    """``msecs_to_jiffies()``: rounded up."""
    return -(-m * current().machine.clock.hz // 1000)


def time_after(a: int, b: int) -> bool:
    """``time_after(a, b)``: wrap-safe at the machine's ``unsigned long`` width."""
    mask = current().machine.clock.mask
    return (b - a) & mask > mask >> 1


def time_before(a: int, b: int) -> bool:
    return time_after(b, a)
