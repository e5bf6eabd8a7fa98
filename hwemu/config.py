"""Machine configuration: YAML loading, validation and resolved values.

A config describes the emulated machine (architecture, NUMA nodes, zones,
timer, log buffer) plus debug features.  :func:`load_config` reads it from a
YAML file, a dict or the packaged ``default.yaml``, validates it with the
pydantic models below and reports every problem at once as
``file:LINE: dotted.key: message`` lines in a :class:`ConfigError`.

The rest of hwemu should read resolved values (``highmem_enabled``,
``node_ranges``, ``lowmem_limit``...) from :class:`MachineConfig` rather than
re-deriving defaults from the raw optional fields.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "Config",
    "ConfigError",
    "Duration",
    "BioConfig",
    "CustomConfig",
    "DebugConfig",
    "ExpectConfig",
    "FailPageAllocConfig",
    "FailslabConfig",
    "FaultAttrConfig",
    "FaultInjectionConfig",
    "KasanConfig",
    "LatencyConfig",
    "MachineConfig",
    "MemoryHogConfig",
    "NetRxConfig",
    "NodeConfig",
    "PoolConfig",
    "Problem",
    "ResizeConfig",
    "RunConfig",
    "Size",
    "VmConfig",
    "config_reference",
    "dump_config",
    "format_duration",
    "format_size",
    "load_config",
    "parse_duration",
    "parse_size",
    "resolve",
]

K, M, G = 1 << 10, 1 << 20, 1 << 30

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
MAX_FILE_BYTES = 1 * M
MAX_YAML_NODES = 100_000
# Real configs nest about five levels; the cap also stops recursive aliases.
MAX_YAML_DEPTH = 64

LOCAL_DISTANCE = 10
REMOTE_DISTANCE = 20
# ACPI SLIT reserves 255 for "unreachable"; hwemu has no unreachable nodes.
MAX_DISTANCE = 254
NODE_ALIGN = 4 * M
VMALLOC_ALIGN = 2 * M
# x86_64 with 4-level paging: MAX_PHYSMEM_BITS = 46.
X86_64_PHYS_LIMIT = 1 << 46

# ---------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------

_SIZE_RE = re.compile(
    r"(?P<hex>0x[0-9a-f_]+)|(?P<num>[0-9_]+)\s*(?:(?P<unit>[kmgt])(?:i?b)?|b)?",
    re.IGNORECASE | re.ASCII,
)
_FRACTION_RE = re.compile(r"[0-9]*\.[0-9]+\s*(?:[kmgt](?:i?b)?|b)?", re.I | re.A)
_UNIT_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40}


def parse_size(value: object) -> int:
    """Return a byte count from an int >= 0 or a string like ``896M``/``0x1000``.

    Suffixes K, M, G, T (optionally followed by ``B`` or ``iB``) are binary and
    case-insensitive; a bare ``B`` means bytes.  Hex takes no suffix, because
    ``0x1B`` would be ambiguous.  Raises ``ValueError`` otherwise.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        if _FRACTION_RE.fullmatch(text):
            raise ValueError(
                f"invalid size '{value}': fractional sizes are not supported; "
                "use a smaller unit, e.g. 1536M rather than 1.5G"
            )
        match = _SIZE_RE.fullmatch(text)
        if match:
            try:
                if match["hex"]:
                    return int(match["hex"], 16)
                shift = _UNIT_SHIFT.get((match["unit"] or "").lower(), 0)
                return int(match["num"], 10) << shift
            except ValueError:
                pass  # misplaced underscores, e.g. "1__0"
    raise ValueError(
        f"invalid size '{value}': expected bytes as an integer or with a "
        "K/M/G/T suffix, e.g. 896M or 0x1000"
    )


def format_size(n: int) -> str:
    """Format a byte count with the largest binary unit that divides it exactly."""
    for suffix, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


# A byte count written as an int or a size string (see parse_size); the
# JSON schema says so too, since the config reference is generated from it.
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
]


def _node_aligned(n: int) -> int:
    """Node sizes and starts are whole 4M blocks."""
    if n % NODE_ALIGN:
        raise ValueError(f"{n:#x} is not a multiple of 4M (0x400000)")
    return n


def _nonzero(n: int) -> int:
    """Reject an empty node."""
    if n == 0:
        raise ValueError("must be greater than 0")
    return n


def _log_buf_range(n: int) -> int:
    """The printk buffer must be 4K..64M."""
    if not 4 * K <= n <= 64 * M:
        raise ValueError(f"{format_size(n)} is out of range; must be 4K..64M")
    return n


# Single-field checks are AfterValidators so they are reported even when
# another field of the same model is invalid.
NodeSize = Annotated[Size, AfterValidator(_nonzero), AfterValidator(_node_aligned)]
NodeStart = Annotated[Size, AfterValidator(_node_aligned)]
LogBufSize = Annotated[Size, AfterValidator(_log_buf_range)]

# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Problem:
    """One configuration problem, tied to a file, line and dotted key."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}"


class ConfigError(Exception):
    """Every problem found while loading a config; ``str()`` gives one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


Loc = tuple[str | int, ...]

# Error type used by the models' after-validators to hand several problems,
# each with its own sub-location, to the renderer in one pydantic error.
_CHECKS_ERROR = "hwemu_checks"


def _dotted(loc: Loc) -> str:
    """Render a location tuple as the dotted key users see."""
    return ".".join(map(str, loc)) if loc else "(top level)"


def _raise_checks(problems: list[tuple[Loc, str]]) -> None:
    """Raise all cross-field problems of one model as a single pydantic error."""
    if problems:
        summary = "; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems)
        raise PydanticCustomError(
            _CHECKS_ERROR, "{summary}", {"summary": summary, "problems": problems}
        )


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


class NodeConfig(BaseModel):
    """One NUMA node: a single contiguous range of physical memory."""

    model_config = _MODEL_CONFIG

    mem: NodeSize = Field(description="Memory size of the node; > 0, a multiple of 4M.")
    start: NodeStart | None = Field(
        default=None,
        description="Physical start address; a multiple of 4M. "
        "Default: the end of the previous node (0 for the first).",
    )


class KasanConfig(BaseModel):
    """Kernel Address Sanitizer emulation."""

    model_config = _MODEL_CONFIG

    enabled: bool = Field(default=False, description="Enable KASAN (CONFIG_KASAN, generic).")
    fault: Literal["report", "panic", "panic_on_write"] = Field(
        default="report",
        description="kasan.fault: after a report, go on ('report'), panic, or panic "
        "only for bad writes (invalid and double frees count as writes).",
    )
    multi_shot: bool = Field(
        default=False,
        description="kasan_multi_shot: print every report, not only the first.",
    )
    stacktrace: bool = Field(
        default=True,
        description="kasan.stacktrace: record allocation and free stacks of objects.",
    )
    quarantine_size: Size | None = Field(
        default=None,
        description="Bytes of freed slab objects held back from reuse; default: 1/32 "
        "of RAM, as the kernel's QUARANTINE_FRACTION.",
    )


class DebugConfig(BaseModel):
    """Kernel debug options fixed at build time."""

    model_config = _MODEL_CONFIG

    slub_debug_on: bool = Field(
        default=False,
        description="CONFIG_SLUB_DEBUG_ON: mempool poisons its reserved elements "
        "(POISON_FREE/POISON_END) and checks them when they leave the reserve; "
        "skipped when KASAN is enabled.",
    )


class VmConfig(BaseModel):
    """The page allocator's sysctls (/proc/sys/vm)."""

    model_config = _MODEL_CONFIG

    min_free_kbytes: int | None = Field(
        default=None, ge=128, le=1 << 22,
        description="vm.min_free_kbytes: the summed min watermark in KiB; default: "
        "computed from lowmem as the kernel does (sqrt(lowmem_kbytes * 16)).",
    )
    watermark_scale_factor: int = Field(
        default=10, ge=1, le=3000,
        description="vm.watermark_scale_factor: distance between watermarks, in "
        "1/10000 of a zone's memory.",
    )
    mem_profiling: bool = Field(
        default=False,
        description="vm.mem_profiling: memory allocation profiling, bytes and calls "
        "outstanding per allocation call site in /proc/allocinfo.",
    )


class FaultAttrConfig(BaseModel):
    """The knobs of one ``struct fault_attr`` (lib/fault-inject.c), as in debugfs."""

    model_config = _MODEL_CONFIG

    probability: int = Field(
        default=0, ge=0, le=100,
        description="Percent of eligible calls that fail, 0..100; 0 disables injection.",
    )
    interval: int = Field(
        default=1, ge=1,
        description="Fail only every Nth eligible call (use with probability 100); >= 1.",
    )
    # times and space are atomic_t in the kernel: a C int.
    times: int = Field(
        default=1, ge=-1, le=(1 << 31) - 1,
        description="How many failures to inject at most; -1 means no limit.",
    )
    space: Size = Field(
        default=0, le=(1 << 31) - 1,
        description="Bytes (or pages) of calls to let through before failing starts.",
    )
    verbose: int = Field(
        default=2, ge=0, le=2,
        description="Log on failure: 0 nothing, 1 the FAULT_INJECTION message, "
        "2 the message and a stack dump.",
    )
    task_filter: bool = Field(
        default=False,
        description="Fail only in tasks with make-it-fail set (never in interrupts).",
    )


class FailslabConfig(FaultAttrConfig):
    """failslab (mm/failslab.c): fault injection into slab allocations."""

    ignore_gfp_wait: bool = Field(
        default=True,
        description="Do not fail allocations that may sleep (__GFP_DIRECT_RECLAIM).",
    )
    cache_filter: bool = Field(
        default=False,
        description="Fail only caches marked failslab (SLAB_FAILSLAB).",
    )


class FailPageAllocConfig(FaultAttrConfig):
    """fail_page_alloc (mm/fail_page_alloc.c): fault injection into the page allocator."""

    ignore_gfp_wait: bool = Field(
        default=True,
        description="Do not fail allocations that may sleep (__GFP_DIRECT_RECLAIM).",
    )
    ignore_gfp_highmem: bool = Field(
        default=True, description="Do not fail __GFP_HIGHMEM allocations."
    )
    min_order: int = Field(
        default=1, ge=0, le=10,
        description="Fail only allocations of at least this order, 0..10.",
    )


class FaultInjectionConfig(BaseModel):
    """Fault injection (CONFIG_FAULT_INJECTION): the debugfs knobs at boot."""

    model_config = _MODEL_CONFIG

    seed: int = Field(
        default=0,
        description="Seed of the random numbers behind probability; same seed, same failures.",
    )
    failslab: FailslabConfig = Field(
        default_factory=FailslabConfig, description="failslab: slab allocations."
    )
    fail_page_alloc: FailPageAllocConfig = Field(
        default_factory=FailPageAllocConfig, description="fail_page_alloc: page allocations."
    )
    fail_mempool_alloc: FaultAttrConfig = Field(
        default_factory=FaultAttrConfig,
        description="fail_mempool_alloc: mempool_alloc's allocator attempt.",
    )
    fail_mempool_alloc_bulk: FaultAttrConfig = Field(
        default_factory=FaultAttrConfig,
        description="fail_mempool_alloc_bulk: mempool_alloc_bulk's allocator attempt.",
    )


class MachineConfig(BaseModel):
    """The emulated machine: architecture, memory layout, CPUs and timer."""

    model_config = _MODEL_CONFIG

    name: str = Field(
        default="hwemu",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Machine name; letters, digits, '_', '.' and '-'.",
    )
    arch: Literal["x86_64", "i386"] = Field(
        default="x86_64", description="Architecture: x86_64 or i386 (32-bit)."
    )
    highmem: bool | None = Field(
        default=None,
        description="CONFIG_HIGHMEM: memory above the lowmem limit is highmem. "
        "Default: true on i386; x86_64 has no highmem.",
    )
    pae: bool = Field(
        default=False,
        description="CONFIG_X86_PAE: 3-level page tables, up to 64G of RAM (i386 only).",
    )
    cpus: int = Field(default=4, ge=1, le=256, description="Number of CPUs, 1..256.")
    hz: Literal[100, 250, 300, 1000] = Field(
        default=250, description="CONFIG_HZ: timer ticks per second."
    )
    time_scale: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="Emulated time runs this many times faster than wall-clock time.",
    )
    zone_dma: bool = Field(
        default=True, description="CONFIG_ZONE_DMA: ZONE_DMA covers the first 16M."
    )
    zone_dma32: bool | None = Field(
        default=None,
        description="CONFIG_ZONE_DMA32: ZONE_DMA32 covers memory below 4G. "
        "Default: true on x86_64; not available on i386.",
    )
    vmalloc: Size | None = Field(
        default=None,
        description="Size of the vmalloc area; a multiple of 2M, at least 8M, "
        "at most 512M on i386. Default: 128M on i386 (__VMALLOC_RESERVE), 1G on x86_64.",
    )
    movablecore: Size = Field(
        default=0,
        description="ZONE_MOVABLE size, split evenly across nodes and taken from the "
        "top of each; a multiple of 4M x the number of nodes.",
    )
    nodes: tuple[NodeConfig, ...] = Field(
        default=(NodeConfig(mem=512 * M),),
        description="NUMA nodes (1..64), in increasing address order.",
    )
    distance: tuple[tuple[int, ...], ...] | None = Field(
        default=None,
        description="NUMA distance matrix (ACPI SLIT), one row per node: 10 on the "
        "diagonal, 11..254 elsewhere. Default: 10 local, 20 remote.",
    )
    console: bool = Field(default=False, description="Echo kernel log lines to stderr.")
    log_buf_len: LogBufSize = Field(
        default=1 * M, description="printk ring buffer size, 4K..64M."
    )

    # -- resolved values ----------------------------------------------------

    @property
    def highmem_enabled(self) -> bool:
        """Whether CONFIG_HIGHMEM is on (never on x86_64)."""
        return self.highmem if self.highmem is not None else self.arch == "i386"

    @property
    def dma32_enabled(self) -> bool:
        """Whether CONFIG_ZONE_DMA32 is on (never on i386)."""
        return self.zone_dma32 if self.zone_dma32 is not None else self.arch == "x86_64"

    @property
    def vmalloc_size(self) -> int:
        """Size of the vmalloc area in bytes."""
        if self.vmalloc is not None:
            return self.vmalloc
        return 128 * M if self.arch == "i386" else 1 * G

    @property
    def lowmem_limit(self) -> int:
        """Highest directly mapped physical address (i386 MAXMEM; x86_64 all RAM)."""
        # i386 3G/1G split: the kernel's 1G of virtual space holds the direct
        # map plus the vmalloc area, so the direct map gets what is left.
        return 1 * G - self.vmalloc_size if self.arch == "i386" else self.ram_end

    @property
    def last_pkmap(self) -> int:
        """Number of kmap (PKMAP) slots: one page table's worth, 0 without highmem."""
        if not self.highmem_enabled:
            return 0
        return 512 if self.pae else 1024

    @property
    def node_ranges(self) -> tuple[tuple[int, int], ...]:
        """Physical ``(start, end)`` byte range of each node, starts resolved."""
        ranges = []
        end = 0
        for node in self.nodes:
            start = end if node.start is None else node.start
            end = start + node.mem
            ranges.append((start, end))
        return tuple(ranges)

    @property
    def ram_end(self) -> int:
        """Physical end of RAM (end of the last node)."""
        return self.node_ranges[-1][1]

    @property
    def distances(self) -> tuple[tuple[int, ...], ...]:
        """Node distance matrix, defaulted if not given."""
        if self.distance is not None:
            return self.distance
        n = len(self.nodes)
        return tuple(
            tuple(LOCAL_DISTANCE if i == j else REMOTE_DISTANCE for j in range(n))
            for i in range(n)
        )

    @property
    def movable_per_node(self) -> int:
        """Bytes of ZONE_MOVABLE at the top of each node."""
        return self.movablecore // len(self.nodes)

    # -- cross-field validation ---------------------------------------------

    @model_validator(mode="after")
    def _check(self) -> MachineConfig:
        if not self.nodes:  # every other check needs at least one node
            _raise_checks([(("nodes",), "at least one node is required")])
        _raise_checks(
            [
                *self._check_arch(),
                *self._check_sizes(),
                *self._check_nodes(),
                *self._check_distance(),
                *self._check_ram_end(),
            ]
        )
        return self

    def _check_arch(self) -> typing.Iterator[tuple[Loc, str]]:
        """Options that exist on only one architecture."""
        if self.arch == "x86_64":
            if self.highmem:
                yield ("highmem",), (
                    "CONFIG_HIGHMEM is 32-bit only: x86_64 maps all RAM directly; "
                    "use arch: i386"
                )
            if self.pae:
                yield ("pae",), (
                    "CONFIG_X86_PAE is 32-bit only: x86_64 always uses 64-bit page "
                    "tables; use arch: i386"
                )
        elif self.zone_dma32:
            yield ("zone_dma32",), (
                "CONFIG_ZONE_DMA32 is x86_64 only: on i386 all lowmem is below 4G; "
                "use arch: x86_64"
            )

    def _check_sizes(self) -> typing.Iterator[tuple[Loc, str]]:
        """Node count, vmalloc and movablecore bounds."""
        if len(self.nodes) > 64:
            yield ("nodes",), f"at most 64 nodes are supported, got {len(self.nodes)}"
        if self.vmalloc is not None:
            shown = format_size(self.vmalloc)
            if self.vmalloc % VMALLOC_ALIGN:
                yield ("vmalloc",), f"{shown} is not a multiple of 2M"
            if self.vmalloc < 8 * M:
                yield ("vmalloc",), f"{shown} is too small; the minimum is 8M"
            if self.arch == "i386" and self.vmalloc > 512 * M:
                yield ("vmalloc",), (
                    f"{shown} is too large for i386; the maximum is 512M "
                    "(it shares the kernel's 1G of address space with lowmem)"
                )
        n = len(self.nodes)
        if self.movablecore % (NODE_ALIGN * n):
            yield ("movablecore",), (
                f"{format_size(self.movablecore)} is not a multiple of "
                f"{format_size(NODE_ALIGN * n)} (4M x {n} nodes)"
            )
        starved = [
            f"node {i} ({format_size(node.mem)})"
            for i, node in enumerate(self.nodes)
            if self.movable_per_node >= node.mem
        ]
        if self.movablecore and starved:
            yield ("movablecore",), (
                f"{format_size(self.movable_per_node)} per node leaves no "
                f"non-movable memory on {', '.join(starved)}"
            )

    def _check_nodes(self) -> typing.Iterator[tuple[Loc, str]]:
        """Nodes must be in increasing address order and must not overlap."""
        ranges = self.node_ranges
        for i in range(1, len(ranges)):
            (start, end), (prev_start, prev_end) = ranges[i], ranges[i - 1]
            if start >= prev_end:
                continue
            this, prev = _show_range(i, start, end), _show_range(i - 1, prev_start, prev_end)
            if end > prev_start:
                yield ("nodes", i, "start"), f"{this} overlaps {prev}"
            else:
                yield ("nodes", i, "start"), (
                    f"{this} is below {prev}; list nodes in increasing address order"
                )

    def _check_distance(self) -> typing.Iterator[tuple[Loc, str]]:
        """The SLIT matrix must be n x n with valid local and remote distances."""
        if self.distance is None:
            return
        n = len(self.nodes)
        if len(self.distance) != n:
            yield ("distance",), (
                f"expected {n} rows (one per node), got {len(self.distance)}"
            )
        for i, row in enumerate(self.distance[:n]):
            if len(row) != n:
                yield ("distance", i), f"expected {n} entries (one per node), got {len(row)}"
                continue
            for j, d in enumerate(row):
                if i == j and d != LOCAL_DISTANCE:
                    yield ("distance", i, j), (
                        f"distance from node {i} to itself must be 10 (LOCAL_DISTANCE), got {d}"
                    )
                elif i != j and not LOCAL_DISTANCE < d <= MAX_DISTANCE:
                    note = " (255 means unreachable in ACPI SLIT)" if d == 255 else ""
                    yield ("distance", i, j), (
                        f"distance from node {i} to node {j} must be 11..254, got {d}{note}"
                    )

    def _check_ram_end(self) -> typing.Iterator[tuple[Loc, str]]:
        """Physical address limits of the architecture and of lowmem-only i386."""
        top = max(range(len(self.nodes)), key=lambda i: self.node_ranges[i][1])
        end = self.node_ranges[top][1]
        shown = f"RAM ends at {end:#x} ({format_size(end)})"
        if self.arch == "x86_64":
            if end > X86_64_PHYS_LIMIT:
                yield ("nodes", top), (
                    f"{shown}, above the 64T that x86_64 can address (MAX_PHYSMEM_BITS 46)"
                )
            return
        if not self.pae and end > 4 * G:
            yield ("nodes", top), (
                f"{shown}, above the 4G that i386 addresses without PAE; "
                "set pae: true or use less memory"
            )
        elif end > 64 * G:
            yield ("nodes", top), f"{shown}, above the 64G that i386 PAE addresses"
        # An oversized vmalloc is reported on its own; lowmem would be meaningless.
        if self.highmem is False and self.vmalloc_size <= 512 * M and end > self.lowmem_limit:
            yield ("highmem",), (
                f"{shown}, above the {format_size(self.lowmem_limit)} lowmem limit, "
                "and without highmem only lowmem is usable; set highmem: true"
            )


def _show_range(index: int, start: int, end: int) -> str:
    """Describe a node's range the way the kernel logs it."""
    return f"node {index} [{start:#x}-{end:#x})"


# ---------------------------------------------------------------------------
# Runs: pools, workloads and expectations (hwemu run)
# ---------------------------------------------------------------------------

_DURATION_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>ns|us|ms|s)?",
                          re.ASCII)
_DURATION_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_duration(value: object) -> int:
    """Nanoseconds from a number of seconds or a string like ``10s``, ``500ms``, ``50us``.

    Raises ``ValueError`` otherwise.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            0 <= value < float("inf"):
        return round(value * 1_000_000_000)
    match = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid duration '{value}': expected seconds, or a number "
                         "with ns, us, ms or s, e.g. 10s or 500us")
    return round(float(match["num"]) * _DURATION_NS[match["unit"] or "s"])


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
    from .gfp import parse_gfp   # gfp.py sits above config in the import order
    parse_gfp(value)
    return value


def _callable_name(value: str) -> str:
    """``module:function``: checked for shape here, imported when the run starts."""
    module, _, function = value.partition(":")
    if not (module and function.isidentifier()
            and all(part.isidentifier() for part in module.split("."))):
        raise ValueError(f"'{value}' is not module:function, e.g. mydriver:stress")
    return value


_CONDITION_RE = re.compile(r"(?P<op>==|!=|<=|>=|<|>)?\s*(?P<num>[0-9]+(?:\.[0-9]+)?)",
                           re.ASCII)


def _condition(value: object) -> str:
    """An expectation: a number (must equal it) or ``<op> number`` with ``==``, ``!=``,
    ``<``, ``<=``, ``>``, ``>=``; normalised to ``'>= 1'``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    match = _CONDITION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid expectation {value!r}: expected a number or "
                         "'<op> number' with ==, !=, <, <=, >, >=, e.g. '>= 1'")
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
    order: int = Field(default=0, ge=0, le=10, description="Page order for page pools.")
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


class ResizeConfig(BaseModel):
    """A task that resizes a pool during the run (mempool_resize)."""

    model_config = _MODEL_CONFIG

    pool: str = Field(description="The pool to resize (run.pools[].name).")
    sizes: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field(default=(4, 64), min_length=1,
                                   description="min_nr values to cycle through, each >= 1.")
    interval: Duration = Field(default=100_000_000, description="Time between resizes.")


class CustomConfig(BaseModel):
    """A user's workload: ``function(run)`` as a task; ``run`` has ``.pools``, ``.rng``,
    ``.args``, ``.stopping()`` and ``.count(name)`` (see hwemu/runs)."""

    model_config = _MODEL_CONFIG

    function: CallableName = Field(
        description="module:function, imported from the config's directory or sys.path.")
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
        problems = [(("pools", i, "name"), f"duplicate pool name '{name}'")
                    for i, name in enumerate(names) if name in names[:i]]
        for key in ("bio", "net_rx", "resize"):
            workload = getattr(self, key)
            if workload is not None and workload.pool not in names:
                known = ", ".join(names) or "none defined"
                problems.append(((key, "pool"), f"no pool named '{workload.pool}' in "
                                                f"run.pools ({known})"))
        _raise_checks(problems)
        return self


class ExpectConfig(BaseModel):
    """What must hold at the end of a run for ``hwemu run`` to exit 0. Each is a number
    (equal to it) or a comparison such as ``'>= 1'``; totals over every pool."""

    model_config = _MODEL_CONFIG

    alloc_allocator: Condition | None = Field(None, description="Elements from alloc_fn.")
    alloc_reserve: Condition | None = Field(None, description="Elements from a reserve.")
    null_returns: Condition | None = Field(None, description="mempool_alloc() NULLs.")
    waits: Condition | None = Field(None, description="Sleeps on a pool's wait queue.")
    max_wait_ms: Condition | None = Field(None, description="Longest of those sleeps.")
    free_reserve: Condition | None = Field(None, description="Frees into a reserve.")
    free_allocator: Condition | None = Field(None, description="Frees to free_fn.")
    completed: Condition | None = Field(None, description="bio requests completed.")
    io_errors: Condition | None = Field(None, description="bio requests whose data "
                                        "changed between submission and completion.")
    drops: Condition | None = Field(None, description="net_rx packets dropped (NULL).")
    oom_kills: Condition | None = Field(None, description="OOM killer kills.")
    kasan_reports: Condition | None = Field(None, description="KASAN reports.")
    bugs: Condition | None = Field(None, description="Oopses (BUG, bad access).")
    warnings: Condition | None = Field(None, description="WARN and might_sleep splats.")


class Config(BaseModel):
    """A complete hwemu configuration."""

    model_config = _MODEL_CONFIG

    machine: MachineConfig = Field(
        default_factory=MachineConfig, description="The emulated machine."
    )
    kasan: KasanConfig = Field(
        default_factory=KasanConfig, description="KASAN (address sanitizer) emulation."
    )
    fault_injection: FaultInjectionConfig = Field(
        default_factory=FaultInjectionConfig,
        description="Fault injection: failslab, fail_page_alloc, fail_mempool_alloc.",
    )
    vm: VmConfig = Field(default_factory=VmConfig, description="Page allocator sysctls.")
    debug: DebugConfig = Field(default_factory=DebugConfig,
                               description="Kernel debug options (Kconfig).")
    run: RunConfig | None = Field(default=None, description="The scenario `hwemu run` "
                                  "runs; without it, `hwemu run` only brings the machine up.")
    expect: ExpectConfig = Field(default_factory=ExpectConfig,
                                 description="Conditions a run must meet to exit 0.")

    @model_validator(mode="after")
    def _check(self) -> Config:
        """A run's tasks need CPUs of their own (CPU 0 watches the run); its pools'
        nodes must exist."""
        if self.run is None:
            return self
        problems = []
        if self.run.tasks() + 1 > self.machine.cpus:
            problems.append((("run",), f"the workloads need {self.run.tasks()} CPUs "
                                       f"besides CPU 0, the machine has "
                                       f"{self.machine.cpus}; raise machine.cpus"))
        nodes = len(self.machine.nodes)
        problems += [(("run", "pools", i, "node"), f"no node {p.node}: the machine has "
                                                   f"{nodes} (0..{nodes - 1}, or -1 for any)")
                     for i, p in enumerate(self.run.pools) if p.node >= nodes]
        _raise_checks(problems)
        return self


# ---------------------------------------------------------------------------
# Where each key came from
# ---------------------------------------------------------------------------


class _Origins:
    """Maps key paths to the (file, line) they were written at."""

    def __init__(self, file: str, lines: dict[Loc, int] | None = None):
        self.file = file
        self.where: dict[Loc, tuple[str, int | None]] = {
            loc: (file, line) for loc, line in (lines or {}).items()
        }

    def replace(self, loc: Loc, file: str) -> None:
        """Record that ``loc`` and everything under it now come from ``file``."""
        for known in [k for k in self.where if k[: len(loc)] == loc]:
            del self.where[known]
        self.where[loc] = (file, None)

    def problem(self, loc: Loc, message: str) -> Problem:
        """Build a Problem located at the longest known prefix of ``loc``."""
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.where:
                file, line = self.where[loc[:n]]
                return Problem(file, line, _dotted(loc), message)
        return Problem(self.file, None, _dotted(loc), message)


# ---------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------


class _Abort(Exception):
    """A problem that stops reading the document."""

    def __init__(self, problem: Problem):
        self.problem = problem


# Plain collections only: a tag such as !!python/object on a mapping would
# otherwise be silently dropped.
_COLLECTION_TAGS = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}
_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}


def _type_name(value: object) -> str:
    """Name a Python value's YAML type for messages."""
    return _TYPE_NAMES.get(type(value), f"{type(value).__name__} {value!r}")


class _Converter:
    """Turns a composed YAML node graph into plain data, recording key lines."""

    def __init__(self, loader: yaml.SafeLoader, file: str):
        self.loader = loader
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self.count = 0

    def convert(self, node: yaml.Node, path: Loc) -> Any:
        """Convert ``node`` found at ``path``; aliases are expanded and counted."""
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_YAML_NODES:  # no useful line: aliases share nodes
            self._abort(None, f"document has more than {MAX_YAML_NODES} nodes")
        if len(path) > MAX_YAML_DEPTH:
            self._abort(line, "document is nested too deeply")
        if _COLLECTION_TAGS.get(type(node), node.tag) != node.tag:
            self._abort(line, f"unsupported tag '{node.tag}'")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[path + (i,)] = item.start_mark.line + 1
                items.append(self.convert(item, path + (i,)))
            return items
        try:
            return self.loader.construct_object(node)
        except ValueError as exc:  # a YAML-valid but impossible date, e.g. 2001-13-45
            self._abort(line, str(exc))

    def _abort(self, line: int | None, message: str) -> typing.NoReturn:
        """Stop reading: the document cannot be used."""
        raise _Abort(Problem(self.file, line, "(yaml)", message))

    def _key_problem(self, key_node: yaml.Node, path: Loc, message: str) -> None:
        """Record a problem with a mapping key; reading continues."""
        line = key_node.start_mark.line + 1
        self.problems.append(Problem(self.file, line, _dotted(path), message))

    def _mapping(self, node: yaml.MappingNode, path: Loc) -> dict[str, Any]:
        """Convert a mapping, reporting non-string and duplicate keys."""
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                got = "a mapping" if isinstance(key_node, yaml.MappingNode) else "a list"
                self._key_problem(key_node, path, f"mapping keys must be strings, got {got}")
                continue
            key = self.convert(key_node, path)
            if not isinstance(key, str):
                got = _type_name(key)
                self._key_problem(key_node, path, f"mapping keys must be strings, got {got}")
            elif path + (key,) in self.lines:
                first = self.lines[path + (key,)]
                self._key_problem(
                    key_node, path + (key,), f"duplicate key '{key}' (first at line {first})"
                )
            else:
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                result[key] = self.convert(value_node, path + (key,))
        return result


def _yaml_error(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    """Turn a PyYAML exception into a Problem with its line."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        message = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        return Problem(file, line, "(yaml)", message)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or ""
        if exc.context:  # e.g. "while parsing a flow sequence"
            message = f"{exc.context}, {message}"
        return Problem(file, mark.line + 1 if mark else None, "(yaml)", message)
    return Problem(file, None, "(yaml)", str(exc))


def _parse_yaml(
    file: str, text: str
) -> tuple[dict[str, Any], dict[Loc, int], list[Problem]]:
    """Parse YAML text into a top-level dict, key lines and structural problems."""

    def fail(line: int | None, key: str, message: str) -> ConfigError:
        return ConfigError([Problem(file, line, key, message)])

    try:
        loader = yaml.SafeLoader(text)  # already checks for forbidden characters
        try:
            root = loader.get_single_node()
            converter = _Converter(loader, file)
            data = None if root is None else converter.convert(root, ())
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error(file, text, exc)]) from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise fail(None, "(yaml)", "document is nested too deeply") from None
    except _Abort as abort:
        raise ConfigError([abort.problem]) from None
    if not isinstance(data, dict):
        got = "an empty document" if root is None else _type_name(data)
        raise fail(None, "(file)", f"expected a mapping at top level, got {got}")
    return data, converter.lines, converter.problems


def _read_text(file: str) -> str:
    """Read a config file as UTF-8, raising ConfigError for file-level problems."""

    def fail(message: str) -> ConfigError:
        return ConfigError([Problem(file, None, "(file)", message)])

    try:
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            # Bounded read: a FIFO or device may have no meaningful st_size.
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("is a directory, not a config file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail((exc.strerror or str(exc)).lower()) from None
    if len(data) > MAX_FILE_BYTES:
        raise fail(f"config file is {max(size, len(data))} bytes; configs are limited to 1 MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(f"not valid UTF-8: byte {data[exc.start]:#04x} at line {line}") from None


# ---------------------------------------------------------------------------
# Overrides and pydantic errors
# ---------------------------------------------------------------------------

OVERRIDE_FILE = "--set"


def _apply_override(data: dict[str, Any], key: str, value: Any) -> Loc:
    """Set dotted ``key`` in ``data`` to ``value``; return its location.

    Missing mappings on the way are created; list items must already exist.
    Raises ValueError with a message if the key cannot be set.
    """
    parts = key.split(".")
    if not all(parts):
        raise ValueError("empty key component")
    node: Any = data
    loc: Loc = ()
    for i, part in enumerate(parts):
        step: str | int = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"no item {part} in {_dotted(loc)} (it has {len(node)} items)")
            step = int(part)
        elif not isinstance(node, dict):
            raise ValueError(f"{_dotted(loc)} is {_type_name(node)}, not a mapping or list")
        loc += (step,)
        if i == len(parts) - 1:
            node[step] = value
        else:
            node = node.setdefault(step, {}) if isinstance(node, dict) else node[step]
    return loc


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """Find the model class that validates the mapping at ``loc``."""
    model: type[BaseModel] | None = Config
    for part in loc:
        if isinstance(part, int):
            continue  # list index: the element type is already the target
        field = model.model_fields.get(part) if model else None
        model = _inner_model(field.annotation) if field else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside an annotation such as ``tuple[NodeConfig, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _inner_model(arg):
            return found
    return None


# pydantic messages that mention Python types a YAML author never wrote.
_REWORDED = {
    "tuple_type": "Input should be a list",
    "model_type": "Input should be a mapping",
    "model_attributes_type": "Input should be a mapping",
}


def _message(error: dict[str, Any]) -> str:
    """A short human message for one pydantic error."""
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        model = _model_at(tuple(error["loc"][:-1]))
        names = list(model.model_fields) if model else []
        close = difflib.get_close_matches(key, names, n=1)
        if close:
            return f"unknown key '{key}'; did you mean '{close[0]}'?"
        return f"unknown key '{key}'; valid keys: {', '.join(names)}"
    if error["type"] in _REWORDED:
        return _REWORDED[error["type"]]
    return error["msg"].removeprefix("Value error, ")


def _validation_problems(exc: ValidationError, origins: _Origins) -> list[Problem]:
    """Render a pydantic ValidationError as located Problems."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == _CHECKS_ERROR:
            for sub, message in error["ctx"]["problems"]:
                problems.append(origins.problem(loc + tuple(sub), message))
        else:
            problems.append(origins.problem(loc, _message(error)))
    return problems


def _hidden_problems(data: dict[str, Any], exc: ValidationError,
                     origins: _Origins) -> list[Problem]:
    """Cross-field problems that field errors kept from running.

    The model checks run only once every field parsed, so an unknown key would hide
    an overlap of nodes. Drop the keys that failed and validate again, keeping only
    the cross-field problems of that second pass.
    """
    data = copy.deepcopy(data)
    pruned = False
    for error in exc.errors(include_url=False):
        *parents, last = error["loc"] or ("",)
        node: Any = data
        for step in parents:
            node = node[step] if isinstance(node, (dict, list)) else None
        if error["type"] != _CHECKS_ERROR and isinstance(node, dict) and last in node:
            del node[last]
            pruned = True
    if not pruned:
        return []
    try:
        Config.model_validate(data)
    except ValidationError as second:
        return [origins.problem(tuple(e["loc"]) + tuple(sub), message)
                for e in second.errors(include_url=False) if e["type"] == _CHECKS_ERROR
                for sub, message in e["ctx"]["problems"]]
    return []


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def _read_source(
    source: str | os.PathLike[str] | dict[str, Any] | None,
) -> tuple[dict[str, Any], _Origins, list[Problem]]:
    """Return (data, origins, problems) for a path, dict or the default config."""
    if isinstance(source, dict):
        return copy.deepcopy(source), _Origins("<dict>"), []
    if source is None:
        source = DEFAULT_CONFIG
    if not isinstance(source, (str, os.PathLike)):
        kind = type(source).__name__
        raise TypeError(f"config source must be a path, dict or None, not {kind}")
    file = os.fspath(source)
    data, lines, problems = _parse_yaml(file, _read_text(file))
    return data, _Origins(file, lines), problems


def load_config(
    source: str | os.PathLike[str] | dict[str, Any] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Load and validate a config, raising ConfigError listing every problem.

    ``source`` is a YAML file path, a dict in the same schema, or None for the
    packaged default.  ``overrides`` maps dotted keys (``machine.cpus``,
    ``machine.nodes.0.mem``) to values applied on top; problems they cause are
    reported against the file ``--set``.
    """
    data, origins, problems = _read_source(source)
    for key, value in (overrides or {}).items():
        try:
            origins.replace(_apply_override(data, str(key), value), OVERRIDE_FILE)
        except ValueError as exc:
            problems.append(Problem(OVERRIDE_FILE, None, str(key), str(exc)))
    config = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, origins))
        problems.extend(p for p in _hidden_problems(data, exc, origins) if p not in problems)
    if problems:
        # Lines in file order; problems without a line (e.g. --set) last.
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems)
    return config


# ---------------------------------------------------------------------------
# The resolved config, as YAML
# ---------------------------------------------------------------------------


def resolve(config: Config) -> Config:
    """``config`` with the machine's derived defaults written out (highmem, DMA32,
    vmalloc size, node starts, distances); other ``None`` keys stay ``auto``."""
    m = config.machine
    nodes = tuple(NodeConfig(mem=node.mem, start=start)
                  for node, (start, _) in zip(m.nodes, m.node_ranges))
    machine = m.model_copy(update={
        "highmem": m.highmem_enabled, "zone_dma32": m.dma32_enabled,
        "vmalloc": m.vmalloc_size, "nodes": nodes, "distance": m.distances})
    return config.model_copy(update={"machine": machine})


def _plain(value: Any, field) -> Any:
    """A model value as plain YAML data; sizes as ``512M`` strings."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {k: _plain(getattr(value, k), fields[k]) for k in fields}
    if isinstance(value, tuple):
        return [_plain(v, field) for v in value]
    kind = _yaml_type(field.annotation, field.metadata) if field is not None else None
    if isinstance(value, int) and not isinstance(value, bool) and kind == "size":
        text = format_size(value)
        return value if text.isdigit() else text   # 0 and odd sizes stay ints
    if isinstance(value, int) and kind == "duration":
        return format_duration(value)
    return value


class _Dumper(yaml.SafeDumper):
    """Block style, but a list of scalars on one line: ``distance: [[10, 20], [20, 10]]``
    reads as a matrix."""

    def represent_list(self, data):
        flat = all(not isinstance(v, dict) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _Dumper.represent_list)


def dump_config(config: Config) -> str:
    """The YAML text of ``config`` (every key; load_config() reads it back equal)."""
    return yaml.dump(_plain(config, None), Dumper=_Dumper, sort_keys=False)


# ---------------------------------------------------------------------------
# The config reference (docs/config.md), generated from the models above
# ---------------------------------------------------------------------------


def _yaml_type(annotation: Any, metadata: list) -> str:
    """How a YAML author writes a field's value: ``size``, ``int``, ``a | b``..."""
    funcs = {getattr(m, "func", None) for m in metadata}
    if parse_size in funcs:
        return "size"
    if parse_duration in funcs:
        return "duration"
    if _condition in funcs:
        return "condition"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(str(a) for a in args)
    if origin is tuple:
        return f"list of {_yaml_type(args[0], [])}"
    if origin is Annotated:
        return _yaml_type(args[0], list(annotation.__metadata__))
    if origin is dict:
        return "mapping"
    if args:   # X | None: the default says what None means
        return _yaml_type(args[0], metadata)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {bool: "bool", int: "int", float: "float", str: "string"}[annotation]


def _yaml_default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return ""
    if field.default is None:   # what an unset optional key means
        kind = _yaml_type(field.annotation, field.metadata)
        return {"mapping": "off", "condition": "unchecked"}.get(kind, "auto")
    return _yaml_value(field.default, field)


def _yaml_value(value: Any, field) -> str:
    """``value`` of ``field`` as YAML flow text: ``512M``, ``[{mem: 512M}]``, ``auto``."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml_value(v, field) for v in value) + "]"
    if isinstance(value, BaseModel):   # the keys its author set: {mem: 512M}
        fields = type(value).model_fields
        return "{" + ", ".join(f"{k}: {_yaml_value(getattr(value, k), fields[k])}"
                               for k in sorted(value.model_fields_set)) + "}"
    return str(_plain(value, field))


def _reference_rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + name
        inner = _inner_model(field.annotation)
        kind = _yaml_type(field.annotation, field.metadata)
        text = (field.description or "").replace("|", r"\|")   # a table cell
        rows.append((key, kind, _yaml_default(field), text))
        if inner is not None:
            rows += _reference_rows(inner, key + ("[]." if kind.startswith("list") else "."))
    return rows


def config_reference() -> str:
    """The config reference in Markdown: every key with its type, default and meaning,
    read off the models (``docs/config.md`` is this text; a test keeps it so)."""
    lines = ["# Config reference", "",
             "Generated from the pydantic models in `hwemu/config.py` by "
             "`make docs` (`hwemu config-reference`); do not edit by hand. Sizes are "
             "bytes as an integer or with a K/M/G/T suffix (`896M`, `0x1000`); `auto` "
             "means the description says how the default is derived.", ""]
    for name, field in Config.model_fields.items():
        lines += [f"## `{name}`", "", field.description or "", "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text
                  in _reference_rows(_inner_model(field.annotation), name + ".")]
        lines.append("")
    return "\n".join(lines)
