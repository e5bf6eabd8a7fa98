"""include/linux/fault-inject.h: the knobs of struct fault_attr, one table for the
config schema and the runtime.

``struct fault_attr`` (lib/fault-inject.c) holds what every fault-injection capability
shares: ``probability``, ``interval``, ``times``, ``space``, ``verbose``, the verbose
rate limit and ``task-filter``. failslab (mm/failslab.c) and fail_page_alloc
(mm/fail_page_alloc.c) wrap it with knobs of their own. A :class:`Knob` is one row of
the table: the attribute name, the debugfs file, the C type behind that file, the
values hwemu accepts, the default (``FAULT_ATTR_INITIALIZER`` and the capabilities'
initializers), and the one-line description the config reference shows.

:mod:`hwemu.config.schema` builds the YAML models ``FaultAttrConfig``,
``FailslabConfig`` and ``FailPageAllocConfig`` from these rows; :mod:`hwemu.fault_inject`
builds the debugfs files and checks every assignment with them. The YAML config does
not set the verbose rate limit (``in_config`` false); its debugfs files do.

Plain data, so that the config can import it: no pydantic, nothing of the machine
but the ``MAX_PAGE_ORDER`` constant.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .mmzone import MAX_PAGE_ORDER

__all__ = [
    "DEFAULT_RATELIMIT_BURST",
    "FAIL_PAGE_ALLOC_KNOBS",
    "FAILSLAB_KNOBS",
    "FAULT_ATTR_KNOBS",
    "INT_MAX",
    "Knob",
    "ULONG_MAX",
]

INT_MAX = (1 << 31) - 1
# The table's bound for ``ulong`` knobs: a 64-bit machine's. A machine's own word size
# narrows it where the knob is checked (``Knob.check(ulong_max=...)``).
ULONG_MAX = (1 << 64) - 1

# RATELIMIT_STATE_INIT_DISABLED: interval 0, DEFAULT_RATELIMIT_BURST.
DEFAULT_RATELIMIT_BURST = 10


@dataclasses.dataclass(frozen=True)
class Knob:
    """One knob: its attribute name, its debugfs file and the values it takes.

    ``ctype`` is the C type behind the debugfs file, which decides how a write is
    parsed and printed: ``ulong`` and ``u32`` (unsigned, ``%llu``), ``atomic_t``
    (signed, ``%lld``) or ``bool`` (``Y``/``N``). ``lo``..``hi`` is the range hwemu
    accepts (the kernel stores any number); ``unit`` explains a value in error
    messages. ``doc`` is the config reference's description, with ``{lo}`` and ``{hi}``
    filled in; ``in_config`` says whether the YAML config sets the knob, and ``size``
    whether it takes a size there (``4K``).
    """

    attr: str
    file: str
    ctype: str
    lo: int = 0
    hi: int = 1
    default: Any = 0
    unit: str = ""
    doc: str = ""
    in_config: bool = True
    size: bool = False

    @property
    def description(self) -> str:
        """``doc`` with the range filled in."""
        return self.doc.format(lo=self.lo, hi=self.hi)

    def top(self, ulong_max: int = ULONG_MAX) -> int:
        """The largest value the knob takes on a machine whose ``unsigned long`` ends
        at ``ulong_max``."""
        return min(self.hi, ulong_max) if self.ctype == "ulong" else self.hi

    def check(self, owner: str, value: Any, ulong_max: int = ULONG_MAX) -> Any:
        """Return ``value`` if this knob takes it; raise ValueError naming the knob.

        :param ulong_max: the machine's ``ULONG_MAX`` (``1 << BITS_PER_LONG`` - 1)
        """
        where = f"{owner}.{self.attr}" if owner else self.attr
        if self.ctype == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected True or False, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        hi = self.top(ulong_max)
        if not self.lo <= value <= hi:
            unit = f" ({self.unit})" if self.unit else ""
            raise ValueError(f"{where}: must be {self.lo}..{hi}{unit}, got {value}")
        return value


# struct fault_attr, in the order of its debugfs files; defaults: FAULT_ATTR_INITIALIZER.
FAULT_ATTR_KNOBS: tuple[Knob, ...] = (
    Knob("probability", "probability", "ulong", 0, 100, default=0, unit="percent",
         doc="Percent of eligible calls that fail, {lo}..{hi}; 0 disables injection."),
    Knob("interval", "interval", "ulong", 1, ULONG_MAX, default=1,
         doc="Fail only every Nth eligible call (use with probability 100); >= {lo}."),
    # times and space are atomic_t in the kernel: a C int.
    Knob("times", "times", "atomic_t", -1, INT_MAX, default=1, unit="-1 = no limit",
         doc="How many failures to inject at most; -1 means no limit."),
    Knob("space", "space", "atomic_t", 0, INT_MAX, default=0, size=True,
         doc="Bytes (or pages) of calls to let through before failing starts."),
    Knob("verbose", "verbose", "ulong", 0, 2, default=2,
         doc="Log on failure: 0 nothing, 1 the FAULT_INJECTION message, "
         "2 the message and a stack dump."),
    # The kernel names the file _ms but compares it with jiffies.
    Knob("ratelimit_interval", "verbose_ratelimit_interval_ms", "u32", 0, INT_MAX,
         default=0, unit="jiffies; 0 = no rate limit", in_config=False,
         doc="Jiffies between bursts of failure messages; 0: no rate limit."),
    Knob("ratelimit_burst", "verbose_ratelimit_burst", "u32", 0, INT_MAX,
         default=DEFAULT_RATELIMIT_BURST, in_config=False,
         doc="Failure messages allowed per rate-limit interval."),
    Knob("task_filter", "task-filter", "bool", default=False,
         doc="Fail only in tasks with make-it-fail set (never in interrupts)."),
)

# ignore_gfp_reclaim in the kernel; the debugfs file keeps the old name.
_IGNORE_GFP_WAIT = Knob(
    "ignore_gfp_wait", "ignore-gfp-wait", "bool", default=True,
    doc="Do not fail allocations that may sleep (__GFP_DIRECT_RECLAIM).")

# failslab's struct (mm/failslab.c): struct fault_attr and two knobs of its own. No
# capability changes a default of struct fault_attr.
FAILSLAB_KNOBS: tuple[Knob, ...] = FAULT_ATTR_KNOBS + (
    _IGNORE_GFP_WAIT,
    Knob("cache_filter", "cache-filter", "bool", default=False,
         doc="Fail only caches marked failslab (SLAB_FAILSLAB)."),
)

# fail_page_alloc's struct (mm/fail_page_alloc.c); min_order 1 keeps order-0
# allocations from failing.
FAIL_PAGE_ALLOC_KNOBS: tuple[Knob, ...] = FAULT_ATTR_KNOBS + (
    _IGNORE_GFP_WAIT,
    Knob("ignore_gfp_highmem", "ignore-gfp-highmem", "bool", default=True,
         doc="Do not fail __GFP_HIGHMEM allocations."),
    Knob("min_order", "min-order", "u32", 0, MAX_PAGE_ORDER, default=1,
         doc="Fail only allocations of at least this order, {lo}..{hi}."),
)
