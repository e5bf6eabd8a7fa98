"""The run schema: what ``hwemu run`` does on the machine and what must hold after.

Pools (``mempool_create_*_pool()``), the workloads that use them (block I/O, network
receive, memory pressure, pool resizing, users' own functions) and the expectations
checked at the end of a run. Durations are emulated time, written as seconds or with
a unit (``10s``, ``500us``) and held in nanoseconds.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      WithJsonSchema, model_validator)

from ..mmzone import MAX_PAGE_ORDER
from ..page_types import PAGE_SIZE
from .base import _MODEL_CONFIG, Loc, M, Size, _raise_checks

_DURATION_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>ns|us|ms|s)?",
                          re.ASCII)
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
# Emulated time is a ktime_t: signed 64-bit nanoseconds, about 292 years.
KTIME_MAX = (1 << 63) - 1
# Longer numbers are refused before they are converted (thousands of digits are slow).
_DURATION_DIGITS = 40


def parse_duration(value: object) -> int:
    """Nanoseconds from a number of seconds or a string like ``10s``, ``500ms``, ``50us``.

    At most ``KTIME_MAX`` nanoseconds. Raises ``ValueError`` otherwise.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            0 <= value < float("inf"):
        if value * 1_000_000_000 > KTIME_MAX:
            raise _too_long(f"{value:g}" if isinstance(value, float) else _digits(value))
        return round(value * 1_000_000_000)
    match = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid duration '{_clip(value)}': expected seconds, or a "
                         "number with ns, us, ms or s, e.g. 10s or 500us")
    if len(match["num"]) > _DURATION_DIGITS:
        if len(match["num"].partition(".")[0]) <= _DURATION_DIGITS // 2:   # 0.000...1
            raise ValueError(f"invalid duration: {len(match['num'])} digits are more "
                             "than a duration in nanoseconds needs")
        raise _too_long(f"a number of {len(match['num'])} digits")
    ns = round(Fraction(match["num"]) * _DURATION_NS[match["unit"] or "s"])
    if ns > KTIME_MAX:
        raise _too_long(match.group(0))
    return ns


def _digits(n: int) -> str:
    """An int as written, or its length when it is too long to show."""
    if n.bit_length() <= 128:
        return str(n)
    if n.bit_length() <= 10_000:   # str() refuses above 4300 digits
        return f"a number of {len(str(n))} digits"
    return f"a number of {n.bit_length()} bits"


def _clip(value: object, limit: int = 60) -> str:
    """``value`` for a message, cut short when it is long."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _too_long(shown: str) -> ValueError:
    """The error of a duration beyond ``KTIME_MAX``."""
    return ValueError(f"{shown} is too long: durations are at most {KTIME_MAX} ns "
                      f"(KTIME_MAX, about 292 years)")


def format_duration(ns: int) -> str:
    """A duration in the largest unit that divides it exactly: ``10s``, ``500us``."""
    for unit in ("s", "ms", "us"):
        if ns and ns % _DURATION_NS[unit] == 0:
            return f"{ns // _DURATION_NS[unit]}{unit}"
    return f"{ns}ns"


# Emulated time, written as seconds or with a unit (see parse_duration); held in ns.
Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}),
]


def _gfp_mask(value: str) -> str:
    """A GFP mask the kernel's names can spell (``GFP_NOIO``, ``GFP_ATOMIC|__GFP_ZERO``)."""
    from ..gfp import parse_gfp  # gfp.py sits above config in the import order
    parse_gfp(value)
    return value


def _callable_name(value: str) -> str:
    """``module:function`` or ``file.c:function`` (kernel C, hwemu.kbuild): checked for
    shape here, imported (or compiled) when the run starts."""
    module, _, function = value.partition(":")
    if module.endswith(".c") and function.isidentifier():
        return value
    if not (module and function.isidentifier()
            and all(part.isidentifier() for part in module.split("."))):
        raise ValueError(f"'{value}' is not module:function or file.c:function, "
                         "e.g. mydriver:stress")
    return value


_CONDITION_RE = re.compile(r"(?P<op>==|!=|<=|>=|<|>)?\s*(?P<num>[0-9]+(?:\.[0-9]+)?)",
                           re.ASCII)


_CONDITION_DIGITS = 40


def _condition(value: object) -> str:
    """An expectation: a number (must equal it) or ``<op> number`` with ``==``, ``!=``,
    ``<``, ``<=``, ``>``, ``>=``; normalised to ``'>= 1'``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    match = _CONDITION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid expectation '{_clip(value)}': expected a number or "
                         "'<op> number' with ==, !=, <, <=, >, >=, e.g. '>= 1'")
    if len(match["num"]) > _CONDITION_DIGITS:   # a count never has so many
        raise ValueError(f"invalid expectation: a number of {len(match['num'])} digits; "
                         f"at most {_CONDITION_DIGITS}")
    return f"{match['op'] or '=='} {match['num']}"


GfpMask = Annotated[str, AfterValidator(_gfp_mask)]
CallableName = Annotated[str, AfterValidator(_callable_name)]
Condition = Annotated[str, BeforeValidator(_condition)]


class PoolConfig(BaseModel):
    """A memory pool of the run: ``mempool_create_{slab,kmalloc,page}_pool()``."""

    model_config = _MODEL_CONFIG

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$",
                      description="The pool's name; workloads refer to it.")
    type: Literal["slab", "kmalloc", "page"] = Field(
        default="slab",
        description="Backing allocator: a kmem_cache of its own (slab), kmalloc, or "
        "pages (alloc_pages of `order`).")
    size: Size = Field(default=256, ge=8, le=4 * M,
                       description="Element size for slab and kmalloc pools, 8..4M.")
    order: int = Field(default=0, ge=0, le=MAX_PAGE_ORDER,
                       description=f"Page order for page pools, 0..{MAX_PAGE_ORDER}.")
    min_nr: int = Field(default=16, ge=0, le=65536,
                        description="Elements kept in reserve (mempool min_nr).")
    node: int = Field(default=-1, ge=-1,
                      description="NUMA node of the pool and its reserve; -1: any.")


class LatencyConfig(BaseModel):
    """A shifted exponential distribution of emulated time."""

    model_config = _MODEL_CONFIG

    min: Duration = Field(default=100_000, description="Shortest latency.")
    mean: Duration = Field(default=1_000_000, description="Mean latency; >= min.")

    @model_validator(mode="after")
    def _check(self) -> LatencyConfig:
        if self.mean < self.min:
            _raise_checks([(("mean",), f"{format_duration(self.mean)} is below min "
                                      f"({format_duration(self.min)})")])
        return self


class BioConfig(BaseModel):
    """Block I/O: submitters take requests from a pool, a disk completes them from
    interrupt context after a latency (the block layer's use of mempools)."""

    model_config = _MODEL_CONFIG

    pool: str = Field(description="The pool requests come from (run.pools[].name).")
    submitters: int = Field(default=2, ge=1, le=64,
                            description="Submitting tasks, one CPU each.")
    queue_depth: int = Field(default=16, ge=1, le=4096,
                             description="Requests in flight per submitter; a submitter "
                             "with a full queue waits for a completion.")
    requests: int = Field(default=0, ge=0,
                          description="Requests per submitter; 0: until the run ends.")
    interval: Duration = Field(default=0,
                               description="Time between bursts: at every multiple of it "
                               "(the same instants for every submitter, as periodic "
                               "writeback) each submitter submits until its queue is full, "
                               "then sleeps; 0: a request whenever one completes.")
    gfp: GfpMask = Field(default="GFP_NOIO", description="GFP mask of mempool_alloc().")
    latency: LatencyConfig = Field(default_factory=LatencyConfig,
                                   description="I/O latency, submission to completion.")


class NetRxConfig(BaseModel):
    """Network receive: a NIC's softirq allocates packet buffers from a pool with
    GFP_ATOMIC; a NULL is a dropped packet; a reader frees them in process context."""

    model_config = _MODEL_CONFIG

    pool: str = Field(description="The pool buffers come from (run.pools[].name).")
    batch: int = Field(default=16, ge=1, le=4096,
                       description="Packets per softirq (the NAPI budget).")
    interval: Duration = Field(default=1_000_000,
                               description="Time between softirqs (rounded up to jiffies); "
                               "0: back to back.")
    backlog: int = Field(default=0, ge=0,
                         description="Packets the socket holds before the reader frees them.")
    packets: int = Field(default=0, ge=0,
                         description="Packets to receive; 0: until the run ends.")


class MemoryHogConfig(BaseModel):
    """A task that keeps memory filled to a target: page cache (reclaimable) or
    anonymous memory (only the OOM killer frees it)."""

    model_config = _MODEL_CONFIG

    fill: int = Field(default=90, ge=1, le=100,
                      description="Target, in percent of the machine's managed memory.")
    reclaimable: bool = Field(default=True,
                              description="Page cache (true) or anonymous memory (false).")
    dirty: bool = Field(default=False,
                        description="Page cache is dirty: reclaim must write it back, "
                        "which GFP_NOIO/GFP_NOFS allocations cannot.")
    chunk: int = Field(default=256, ge=1, le=1 << 20,
                       description="Pages added per step.")
    rate: Size = Field(default=256 * M, ge=0,
                       description="Bytes read into memory per second of emulated time "
                       "(the bandwidth of the file the hog reads); 0: as fast as the "
                       "CPU goes.")


class ResizeConfig(BaseModel):
    """A task that resizes a pool during the run (mempool_resize)."""

    model_config = _MODEL_CONFIG

    pool: str = Field(description="The pool to resize (run.pools[].name).")
    sizes: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field(default=(4, 64), min_length=1,
                                   description="min_nr values to cycle through, each >= 1.")
    interval: Duration = Field(default=100_000_000, description="Time between resizes.")


class CustomConfig(BaseModel):
    """A user's workload: ``function(run)`` as a task; ``run`` has ``.machine``,
    ``.pools``, ``.rng``, ``.args``, ``.stopping()`` and ``.count(name)`` (see
    hwemu.runs.workloads.CustomTask); a counter it counts can be expected (``expect:``)."""

    model_config = _MODEL_CONFIG

    function: CallableName = Field(
        description="module:function, imported from the config's directory or sys.path; "
                    "or file.c:function, kernel C compiled against hwemu's headers when "
                    "the run starts (its function takes no argument; see "
                    "hwemu/workload.h).")
    tasks: int = Field(default=1, ge=1, le=64, description="Tasks running it, one CPU each.")
    args: dict[str, Any] = Field(default_factory=dict,
                                 description="Passed as run.args.")


class RunConfig(BaseModel):
    """A machine run (``hwemu run``): pools and the workloads using them."""

    model_config = _MODEL_CONFIG

    seed: int = Field(default=0, description="Seed of every workload's random numbers "
                      "(--seed also sets fault_injection.seed).")
    duration: Duration = Field(default=10_000_000_000,
                               description="Emulated time the run lasts at most; a run "
                               "whose workloads all have counts ends when they are done.")
    pools: tuple[PoolConfig, ...] = Field(default=(), description="Memory pools.")
    bio: BioConfig | None = Field(default=None, description="Block I/O workload.")
    net_rx: NetRxConfig | None = Field(default=None, description="Network receive workload.")
    memory_hog: MemoryHogConfig | None = Field(default=None,
                                               description="Memory pressure workload.")
    resize: ResizeConfig | None = Field(default=None, description="Pool resizing workload.")
    custom: tuple[CustomConfig, ...] = Field(default=(), description="Users' workloads.")

    def tasks(self) -> int:
        """CPUs the workloads take: one per task, plus the disk's interrupt CPU."""
        n = sum(w is not None for w in (self.net_rx, self.memory_hog, self.resize))
        if self.bio:
            n += self.bio.submitters + 1
        return n + sum(c.tasks for c in self.custom)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        names = [p.name for p in self.pools]
        problems: list[tuple[Loc, str]] = [
            (("pools", i, "name"), f"duplicate pool name '{name}'")
            for i, name in enumerate(names) if name in names[:i]]
        for key in ("bio", "net_rx", "resize"):
            workload = getattr(self, key)
            if workload is not None and workload.pool not in names:
                known = ", ".join(names) or "none defined"
                problems.append(((key, "pool"), f"no pool named '{workload.pool}' in "
                                                f"run.pools ({known})"))
        _raise_checks(problems + list(self._check_waits()))
        return self

    def _check_waits(self) -> Iterator[tuple[Loc, str]]:
        """A workload's first step must come within the run: a sleep longer than the
        run only keeps a task waiting for the end."""
        run = f"the run (run.duration {format_duration(self.duration)})"
        waits: list[tuple[Loc, int, str]] = []
        if self.net_rx is not None:
            waits.append((("net_rx", "interval"), self.net_rx.interval, "receive a packet"))
        if self.resize is not None:
            waits.append((("resize", "interval"), self.resize.interval, "resize its pool"))
        if self.bio is not None:
            waits.append((("bio", "latency", "min"), self.bio.latency.min,
                          "complete a request"))
        for loc, ns, what in waits:
            if ns > self.duration:
                yield loc, (f"{format_duration(ns)} is longer than {run}: the workload "
                            f"would never {what}; shorten it or lengthen run.duration")
        hog = self.memory_hog
        if hog is not None and hog.rate:
            chunk_ns = -(-hog.chunk * PAGE_SIZE * 1_000_000_000 // hog.rate)
            if chunk_ns > self.duration:
                yield ("memory_hog", "rate"), (
                    f"a chunk of {hog.chunk} pages takes {format_duration(chunk_ns)} to "
                    f"read at {hog.rate} bytes/s, longer than {run}; raise rate or "
                    "lower chunk")


class ExpectConfig(BaseModel):
    """What must hold at the end of a run for ``hwemu run`` to exit 0. Each is a number
    (equal to it) or a comparison such as ``'>= 1'``; totals over every pool. With
    custom workloads (``run.custom``), any other key names a counter they count with
    ``run.count(name)``, summed over their tasks (0 if none counted it):
    ``{requests: '>= 100'}``."""

    model_config = ConfigDict(**{**_MODEL_CONFIG, "extra": "allow"})
    __pydantic_extra__: dict[str, Condition] = Field(init=False)   # counters (above)

    def counters(self, custom: bool) -> Iterator[tuple[Loc, str]]:
        """Problems of the counters expected: any without ``run.custom`` (``custom``
        False) is an unknown key, as extra keys are elsewhere."""
        names = list(type(self).model_fields)
        for key in () if custom else self.model_extra or ():
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else \
                f"valid keys: {', '.join(names)}"
            yield ("expect", key), (f"unknown key '{key}'; {hint} (a counter of a custom "
                                    "workload can be expected when run.custom has one)")

    alloc_allocator: Condition | None = Field(default=None, description="Elements from alloc_fn.")
    alloc_reserve: Condition | None = Field(default=None, description="Elements from a reserve.")
    null_returns: Condition | None = Field(default=None, description="mempool_alloc() NULLs.")
    waits: Condition | None = Field(default=None, description="Sleeps on a pool's wait queue.")
    max_wait_ms: Condition | None = Field(default=None, description="Longest of those sleeps.")
    free_reserve: Condition | None = Field(default=None, description="Frees into a reserve.")
    free_allocator: Condition | None = Field(default=None, description="Frees to free_fn.")
    completed: Condition | None = Field(default=None, description="bio requests completed.")
    io_errors: Condition | None = Field(default=None, description="bio requests whose data "
                                        "changed between submission and completion.")
    drops: Condition | None = Field(default=None, description="net_rx packets dropped (NULL).")
    oom_kills: Condition | None = Field(default=None, description="OOM killer kills.")
    kasan_reports: Condition | None = Field(default=None, description="KASAN reports.")
    bugs: Condition | None = Field(default=None, description="Oopses (BUG, bad access).")
    warnings: Condition | None = Field(default=None, description="WARN and might_sleep splats.")
