"""Emulation of kernel/printk: the kernel log ring buffer behind ``dmesg``.

Each machine has one :class:`LogBuf`. Records are kept whole and dropped oldest first
once the buffer holds more than ``log_buf_len`` bytes of text, as the kernel's ring
does. Timestamps are the emulated clock of the CPU that logs (``local_clock()``).
Not emulated: log levels filtering the ring (every record is kept), ``/dev/kmsg``
sequence numbers.
"""
from __future__ import annotations

import collections
import sys
import threading
from typing import Callable

# Log levels as in include/linux/kern_levels.h.
KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR = 0, 1, 2, 3
KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG = 4, 5, 6, 7


class LogBuf:
    """The printk ring of one machine.

    :param size: ``log_buf_len`` in bytes
    :param clock_ns: returns the machine's emulated nanoseconds since boot
    :param console: echo every line to stderr as it is logged
    """

    def __init__(self, size: int, clock_ns: Callable[[], int], console: bool = False):
        self.size = size
        self._clock_ns = clock_ns
        self._console = console
        self._records: collections.deque[tuple[int, int, str]] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def printk(self, text: str, level: int = KERN_INFO) -> None:
        """Log ``text``; each line becomes one record with the same timestamp."""
        ts = self._clock_ns()
        lines = text.rstrip("\n").split("\n")
        with self._lock:
            for line in lines:
                self._records.append((ts, level, line))
                self._bytes += len(line) + 1
            while self._bytes > self.size and len(self._records) > 1:
                self._bytes -= len(self._records.popleft()[2]) + 1
        if self._console:
            sys.stderr.write("".join(_stamp(ts, line) + "\n" for line in lines))

    def cont(self, text: str) -> None:
        """``pr_cont()``: ``text`` continues the last record (a new one if none)."""
        with self._lock:
            if self._records:
                ts, level, line = self._records.pop()
                self._records.append((ts, level, line + text.rstrip("\n")))
                self._bytes += len(text.rstrip("\n"))
                return
        self.printk(text)

    def dmesg(self) -> str:
        """The ring as ``dmesg`` prints it: ``[    1.234567] text`` per line."""
        with self._lock:
            records = list(self._records)
        return "".join(_stamp(ts, line) + "\n" for ts, _, line in records)

    def clear(self) -> None:
        """``dmesg -C``."""
        with self._lock:
            self._records.clear()
            self._bytes = 0


def _stamp(ts_ns: int, line: str) -> str:
    sec, ns = divmod(ts_ns, 1_000_000_000)
    return f"[{sec:5d}.{ns // 1000:06d}] {line}"


class RateLimit:
    """``struct ratelimit_state`` and ``___ratelimit()`` (lib/ratelimit.c).

    At most ``burst`` messages per ``interval`` jiffies (interval 0: no limit). When a
    new interval begins, the number suppressed in the last one is logged as
    ``"<name>: N callbacks suppressed"``, ``name`` being the function that asked.

    :param clock: the machine's clock (``jiffies()`` and ``mask``)
    """

    def __init__(self, log: LogBuf, clock, interval: int, burst: int, name: str):
        self.log, self.clock = log, clock
        self.interval, self.burst, self.name = interval, burst, name
        self._begin: int | None = None
        self._printed = self._missed = 0
        self._lock = threading.Lock()

    def __call__(self, name: str | None = None) -> bool:
        """True if the caller may print now."""
        if not self.interval:
            return True
        now, mask = self.clock.jiffies(), self.clock.mask
        with self._lock:
            if self._begin is None:
                self._begin = now
            if (self._begin + self.interval - now) & mask > mask >> 1:  # interval over
                if self._missed:
                    self.log.printk(f"{name or self.name}: {self._missed} callbacks "
                                    "suppressed", KERN_WARNING)
                self._begin, self._printed, self._missed = now, 0, 0
            if self.burst > self._printed:
                self._printed += 1
                return True
            self._missed += 1
            return False
