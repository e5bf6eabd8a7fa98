"""The MMU: one address-space reservation per machine and the region table inside it.

Emulated kernel virtual addresses are real addresses of this process. A machine
reserves one ``PROT_NONE`` range and maps every region inside it with ``MAP_FIXED``;
anything not covered by a region of the table is unmapped, and touching it is a page
fault. The region table (plus the per-page table of window regions, the emulated
PTEs) is the one source of truth for what is mapped: every access path checks it
before touching memory, because a host access to an unmapped page kills the
interpreter.

Regions whose mappings change at run time (kmap windows, vmalloc) are changed and
accessed under ``pgtable_lock`` (``init_mm.page_table_lock``), so an access never races
with an unmap. Libc is called through ``ctypes.PyDLL`` so the GIL is kept: a released
GIL turns a microsecond syscall into a wait for the next thread switch.

The C fast paths of the hardware primitives (``hwemu._speedups``, when built) touch
memory only where the registry here says: every live space's reservation, its
always-mapped span (``fast_lo``/``fast_hi``) and its KASAN shadow (``kasan_shadow``) are
mirrored there as they change, and a space leaves the mirror before it is unmapped.
"""
from __future__ import annotations

import bisect
import ctypes
import errno
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .config.limits import RESERVE_HINT, RESERVE_LIMIT   # validate checks a machine fits
from .current import _current_space
from .errors import AddressError, MachineDown, MachineError
from .kasan_shadow import KASAN_SHADOW_SCALE_SHIFT
from .page_types import PAGE_SHIFT, PAGE_SIZE, PMD_SIZE

GUARD = PMD_SIZE  # unmapped gap between regions, as the kernel leaves holes between areas

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_NORESERVE, MAP_FIXED_NOREPLACE = 0x4000, 0x100000

RESERVE_STEP = 1 << 40

_libc = ctypes.PyDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                  ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


def _mirror_module() -> Any:
    """The optional C helper, whose fast paths read the mirror of the registry below;
    None when it is not built (or was built before the registry)."""
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups if hasattr(_speedups, "set_current_space_var") else None


_speedups = _mirror_module()
if _speedups is not None:
    _speedups.set_current_space_var(_current_space)


def align_up(x: int, a: int) -> int:
    return -(-x // a) * a


def mmap(addr: int, size: int, prot: int, flags: int, fd: int = -1, off: int = 0) -> int:
    """``mmap(2)``; raises OSError."""
    ret = _mmap(addr, size, prot, flags, fd, off)
    if ret == _MAP_FAILED or ret is None:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap({addr:#x}, {size:#x}): {os.strerror(err)}")
    return ret


class DeadMemory:
    """What a view of a shut-down machine's memory is replaced by: any use of it raises
    :class:`MachineDown` (a released memoryview would say ``ValueError``)."""

    def __init__(self, space: "AddressSpace"):
        self._error = space.down_error

    def __getattr__(self, name: str):
        raise self._error()

    def __getitem__(self, key):
        raise self._error()

    def __setitem__(self, key, value):
        raise self._error()

    def __len__(self) -> int:
        raise self._error()


class Fault(Exception):
    """An access hit an address with no mapping; ``reason`` says where it landed."""

    def __init__(self, addr: int, reason: str):
        super().__init__(f"{addr:#x}: {reason}")
        self.addr = addr
        self.reason = reason


@dataclass
class Region:
    """One line of the region table.

    ``kind`` is ``linear`` (a slice of RAM mapped at a fixed offset: the direct map),
    ``anon`` (host memory private to the machine: vmemmap, KASAN shadow) or ``window``
    (mapped page by page at run time; ``ptes[i]`` is the pfn mapped at page i or -1).
    """
    start: int
    end: int
    label: str
    kind: str
    perms: str = "rw-"
    node: int | None = None
    phys: int = 0
    ptes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    on_access: Callable[[int, int], None] | None = None
    mapped_at: dict = field(default_factory=dict)

    def __contains__(self, addr: int) -> bool:
        return self.start <= addr < self.end


class AddressSpace:
    """The reservation of one machine and its region table."""

    def __init__(self, machine, base: int, size: int):
        self.machine = machine
        self.base = base
        self.size = size
        self.end = base + size
        self.regions: list[Region] = []
        self._starts: list[int] = []
        self.pgtable_lock = threading.Lock()
        # The one exporter of the reservation's memory: every memoryview (and numpy
        # array) of it refers to this object, so at shutdown its reference count says
        # whether a view the machine did not hand out through view() still lives.
        self._memory: Any = (ctypes.c_char * size).from_address(base)
        self.mv = memoryview(self._memory).cast("B")
        # Views released at shutdown, so that a stale one raises (ValueError from
        # Python, turned into MachineDown where it crosses the API) instead of touching
        # unmapped memory; space.mv is one, derived views come after it.
        self._views: list[memoryview] = [self.mv]
        self.registered = False   # in the registry (and its C mirror)
        # Fast path: one contiguous, always-mapped span (the direct map without holes).
        self.fast_lo = self.fast_hi = 0
        # KASAN_SHADOW_OFFSET once the machine's KASAN shadow is mapped, else None.
        self.kasan_shadow: int | None = None

    def __setattr__(self, name: str, value) -> None:
        """Attributes are plain, but a change of what the C mirror holds goes there too."""
        object.__setattr__(self, name, value)
        if name in _MIRRORED:
            self._mirror()

    def _mirror(self) -> None:
        """Check the fast span and the shadow against the region table and tell the C
        mirror; an empty or half-set span (``fast_lo >= fast_hi``) is no span."""
        # getattr, not __dict__: a materialised __dict__ slows every attribute read down.
        if not getattr(self, "registered", False):
            return
        lo, hi = getattr(self, "fast_lo", 0), getattr(self, "fast_hi", 0)
        shadow = getattr(self, "kasan_shadow", None)
        if lo < hi:
            self._assert_mapped(lo, hi, "linear", "fast span")
        if shadow is not None:   # shadow(addr) = (addr >> KASAN_SHADOW_SCALE_SHIFT) + shadow
            self._assert_mapped((self.base >> KASAN_SHADOW_SCALE_SHIFT) + shadow,
                                ((self.end - 1) >> KASAN_SHADOW_SCALE_SHIFT) + shadow + 1,
                                "anon", "KASAN shadow")
        if _speedups is not None:
            _speedups.space_update(self.base, lo, hi, shadow or 0)

    def _assert_mapped(self, lo: int, hi: int, kind: str, what: str) -> None:
        """Raise ValueError unless regions of ``kind`` cover ``[lo, hi)`` without a hole."""
        addr = lo
        while addr < hi:
            region = self.region_at(addr)
            if region is None or region.kind != kind:
                raise ValueError(f"{what} {lo:#x}-{hi:#x} of machine {self.machine.name!r}: "
                                 f"{addr:#x} is not in a {kind} region")
            addr = region.end

    # -------------------------------------------------------------- reservation

    @classmethod
    def reserve(cls, machine, size: int) -> "AddressSpace":
        """Reserve ``size`` bytes ``PROT_NONE`` at the first free 1 TiB-aligned hint."""
        size = align_up(size, PMD_SIZE)
        flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE
        hint = RESERVE_HINT
        while hint + size <= RESERVE_LIMIT:
            ret = _mmap(hint, size, PROT_NONE, flags, -1, 0)
            if ret == hint:
                space = cls(machine, hint, size)
                _register(space)
                return space
            err = ctypes.get_errno()
            if ret not in (None, _MAP_FAILED):   # old kernel: hint ignored
                _munmap(ret, size)
            elif err != errno.EEXIST:
                raise MachineError(
                    f"cannot reserve {size / 2**30:.1f} GiB of address space at {hint:#x}: "
                    f"{os.strerror(err)}; check `ulimit -v` (RLIMIT_AS) and overcommit "
                    "settings, or boot a machine with less RAM")
            hint = align_up(hint + size, RESERVE_STEP)
        raise MachineError(f"no free {size / 2**30:.1f} GiB range for the machine in "
                           f"[{RESERVE_HINT:#x}, {RESERVE_LIMIT:#x}): too many machines?")

    def view(self, addr: int, n: int) -> memoryview:
        """A byte view of ``[addr, addr+n)`` that shutdown releases: a machine part
        keeping a view of its memory takes it here (or registers it with
        :meth:`track`), never by slicing ``mv`` and keeping the slice."""
        off = addr - self.base
        assert 0 <= off and off + n <= self.size, "view outside the reservation"
        return self.track(self.mv[off:off + n])

    def track(self, view: memoryview) -> memoryview:
        """Release ``view`` (derived from :meth:`view` or ``mv``) at shutdown."""
        self._views.append(view)
        return view

    def down_error(self) -> MachineDown:
        """What using a view of this space raises once the machine is down."""
        return MachineDown(f"machine {self.machine.name!r} has been shut down: its memory "
                           "is unmapped")

    def release(self) -> None:
        """Unmap the whole reservation; its addresses now belong to a dead machine.

        Every tracked view is released first (using one raises from then on). If a view
        nobody tracked still refers to the memory (a slice of ``mv`` kept by a user, a
        numpy array), the range is not unmapped but replaced by fresh anonymous memory,
        so that the stale view reads harmless zeros rather than killing the process;
        it is unmapped once that view is gone (checked at the next release).
        """
        _unregister(self)   # out of the C mirror first
        # Under the lock: an access that holds it (every one outside the direct map)
        # finishes first, and one that takes it later finds the space unregistered.
        with self.pgtable_lock:
            self.regions.clear()
            self._starts.clear()
            self.fast_lo = self.fast_hi = 0
            self.kasan_shadow = None
            for view in reversed(self._views):
                try:
                    view.release()
                except BufferError:   # a numpy array still exports it: counted below
                    pass
            self._views.clear()
            self.mv = DeadMemory(self)  # type: ignore[assignment]
        memory, self._memory = self._memory, None
        _zombies.append((memory, self.base, self.size))
        del memory
        _reap()

    # -------------------------------------------------------------- mapping

    def _map_fixed(self, addr: int, size: int, prot: int, flags: int, fd=-1, off=0):
        assert self.base <= addr and addr + size <= self.end, "mapping outside reservation"
        mmap(addr, size, prot, flags | MAP_FIXED, fd, off)

    def map_ram(self, addr: int, size: int, fd: int, phys: int) -> None:
        """Map RAM ``[phys, phys+size)`` of memfd ``fd`` at ``addr`` (shared: aliases)."""
        self._map_fixed(addr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, phys)

    def map_anon(self, addr: int, size: int) -> None:
        """Map zeroed private memory at ``addr`` (no swap reserved; filled on touch)."""
        self._map_fixed(addr, size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

    def clear(self, addr: int, size: int) -> None:
        """Unmap by replacing with ``PROT_NONE`` (``munmap`` would punch a hole)."""
        self._map_fixed(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

    def add_region(self, region: Region) -> Region:
        i = bisect.bisect(self._starts, region.start)
        for other in self.regions[max(i - 1, 0):i + 1]:
            assert region.end <= other.start or other.end <= region.start, \
                f"region {region.label} overlaps {other.label}"
        self.regions.insert(i, region)
        self._starts.insert(i, region.start)
        return region

    def add_window(self, start: int, npages: int, label: str) -> Region:
        """A region mapped page by page at run time; starts fully unmapped."""
        ptes = np.full(npages, -1, dtype=np.int64)
        return self.add_region(Region(start, start + npages * PAGE_SIZE, label, "window",
                                      perms="---", ptes=ptes))

    def set_pte(self, region: Region, addr: int, pfn: int, fd: int, where: str = "") -> None:
        """Map RAM page ``pfn`` at window address ``addr`` (``set_pte_at``)."""
        with self.pgtable_lock:
            self.map_ram(addr, PAGE_SIZE, fd, pfn << PAGE_SHIFT)
            region.ptes[(addr - region.start) >> PAGE_SHIFT] = pfn
            region.mapped_at[addr] = where

    def pte_clear(self, region: Region, addr: int) -> int:
        """Unmap window address ``addr``; returns the pfn that was mapped (or -1)."""
        with self.pgtable_lock:
            i = (addr - region.start) >> PAGE_SHIFT
            pfn = int(region.ptes[i])
            self.clear(addr, PAGE_SIZE)
            region.ptes[i] = -1
            region.mapped_at.pop(addr, None)
            return pfn

    def set_ptes(self, region: Region, addr: int, pfns, fd: int) -> None:
        """Map RAM pages ``pfns[i]`` at ``addr + i * PAGE_SIZE`` (``vmap_pages_range``).

        One ``mmap`` per run of physically consecutive pfns. If an ``mmap`` fails
        (``ENOMEM`` past ``vm.max_map_count``), the runs mapped so far stay mapped and
        recorded, and the ``OSError`` propagates; the caller unmaps the range.
        """
        first = (addr - region.start) >> PAGE_SHIFT
        n = len(pfns)
        with self.pgtable_lock:
            i = 0
            while i < n:
                j = i + 1
                start = pfns[i]
                while j < n and pfns[j] == start + (j - i):
                    j += 1
                self.map_ram(addr + (i << PAGE_SHIFT), (j - i) << PAGE_SHIFT, fd,
                             start << PAGE_SHIFT)
                region.ptes[first + i:first + j] = pfns[i:j]
                i = j

    def pte_clear_range(self, region: Region, addr: int, nr: int) -> np.ndarray:
        """Unmap ``nr`` window pages from ``addr`` with one ``mmap``; returns the pfns
        that were mapped there (-1 where nothing was)."""
        first = (addr - region.start) >> PAGE_SHIFT
        with self.pgtable_lock:
            pfns = region.ptes[first:first + nr].copy()
            self.clear(addr, nr << PAGE_SHIFT)
            region.ptes[first:first + nr] = -1
            if region.mapped_at:
                for a in range(addr, addr + (nr << PAGE_SHIFT), PAGE_SIZE):
                    region.mapped_at.pop(a, None)
            return pfns

    # -------------------------------------------------------------- lookups

    def region_at(self, addr: int) -> Region | None:
        i = bisect.bisect(self._starts, addr) - 1
        if i >= 0 and addr < self.regions[i].end:
            return self.regions[i]
        return None

    def first_fault(self, addr: int, n: int) -> Fault | None:
        """The fault of the first unmapped byte of ``[addr, addr+n)``, or None: a walk
        of the region table (and of window PTEs), bounded by the reservation whatever
        ``n`` is; nothing is touched.

        Call with ``pgtable_lock`` held when the range may touch a window; raises
        :class:`MachineDown` once the space is released.
        """
        if not self.registered:
            raise self.down_error()
        end = min(addr + max(n, 1), self.end + 1)
        while addr < end:
            region = self.region_at(addr)
            if region is None:
                return Fault(addr, self.describe(addr))
            stop = min(end, region.end)
            if region.kind == "window":
                first = (addr - region.start) >> PAGE_SHIFT
                last = (stop - 1 - region.start) >> PAGE_SHIFT
                holes = np.flatnonzero(region.ptes[first:last + 1] < 0)
                if holes.size:
                    bad = max(addr, region.start + ((first + int(holes[0])) << PAGE_SHIFT))
                    return Fault(bad, f"not mapped in the {region.label}")
            addr = stop
        return None

    def check(self, addr: int, n: int) -> None:
        """Raise :class:`Fault` unless all of ``[addr, addr+n)`` is mapped; then run the
        regions' access hooks over it.

        Call with ``pgtable_lock`` held when the range may touch a window.
        """
        fault = self.first_fault(addr, n)
        if fault is not None:
            raise fault
        end = addr + max(n, 1)
        while addr < end:
            region = self.region_at(addr)
            assert region is not None
            stop = min(end, region.end)
            if region.on_access is not None:
                region.on_access(addr, stop - addr)
            addr = stop

    def describe(self, addr: int) -> str:
        """Where an unmapped address lies, for error messages."""
        if not self.base <= addr < self.end:
            return "outside the machine"
        after = [r for r in self.regions if r.end <= addr]
        before = [r for r in self.regions if r.start > addr]
        prev = f"after {after[-1].label}" if after else "at the start"
        nxt = f", before {before[0].label}" if before else ""
        return f"unmapped hole in machine {self.machine.name!r} ({prev}{nxt})"

    def maps(self) -> str:
        """The region table as ``/proc/self/maps``-style lines."""
        lines = []
        for r in self.regions:
            node = f" node{r.node}" if r.node is not None else ""
            lines.append(f"{r.start:016x}-{r.end:016x} {r.perms}p {r.label}{node}")
            if r.kind == "window":
                for i in np.flatnonzero(r.ptes >= 0):
                    a = r.start + (int(i) << PAGE_SHIFT)
                    lines.append(f"{a:016x}-{a + PAGE_SIZE:016x} rw-s   {r.label}[{i}] "
                                 f"pfn {int(r.ptes[i]):#x}")
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the registry

_lock = threading.Lock()
_spaces: list[AddressSpace] = []   # live, sorted by base
_bases: list[int] = []
_dead: list[tuple[int, int, str]] = []  # (base, end, name) of shut-down machines
_DEAD_KEPT = 64
_last: AddressSpace | None = None
# Released reservations: (memory exporter, base, size), unmapped once no view is left.
_zombies: list[tuple[Any, int, int]] = []
_MIRRORED = frozenset(("fast_lo", "fast_hi", "kasan_shadow"))


def _register(space: AddressSpace) -> None:
    with _lock:
        i = bisect.bisect(_bases, space.base)
        if _speedups is not None:   # the owner: what current's space must be to access it
            _speedups.space_register(space.base, space.end, space)
        _spaces.insert(i, space)
        _bases.insert(i, space.base)
        space.registered = True
        space._mirror()


def _unregister(space: AddressSpace) -> None:
    global _last
    with _lock:
        i = _spaces.index(space)
        if _speedups is not None:
            _speedups.space_unregister(space.base)
        space.registered = False
        del _spaces[i], _bases[i]
        _dead.append((space.base, space.end, space.machine.name))
        del _dead[:-_DEAD_KEPT]
        _last = None


def _reap() -> None:
    """Unmap every released reservation no view refers to any more; replace the others
    (once) by anonymous memory, their RAM given back."""
    for i in range(len(_zombies) - 1, -1, -1):
        memory, base, size = _zombies[i]
        # References: the tuple in _zombies, this frame's name, getrefcount's argument.
        if sys.getrefcount(memory) <= 3:
            del _zombies[i]
            _munmap(base, size)
        elif not getattr(memory, "_hwemu_remapped", False):
            mmap(base, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED)
            memory._hwemu_remapped = True
        del memory


def space_of(addr: int) -> AddressSpace:
    """The live address space holding ``addr``.

    Raises :class:`MachineDown` for an address of a shut-down machine and
    :class:`AddressError` for one outside every machine.
    """
    global _last
    space = _last
    if space is not None and space.base <= addr < space.end:
        return space
    i = bisect.bisect(_bases, addr) - 1
    if i >= 0:
        space = _spaces[i]
        if addr < space.end:
            _last = space
            return space
    for base, end, name in reversed(_dead):
        if base <= addr < end:
            raise MachineDown(f"address {addr:#x} belongs to machine {name!r}, "
                              "which has been shut down")
    raise AddressError(f"address {addr:#x} is outside every machine's address space")


def live_spaces() -> list[AddressSpace]:
    return list(_spaces)
