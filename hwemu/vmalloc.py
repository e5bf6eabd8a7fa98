"""Emulation of mm/vmalloc.c and include/linux/vmalloc.h: virtually contiguous kernel
memory (the kvmalloc family is in :mod:`hwemu.util`).

The vmalloc window (``VMALLOC_START``..``VMALLOC_END``) is a window region of the
machine's address space. Each area is page aligned and, unless ``VM_NO_GUARD``, is
followed by one unmapped guard page, which is part of its ``vm_struct.size``; areas are
placed first fit (lowest address) as the kernel's free-area tree does. ``vmalloc``
takes order-0 pages one at a time from the page allocator (with ``__GFP_HIGHMEM``
unless a DMA zone was asked for, so on a 32-bit machine it maps highmem) and maps each
page at its address with a real ``mmap`` of machine RAM: accesses through
:func:`hwemu.load`/:func:`hwemu.store` see the page, the guard page and freed ranges
fault with an oops, and every alias of a page (direct map, kmap) shares its bytes.
The window's page table (``region.ptes``) is the one record of what is mapped;
``vmalloc_to_page`` reads it.

``vfree`` unmaps at once, frees the pages, and returns the address range lazily, as
the kernel does: freed ranges are reused only after a purge, which happens once more
than ``lazy_max_pages()`` are waiting or when an allocation finds no room.
``vfree`` in interrupt context is ``vfree_atomic``: the address is queued on the CPU's
``vfree_deferred`` list (its first 8 bytes become the list link, as with
``llist_add``) and freed by the next vmalloc/vfree/vunmap in task context on the
machine, or by :meth:`Vmalloc.flush_deferred` (the kernel's workqueue).

``struct vm_struct`` is a Python object (:class:`vm_struct`), not emulated memory;
neither it nor its ``pages`` array is charged to slab. Not emulated: huge vmalloc
mappings (``VM_ALLOW_HUGE_VMAP`` maps order-0 pages), page protections other than
``PAGE_KERNEL``, per-node vmap pools and per-CPU vmap blocks (``vm_map_ram``), KASAN
vmalloc shadow poisoning (``CONFIG_KASAN_VMALLOC``), kmemleak, memcg accounting,
fatal-signal checks, and hashing of ``%p`` (addresses print as with
``no_hash_pointers``).
"""
from __future__ import annotations

import bisect
import errno
import threading

from . import access, bug, sched
from .alloc_tag import alloc_hooks, return_address
from .current import current
from .gfp import (__GFP_DIRECT_RECLAIM, __GFP_HIGHMEM, __GFP_NOFAIL, __GFP_NOLOCKDEP, __GFP_NORETRY,
                  __GFP_NOWARN, __GFP_RETRY_MAYFAIL, __GFP_ZERO, GFP_ATOMIC, GFP_DMA, GFP_DMA32,
                  GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOFS, GFP_NOIO, GFP_NOWAIT, GFP_USER,
                  format_flags, gfpflag_names)
from .mmzone import NUMA_NO_NODE
from .page_types import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from .printk import KERN_WARNING

__all__ = [
    "VM_IOREMAP", "VM_ALLOC", "VM_MAP", "VM_USERMAP", "VM_DMA_COHERENT", "VM_UNINITIALIZED",
    "VM_NO_GUARD", "VM_KASAN", "VM_FLUSH_RESET_PERMS", "VM_MAP_PUT_PAGES",
    "VM_ALLOW_HUGE_VMAP", "VM_DEFER_KMEMLEAK", "VM_SPARSE", "PAGE_KERNEL",
    "GFP_VMALLOC_SUPPORTED", "Vmalloc", "vm_struct",
    "vmalloc", "vmalloc_noprof", "vzalloc", "vzalloc_noprof", "vmalloc_node",
    "vmalloc_node_noprof", "vzalloc_node", "vzalloc_node_noprof", "vmalloc_32",
    "vmalloc_32_noprof", "vmalloc_huge", "vmalloc_huge_noprof", "vmalloc_huge_node",
    "vmalloc_huge_node_noprof", "__vmalloc", "__vmalloc_noprof", "__vmalloc_node",
    "__vmalloc_node_noprof", "__vmalloc_node_range", "__vmalloc_node_range_noprof",
    "vrealloc", "vrealloc_noprof", "vfree", "vfree_atomic", "vmap", "vunmap",
    "get_vm_area", "remove_vm_area", "free_vm_area", "find_vm_area", "get_vm_area_size",
    "vmalloc_to_page", "vmalloc_to_pfn", "is_vmalloc_addr", "is_vmalloc_or_module_addr",
    "vmalloc_nr_pages",
]

# include/linux/vmalloc.h: bits in vm_struct->flags.
VM_IOREMAP = 0x00000001
VM_ALLOC = 0x00000002
VM_MAP = 0x00000004
VM_USERMAP = 0x00000008
VM_DMA_COHERENT = 0x00000010
VM_UNINITIALIZED = 0x00000020
VM_NO_GUARD = 0x00000040
VM_KASAN = 0x00000080
VM_FLUSH_RESET_PERMS = 0x00000100
VM_MAP_PUT_PAGES = 0x00000200
VM_ALLOW_HUGE_VMAP = 0x00000400
VM_DEFER_KMEMLEAK = 0            # only with generic/sw-tags KASAN without KASAN_VMALLOC
VM_SPARSE = 0x00001000

#: x86 ``PAGE_KERNEL``: PRESENT|RW|ACCESSED|DIRTY|GLOBAL|NX. The only protection emulated.
PAGE_KERNEL = 0x8000000000000163

#: mm/vmalloc.c: the flags ``__vmalloc`` and ``vmalloc_huge_node`` accept (6.19+).
GFP_VMALLOC_SUPPORTED = (GFP_KERNEL | GFP_ATOMIC | GFP_NOWAIT | __GFP_NOFAIL | __GFP_ZERO
                         | __GFP_NORETRY | __GFP_RETRY_MAYFAIL | GFP_NOFS | GFP_NOIO
                         | GFP_KERNEL_ACCOUNT | GFP_USER | __GFP_NOLOCKDEP)

INT_MAX = (1 << 31) - 1

# Unmangled aliases for use inside class bodies.
_ZERO, _NOWARN, _NOFAIL, _HIGHMEM = __GFP_ZERO, __GFP_NOWARN, __GFP_NOFAIL, __GFP_HIGHMEM
_DIRECT_RECLAIM, _RETRY_MAYFAIL = __GFP_DIRECT_RECLAIM, __GFP_RETRY_MAYFAIL
_DMA_ZONES = GFP_DMA | GFP_DMA32
_ZERO_CHUNK = bytes(64 << 10)
_ZERO_VIEW = memoryview(_ZERO_CHUNK)


def _p(addr: int) -> str:
    """``%p`` of a pointer, unhashed (``no_hash_pointers``): 16 hex digits, no ``0x``."""
    return f"{addr:016x}"


def _hex(value: int) -> str:
    """``%#x``: ``0`` for zero, ``0x...`` otherwise."""
    return f"{value:#x}" if value else "0"


class vm_struct:
    """``struct vm_struct``: one area of the vmalloc window.

    ``addr`` (``void *``), ``size`` (``unsigned long``, including the guard page),
    ``flags`` (``VM_*``), ``pages`` (``struct page **`` as a list of ``struct page *``),
    ``nr_pages``, ``page_order`` (always 0), ``phys_addr``, ``requested_size`` and
    ``caller`` (``%pS`` of the caller's frame; ``caller_location`` gives file:line).
    """

    __slots__ = ("addr", "size", "flags", "pages", "nr_pages", "page_order", "phys_addr",
                 "requested_size", "_code", "_lasti", "_lineno")

    def __init__(self, flags: int, requested_size: int, frame):
        self.addr = 0
        self.size = 0
        self.flags = flags
        self.pages: list[int] = []
        self.nr_pages = 0
        self.page_order = 0
        self.phys_addr = 0
        self.requested_size = requested_size
        if frame is None:
            self._code, self._lasti, self._lineno = None, 0, 0
        else:
            self._code, self._lasti, self._lineno = frame.f_code, frame.f_lasti, frame.f_lineno

    @property
    def caller(self) -> str:
        """``%pS`` of ``vm->caller``: ``func+0xOFF/0xSIZE`` of the allocating frame."""
        code = self._code
        if code is None:
            return "0x0"
        return bug.code_symbol(code, self._lasti)

    @property
    def caller_location(self) -> str:
        if self._code is None:
            return "?"
        return f"{bug.source_path(self._code.co_filename)}:{self._lineno}"

    def __repr__(self) -> str:
        return (f"<vm_struct {self.addr:#x}-{self.addr + self.size:#x} size={self.size:#x} "
                f"pages={self.nr_pages} flags={self.flags:#x} caller={self.caller} "
                f"({self.caller_location})>")


def gfp_vmalloc32(cfg, bits_per_long: int) -> int:
    """``GFP_VMALLOC32``: ``GFP_DMA32 | GFP_KERNEL`` with ``CONFIG_ZONE_DMA32``, else on
    64-bit ``GFP_DMA | GFP_KERNEL``; a 32-bit kernel's lowmem is all 32-bit addressable
    (its ``GFP_DMA32`` means ``ZONE_NORMAL``): ``GFP_KERNEL``.

    :param cfg: the ``machine:`` section of the config
    """
    if cfg.dma32_enabled:
        return GFP_DMA32 | GFP_KERNEL
    if bits_per_long == 64 and cfg.zone_dma:
        return GFP_DMA | GFP_KERNEL
    return GFP_KERNEL


def get_vm_area_size(area: vm_struct) -> int:
    """``get_vm_area_size()``: the usable size of ``area`` (its size minus the guard)."""
    if not area.flags & VM_NO_GUARD:
        return area.size - PAGE_SIZE
    return area.size


class Vmalloc:
    """The vmalloc window of one machine (``machine.vmalloc``): its free, busy and
    lazily freed ranges (``vmap_area`` trees) under ``vmap_area_lock``."""

    def __init__(self, machine, cfg):
        """:param cfg: the ``machine:`` section of the config"""
        self.machine = machine
        self.space = machine.space
        start, size = machine.layout["vmalloc"]
        self.region = self.space.region_at(start)
        assert self.region is not None and self.region.label == "vmalloc"
        self.VMALLOC_START = start
        self.VMALLOC_END = start + size
        self.fd = machine.ram.fd
        self.memmap = machine.memmap
        self.page_alloc = machine.page_alloc
        self.vmstat = machine.vmstat
        self.vmap_area_lock = threading.Lock()
        # Free ranges [start, end), sorted and never adjacent (merged on free).
        self._free_starts = [start]
        self._free_ends = [start + size]
        # Busy areas: va_start -> vm_struct, and the sorted starts for lookups.
        self._busy: dict[int, vm_struct] = {}
        self._busy_starts: list[int] = []
        # Freed ranges waiting for the next purge (purge_vmap_area_lazy).
        self._lazy: list[tuple[int, int]] = []
        self.vmap_lazy_nr = 0
        ncpus = len(machine.sched.cpus)
        self.lazy_max_pages = ncpus.bit_length() * ((32 << 20) >> PAGE_SHIFT)
        # vfree_deferred: per-CPU lists of addresses freed in interrupt context.
        self._deferred: list[list[int]] = [[] for _ in range(ncpus)]
        self._deferred_nr = 0
        self._deferred_lock = threading.Lock()
        self.totalram_pages = sum(z.managed_pages for z in self.page_alloc.zones)
        self.GFP_VMALLOC32 = gfp_vmalloc32(cfg, machine.BITS_PER_LONG)

    # ------------------------------------------------------------ address ranges

    def _va_alloc(self, size: int, align: int, vstart: int, vend: int) -> int:
        """``va_alloc()``: carve the lowest fitting range; -1 if none. Lock held."""
        starts, ends = self._free_starts, self._free_ends
        for i in range(bisect.bisect_right(ends, vstart), len(starts)):
            s = starts[i]
            if s >= vend:
                break
            a = max(s, vstart)
            a = (a + align - 1) & -align
            e = ends[i]
            if a + size > min(e, vend):
                continue
            if a == s:
                if a + size == e:
                    del starts[i], ends[i]
                else:
                    starts[i] = a + size
            elif a + size == e:
                ends[i] = a
            else:
                ends[i] = a
                starts.insert(i + 1, a + size)
                ends.insert(i + 1, e)
            return a
        return -1

    def _va_free(self, start: int, end: int) -> None:
        """``merge_or_add_vmap_area()``: give ``[start, end)`` back. Lock held."""
        starts, ends = self._free_starts, self._free_ends
        i = bisect.bisect_left(starts, start)
        if i > 0 and ends[i - 1] > start or i < len(starts) and starts[i] < end:
            j = i - 1 if i > 0 and ends[i - 1] > start else i
            bug.WARN(True, f"vmalloc bug: {start:#x}-{end:#x} overlaps with "
                           f"{starts[j]:#x}-{ends[j]:#x}")
            return   # the range is leaked, as find_va_links() failing leaks it
        prev = i > 0 and ends[i - 1] == start
        nxt = i < len(starts) and starts[i] == end
        if prev and nxt:
            ends[i - 1] = ends[i]
            del starts[i], ends[i]
        elif prev:
            ends[i - 1] = end
        elif nxt:
            starts[i] = start
        else:
            starts.insert(i, start)
            ends.insert(i, end)

    def purge_vmap_area_lazy(self) -> int:
        """``purge_vmap_area_lazy()``: make every lazily freed range free; pages purged."""
        with self.vmap_area_lock:
            return self._purge()

    def _purge(self) -> int:
        nr = self.vmap_lazy_nr
        for start, end in self._lazy:
            self._va_free(start, end)
        self._lazy.clear()
        self.vmap_lazy_nr = 0
        return nr

    def alloc_vmap_area(self, size: int, align: int, vstart: int, vend: int, gfp: int,
                        vm: vm_struct, task) -> int:
        """``alloc_vmap_area()``: reserve ``size`` bytes and bind ``vm`` to them.

        A blocking allocation that finds no room purges the lazily freed ranges and
        tries once more, then warns (unless ``__GFP_NOWARN``); a non-blocking one
        fails at once, silently. Returns the address or -1.
        """
        bug.BUG_ON(not size or size & ~PAGE_MASK or align & (align - 1) or align <= 0)
        allow_block = gfp & _DIRECT_RECLAIM
        if allow_block and (task.preempt_count or task.irqs_off):
            sched.might_sleep()
        align = max(align, PAGE_SIZE)
        purged = False
        while True:
            with self.vmap_area_lock:
                addr = self._va_alloc(size, align, vstart, vend)
                if addr >= 0:
                    vm.addr, vm.size = addr, size
                    self._busy[addr] = vm
                    bisect.insort(self._busy_starts, addr)
                    return addr
                if not allow_block:
                    return -1
                if not purged and self._lazy:
                    self._purge()
                    purged = True
                    continue
            break
        if not gfp & _NOWARN and self.machine.printk_ratelimit("alloc_vmap_area"):
            self.machine.log.printk(
                f"vmalloc_node_range for size {size} failed: Address range restricted to "
                f"{vstart:#x} - {vend:#x}", KERN_WARNING)
        return -1

    def get_vm_area_node(self, size: int, align: int, flags: int, start: int, end: int,
                         node: int, gfp: int, frame, task) -> vm_struct | None:
        """``__get_vm_area_node()``: an area of ``size`` bytes (page aligned, plus the
        guard page unless ``VM_NO_GUARD``), or None."""
        bug.BUG_ON(task.preempt_count & sched.IRQ_COUNT_MASK)
        requested = size
        size = (size + PAGE_SIZE - 1) & PAGE_MASK
        if not size:
            return None
        vm = vm_struct(flags, requested, frame)
        if not flags & VM_NO_GUARD:
            size += PAGE_SIZE
        if self.alloc_vmap_area(size, align, start, end, gfp, vm, task) < 0:
            return None
        return vm

    def find_vmap_area(self, addr: int) -> vm_struct | None:
        """The busy area whose range (guard page included) holds ``addr``."""
        with self.vmap_area_lock:
            i = bisect.bisect_right(self._busy_starts, addr) - 1
            if i >= 0:
                vm = self._busy[self._busy_starts[i]]
                if addr < vm.addr + vm.size:
                    return vm
        return None

    def remove_vm_area(self, addr: int) -> vm_struct | None:
        """``remove_vm_area()``: unlink the area holding ``addr``, unmap its range and
        queue the range for the lazy purge. None if no area holds it."""
        if addr & ~PAGE_MASK:
            bug.WARN(True, f"Trying to vfree() bad address ({_p(addr)})")
            return None
        with self.vmap_area_lock:
            starts = self._busy_starts
            i = bisect.bisect_right(starts, addr) - 1
            if i < 0:
                return None
            vm = self._busy[starts[i]]
            if addr >= vm.addr + vm.size:
                return None
            del self._busy[vm.addr], starts[i]
        nr = vm.size >> PAGE_SHIFT
        self.space.pte_clear_range(self.region, vm.addr, nr)
        if self.machine.kasan.enabled:
            self.machine.kasan.vfree_area(vm.addr, vm.size)
        with self.vmap_area_lock:
            self._lazy.append((vm.addr, vm.addr + vm.size))
            self.vmap_lazy_nr += nr
            if self.vmap_lazy_nr > self.lazy_max_pages:
                self._purge()
        return vm

    # ------------------------------------------------------------ vmalloc / vfree

    def vmalloc_area_node(self, area: vm_struct, gfp: int, node: int, frame, task) -> int:
        """``__vmalloc_area_node()``: allocate and map the pages of ``area``.

        :return: ``area.addr``, or 0 after freeing everything (with the kernel's
            warning unless ``__GFP_NOWARN``).
        """
        nr = get_vm_area_size(area) >> PAGE_SHIFT
        if not gfp & _DMA_ZONES:
            gfp |= _HIGHMEM
        # Pages are zeroed through the new mapping below, not one by one.
        page_gfp = (gfp | _NOWARN) & ~_ZERO
        alloc = self.page_alloc.alloc
        pfns = []
        for _ in range(nr):
            pfn = alloc(page_gfp, 0, node, None, task)
            if pfn < 0:
                break
            pfns.append(pfn)
        area.pages = list(map(self.memmap.page_of, pfns))
        area.nr_pages = len(pfns)
        self.vmstat.mod("nr_vmalloc", area.nr_pages)
        if area.nr_pages != nr:
            return self._area_failed(area, gfp, "allocate pages", frame)
        try:
            self.space.set_ptes(self.region, area.addr, pfns, self.fd)
        except OSError as exc:
            if exc.errno != errno.ENOMEM:
                raise
            return self._area_failed(area, gfp, "map pages", frame)
        if self.machine.kasan.enabled:   # the requested bytes only, up to the guard
            self.machine.kasan.vmalloc_area(area.addr, area.requested_size, area.size)
        if gfp & _ZERO:
            self.zero(area.addr, nr << PAGE_SHIFT)
        return area.addr

    def _area_failed(self, area, gfp: int, what: str, frame) -> int:
        """``__vmalloc_area_node()``'s ``fail:``: warn (unless ``__GFP_NOWARN``), free
        the area and what it got; returns 0."""
        self.machine.page_alloc.warn_alloc(
            gfp, None, f"vmalloc error: size {area.nr_pages * PAGE_SIZE}, failed to {what}",
            frame)
        self.vfree_task(area.addr)
        return 0

    def zero(self, addr: int, n: int) -> None:
        """Clear ``n`` mapped bytes from ``addr`` (the caller owns them)."""
        mv, off = self.space.mv, addr - self.space.base
        end = off + n
        while off < end:
            step = min(len(_ZERO_CHUNK), end - off)
            mv[off:off + step] = _ZERO_VIEW[:step]
            off += step

    def vmalloc_node_range(self, size: int, align: int, start: int, end: int, gfp: int,
                           prot: int, vm_flags: int, node: int, frame) -> int:
        """``__vmalloc_node_range_noprof()``: the whole allocation; ``void *`` or 0."""
        task = current()
        if prot != PAGE_KERNEL:
            raise ValueError(f"__vmalloc_node_range(prot={prot:#x}): only PAGE_KERNEL "
                             f"({PAGE_KERNEL:#x}) mappings are emulated")
        if bug.WARN_ON_ONCE(not size):
            return 0
        if (size >> PAGE_SHIFT) > self.totalram_pages:
            self.machine.page_alloc.warn_alloc(
                gfp, None, f"vmalloc error: size {size}, exceeds total pages", frame)
            return 0
        if self._deferred_nr and not task.preempt_count & sched.IRQ_COUNT_MASK:
            self.flush_deferred()
        while True:
            area = self.get_vm_area_node(size, align, VM_ALLOC | VM_UNINITIALIZED | vm_flags,
                                         start, end, node, gfp, frame, task)
            if area is not None:
                break
            nofail = bool(gfp & _NOFAIL)
            self.machine.page_alloc.warn_alloc(
                gfp, None, f"vmalloc error: size {size}, vm_struct allocation failed"
                f"{'. Retrying.' if nofail else ''}", frame)
            if not nofail:
                return 0
            sched.set_current_state(sched.TASK_UNINTERRUPTIBLE)
            sched.schedule_timeout(1)
        if not self.vmalloc_area_node(area, gfp, node, frame, task):
            return 0
        area.flags &= ~VM_UNINITIALIZED
        return area.addr

    def free_vm_pages(self, vm: vm_struct) -> None:
        """The page-freeing half of ``vfree()``."""
        free = self.page_alloc.free_pages
        task = current()
        for page in vm.pages[:vm.nr_pages]:
            bug.BUG_ON(not page)
            free(page, 0, task)
        if vm.nr_pages and not vm.flags & VM_MAP_PUT_PAGES:
            self.vmstat.mod("nr_vmalloc", -vm.nr_pages)

    def vfree_task(self, addr: int) -> None:
        """``vfree()`` in task context after its checks: free the area at ``addr``."""
        vm = self.remove_vm_area(addr)
        if vm is None:
            bug.WARN(True, f"Trying to vfree() nonexistent vm area ({_p(addr)})")
            return
        self.free_vm_pages(vm)

    def vfree_atomic(self, addr: int, task) -> None:
        """``vfree_atomic()``: queue ``addr`` on this CPU's ``vfree_deferred`` list."""
        bug.BUG_ON(task.preempt_count & sched.NMI_MASK)
        if not addr:
            return
        with self._deferred_lock:
            pending = self._deferred[task.cpu.id]
            # llist_add(): the freed memory's first word links to the previous head.
            access.store(addr, 8, pending[-1] if pending else 0)
            pending.append(addr)
            self._deferred_nr += 1

    def enter_sleepable(self) -> None:
        """The start of vfree()/vunmap() in task context: ``might_sleep()``, then free
        what interrupts deferred (the kernel's workqueue would have done it by now)."""
        sched.might_sleep()
        if self._deferred_nr:
            self.flush_deferred()

    def flush_deferred(self) -> int:
        """Run the ``vfree_deferred`` work (``delayed_vfree_work``) of every CPU now, in
        the calling task; returns how many addresses it freed."""
        with self._deferred_lock:
            todo = [a for pending in self._deferred for a in reversed(pending)]
            for pending in self._deferred:
                pending.clear()
            self._deferred_nr = 0
        for addr in todo:
            self.vfree_task(addr)
        return len(todo)

    # ------------------------------------------------------------ reports

    def vmallocinfo(self) -> str:
        """``/proc/vmallocinfo``: one line per area, by address."""
        with self.vmap_area_lock:
            areas = [self._busy[a] for a in self._busy_starts]
            lazy = sorted(self._lazy)
        lines = []
        nodes = self.memmap.nodes
        for v in areas:
            line = f"0x{v.addr:016x}-0x{v.addr + v.size:016x} {v.size:7d} {v.caller}"
            if v.nr_pages:
                line += f" pages={v.nr_pages}"
            if v.phys_addr:
                line += f" phys={v.phys_addr:#018x}"
            for flag, name in ((VM_IOREMAP, "ioremap"), (VM_SPARSE, "sparse"),
                               (VM_ALLOC, "vmalloc"), (VM_MAP, "vmap"),
                               (VM_USERMAP, "user"), (VM_DMA_COHERENT, "dma-coherent")):
                if v.flags & flag:
                    line += f" {name}"
            if v.nr_pages:
                counts = [0] * len(nodes)
                for page in v.pages[:v.nr_pages]:
                    pfn = self.memmap.pfn_of(page)
                    counts[next(n.node_id for n in nodes
                                if n.node_start_pfn <= pfn < n.node_end_pfn)] += 1
                line += "".join(f" N{n}={c}" for n, c in enumerate(counts) if c)
            lines.append(line)
        lines += [f"0x{s:016x}-0x{e:016x} {e - s:7d} unpurged vm_area" for s, e in lazy]
        return "".join(line + "\n" for line in lines)


def vmalloc_fix_flags(flags: int) -> int:
    """``vmalloc_fix_flags()``: drop flags ``__vmalloc`` does not support, warning once."""
    invalid = flags & ~GFP_VMALLOC_SUPPORTED
    flags &= GFP_VMALLOC_SUPPORTED
    bug.WARN_ONCE(True, f"Unexpected gfp: {_hex(invalid)} "
                        f"({format_flags(invalid, gfpflag_names)}). Fixing up to gfp: "
                        f"{_hex(flags)} ({format_flags(flags, gfpflag_names)}). "
                        "Fix your code!")
    return flags


# ---------------------------------------------------------------- the API

def _vm() -> Vmalloc:
    return current().machine.vmalloc


def check_size(size, what: str) -> None:
    if type(size) is not int:
        raise TypeError(f"{what}: size must be an int, not {type(size).__name__}")
    if size < 0:
        raise ValueError(f"{what}({size}): negative size")


def check_node(node: int, what: str) -> None:
    if node != NUMA_NO_NODE:
        nodes = current().machine.nodes
        if type(node) is not int or not 0 <= node < len(nodes):
            raise bug.AddressError(f"{what}: no node {node!r} (machine has {len(nodes)}; "
                                   "NUMA_NO_NODE means the local node)")


def __vmalloc_node_range_noprof(size: int, align: int, start: int, end: int, gfp_mask: int,
                                prot: int, vm_flags: int, node: int, caller=None) -> int:
    """Allocate ``size`` bytes of virtually contiguous memory in ``[start, end)``.

    :param align: ``unsigned long`` power of two
    :param gfp_mask: ``gfp_t`` for the page allocations; non-blocking masks
        (``GFP_ATOMIC``, ``GFP_NOWAIT``) are supported, as in 6.19+
    :param prot: ``pgprot_t``: only :data:`PAGE_KERNEL`
    :param vm_flags: extra ``VM_*`` flags (``VM_NO_GUARD``, ``VM_USERMAP``...)
    :param caller: the frame recorded as ``vm->caller`` (default: the caller)
    :return: ``void *``, or 0
    """
    check_size(size, "__vmalloc_node_range")
    check_node(node, "__vmalloc_node_range")
    return _vm().vmalloc_node_range(size, align, start, end, gfp_mask, prot, vm_flags, node,
                                    caller or return_address(1))


__vmalloc_node_range = alloc_hooks(__vmalloc_node_range_noprof)


def _vmalloc(what: str, size: int, align: int, gfp: int, node: int,
             vm_flags: int = 0, caller=None) -> int:
    """The body of every ``vmalloc*()`` wrapper: ``__vmalloc_node_range()`` over the
    whole window, recording the wrapper's caller as ``vm->caller``."""
    check_size(size, what)
    check_node(node, what)
    vm = _vm()
    return vm.vmalloc_node_range(size, align, vm.VMALLOC_START, vm.VMALLOC_END, gfp,
                                 PAGE_KERNEL, vm_flags, node, caller or return_address(2))


def __vmalloc_node_noprof(size: int, align: int, gfp_mask: int, node: int,
                          caller=None) -> int:
    """``__vmalloc_node()``: :func:`__vmalloc_node_range` over the whole window.

    :return: ``void *``, or 0
    """
    return _vmalloc("__vmalloc_node", size, align, gfp_mask, node, 0, caller)


__vmalloc_node = alloc_hooks(__vmalloc_node_noprof)


def __vmalloc_noprof(size: int, gfp_mask: int) -> int:
    """``__vmalloc(size, gfp_mask)``: flags outside :data:`GFP_VMALLOC_SUPPORTED`
    (zone modifiers, ``__GFP_HIGHMEM``...) are dropped with a one-time warning.

    :return: ``void *``, or 0
    """
    if gfp_mask & ~GFP_VMALLOC_SUPPORTED:
        gfp_mask = vmalloc_fix_flags(gfp_mask)
    return _vmalloc("__vmalloc", size, 1, gfp_mask, NUMA_NO_NODE)


__vmalloc = alloc_hooks(__vmalloc_noprof)


def vmalloc_noprof(size: int) -> int:
    """``vmalloc(size)``: ``GFP_KERNEL`` pages (highmem allowed), may sleep.

    :param size: ``unsigned long`` bytes; rounded up to whole pages
    :return: ``void *`` — page aligned, followed by an unmapped guard page; 0 on failure
    """
    return _vmalloc("vmalloc", size, 1, GFP_KERNEL, NUMA_NO_NODE)


vmalloc = alloc_hooks(vmalloc_noprof)


def vzalloc_noprof(size: int) -> int:
    """``vzalloc(size)``: :func:`vmalloc` with the memory zeroed. ``void *`` or 0."""
    return _vmalloc("vzalloc", size, 1, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE)


vzalloc = alloc_hooks(vzalloc_noprof)


def vmalloc_node_noprof(size: int, node: int) -> int:
    """``vmalloc_node(size, node)``: pages preferably from ``node``. ``void *`` or 0."""
    return _vmalloc("vmalloc_node", size, 1, GFP_KERNEL, node)


vmalloc_node = alloc_hooks(vmalloc_node_noprof)


def vzalloc_node_noprof(size: int, node: int) -> int:
    """``vzalloc_node(size, node)``: zeroed :func:`vmalloc_node`. ``void *`` or 0."""
    return _vmalloc("vzalloc_node", size, 1, GFP_KERNEL | __GFP_ZERO, node)


vzalloc_node = alloc_hooks(vzalloc_node_noprof)


def vmalloc_32_noprof(size: int) -> int:
    """``vmalloc_32(size)``: pages from 32-bit addressable memory (``GFP_VMALLOC32``).
    ``void *`` or 0."""
    return _vmalloc("vmalloc_32", size, 1, _vm().GFP_VMALLOC32, NUMA_NO_NODE)


vmalloc_32 = vmalloc_32_noprof


def vmalloc_huge_node_noprof(size: int, gfp_mask: int, node: int) -> int:
    """``vmalloc_huge_node()``: ``VM_ALLOW_HUGE_VMAP`` (mapped with order-0 pages here)."""
    if gfp_mask & ~GFP_VMALLOC_SUPPORTED:
        gfp_mask = vmalloc_fix_flags(gfp_mask)
    return _vmalloc("vmalloc_huge_node", size, 1, gfp_mask, node, VM_ALLOW_HUGE_VMAP)


vmalloc_huge_node = alloc_hooks(vmalloc_huge_node_noprof)


def vmalloc_huge_noprof(size: int, gfp_mask: int) -> int:
    """``vmalloc_huge(size, gfp_mask)``: :func:`vmalloc_huge_node` on any node."""
    if gfp_mask & ~GFP_VMALLOC_SUPPORTED:
        gfp_mask = vmalloc_fix_flags(gfp_mask)
    return _vmalloc("vmalloc_huge", size, 1, gfp_mask, NUMA_NO_NODE, VM_ALLOW_HUGE_VMAP)


vmalloc_huge = alloc_hooks(vmalloc_huge_noprof)


def vfree(addr: int) -> None:
    """``vfree(const void *addr)``: unmap and free a vmalloc area; NULL is a no-op.

    In interrupt context this is :func:`vfree_atomic` (deferred). Otherwise it may
    sleep (``might_sleep``). An unaligned address warns "Trying to vfree() bad
    address"; an address that no area holds warns "Trying to vfree() nonexistent vm
    area"; neither frees anything. Like the kernel, a page-aligned address anywhere
    inside an area (guard page included) frees the whole area.
    """
    task = current()
    vm = task.machine.vmalloc
    if task.preempt_count & sched.IRQ_COUNT_MASK:
        vm.vfree_atomic(addr, task)
        return
    vm.enter_sleepable()
    if not addr:
        return
    vm.vfree_task(addr)


def vfree_atomic(addr: int) -> None:
    """``vfree_atomic(addr)``: free later, from task context; safe in atomic context."""
    task = current()
    task.machine.vmalloc.vfree_atomic(addr, task)


def vmap(pages, count: int, flags: int, prot: int) -> int:
    """``vmap(struct page **pages, unsigned int count, flags, prot)``: map ``count``
    pages into one contiguous range of the vmalloc window.

    :param pages: sequence of ``struct page *`` (they may repeat: aliases)
    :param flags: ``VM_*``, usually ``VM_MAP``; ``VM_MAP_PUT_PAGES`` makes
        :func:`vfree` put the pages
    :return: ``void *``, or 0
    """
    task = current()
    vm = task.machine.vmalloc
    sched.might_sleep()
    if prot != PAGE_KERNEL:
        raise ValueError(f"vmap(prot={prot:#x}): only PAGE_KERNEL ({PAGE_KERNEL:#x}) "
                         "mappings are emulated")
    if bug.WARN_ON_ONCE(flags & VM_FLUSH_RESET_PERMS):
        return 0
    if bug.WARN_ON_ONCE(flags & VM_NO_GUARD):
        flags &= ~VM_NO_GUARD
    if count > vm.totalram_pages:
        return 0
    if len(pages) < count:
        raise ValueError(f"vmap: {count} pages asked for, {len(pages)} given")
    pfns = [vm.memmap.page_to_pfn(page) for page in pages[:count]]
    if vm._deferred_nr and not task.preempt_count & sched.IRQ_COUNT_MASK:
        vm.flush_deferred()
    frame = return_address(1)
    area = vm.get_vm_area_node(count << PAGE_SHIFT, 1, flags, vm.VMALLOC_START,
                               vm.VMALLOC_END, NUMA_NO_NODE, GFP_KERNEL, frame, task)
    if area is None:
        return 0
    try:
        vm.space.set_ptes(vm.region, area.addr, pfns, vm.fd)
    except OSError as exc:
        if exc.errno != errno.ENOMEM:
            raise
        vm.remove_vm_area(area.addr)
        return 0
    if vm.machine.kasan.enabled:
        vm.machine.kasan.vmalloc_area(area.addr, count << PAGE_SHIFT, area.size)
    if flags & VM_MAP_PUT_PAGES:
        area.pages = list(pages[:count])
        area.nr_pages = count
    return area.addr


def vunmap(addr: int) -> None:
    """``vunmap(const void *addr)``: undo :func:`vmap`; the pages stay allocated."""
    task = current()
    vm = task.machine.vmalloc
    bug.BUG_ON(task.preempt_count & sched.IRQ_COUNT_MASK)
    vm.enter_sleepable()
    if not addr:
        return
    if vm.remove_vm_area(addr) is None:
        bug.WARN(True, f"Trying to vunmap() nonexistent vm area ({_p(addr)})")


def get_vm_area(size: int, flags: int) -> vm_struct | None:
    """``get_vm_area(size, flags)``: reserve an area and map nothing in it.

    :return: ``struct vm_struct *``, or None
    """
    check_size(size, "get_vm_area")
    task = current()
    vm = task.machine.vmalloc
    return vm.get_vm_area_node(size, 1, flags, vm.VMALLOC_START, vm.VMALLOC_END,
                               NUMA_NO_NODE, GFP_KERNEL, return_address(1), task)


def remove_vm_area(addr: int) -> vm_struct | None:
    """``remove_vm_area(addr)``: unlink and unmap the area holding ``addr``; its pages
    are not freed. :return: ``struct vm_struct *`` or None."""
    sched.might_sleep()
    return current().machine.vmalloc.remove_vm_area(addr)


def free_vm_area(area: vm_struct) -> None:
    """``free_vm_area(area)``: :func:`remove_vm_area` of an area from :func:`get_vm_area`."""
    ret = current().machine.vmalloc.remove_vm_area(area.addr)
    bug.BUG_ON(ret is not area)


def find_vm_area(addr: int) -> vm_struct | None:
    """``find_vm_area(const void *addr)``: the area whose range holds ``addr``.

    :return: ``struct vm_struct *`` (a :class:`vm_struct`), or None
    """
    return _vm().find_vmap_area(addr)


def is_vmalloc_addr(x: int) -> bool:
    """``is_vmalloc_addr(x)``: ``VMALLOC_START <= x < VMALLOC_END`` of this machine."""
    vm = current().machine.vmalloc
    return vm.VMALLOC_START <= x < vm.VMALLOC_END


is_vmalloc_or_module_addr = is_vmalloc_addr  # no module area is emulated


def vmalloc_to_page(vmalloc_addr: int) -> int:
    """``vmalloc_to_page()``: walk the window's page table.

    :return: ``struct page *`` mapped at ``vmalloc_addr``, or 0 where nothing is mapped
    :raises AddressError: for an address outside the vmalloc window
        (``CONFIG_DEBUG_VIRTUAL``'s ``VIRTUAL_BUG_ON``)
    """
    vm = _vm()
    if type(vmalloc_addr) is not int:
        raise TypeError(f"vmalloc_to_page: address must be an int, not "
                        f"{type(vmalloc_addr).__name__}")
    if not vm.VMALLOC_START <= vmalloc_addr < vm.VMALLOC_END:
        raise bug.AddressError(
            f"vmalloc_to_page({vmalloc_addr:#x}): not a vmalloc address; the vmalloc "
            f"area of {vm.machine.name!r} is [{vm.VMALLOC_START:#x}-{vm.VMALLOC_END:#x})")
    pfn = int(vm.region.ptes[(vmalloc_addr - vm.VMALLOC_START) >> PAGE_SHIFT])
    return 0 if pfn < 0 else vm.memmap.page_of(pfn)


def vmalloc_to_pfn(vmalloc_addr: int) -> int:
    """``vmalloc_to_pfn()``: the pfn mapped at ``vmalloc_addr``.

    :raises AddressError: where nothing is mapped (the kernel would return garbage)
    """
    page = vmalloc_to_page(vmalloc_addr)
    if not page:
        raise bug.AddressError(f"vmalloc_to_pfn({vmalloc_addr:#x}): nothing is mapped "
                               "there")
    return _vm().memmap.pfn_of(page)


def vmalloc_nr_pages() -> int:
    """``vmalloc_nr_pages()``: pages currently allocated by vmalloc."""
    return _vm().vmstat["nr_vmalloc"]


def vrealloc_noprof(p: int, size: int, flags: int) -> int:
    """``vrealloc(p, size, flags)``: resize a vmalloc allocation.

    Shrinking or growing within the pages already mapped keeps ``p``; growing past
    them allocates anew, copies ``requested_size`` bytes and frees ``p``. ``size`` 0
    frees ``p`` and returns 0.
    """
    check_size(size, "vrealloc")
    frame = return_address(1)
    if not size:
        vfree(p)
        return 0
    vm = _vm()
    area = None
    old_size = 0
    if p:
        area = vm.find_vmap_area(p)
        if area is None:
            bug.WARN(True, f"Trying to vrealloc() nonexistent vm area ({_p(p)})")
            return 0
        alloced = get_vm_area_size(area)
        old_size = area.requested_size
        if bug.WARN(alloced < old_size, "vrealloc() has mismatched area vs requested "
                                        f"sizes ({_p(p)})"):
            return 0
        if size <= alloced:   # in place: only what is usable changes
            if size <= old_size and flags & _ZERO:
                access.memset(p + size, 0, old_size - size)
            area.requested_size = size
            if vm.machine.kasan.enabled:
                vm.machine.kasan.vmalloc_area(p, size, area.size)
            return p
    n = vm.vmalloc_node_range(size, 1, vm.VMALLOC_START, vm.VMALLOC_END, flags,
                              PAGE_KERNEL, 0, NUMA_NO_NODE, frame)
    if not n:
        return 0
    if p:
        access.memcpy(n, p, old_size)
        vfree(p)
    return n


vrealloc = alloc_hooks(vrealloc_noprof)
