"""Emulation of mm/highmem.c: persistent kmaps (PKMAP) and CPU-local kmaps.

Highmem pages have no permanent kernel mapping; each function here maps one page of
machine RAM into a window slot with a real ``mmap`` of the RAM file, so aliasing with
every other mapping of the page is real. On a machine without highmem (x86_64) they
return ``page_address()`` and map nothing, as the kernel does.

``kmap``: ``LAST_PKMAP`` global slots, refcounted per page, recycled lazily by
``flush_all_zero_pkmaps()`` when the scan wraps; a task sleeps when every slot is in
use. ``kmap_local_page``/``kmap_atomic``: a per-task stack (``current->kmap_ctrl``) of
fixmap slots numbered per CPU, ``KM_MAX_IDX`` deep, unmapped in strict LIFO order.

Not emulated: TLB flushes (the host MMU is coherent), ``CONFIG_DEBUG_KMAP_LOCAL``
guard slots, ``kmap_high_get``.
"""
from __future__ import annotations

import numpy as np

from . import bug, sched, spinlock, vmem
from .current import current, current_on
from .page import PageHighMem, _memmap_of, page_address
from .page_types import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from .wait import DEFINE_WAIT, WaitQueueHead, add_wait_queue, remove_wait_queue

KM_MAX_IDX = 16  # asm-generic/kmap_size.h without CONFIG_DEBUG_KMAP_LOCAL
KM_INCR = 1


class Highmem:
    """The PKMAP window and kmap_local fixmap slots of one highmem machine."""

    def __init__(self, machine, pkmap_base: int, last_pkmap: int, fixmap_start: int):
        space = machine.space
        self.machine = machine
        self.LAST_PKMAP = last_pkmap
        self.LAST_PKMAP_MASK = last_pkmap - 1
        self.PKMAP_BASE = pkmap_base
        self.pkmap = space.add_window(pkmap_base, last_pkmap, "pkmap")
        nr_fix = KM_MAX_IDX * len(machine.sched.cpus)
        self.fixmap = space.add_window(fixmap_start, nr_fix, "fixmap kmap_local")
        self.FIXADDR_TOP = fixmap_start + (nr_fix - 1) * PAGE_SIZE  # fix index 0
        self.pkmap_count = np.zeros(last_pkmap, dtype=np.int64)
        self.last_pkmap_nr = 0
        self.page_address_map: dict[int, int] = {}  # page_address_htable
        self.kmap_lock = spinlock.SpinLock()
        self.pkmap_map_wait = WaitQueueHead()

    # ------------------------------------------------------------ PKMAP

    def PKMAP_ADDR(self, nr: int) -> int:
        return self.PKMAP_BASE + (nr << PAGE_SHIFT)

    def PKMAP_NR(self, vaddr: int) -> int:
        return (vaddr - self.PKMAP_BASE) >> PAGE_SHIFT

    def flush_all_zero_pkmaps(self) -> None:
        """Unmap every slot nobody uses (count 1) and forget its page's address."""
        space = self.machine.space
        for nr in np.flatnonzero(self.pkmap_count == 1):
            self.pkmap_count[nr] = 0
            vaddr = self.PKMAP_ADDR(int(nr))
            pfn = space.pte_clear(self.pkmap, vaddr)
            bug.BUG_ON(pfn < 0)  # a slot in use must have a PTE
            self.page_address_map.pop(self.machine.memmap.pfn_to_page(pfn), None)

    def map_new_virtual(self, page: int) -> int:
        """Find a free PKMAP slot for ``page``, sleeping while none is free.

        Called and returns with ``kmap_lock`` held.
        """
        while True:
            count = self.LAST_PKMAP
            while True:
                self.last_pkmap_nr = (self.last_pkmap_nr + 1) & self.LAST_PKMAP_MASK
                if self.last_pkmap_nr == 0:
                    self.flush_all_zero_pkmaps()
                    count = self.LAST_PKMAP
                if self.pkmap_count[self.last_pkmap_nr] == 0:
                    return self._set_slot(self.last_pkmap_nr, page)
                count -= 1
                if count == 0:
                    break
            # Every slot is busy: sleep until kunmap() frees one.
            wait = DEFINE_WAIT()
            sched.set_current_state(sched.TASK_UNINTERRUPTIBLE)
            add_wait_queue(self.pkmap_map_wait, wait)
            self.kmap_lock.unlock()
            try:
                sched.schedule()
            finally:
                remove_wait_queue(self.pkmap_map_wait, wait)
                self.kmap_lock.lock()
            # Somebody else may have mapped the page while we slept.
            vaddr = self.page_address_map.get(page)
            if vaddr:
                return vaddr

    def _set_slot(self, nr: int, page: int) -> int:
        vaddr = self.PKMAP_ADDR(nr)
        pfn = self.machine.memmap.page_to_pfn(page)
        self.machine.space.set_pte(self.pkmap, vaddr, pfn, self.machine.ram.fd)
        self.pkmap_count[nr] = 1
        self.page_address_map[page] = vaddr
        return vaddr

    def kmap_high(self, page: int) -> int:
        self.kmap_lock.lock()
        try:
            vaddr = self.page_address_map.get(page) or self.map_new_virtual(page)
            nr = self.PKMAP_NR(vaddr)
            self.pkmap_count[nr] += 1
            bug.BUG_ON(self.pkmap_count[nr] < 2)
        finally:
            self.kmap_lock.unlock()
        return vaddr

    def kunmap_high(self, page: int) -> None:
        self.kmap_lock.lock()
        try:
            vaddr = self.page_address_map.get(page, 0)
            bug.BUG_ON(not vaddr)
            nr = self.PKMAP_NR(vaddr)
            self.pkmap_count[nr] -= 1
            # A count may never reach 0 here: 0 means "unmapped and flushed".
            bug.BUG_ON(self.pkmap_count[nr] == 0)
            need_wakeup = self.pkmap_count[nr] == 1 and self.pkmap_map_wait.active()
        finally:
            self.kmap_lock.unlock()
        if need_wakeup:
            self.pkmap_map_wait.wake_up()

    # ------------------------------------------------------------ kmap_local

    def fix_to_virt(self, idx: int) -> int:
        """``__fix_to_virt()``: fixmap indices grow downwards from ``FIXADDR_TOP``."""
        return self.FIXADDR_TOP - (idx << PAGE_SHIFT)

    def slot_addr(self, task, slot: int) -> int:
        return self.fix_to_virt(slot + KM_MAX_IDX * task.cpu.id)

    def is_kmap_local(self, addr: int) -> bool:
        return addr in self.fixmap

    def kmap_local_pfn(self, task, pfn: int, where: str) -> int:
        """``__kmap_local_pfn_prot()``: push a slot on ``task``'s kmap_local stack."""
        # BUG before touching any state, so the oops leaves the task consistent.
        bug.BUG_ON(task.kmap_idx + KM_INCR >= KM_MAX_IDX)
        bug.WARN_ON_ONCE(sched.in_hardirq() and not task.irqs_off)
        sched.migrate_disable()
        sched.preempt_disable()
        task.kmap_idx += KM_INCR
        vaddr = self.slot_addr(task, task.kmap_idx - 1)
        bug.BUG_ON(self.fixmap.ptes[(vaddr - self.fixmap.start) >> PAGE_SHIFT] >= 0)
        self.machine.space.set_pte(self.fixmap, vaddr, pfn, self.machine.ram.fd, where)
        sched.preempt_enable()
        return vaddr

    def kunmap_local_indexed(self, task, addr: int) -> None:
        """Pop the top of ``task``'s kmap_local stack, which must map ``addr``."""
        slot = task.kmap_idx - 1
        top = self.slot_addr(task, slot) if slot >= 0 else 0
        if addr & PAGE_MASK != top:
            bug.WARN_ONCE(True, self._lifo_message(task, addr, top))
        bug.BUG_ON(slot < 0)  # popping an empty stack
        sched.preempt_disable()
        self.machine.space.pte_clear(self.fixmap, top)  # the top slot, whatever addr was
        task.kmap_idx -= KM_INCR
        sched.preempt_enable()
        sched.migrate_enable()

    def _lifo_message(self, task, addr: int, top: int) -> str:
        if top == 0:
            return (f"kunmap_local({addr:#x}): CPU {task.cpu.id}'s kmap_local stack of "
                    f"{task.comm}/{task.pid} is empty")
        where = self.fixmap.mapped_at.get(top, "?")
        return (f"kunmap_local({addr:#x}): not the top of CPU {task.cpu.id}'s kmap_local "
                f"stack (top is {top:#x}, mapped at {where}); unmap in reverse order")

    def task_exit(self, task) -> None:
        """A task may not die holding kmap_local slots: warn and tear them down."""
        if task.kmap_idx:
            bug.WARN(True, f"{task.comm}/{task.pid} exited holding {task.kmap_idx} "
                           "kmap_local mapping(s)")
            while task.kmap_idx:
                self.kunmap_local_indexed(task, self.slot_addr(task, task.kmap_idx - 1))


# ---------------------------------------------------------------- the API

def _task_and_highmem(addr: int):
    machine = vmem.space_of(addr).machine
    task = current_on(machine)
    if task is None:
        raise bug.MachineError(f"this thread is not a task of machine {machine.name!r}")
    return task, machine.highmem


def kmap(page: int) -> int:
    """``kmap(page)``: a mapping valid everywhere until :func:`kunmap`; may sleep.

    :param page: ``struct page *``
    :return: ``void *``
    """
    sched.might_sleep()
    task, hm = _task_and_highmem(page)
    if hm is None or not PageHighMem(page):
        return page_address(page)
    return hm.kmap_high(page)


def kunmap(page: int) -> None:
    """``kunmap(page)``: drop one :func:`kmap` reference of ``page``."""
    sched.might_sleep()
    task, hm = _task_and_highmem(page)
    if hm is not None and PageHighMem(page):
        hm.kunmap_high(page)


def kmap_flush_unused() -> None:
    """``kmap_flush_unused()``: unmap every idle PKMAP slot now."""
    hm = current().machine.highmem
    if hm is not None:
        hm.kmap_lock.lock()
        try:
            hm.flush_all_zero_pkmaps()
        finally:
            hm.kmap_lock.unlock()


def _kmap_local(page: int, frame) -> int:
    """``__kmap_local_page_prot()``: a slot for highmem, ``page_address()`` otherwise."""
    task, hm = _task_and_highmem(page)
    pfn = _memmap_of(page).page_to_pfn(page)
    if hm is None or not PageHighMem(page):
        return page_address(page)
    return hm.kmap_local_pfn(task, pfn, bug.location(frame))


def kmap_local_page(page: int) -> int:
    """Map ``page`` into the next slot of this CPU's kmap_local stack.

    :param page: ``struct page *``
    :return: ``void *`` — valid in this task only, until the matching
        :func:`kunmap_local`, which must be called in reverse order of mapping.
    """
    return _kmap_local(page, bug.caller())


def kunmap_local(addr: int) -> None:
    """``kunmap_local(addr)``: unmap the top kmap_local slot (``addr`` must be it).

    :param addr: ``void *`` returned by :func:`kmap_local_page`
    """
    task, hm = _task_and_highmem(addr)
    if hm is None or not hm.is_kmap_local(addr):
        # A lowmem page_address(): nothing was pushed, nothing to pop.
        bug.WARN_ON_ONCE(addr < task.machine.memmap.page_offset)
        return
    hm.kunmap_local_indexed(task, addr)


def kmap_atomic(page: int) -> int:
    """Deprecated ``kmap_atomic(page)``: :func:`kmap_local_page` that also disables
    preemption and page faults until :func:`kunmap_atomic`."""
    sched.preempt_disable()
    sched.pagefault_disable()
    try:
        return _kmap_local(page, bug.caller())
    except BaseException:  # the task did not get a mapping: leave it as it was
        sched.pagefault_enable()
        sched.preempt_enable()
        raise


def kunmap_atomic(addr: int) -> None:
    """``kunmap_atomic(addr)``: takes the mapped address, never a ``struct page *``."""
    task, hm = _task_and_highmem(addr)
    memmap = task.machine.memmap
    if memmap.start <= addr < memmap.end:
        raise TypeError(f"kunmap_atomic({addr:#x}): that is a struct page *; pass the "
                        "address kmap_atomic() returned")
    if hm is not None and hm.is_kmap_local(addr):
        hm.kunmap_local_indexed(task, addr)
    sched.pagefault_enable()
    sched.preempt_enable()
