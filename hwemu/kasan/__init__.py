"""Emulation of mm/kasan (generic mode): shadow memory, allocator hooks, quarantine and
access checks. Report text is built in :mod:`hwemu.kasan.report`.

Every 8-byte granule of the machine's address space has a shadow byte at
``(addr >> 3) + KASAN_SHADOW_OFFSET``, inside the machine's reservation: 0 means all 8
bytes are accessible, 1..7 the first k bytes, and the negative codes below say why the
granule is poisoned. The allocators call the hooks here as the kernel's do (slab,
kmalloc, large kmalloc, pages, vmalloc, and the mempool hooks); the instrumented
accessors of :mod:`hwemu.access` call :meth:`Kasan.check_access` before every access.

Not emulated: tag-based modes, stack and global variables (there are none),
``kasan_disable_current()``, KFENCE, the per-CPU quarantine batches (one FIFO).

:meth:`Kasan.check_access`, :meth:`Kasan.poison` and :meth:`Kasan.unpoison` are the
Python twins of C fast paths in the optional ``hwemu._speedups``: when it imports and
``HWEMU_PURE`` is not ``"1"`` (:data:`ACCELERATED`), each machine's ``Kasan`` has the C
functions in their place, which hand every case but a clean check or an aligned write of
its own shadow to the twin.
"""
from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading

import numpy as np

from .. import bug, vmem
from ..access import page_fault
from ..current import current, current_on
# The shadow encoding's home is below the layers that use it; KASAN's API re-exports it.
from ..kasan_shadow import (KASAN_GRANULE_MASK, KASAN_GRANULE_SIZE,  # noqa: F401
                            KASAN_PAGE_FREE, KASAN_PAGE_REDZONE, KASAN_REPORT_ACCESS,
                            KASAN_REPORT_DOUBLE_FREE, KASAN_REPORT_INVALID_FREE,
                            KASAN_SHADOW_SCALE_SHIFT, KASAN_SLAB_FREE, KASAN_SLAB_FREE_META,
                            KASAN_SLAB_REDZONE, KASAN_VMALLOC_INVALID)
from ..page_types import PAGE_SHIFT, PAGE_SIZE
from ..printk import KERN_ERR
from ..slab import SLAB_KMALLOC
from ..stackdepot import StackDepot
from .report import build_report

try:   # the optional C fast paths (setup.py); the Kasan methods here are their twins
    from .._speedups import bind as _bind
except ImportError:
    _bind = None

#: True when each machine's check_access/poison/unpoison are the C fast paths.
ACCELERATED = (_bind is not None and vmem._speedups is not None and
               os.environ.get("HWEMU_PURE") != "1")

QUARANTINE_FRACTION = 32
ALLOC_META_SIZE = 16   # struct kasan_alloc_meta: alloc_track + aux_stack[2]
FREE_META_SIZE = 16    # struct kasan_free_meta, outside the object when it cannot overlap


def optimal_redzone(object_size: int) -> int:
    """``optimal_redzone()``: the redzone a cache of ``object_size`` gets."""
    for limit, rz in ((64 - 16, 16), (128 - 32, 32), (512 - 64, 64), (4096 - 128, 128),
                      ((1 << 14) - 256, 256), ((1 << 15) - 512, 512), ((1 << 16) - 1024, 1024)):
        if object_size <= limit:
            return rz
    return 2048


class KasanReport:
    """One report: ``bug_type``, ``addr``, ``size``, ``is_write``, the full ``text``,
    ``expected`` (made inside an :func:`expect_report` block), and ``details``: what
    the text says as data (see :func:`hwemu.kasan.report.build_report`)."""

    def __init__(self, bug_type: str, addr: int, size: int, is_write: bool, text: str,
                 details: dict | None = None):
        self.bug_type, self.addr, self.size, self.is_write = bug_type, addr, size, is_write
        self.text = text
        self.expected = False
        self.details = details or {}

    def as_dict(self) -> dict:
        """The report as plain data (a run's JSON): addresses as ``0x`` hex strings
        (64-bit values do not survive a JSON reader that uses doubles); ``access`` is
        ``read``, ``write`` or ``free``."""
        d = self.details
        obj = d.get("object")
        return {"bug_type": self.bug_type, "address": f"{self.addr:#x}", "size": self.size,
                "access": d.get("access", "write" if self.is_write else "read"),
                "function": d.get("function"), "task": d.get("task"),
                "stack": d.get("stack", []),
                "object": obj and dict(obj, address=f"{obj['address']:#x}"),
                "allocated": d.get("allocated"), "freed": d.get("freed"),
                "text": self.text}

    def __repr__(self) -> str:
        return f"<KasanReport {self.bug_type} at {self.addr:#x}>"


class Kasan:
    """KASAN of one machine (``machine.kasan``; ``enabled`` False when configured off)."""

    def __init__(self, machine, cfg):
        """:param cfg: the ``kasan:`` section of the config"""
        self.machine = machine
        self.enabled = cfg.enabled
        self.fault = cfg.fault
        self.multi_shot = cfg.multi_shot
        self.stacktrace = cfg.stacktrace
        ram = machine.ram.size
        self.quarantine_max = (cfg.quarantine_size if cfg.quarantine_size is not None
                               else ram // QUARANTINE_FRACTION)
        self.reports: list[KasanReport] = []
        self.reported = False         # KASAN_BIT_REPORTED
        self.report_lock = threading.Lock()
        self.depot = StackDepot()
        self.alloc_track: dict[int, tuple[int, int]] = {}   # object -> (pid, stack)
        self.free_track: dict[int, tuple[int, int]] = {}
        self.quarantine: collections.deque = collections.deque()  # (cache, object)
        self.quarantine_bytes = 0
        self.quarantine_lock = threading.Lock()
        space = machine.space
        self.space, self.mv = space, space.mv
        self.KASAN_SHADOW_OFFSET = machine.KASAN_SHADOW_OFFSET
        self.delta = machine.KASAN_SHADOW_OFFSET - space.base   # mv index of shadow(0)
        self.max_low_pfn = machine.memmap.max_low_pfn
        self.page_offset = machine.memmap.page_offset
        if self.enabled:
            space.kasan_shadow = self.KASAN_SHADOW_OFFSET   # the C mirror may read it now
            if ACCELERATED:
                self.accelerate()

    def accelerate(self) -> None:
        """Put the C fast paths of :meth:`check_access`, :meth:`poison` and
        :meth:`unpoison` in their place on this instance, each bound to the method."""
        assert _bind is not None and self.enabled
        for name in ("check_access", "poison", "unpoison"):
            twin = getattr(type(self), name).__get__(self)   # the method, even if bound before
            setattr(self, name, _bind(name, twin, self.space.base))

    @staticmethod
    def cache_size(object_size: int, size: int, free_meta_inside: bool) -> int:
        """``kasan_cache_create()``: the object stride once KASAN's metadata and redzone
        are added to the slab allocator's own ``size``."""
        size += ALLOC_META_SIZE + (0 if free_meta_inside else FREE_META_SIZE)
        return max(size, object_size + optimal_redzone(object_size))

    # ------------------------------------------------------------ shadow

    def kasan_mem_to_shadow(self, addr: int) -> int:
        """``kasan_mem_to_shadow()``: the shadow byte's address."""
        return (addr >> KASAN_SHADOW_SCALE_SHIFT) + self.KASAN_SHADOW_OFFSET

    def shadow(self, addr: int) -> int:
        """The shadow byte of ``addr``'s granule as ``s8``."""
        try:
            v = self.mv[(addr >> KASAN_SHADOW_SCALE_SHIFT) + self.delta]
        except ValueError as exc:
            raise self._gone(exc) from None
        return v - 256 if v >= 0x80 else v

    def _gone(self, exc: ValueError) -> Exception:
        """The error for a use of the shadow that failed with ``exc``: MachineDown
        once the machine is down (its view was released), else ``exc``."""
        return self.space.down_error() if self.machine.down else exc

    def _first_poisoned(self, lo: int, hi: int) -> int:
        """The ``mv`` index of the first non-zero shadow byte in ``[lo, hi)``, or ``hi``.

        Read in chunks growing from 64 bytes to 1 MiB: a near poisoned granule is found
        at once, a far one (or none) costs one pass over that much shadow in C, never
        a copy of all of it or a loop in Python per granule.
        """
        mv, step = self.mv, 64
        end = hi
        hi = min(hi, len(mv))   # past the reservation there is no shadow to read
        while lo < hi:
            stop = min(hi, lo + step)
            if step < 4096:
                rest = mv[lo:stop].tobytes().lstrip(b"\0")
                if rest:
                    return stop - len(rest)
            else:   # numpy's max is vectorised; bytes.lstrip goes byte by byte
                chunk = np.frombuffer(mv[lo:stop], np.uint8)
                if chunk.max():
                    return lo + int((chunk != 0).argmax())
            lo, step = stop, min(step << 2, _SCAN_CHUNK_MAX)
        return end

    def has_metadata(self, addr: int) -> bool:
        """``addr_has_metadata()``: ``addr`` is inside this machine's reservation."""
        return self.space.base <= addr < self.space.end

    def poison(self, addr: int, size: int, value: int) -> None:
        """``kasan_poison()``: the granules of ``[addr, addr+size)`` get ``value``; both
        must be granule aligned (the kernel WARNs and does nothing otherwise)."""
        if bug.WARN_ON((addr | size) & KASAN_GRANULE_MASK):
            return
        start = (addr >> KASAN_SHADOW_SCALE_SHIFT) + self.delta
        n = size >> KASAN_SHADOW_SCALE_SHIFT
        try:
            self.mv[start:start + n] = _fill(value, n)
        except ValueError as exc:
            raise self._gone(exc) from None

    def unpoison(self, addr: int, size: int) -> None:
        """``kasan_unpoison()``: ``size`` bytes accessible, a partial last granule
        marked with its length; ``addr`` must be granule aligned."""
        if bug.WARN_ON(addr & KASAN_GRANULE_MASK):
            return
        start = (addr >> KASAN_SHADOW_SCALE_SHIFT) + self.delta
        full = size >> KASAN_SHADOW_SCALE_SHIFT
        try:
            self.mv[start:start + full] = bytes(full)
            if size & KASAN_GRANULE_MASK:
                self.mv[start + full] = size & KASAN_GRANULE_MASK
        except ValueError as exc:
            raise self._gone(exc) from None

    def byte_accessible(self, addr: int) -> bool:
        """``kasan_byte_accessible()``: the granule's shadow is 0..7."""
        return 0 <= self.shadow(addr) < KASAN_GRANULE_SIZE

    def first_bad_addr(self, addr: int, size: int) -> int:
        """``kasan_find_first_bad_addr()``: the first granule of ``[addr, addr+size)``
        whose shadow is not 0 (the end of the shadow bounds the search)."""
        end = min(addr + size, self.space.end)
        if addr >= end or addr + size > 1 << 64:   # a wrapping range: its first byte
            return addr
        lo = (addr >> KASAN_SHADOW_SCALE_SHIFT) + self.delta
        hi = ((end - 1) >> KASAN_SHADOW_SCALE_SHIFT) + self.delta + 1
        try:
            bad = self._first_poisoned(lo, hi)
        except ValueError as exc:
            raise self._gone(exc) from None
        return addr + ((bad - lo) << KASAN_SHADOW_SCALE_SHIFT) if bad < hi else addr + size

    # ------------------------------------------------------------ access checks

    def check_access(self, addr: int, size: int, write: bool, scan: int | None = None) -> bool:
        """``check_region_inline()``: False (after reporting) if any byte of the access
        is poisoned.

        :param scan: how many bytes from ``addr`` have their shadow read (default: all
            ``size``); the accessors stop at the first unmapped granule, where the
            access faults anyway. A range that wraps past the top of the address space
            is reported at once, as the kernel does.
        """
        try:
            last = addr + size - 1
            granule = addr >> KASAN_SHADOW_SCALE_SHIFT
            if scan is None and granule == last >> KASAN_SHADOW_SCALE_SHIFT:
                # One granule, inline: the hot case of every load and store.
                v = self.mv[granule + self.delta]
                if v == 0 or (v < KASAN_GRANULE_SIZE and last & KASAN_GRANULE_MASK < v):
                    return True
            elif last < 1 << 64 and self._clean(addr, size if scan is None else min(size, scan),
                                                size):
                return True
        except ValueError as exc:
            raise self._gone(exc) from None
        self.report(addr, size, write, _caller_outside(__name__, "hwemu.access"))
        return False

    def _clean(self, addr: int, scan: int, size: int) -> bool:
        """The shadow of ``[addr, addr+scan)`` allows an access of ``size`` bytes."""
        mv, delta = self.mv, self.delta
        last = addr + scan - 1
        first_g, last_g = addr >> KASAN_SHADOW_SCALE_SHIFT, last >> KASAN_SHADOW_SCALE_SHIFT
        # The last byte's place in its granule; a cut-off scan needs its granule whole.
        tail = last & KASAN_GRANULE_MASK if scan == size else KASAN_GRANULE_MASK
        if first_g == last_g:
            v = mv[first_g + delta]
            return v == 0 or (v < KASAN_GRANULE_SIZE and tail < v)
        if scan <= 16:
            if all(mv[g + delta] == 0 for g in range(first_g, last_g)):
                v = mv[last_g + delta]
                return v == 0 or (v < KASAN_GRANULE_SIZE and tail < v)
            return False
        hi = last_g + delta
        if self._first_poisoned(first_g + delta, hi) < hi:
            return False
        v = mv[hi]
        return v == 0 or (v < KASAN_GRANULE_SIZE and tail < v)

    def check_wild(self, addr: int, size: int, write: bool) -> bool:
        """An access outside every machine: null-ptr-deref or wild-memory-access."""
        self.report(addr, size, write, _caller_outside(__name__, "hwemu.access"))
        return False

    # ------------------------------------------------------------ reporting

    def report(self, addr: int, size: int, write: bool, frame,
               kind: int = KASAN_REPORT_ACCESS) -> None:
        """``kasan_report()`` / ``kasan_report_invalid_free()``: print unless an earlier
        report silences this one, taint, then act on ``kasan.fault``."""
        with self.report_lock:
            if self.reported and not self.multi_shot:
                return
            self.reported = True
            task = current_on(self.machine)
            bug_type, text, details = build_report(self, kind, addr, size, write, frame,
                                                   task)
            self.machine.log.printk(text, KERN_ERR)
            self.machine.bugs.add_taint("BAD_PAGE", lockdep_unreliable=True)
            self.reports.append(KasanReport(bug_type, addr, size, write, text, details))
        if self.fault == "panic" or (self.fault == "panic_on_write" and
                                     (write or kind != KASAN_REPORT_ACCESS)):
            raise bug.panic_report(self.machine, task,
                                   f"kasan.fault={self.fault} set ...")

    # ------------------------------------------------------------ slab hooks

    def poison_slab(self, base: int, size: int) -> None:
        """``kasan_poison_slab()``: a new slab is all redzone until objects are handed out."""
        self.poison(base, size, KASAN_SLAB_REDZONE)

    def unpoison_new_object(self, cache, obj: int) -> None:
        self.unpoison(obj, cache.object_size)

    def poison_new_object(self, cache, obj: int) -> None:
        self.poison(obj, _round_up(cache.object_size), KASAN_SLAB_REDZONE)

    def slab_alloc(self, cache, obj: int, size: int, kmalloc: bool, task) -> None:
        """``kasan_slab_alloc()`` + ``kasan_kmalloc()``: the object's ``object_size`` bytes
        (or the ``size`` bytes a kmalloc caller asked for) become accessible, a partial
        last granule holding its length, the rest of the object 0xFC; record who
        allocated it."""
        usable = size if kmalloc else cache.object_size
        n = (cache.object_size + KASAN_GRANULE_MASK) >> KASAN_SHADOW_SCALE_SHIFT
        full, rem = usable >> KASAN_SHADOW_SCALE_SHIFT, usable & KASAN_GRANULE_MASK
        start = (obj >> KASAN_SHADOW_SCALE_SHIFT) + self.delta
        if full == n:
            self.mv[start:start + n] = _fill(0, n)
        else:   # one write: usable granules, the partial one, then 0xFC
            self.mv[start:start + n] = (_fill(0, full) + (bytes((rem,)) if rem else b"") +
                                        _fill(KASAN_SLAB_REDZONE, n - full - (rem > 0)))
        self.alloc_track[obj] = (task.pid, self.depot.save(2) if self.stacktrace else 0)

    def kmalloc_redzone(self, cache, obj: int, size: int) -> None:
        """``poison_kmalloc_redzone()``: exactly ``size`` bytes usable, the rest 0xFC."""
        self.unpoison(obj, size)
        start = (obj + size + KASAN_GRANULE_MASK) & ~KASAN_GRANULE_MASK
        end = (obj + cache.object_size + KASAN_GRANULE_MASK) & ~KASAN_GRANULE_MASK
        if end > start:
            self.poison(start, end - start, KASAN_SLAB_REDZONE)

    def check_slab_allocation(self, cache, obj: int, object_start: int, ip=None) -> bool:
        """True (after reporting) if freeing ``obj`` is a double or invalid free.

        ``ip``: the frame standing for ``_RET_IP_`` (default: the slab API's caller).
        """
        if object_start != obj or not self.byte_accessible(obj):
            self.report(obj, 1, True, ip or _caller_outside(__name__, "hwemu.slab"),
                        KASAN_REPORT_INVALID_FREE if object_start != obj
                        else KASAN_REPORT_DOUBLE_FREE)
            return True
        return False

    def poison_slab_object(self, cache, obj: int, task, depth: int = 2) -> None:
        """``poison_slab_object()``: 0xFB over the object, its free track recorded and
        the first granule 0xFA to say so."""
        n = (cache.object_size + KASAN_GRANULE_MASK) >> KASAN_SHADOW_SCALE_SHIFT
        start = (obj >> KASAN_SHADOW_SCALE_SHIFT) + self.delta
        self.mv[start:start + n] = _fill(KASAN_SLAB_FREE, n)
        if self.stacktrace:
            self.free_track[obj] = (task.pid, self.depot.save(depth))
            self.mv[start] = KASAN_SLAB_FREE_META

    def slab_free(self, cache, obj: int, task) -> bool:
        """``kasan_slab_free()``: poison and quarantine; True means KASAN keeps the
        object for now (the slab allocator must not reuse it)."""
        self.poison_slab_object(cache, obj, task, 3)
        lock = self.quarantine_lock
        lock.acquire()
        self.quarantine.append((cache, obj))
        self.quarantine_bytes += cache.size
        if self.quarantine_bytes <= self.quarantine_max:
            lock.release()
            return True
        release = []
        try:
            while self.quarantine_bytes > self.quarantine_max and self.quarantine:
                old_cache, old = self.quarantine.popleft()
                self.quarantine_bytes -= old_cache.size
                release.append((old_cache, old))
        finally:
            lock.release()
        for old_cache, old in release:   # quarantine_reduce(): back to the slabs
            old_cache.free_from_quarantine(old, task)
        return True

    def quarantine_remove_cache(self, cache) -> None:
        """``kasan_cache_shutdown()``: release every quarantined object of ``cache``."""
        with self.quarantine_lock:
            mine = [obj for c, obj in self.quarantine if c is cache]
            self.quarantine = collections.deque((c, o) for c, o in self.quarantine
                                                if c is not cache)
            self.quarantine_bytes -= len(mine) * cache.size
        task = current()
        for obj in mine:
            cache.free_from_quarantine(obj, task)

    # ------------------------------------------------------------ large kmalloc and pages

    def kmalloc_large(self, ptr: int, size: int, alloc_size: int) -> None:
        """``kasan_kmalloc_large()``: ``size`` bytes usable, the rest of the pages 0xFE."""
        self.unpoison(ptr, size)
        start = (ptr + size + KASAN_GRANULE_MASK) & ~KASAN_GRANULE_MASK
        if ptr + alloc_size > start:
            self.poison(start, ptr + alloc_size - start, KASAN_PAGE_REDZONE)

    def check_page_allocation(self, ptr: int, head_addr: int, ip=None) -> bool:
        """True (after reporting) if freeing the page-backed ``ptr`` is invalid or double."""
        frame = ip or _caller_outside(__name__, "hwemu.slab", "hwemu.page_alloc")
        if ptr != head_addr:
            self.report(ptr, 1, True, frame, KASAN_REPORT_INVALID_FREE)
            return True
        if not self.byte_accessible(ptr):
            self.report(ptr, 1, True, frame, KASAN_REPORT_DOUBLE_FREE)
            return True
        return False

    def poison_pages(self, pfn: int, order: int) -> None:
        """``kasan_poison_pages()``: freed lowmem pages read 0xFF (highmem is not tracked)."""
        if pfn < self.max_low_pfn:
            self.poison(self.page_offset + (pfn << PAGE_SHIFT), PAGE_SIZE << order,
                        KASAN_PAGE_FREE)

    def unpoison_pages(self, pfn: int, order: int) -> None:
        """``kasan_unpoison_pages()``"""
        if pfn < self.max_low_pfn:
            self.unpoison(self.page_offset + (pfn << PAGE_SHIFT), PAGE_SIZE << order)

    # ------------------------------------------------------------ mempool hooks

    def _head(self, ptr: int) -> tuple[int, int]:
        """``virt_to_head_page()`` of a direct-map ``ptr``: (head pfn, folio order).

        Any other pointer (``ZERO_SIZE_PTR``, an ``ERR_PTR``, vmalloc memory) names a
        ``struct page`` that does not exist: reading its flags faults, and the oops
        names that address, as the kernel's would.
        """
        mm = self.machine.memmap
        try:
            pa = mm.direct_map_pa(ptr, "virt_to_head_page")
        except bug.AddressError as exc:
            page = mm.page_of(((ptr - mm.page_offset) & _MASK64) >> PAGE_SHIFT)
            raise page_fault(page, False, f"the struct page of {exc}") from None
        pfn = mm.compound_head(pa >> PAGE_SHIFT)
        return pfn, mm.compound_order(pfn)

    def mempool_poison_object(self, ptr: int, ip=None) -> bool:
        """``__kasan_mempool_poison_object()``: False (after reporting) on a double or
        invalid free; no quarantine, the mempool keeps the element."""
        slab = self.machine.slab.slab_of(ptr)
        if slab is None:   # a large kmalloc
            pfn, order = self._head(ptr)
            if self.check_page_allocation(ptr, self.page_offset + (pfn << PAGE_SHIFT), ip):
                return False
            self.poison(ptr, PAGE_SIZE << order, KASAN_PAGE_FREE)
            return True
        cache = slab.cache
        if self.check_slab_allocation(cache, ptr, self.machine.slab.object_start(ptr), ip):
            return False
        self.poison_slab_object(cache, ptr, current())
        return True

    def mempool_unpoison_object(self, ptr: int, size: int) -> None:
        """``__kasan_mempool_unpoison_object()``: kmalloc elements usable for ``size``
        bytes (redzone after), slab elements for their whole object; allocated here."""
        slab = self.machine.slab.slab_of(ptr)
        if slab is None:
            _, order = self._head(ptr)
            self.kmalloc_large(ptr, size, PAGE_SIZE << order)
            return
        cache = slab.cache
        kmalloc = bool(cache.flags & SLAB_KMALLOC)
        self.slab_alloc(cache, ptr, size if kmalloc else cache.object_size, kmalloc,
                        current())

    def mempool_poison_pages(self, page: int, order: int, ip=None) -> bool:
        """``__kasan_mempool_poison_pages()``: highmem is not tracked; False (after
        reporting) on a double free."""
        memmap = self.machine.memmap
        pfn = memmap.page_to_pfn(page)
        if pfn >= self.max_low_pfn:
            return True
        ptr = memmap.lowmem_virt(pfn)
        head, _ = self._head(ptr)
        if self.check_page_allocation(ptr, self.page_offset + (head << PAGE_SHIFT), ip):
            return False
        self.poison(ptr, PAGE_SIZE << order, KASAN_PAGE_FREE)
        return True

    def mempool_unpoison_pages(self, page: int, order: int) -> None:
        """``kasan_mempool_unpoison_pages()``"""
        self.unpoison_pages(self.machine.memmap.page_to_pfn(page), order)

    # ------------------------------------------------------------ vmalloc

    def vmalloc_area(self, addr: int, size: int, area_size: int) -> None:
        """``kasan_populate_vmalloc()`` + ``kasan_unpoison_vmalloc()``: the area (and its
        guard) is 0xF8 but for the ``size`` bytes asked for (also after ``vrealloc()``
        in place)."""
        self.poison(addr, area_size, KASAN_VMALLOC_INVALID)
        self.unpoison(addr, size)

    def vfree_area(self, addr: int, area_size: int) -> None:
        """``kasan_poison_vmalloc()``"""
        self.poison(addr, area_size, KASAN_VMALLOC_INVALID)


def _round_up(size: int) -> int:
    return (size + KASAN_GRANULE_MASK) & ~KASAN_GRANULE_MASK


_SCAN_CHUNK_MAX = 1 << 20   # shadow bytes read at once by a long scan
_MASK64 = (1 << 64) - 1
_FILLS: dict[tuple[int, int], bytes] = {}


def _fill(value: int, n: int) -> bytes:
    """``n`` shadow bytes of ``value`` (cached: the same few lengths recur)."""
    b = _FILLS.get((value, n))
    if b is None:
        b = _FILLS[(value, n)] = bytes((value,)) * n
    return b


# Modules whose frames are never where a bad access was made: KASAN's own, and those
# that stand for an access made elsewhere (hwemu.kbuild adds its calls from C).
INTERNAL: tuple[str, ...] = ("hwemu.kasan",)


def _caller_outside(*modules: str):
    """The innermost frame whose module is not one of ``modules`` (nor
    :data:`INTERNAL`): where the bad access or free was made, as ``_RET_IP_`` would
    name it."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
            modules + INTERNAL):
        frame = frame.f_back
    return frame


# ---------------------------------------------------------------- the API

def _kasan(addr: int | None = None) -> Kasan:
    """The KASAN of ``addr``'s machine; of current's for NULL or a pointer into no
    machine (whose hook then faults as the kernel's would, see :meth:`Kasan._head`)."""
    if addr:
        try:
            return vmem.space_of(addr).machine.kasan
        except bug.AddressError:
            pass
    return current().machine.kasan


def kasan_enabled() -> bool:
    return current().machine.kasan.enabled


def kasan_mem_to_shadow(addr: int) -> int:
    """:return: ``void *`` — the shadow byte of ``addr``."""
    return _kasan(addr).kasan_mem_to_shadow(addr)


def kasan_poison(addr: int, size: int, value: int) -> None:
    """``kasan_poison(addr, size, value, init=false)``"""
    k = _kasan(addr)
    if k.enabled:
        k.poison(addr, size, value)


def kasan_unpoison(addr: int, size: int) -> None:
    """``kasan_unpoison(addr, size, init=false)``"""
    k = _kasan(addr)
    if k.enabled:
        k.unpoison(addr, size)


def kasan_check_read(addr: int, size: int) -> bool:
    """``kasan_check_read()``: report a bad read of ``[addr, addr+size)``; True if fine."""
    return _check(addr, size, False)


def kasan_check_write(addr: int, size: int) -> bool:
    """``kasan_check_write()``: report a bad write; True if fine."""
    return _check(addr, size, True)


def _check(addr: int, size: int, write: bool) -> bool:
    k = current().machine.kasan
    if not k.enabled or size == 0:
        return True
    if k.has_metadata(addr) and addr + size <= k.space.end:
        return k.check_access(addr, size, write)
    return k.check_wild(addr, size, write)


@contextlib.contextmanager
def expect_report(bug_type: str | None = None):
    """Fail unless a KASAN report (of ``bug_type``) is made inside the block.

    KUnit's ``KUNIT_EXPECT_KASAN_FAIL``: multi-shot is on inside, so earlier reports do
    not silence the expected one. Yields the list that receives the new reports.
    """
    k = current().machine.kasan
    if not k.enabled:
        raise AssertionError("expect_report(): KASAN is not enabled on this machine "
                             "(kasan: {enabled: true} in the config)")
    before, multi = len(k.reports), k.multi_shot
    k.multi_shot = True
    got: list[KasanReport] = []
    try:
        yield got
    finally:
        k.multi_shot = multi
        got.extend(k.reports[before:])
        for report in got:
            report.expected = True
    if not got:
        raise AssertionError(f"expected a KASAN report{f' ({bug_type})' if bug_type else ''}"
                             ", none was made")
    if bug_type is not None and not any(r.bug_type == bug_type for r in got):
        raise AssertionError(f"expected a KASAN {bug_type} report, got "
                             f"{', '.join(r.bug_type for r in got)}")


def kasan_mempool_poison_object(ptr: int, ip=None) -> bool:
    """``kasan_mempool_poison_object(void *ptr)``: True when KASAN is off.

    ``ip`` is the frame a report names (``_RET_IP_`` of the inlined hook's caller).
    """
    k = _kasan(ptr)
    return k.mempool_poison_object(ptr, ip) if k.enabled else True


def kasan_mempool_unpoison_object(ptr: int, size: int) -> None:
    """``kasan_mempool_unpoison_object(void *ptr, size_t size)``"""
    k = _kasan(ptr)
    if k.enabled:
        k.mempool_unpoison_object(ptr, size)


def kasan_mempool_poison_pages(page: int, order: int, ip=None) -> bool:
    """``kasan_mempool_poison_pages(struct page *page, unsigned int order)``"""
    k = _kasan(page)
    return k.mempool_poison_pages(page, order, ip) if k.enabled else True


def kasan_mempool_unpoison_pages(page: int, order: int) -> None:
    """``kasan_mempool_unpoison_pages(struct page *page, unsigned int order)``"""
    k = _kasan(page)
    if k.enabled:
        k.mempool_unpoison_pages(page, order)
