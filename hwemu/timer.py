"""Emulation of include/linux/jiffies.h and kernel/time: the machine's clock.

``jiffies`` start at ``INITIAL_JIFFIES`` (five minutes before the 32-bit wrap, as the
kernel does) and are an ``unsigned long`` of the machine's width. Emulated time advances
``time_scale`` times faster than the wall clock, so a ``5 * HZ`` sleep can be made short
in tests.
"""
from __future__ import annotations

import time

from .current import current


def initial_jiffies(hz: int) -> int:
    """``INITIAL_JIFFIES``: ``(unsigned long)(unsigned int)(-300 * HZ)``."""
    return (-300 * hz) & 0xFFFFFFFF


class Clock:
    """The machine's emulated time: nanoseconds since boot and jiffies."""

    def __init__(self, hz: int, time_scale: float, bits_per_long: int = 64):
        self.hz = hz
        self.scale = time_scale
        self.mask = (1 << bits_per_long) - 1  # jiffies is an unsigned long
        self._t0 = time.monotonic_ns()
        self._initial = initial_jiffies(hz)

    def now_ns(self) -> int:
        """``local_clock()``: emulated nanoseconds since boot."""
        return int((time.monotonic_ns() - self._t0) * self.scale)

    def jiffies(self) -> int:
        return (self._initial + self.now_ns() * self.hz // 1_000_000_000) & self.mask

    def seconds(self, nr_jiffies: int) -> float:
        """Wall-clock seconds that ``nr_jiffies`` last."""
        return nr_jiffies / self.hz / self.scale


def jiffies() -> int:
    """The current machine's ``jiffies``."""
    return current().machine.clock.jiffies()


def time_after(a: int, b: int) -> bool:
    """``time_after(a, b)``: wrap-safe at the machine's ``unsigned long`` width."""
    mask = current().machine.clock.mask
    return (b - a) & mask > mask >> 1


def time_before(a: int, b: int) -> bool:
    return time_after(b, a)
