"""Emulation of lib/fault-inject.c, mm/failslab.c and mm/fail_page_alloc.c.

A :class:`FaultAttr` is one ``struct fault_attr``: the knobs of one fault-injection
capability (``probability``, ``interval``, ``times``, ``space``, ``verbose``,
``task-filter``, the verbose rate limit) and the state behind them. :func:`should_fail_ex`
decides whether one call fails, checking in the kernel's order: the calling task's
``fail-nth``, probability 0, the task filter, ``times``, ``space``, ``interval``, then a
random number. Each machine has one :class:`FaultInjection` holding ``failslab``,
``fail_page_alloc``, ``fail_mempool_alloc`` and ``fail_mempool_alloc_bulk``, with the
kernel's filters in :meth:`FaultInjection.should_failslab` and
:meth:`FaultInjection.should_fail_alloc_page` and the debugfs files under
``/sys/kernel/debug/<name>/`` in :meth:`FaultInjection.read` and
:meth:`FaultInjection.write`.

Randomness is reproducible: each attribute draws from its own ``random.Random`` seeded
from the machine's fault-injection seed and the attribute's name, so the failures of
one capability do not depend on how often another one was asked.

Differences from the kernel:

- One decision is atomic. The kernel reads and decrements ``times`` (and ``space``) with
  separate atomic operations, so CPUs racing on the last failure can overshoot
  ``times``; here concurrent tasks get exactly ``times`` failures.
- Knobs are range-checked (the ranges of the knob table in :mod:`hwemu.fault_attr`); the
  kernel stores whatever number is written.

Not emulated: the stacktrace filter (``CONFIG_FAULT_INJECTION_STACKTRACE_FILTER``:
``stacktrace-depth``, ``require-start/end``, ``reject-start/end``; Python frames have no
addresses to compare), the ``failslab=``/``fail_page_alloc=`` boot parameters (use the
config), configfs, the static keys that skip the calls while probability is 0.
"""
from __future__ import annotations

import difflib
import errno
import os
import random
import sys
import threading
from typing import Any

from . import bug, sched
from .current import current, current_on
from .fault_attr import FAIL_PAGE_ALLOC_KNOBS, FAILSLAB_KNOBS, FAULT_ATTR_KNOBS, Knob
from .gfp import __GFP_DIRECT_RECLAIM, __GFP_HIGHMEM, __GFP_NOFAIL, __GFP_NOWARN
from .printk import KERN_NOTICE, KERN_WARNING, RateLimit

__all__ = [
    "DEBUGFS_ROOT",
    "FAULT_NOWARN",
    "FailPageAllocAttr",
    "FailslabAttr",
    "FaultAttr",
    "FaultInjection",
    "should_fail",
    "should_fail_ex",
]

# enum fault_flags (include/linux/fault-inject.h)
FAULT_NOWARN = 1 << 0

DEBUGFS_ROOT = "/sys/kernel/debug"

U32_MAX = (1 << 32) - 1
ULLONG_MAX = (1 << 64) - 1

# Class bodies mangle names that begin with "__": keep unmangled aliases.
_GFP_NOFAIL = __GFP_NOFAIL
_GFP_DIRECT_RECLAIM = __GFP_DIRECT_RECLAIM
_GFP_HIGHMEM = __GFP_HIGHMEM
_GFP_NOWARN = __GFP_NOWARN



class FaultAttr:
    """``struct fault_attr``: the knobs and state of one fault-injection capability.

    Knobs are plain attributes, checked when assigned (a bad value raises ValueError
    naming the knob); ``count`` is the interval counter. ``KNOBS`` is the capability's
    row set of the table in :mod:`hwemu.fault_attr`, which also holds the defaults
    (``FAULT_ATTR_INITIALIZER``).

    :param machine: the machine whose log, clock and tasks the attribute uses
    :param name: the debugfs directory name (``%pd`` in the failure message)
    :param config: initial knob values, read by the table's attribute names from a
        ``FaultAttrConfig`` (or any object with them); None for the kernel's defaults
    :param seed: the machine's fault-injection seed
    """

    KNOBS: tuple[Knob, ...] = FAULT_ATTR_KNOBS
    machine: Any
    name: str
    count: int
    ulong_max: int
    _lock: threading.Lock
    _rng: random.Random
    _knobs: dict[str, Knob]
    _files: dict[str, Knob]
    _rs: RateLimit

    def __init__(self, machine, name: str, config: Any = None, seed: int = 0):
        init = object.__setattr__
        init(self, "machine", machine)
        init(self, "name", name)
        init(self, "count", 0)
        # The knobs' unsigned long is the machine's: 32 bits on i386.
        init(self, "ulong_max", (1 << machine.BITS_PER_LONG) - 1)
        init(self, "_lock", threading.Lock())
        init(self, "_rng", random.Random(f"hwemu fault injection {seed} {name}"))
        init(self, "_knobs", {k.attr: k for k in self.KNOBS})
        init(self, "_files", {k.file: k for k in self.KNOBS})
        init(self, "_rs", RateLimit(machine.log, machine.clock, 0, 0, "fail_dump"))
        for knob in self.KNOBS:
            value = knob.default
            if config is not None and knob.in_config:
                # A plain fault_attr config has none of a capability's own knobs.
                value = getattr(config, knob.attr, value)
            setattr(self, knob.attr, value)

    def __setattr__(self, name: str, value: Any) -> None:
        knob = self._knobs.get(name)
        if knob is None:
            close = difflib.get_close_matches(name, list(self._knobs), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else \
                f"; knobs: {', '.join(self._knobs)}"
            raise AttributeError(f"{self.name}: no knob '{name}'{hint}")
        value = knob.check(self.name, value, self.ulong_max)
        with self._lock:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        """Reached only for a name that is no knob (knobs are set in ``__init__``)."""
        raise AttributeError(f"{type(self).__name__} has no knob {name!r}")

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k.attr}={getattr(self, k.attr)!r}" for k in self.KNOBS)
        return f"<{type(self).__name__} {self.name}: {knobs}>"

    # ------------------------------------------------------------ internals

    def _ratelimit(self) -> bool:
        """``__ratelimit(&attr->ratelimit_state)`` with the current knob values."""
        self._rs.interval, self._rs.burst = self.ratelimit_interval, self.ratelimit_burst
        return self._rs()


class FailslabAttr(FaultAttr):
    """failslab's attribute with its own knobs (``mm/failslab.c``).

    ``ignore_gfp_wait`` (file ``ignore-gfp-wait``, ``ignore_gfp_reclaim`` in the kernel):
    skip allocations with ``__GFP_DIRECT_RECLAIM``. ``cache_filter``: fail only caches
    created with ``SLAB_FAILSLAB``.
    """

    KNOBS = FAILSLAB_KNOBS


class FailPageAllocAttr(FaultAttr):
    """fail_page_alloc's attribute with its own knobs (``mm/fail_page_alloc.c``).

    ``ignore_gfp_wait``: skip ``__GFP_DIRECT_RECLAIM`` allocations; ``ignore_gfp_highmem``:
    skip ``__GFP_HIGHMEM`` allocations; ``min_order``: skip orders below it (by default,
    order-0 allocations never fail).
    """

    KNOBS = FAIL_PAGE_ALLOC_KNOBS


# ---------------------------------------------------------------- should_fail

def _task_of(machine) -> sched.Task:
    """``current`` on ``machine``."""
    task = current_on(machine)
    if task is None:
        other = current()  # raises if this thread is no task at all
        raise bug.MachineError(f"fault injection of machine {machine.name!r} called from "
                               f"{other}, a task of machine {other.machine.name!r}")
    return task


def fail_dump(attr: FaultAttr, task: sched.Task, shown: tuple[int, int, int, int]) -> None:
    """Print the failure message (verbose >= 1) and the stack (verbose 2), rate-limited.

    ``shown`` is (interval, probability, space, times) as they were when the call
    failed, before ``times`` was decremented.
    """
    if attr.verbose == 0:
        return
    if not attr._ratelimit():
        return
    log = attr.machine.log
    interval, probability, space, times = shown
    log.printk("FAULT_INJECTION: forcing a failure.\n"
               f"name {attr.name}, interval {interval}, probability {probability}, "
               f"space {space}, times {times}", KERN_NOTICE)
    if attr.verbose > 1:
        # dump_stack() logs at KERN_DEFAULT: CONFIG_MESSAGE_LOGLEVEL_DEFAULT is 4.
        bug.dump_stack(attr.machine, task, sys._getframe(), KERN_WARNING)


def should_fail_ex(attr: FaultAttr, size: int, flags: int = 0) -> bool:
    """``bool should_fail_ex(struct fault_attr *attr, ssize_t size, int flags)``.

    True if this call should fail. Checks, in the kernel's order: the calling task's
    ``fail_nth`` (in task context only: decremented, fails when it reaches 0, overriding
    every knob), probability 0, the task filter (``make_it_fail``, never in interrupt
    context), ``times`` 0, ``space`` (a budget consumed by ``size`` before anything
    fails), ``interval`` (every Nth call that got this far), then ``probability``
    against a random number 0..99. A failure is logged unless ``flags`` has
    :data:`FAULT_NOWARN` and decrements ``times`` unless it is -1.

    The stacktrace filter is not emulated.
    """
    task = _task_of(attr.machine)
    in_task = not task.preempt_count & sched.IRQ_COUNT_MASK
    if in_task and task.fail_nth:
        task.fail_nth -= 1
        if task.fail_nth:
            return False
        with attr._lock:
            shown = (attr.interval, attr.probability, attr.space, attr.times)
            if attr.times not in (-1, 0):  # atomic_dec_not_zero
                object.__setattr__(attr, "times", attr.times - 1)
    else:
        # No need to check any other properties if the probability is 0.
        if attr.probability == 0:
            return False
        if attr.task_filter and not (in_task and task.make_it_fail):
            return False
        with attr._lock:
            if attr.times == 0:
                return False
            if attr.space > size:
                object.__setattr__(attr, "space", attr.space - size)
                return False
            if attr.interval > 1:
                object.__setattr__(attr, "count", attr.count + 1)
                if attr.count % attr.interval:
                    return False
            if attr.probability <= attr._rng.randrange(100):
                return False
            shown = (attr.interval, attr.probability, attr.space, attr.times)
            if attr.times != -1:  # not 0 here
                object.__setattr__(attr, "times", attr.times - 1)
    if not flags & FAULT_NOWARN:
        fail_dump(attr, task, shown)
    return True


def should_fail(attr: FaultAttr, size: int) -> bool:
    """``bool should_fail(struct fault_attr *attr, ssize_t size)``."""
    return should_fail_ex(attr, size, 0)


# ---------------------------------------------------------------- debugfs parsing

_TRUE_FIRST, _FALSE_FIRST = "EeYyTt1", "DdNnFf0"


def kstrtobool(text: str) -> bool:
    """``kstrtobool()`` as debugfs bool files use it: the first character decides
    (``EeYyTt1`` true, ``DdNnFf0`` false), or ``on``/``off``."""
    text = text[:3]  # kstrtobool_from_user looks at 3 bytes at most
    if text[:1] and text[0] in _TRUE_FIRST:
        return True
    if text[:1] and text[0] in _FALSE_FIRST:
        return False
    if text[:1] in ("o", "O") and text[1:2]:
        if text[1] in "nN":
            return True
        if text[1] in "fF":
            return False
    raise ValueError("not a boolean (Y/N, 1/0, on/off)")


def kstrtoint(text: str, signed: bool) -> int:
    """``kstrtoull``/``kstrtoll`` with base 0: ``0x`` hex, leading ``0`` octal, else
    decimal; an optional sign (``-`` only if ``signed``) and one trailing newline."""
    body = text[:-1] if text.endswith("\n") else text
    sign = 1
    if body[:1] == "+" or (signed and body[:1] == "-"):
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    if body[:2].lower() == "0x" and len(body) > 2:
        digits, base = body[2:], 16
    elif body[:1] == "0" and len(body) > 1:
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    if not digits or any(c not in "0123456789abcdef"[:base] for c in digits.lower()):
        raise ValueError("not a number")
    value = sign * int(digits, base)
    lo, hi = (-(1 << 63), (1 << 63) - 1) if signed else (0, ULLONG_MAX)
    if not lo <= value <= hi:
        raise ValueError("number out of range")
    return value


def _to_ctype(value: int, ctype: str, ulong_max: int) -> int:
    """Store ``value`` in the knob's C type, truncating as the assignment in C does:
    debugfs parses a u64 and ``debugfs_ulong_set()`` stores it in an ``unsigned long``,
    so on a 32-bit machine (``ulong_max`` 2**32 - 1) ``2**32 + 3`` is 3."""
    if ctype == "atomic_t":  # atomic_set(int): `printf %#x -1 > times` gives -1
        return ((value + (1 << 31)) & U32_MAX) - (1 << 31)
    if ctype == "u32":
        return value & U32_MAX
    return value & ulong_max


# ---------------------------------------------------------------- per machine

class FaultInjection:
    """The fault-injection capabilities of one machine, built from its config.

    ``failslab`` (:class:`FailslabAttr`), ``fail_page_alloc`` (:class:`FailPageAllocAttr`),
    ``fail_mempool_alloc`` and ``fail_mempool_alloc_bulk`` (:class:`FaultAttr`; mempool
    calls ``should_fail_ex(attr, 1, FAULT_NOWARN)`` on them). ``attrs`` maps each
    debugfs directory name to its attribute.

    :param machine: the machine the capabilities belong to
    :param config: the config's ``fault_injection`` section (a ``FaultInjectionConfig``:
        ``seed`` and one knob set per capability); None for seed 0 and the kernel's
        defaults
    """

    def __init__(self, machine, config: Any = None):
        self.machine = machine
        self.seed = config.seed if config is not None else 0

        def attr(cls: type[FaultAttr], name: str) -> FaultAttr:
            part = getattr(config, name) if config is not None else None
            return cls(machine, name, part, self.seed)

        self.failslab = attr(FailslabAttr, "failslab")
        self.fail_page_alloc = attr(FailPageAllocAttr, "fail_page_alloc")
        self.fail_mempool_alloc = attr(FaultAttr, "fail_mempool_alloc")
        self.fail_mempool_alloc_bulk = attr(FaultAttr, "fail_mempool_alloc_bulk")
        self.attrs: dict[str, FaultAttr] = {
            a.name: a for a in (self.failslab, self.fail_page_alloc,
                                self.fail_mempool_alloc, self.fail_mempool_alloc_bulk)}

    # ------------------------------------------------------------ the hooks

    def should_failslab(self, cache_name: str, object_size: int, gfpflags: int,
                        cache_failslab: bool = False, bootstrap: bool = False) -> bool:
        """``should_failslab(struct kmem_cache *s, gfp_t gfpflags)``: True to fail.

        :param cache_name: ``s->name`` (for the caller's reports; not a filter)
        :param object_size: ``s->object_size``, the size charged against ``space``
        :param gfpflags: ``gfp_t`` of the allocation
        :param cache_failslab: ``s->flags & SLAB_FAILSLAB``
        :param bootstrap: ``s == kmem_cache``, the cache of caches: never failed
        """
        fs = self.failslab
        if bootstrap:  # no fault injection for the bootstrap cache
            return False
        if gfpflags & _GFP_NOFAIL:
            return False
        if fs.ignore_gfp_wait and gfpflags & _GFP_DIRECT_RECLAIM:
            return False
        if fs.cache_filter and not cache_failslab:
            return False
        # __GFP_NOWARN callers expect no output at all (commit 6b9dbedbe349).
        flags = FAULT_NOWARN if gfpflags & _GFP_NOWARN else 0
        return should_fail_ex(fs, object_size, flags)

    def should_fail_alloc_page(self, gfp_mask: int, order: int) -> bool:
        """``should_fail_alloc_page(gfp_t gfp_mask, unsigned int order)``: True to fail.

        The size charged against ``space`` is ``1 << order`` pages.
        """
        fpa = self.fail_page_alloc
        if order < fpa.min_order:
            return False
        if gfp_mask & _GFP_NOFAIL:
            return False
        if fpa.ignore_gfp_highmem and gfp_mask & _GFP_HIGHMEM:
            return False
        if fpa.ignore_gfp_wait and gfp_mask & _GFP_DIRECT_RECLAIM:
            return False
        flags = FAULT_NOWARN if gfp_mask & _GFP_NOWARN else 0
        return should_fail_ex(fpa, 1 << order, flags)

    # ------------------------------------------------------------ debugfs

    def _lookup(self, path: str | os.PathLike[str]) -> tuple[FaultAttr, Knob]:
        """The attribute and knob behind a debugfs path (absolute or relative to it)."""
        text = os.fspath(path)
        rel = text[len(DEBUGFS_ROOT) + 1:] if text.startswith(DEBUGFS_ROOT + "/") else text
        parts = rel.split("/")
        attr = self.attrs.get(parts[0]) if len(parts) == 2 else None
        knob = attr._files.get(parts[1]) if attr is not None else None
        if attr is None or knob is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), text)
        return attr, knob

    def files(self) -> list[str]:
        """Every debugfs file, as absolute paths."""
        return [f"{DEBUGFS_ROOT}/{name}/{knob.file}"
                for name, attr in self.attrs.items() for knob in attr.KNOBS]

    def read(self, path: str | os.PathLike[str]) -> str:
        """``cat`` a debugfs file: ``"100\\n"``, ``"-1\\n"``, ``"Y\\n"``..."""
        attr, knob = self._lookup(path)
        value = getattr(attr, knob.attr)
        if knob.ctype == "bool":
            return "Y\n" if value else "N\n"
        return f"{value}\n"

    def write(self, path: str | os.PathLike[str], value: str | int | bool) -> None:
        """``echo value > path``: parse as the kernel does, then set the knob.

        Text is parsed like the kernel's debugfs files (``kstrtobool`` for Y/N files,
        ``kstrtoull``/``kstrtoll`` with base 0 for numbers, ``0xffffffff`` written to
        ``times`` is -1 as in the documentation's ``printf %#x -1``); an int is written as
        its decimal text, a bool as Y/N. Raises FileNotFoundError for an unknown file and
        ValueError (naming the path) for a value the file does not take.
        """
        attr, knob = self._lookup(path)
        shown = os.fspath(path)
        if isinstance(value, bool):
            text = "Y" if value else "N"
        elif isinstance(value, (int, str)):
            text = str(value)
        else:
            raise ValueError(f"{shown}: write takes str, int or bool, not "
                             f"{type(value).__name__}")
        try:
            if knob.ctype == "bool":
                parsed: int | bool = kstrtobool(text)
            else:
                parsed = _to_ctype(kstrtoint(text, knob.ctype == "atomic_t"), knob.ctype,
                                   attr.ulong_max)
        except ValueError as exc:
            raise ValueError(f"{shown}: invalid argument {text!r}: {exc}") from None
        try:
            setattr(attr, knob.attr, parsed)
        except ValueError as exc:
            raise ValueError(f"{shown}: {exc}") from None

    def __repr__(self) -> str:
        return f"<FaultInjection of {self.machine.name!r}: {', '.join(self.attrs)}>"
