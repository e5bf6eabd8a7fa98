"""The machine schema: the emulated machine and its boot-time options.

:class:`Config` is a whole config: the machine (architecture, NUMA nodes, zones,
timer, log buffer), KASAN, fault injection, the page allocator's sysctls, debug
options, and the run with its expectations (:mod:`hwemu.config.run`).
:class:`MachineConfig` derives the values the config leaves to the kernel
(``highmem_enabled``, ``node_ranges``, ``lowmem_limit``...) and checks the fields
against each other.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, create_model, model_validator

from ..fault_attr import FAIL_PAGE_ALLOC_KNOBS, FAILSLAB_KNOBS, FAULT_ATTR_KNOBS, Knob
from ..mmzone import LOCAL_DISTANCE, MAX_NUMNODES, REMOTE_DISTANCE
from ..page_types import PAGE_SIZE
from .base import _MODEL_CONFIG, G, K, Loc, M, Size, _raise_checks, format_size
from .limits import (ELF_ET_DYN_BASE, MAX_ADDRESS_SPACE, MAX_NAME_LEN, MEMFD_NAME_PREFIX,
                     MFD_NAME_MAX_LEN, RESERVE_HINT, address_space, max_ram)
from ..strategy import STRATEGIES
from .run import Duration, ExpectConfig, RunConfig

# ACPI SLIT reserves 255 for "unreachable"; hwemu has no unreachable nodes.
MAX_DISTANCE = 254
NODE_ALIGN = 4 * M
VMALLOC_ALIGN = 2 * M
# x86_64 with 4-level paging: MAX_PHYSMEM_BITS = 46.
X86_64_PHYS_LIMIT = 1 << 46


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


def _name_length(name: str) -> str:
    """A machine name fits the name of its RAM memfd."""
    if len(name) > MAX_NAME_LEN:
        raise ValueError(
            f"is {len(name)} characters long; at most {MAX_NAME_LEN}: the machine's RAM "
            f"is a memfd named '{MEMFD_NAME_PREFIX}<name>', and Linux memfd names are at "
            f"most {MFD_NAME_MAX_LEN} bytes (MFD_NAME_MAX_LEN)")
    return name


# Single-field checks are AfterValidators so they are reported even when
# another field of the same model is invalid.
NodeSize = Annotated[Size, AfterValidator(_nonzero), AfterValidator(_node_aligned)]
NodeStart = Annotated[Size, AfterValidator(_node_aligned)]
LogBufSize = Annotated[Size, AfterValidator(_log_buf_range)]
MachineName = Annotated[str, AfterValidator(_name_length)]


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


class MempoolConfig(BaseModel):
    """Which mempool implementation runs."""

    model_config = _MODEL_CONFIG

    source: str | None = Field(
        default=None,
        description="A kernel tree's mm/mempool.c (6.19 or 7.0, relative to the config's "
        "directory) to compile against hwemu's headers and run instead of the Python "
        "port (hwemu.kbuild.use_mempool); null: the port.",
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


def _knob_field(knob: Knob) -> tuple[Any, Any]:
    """The config field of one knob of the fault_attr table: type, default, range and
    description all come from the table."""
    if knob.ctype == "bool":
        return bool, Field(default=knob.default, description=knob.description)
    return (Size if knob.size else int), Field(
        default=knob.default, ge=knob.lo, le=knob.hi, description=knob.description)


def _fault_attr_model(name: str, doc: str, knobs: tuple[Knob, ...],
                      base: type[BaseModel] | None = None) -> type[BaseModel]:
    """A model with the knobs the config sets, those of ``base`` left to ``base``."""
    inherited = base.model_fields if base is not None else {}
    fields = {k.attr: _knob_field(k) for k in knobs
              if k.in_config and k.attr not in inherited}
    settings = {"__base__": base} if base is not None else {"__config__": _MODEL_CONFIG}
    return create_model(name, __doc__=doc, __module__=__name__,  # type: ignore[call-overload]
                        **settings, **fields)


FaultAttrConfig = _fault_attr_model(
    "FaultAttrConfig",
    "The knobs of one ``struct fault_attr`` (lib/fault-inject.c), as in debugfs.",
    FAULT_ATTR_KNOBS)
FailslabConfig = _fault_attr_model(
    "FailslabConfig",
    "failslab (mm/failslab.c): fault injection into slab allocations.",
    FAILSLAB_KNOBS, FaultAttrConfig)
FailPageAllocConfig = _fault_attr_model(
    "FailPageAllocConfig",
    "fail_page_alloc (mm/fail_page_alloc.c): fault injection into the page allocator.",
    FAIL_PAGE_ALLOC_KNOBS, FaultAttrConfig)


# The knobs behind each capability's section of FaultInjectionConfig.
_KNOBS_OF: dict[str, tuple[Knob, ...]] = {
    "failslab": FAILSLAB_KNOBS, "fail_page_alloc": FAIL_PAGE_ALLOC_KNOBS,
    "fail_mempool_alloc": FAULT_ATTR_KNOBS, "fail_mempool_alloc_bulk": FAULT_ATTR_KNOBS}


class FaultInjectionConfig(BaseModel):
    """Fault injection (CONFIG_FAULT_INJECTION): the debugfs knobs at boot."""

    model_config = _MODEL_CONFIG

    seed: int = Field(
        default=0,
        description="Seed of the random numbers behind probability; same seed, same failures.",
    )
    # Models built from the knob table: a type checker cannot see their fields.
    failslab: FailslabConfig = Field(  # type: ignore[valid-type]
        default_factory=FailslabConfig, description="failslab: slab allocations."
    )
    fail_page_alloc: FailPageAllocConfig = Field(  # type: ignore[valid-type]
        default_factory=FailPageAllocConfig, description="fail_page_alloc: page allocations."
    )
    fail_mempool_alloc: FaultAttrConfig = Field(  # type: ignore[valid-type]
        default_factory=FaultAttrConfig,
        description="fail_mempool_alloc: mempool_alloc's allocator attempt.",
    )
    fail_mempool_alloc_bulk: FaultAttrConfig = Field(  # type: ignore[valid-type]
        default_factory=FaultAttrConfig,
        description="fail_mempool_alloc_bulk: mempool_alloc_bulk's allocator attempt.",
    )


# Keys that once existed: their config gets this message instead of "unknown key".
REMOVED_KEYS: dict[Loc, str] = {
    ("machine", "time_scale"): "removed: emulated time now belongs to the machine (each "
    "scheduling point costs machine.sched.step_cost, and when no task can run the clock "
    "jumps to the next timer), so it no longer follows the wall clock; delete this key",
}


class SchedConfig(BaseModel):
    """The deterministic scheduler (hwemu/sched.py, hwemu/strategy.py): one task runs at
    a time, the strategy picks the next from the seed, and emulated time advances by
    ``step_cost`` per scheduling point."""

    model_config = _MODEL_CONFIG

    strategy: Literal[STRATEGIES] = Field(  # type: ignore[valid-type]
        default="random",
        description="random (switch at a preemption point with probability preempt), "
        "pct (random priorities and depth-1 priority change points: Burckhardt et al., "
        "ASPLOS 2010) or round_robin (switch at every preemption point).")
    seed: int = Field(default=0, description="Seed of the strategy's choices; the same "
                      "config and seed give the same run on any host.")
    preempt: float = Field(default=0.05, ge=0, le=1, allow_inf_nan=False,
                           description="random: the chance of a switch at each "
                           "preemption point.")
    depth: int = Field(default=3, ge=1, le=64, description="pct: the bug depth d; d - 1 "
                       "priority change points per schedule.")
    steps: int = Field(default=1000, ge=1, le=1 << 40,
                       description="pct: the scheduling points a schedule is expected to "
                       "have; change points are drawn below it.")
    step_cost: Duration = Field(default=250, ge=1, le=1_000_000_000,
                                description="Emulated time each scheduling point costs the "
                                "CPU that runs it (1ns..1s).")
    hung_task_timeout_secs: int = Field(default=120, ge=0, le=1 << 31,
                                        description="khungtaskd: report a task in D state "
                                        "not woken for this many emulated seconds; 0: "
                                        "never.")


class MachineConfig(BaseModel):
    """The emulated machine: architecture, memory layout, CPUs and timer."""

    model_config = _MODEL_CONFIG

    name: MachineName = Field(
        default="hwemu",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description=f"Machine name; letters, digits, '_', '.' and '-', at most "
        f"{MAX_NAME_LEN} characters (it names the RAM memfd).",
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
    sched: SchedConfig = Field(
        default_factory=lambda: SchedConfig(),
        description="The scheduler: who runs when, and what emulated time costs.",
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
        description=f"NUMA nodes (1..{MAX_NUMNODES}), in increasing address order.",
    )
    distance: tuple[tuple[int, ...], ...] | None = Field(
        default=None,
        description=f"NUMA distance matrix (ACPI SLIT), one row per node: {LOCAL_DISTANCE} "
        f"on the diagonal, {LOCAL_DISTANCE + 1}..{MAX_DISTANCE} elsewhere. Default: "
        f"{LOCAL_DISTANCE} local, {REMOTE_DISTANCE} remote.",
    )
    console: bool = Field(default=False, description="Echo kernel log lines to stderr.")
    log_buf_len: LogBufSize = Field(
        default=1 * M, description="printk ring buffer size, 4K..64M."
    )

    # -- resolved values ----------------------------------------------------

    @property
    def bits_per_long(self) -> int:
        """``BITS_PER_LONG``: the machine's word size, the one fact ``SIZE_MAX`` and
        ``ULONG_MAX`` derive from."""
        return 32 if self.arch == "i386" else 64

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
        if len(self.nodes) > MAX_NUMNODES:  # the node checks would only add noise
            _raise_checks([(("nodes",), f"at most {MAX_NUMNODES} nodes are supported, "
                                        f"got {len(self.nodes)}")])
        _raise_checks(
            [
                *self._check_arch(),
                *self._check_sizes(),
                *self._check_nodes(),
                *self._check_distance(),
                *self._check_ram_end(),
                *self._check_address_space(),
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
        """vmalloc and movablecore bounds."""
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
                        f"distance from node {i} to itself must be {LOCAL_DISTANCE} "
                        f"(LOCAL_DISTANCE), got {d}"
                    )
                elif i != j and not LOCAL_DISTANCE < d <= MAX_DISTANCE:
                    note = " (255 means unreachable in ACPI SLIT)" if d == 255 else ""
                    yield ("distance", i, j), (
                        f"distance from node {i} to node {j} must be "
                        f"{LOCAL_DISTANCE + 1}..{MAX_DISTANCE}, got {d}{note}"
                    )

    def _check_ram_end(self) -> typing.Iterator[tuple[Loc, str]]:
        """Physical address limits of the architecture and of lowmem-only i386."""
        ranges = self.node_ranges
        top = max(range(len(ranges)), key=lambda i: ranges[i][1])
        end = ranges[top][1]
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


    def _check_address_space(self) -> typing.Iterator[tuple[Loc, str]]:
        """The machine must fit the address space every process has free for it
        (hwemu/config/limits.py); a RAM end beyond the architecture's is reported
        on its own."""
        need = address_space(self)
        end = self.ram_end
        if need <= MAX_ADDRESS_SPACE or (self.arch == "x86_64" and end > X86_64_PHYS_LIMIT):
            return
        big_vmalloc = self.vmalloc_size > end
        ranges = self.node_ranges
        loc: Loc = ("vmalloc",) if big_vmalloc else (
            "nodes", max(range(len(ranges)), key=lambda i: ranges[i][1]))
        most = ("a smaller vmalloc area" if big_vmalloc else
                f"at most {format_size(max_ram(self.vmalloc_size))} "
                f"({_tib(max_ram(self.vmalloc_size))}) of RAM with this "
                "vmalloc area")
        yield loc, (
            f"RAM ending at {format_size(end)} and a {format_size(self.vmalloc_size)} "
            f"vmalloc area need {_tib(need)} of address space with their struct pages "
            f"and KASAN shadow, more than the {_tib(MAX_ADDRESS_SPACE)} hwemu can reserve "
            f"for a machine ({RESERVE_HINT:#x} up to where Linux loads the Python "
            f"executable, {ELF_ET_DYN_BASE:#x}); use {most}")


def _tib(n: int) -> str:
    """Bytes as TiB with one decimal, e.g. ``74.3T``."""
    return f"{n / (1 << 40):.1f}T"


def _show_range(index: int, start: int, end: int) -> str:
    """Describe a node's range the way the kernel logs it."""
    return f"node {index} [{start:#x}-{end:#x})"



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
    mempool: MempoolConfig = Field(default_factory=MempoolConfig,
                                   description="The mempool implementation.")
    debug: DebugConfig = Field(default_factory=DebugConfig,
                               description="Kernel debug options (Kconfig).")
    run: RunConfig | None = Field(default=None, description="The scenario `hwemu run` "
                                  "runs; without it, `hwemu run` only brings the machine up.")
    expect: ExpectConfig = Field(default_factory=ExpectConfig,
                                 description="Conditions a run must meet to exit 0. "
                                 "With custom workloads (run.custom), any other key names "
                                 "a counter they count with run.count(name), summed over "
                                 "their tasks, 0 if none did: `requests: '>= 1000'`.")

    @model_validator(mode="after")
    def _check(self) -> Config:
        """A run's tasks need CPUs of their own (CPU 0 watches the run); its pools'
        nodes must exist, and their reserves fit in RAM. Only custom workloads' counters
        can be expected besides the metrics."""
        problems: list[tuple[Loc, str]] = list(
            self.expect.counters(bool(self.run and self.run.custom)))
        problems += self._check_ulong_knobs()
        if self.run is None:
            _raise_checks(problems)
            return self
        if self.run.tasks() + 1 > self.machine.cpus:
            problems.append((("run",), f"the workloads need {self.run.tasks()} CPUs "
                                       f"besides CPU 0, the machine has "
                                       f"{self.machine.cpus}; raise machine.cpus"))
        nodes = len(self.machine.nodes)
        problems += [(("run", "pools", i, "node"), f"no node {p.node}: the machine has "
                                                   f"{nodes} (0..{nodes - 1}, or -1 for any)")
                     for i, p in enumerate(self.run.pools) if p.node >= nodes]
        _raise_checks(problems + list(self._check_reserves()))
        return self

    def _check_ulong_knobs(self) -> typing.Iterator[tuple[Loc, str]]:
        """An ``unsigned long`` knob holds at most the machine's ``ULONG_MAX``."""
        ulong_max = (1 << self.machine.bits_per_long) - 1
        for name in FaultInjectionConfig.model_fields:
            part = getattr(self.fault_injection, name)
            for knob in _KNOBS_OF.get(name, ()):
                if knob.ctype != "ulong" or not knob.in_config:
                    continue
                value = getattr(part, knob.attr)
                if value > knob.top(ulong_max):
                    yield ("fault_injection", name, knob.attr), (
                        f"must be {knob.lo}..{knob.top(ulong_max)} (an unsigned long of "
                        f"{self.machine.arch}), got {value}")

    def _check_reserves(self) -> typing.Iterator[tuple[Loc, str]]:
        """A pool's reserve is allocated when the run starts: it must fit in RAM."""
        ram = sum(node.mem for node in self.machine.nodes)
        for i, pool in enumerate(self.run.pools if self.run else ()):
            element = PAGE_SIZE << pool.order if pool.type == "page" else pool.size
            if pool.min_nr * element > ram:
                yield ("run", "pools", i, "min_nr"), (
                    f"{pool.min_nr} reserved elements of {format_size(element)} need "
                    f"{format_size(pool.min_nr * element)}, more than the machine's "
                    f"{format_size(ram)} of RAM")
