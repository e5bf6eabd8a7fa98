"""The Python side of kernel C's calls into hwemu (the table in :mod:`.calls`).

Each function here runs for a call from C, in the calling task, with the GIL held: it
is the same kernel function of hwemu that Python code calls, given ints. Kernel objects
that C hands over by address may live in emulated memory (a pool's lock, a slab
object) or in the module's own memory (a ``DEFINE_SPINLOCK`` in its data, a
``DEFINE_WAIT`` entry on its stack): the spinlock word is read and written by the
runtime in C wherever it is; wait queue heads must be in emulated memory.
"""
from __future__ import annotations

import sys
from typing import Any

from .. import bug as _bug
from .. import access, highmem, page, page_alloc, sched, slab, spinlock, util, wait
from .. import kasan as _kasan
from ..current import current
from ..kasan import (kasan_mempool_poison_object as _kasan_poison_object,
                     kasan_mempool_poison_pages as _kasan_poison_pages,
                     kasan_mempool_unpoison_object as _kasan_unpoison_object,
                     kasan_mempool_unpoison_pages as _kasan_unpoison_pages)
from ..printk import KERN_WARNING

_kasan.INTERNAL += (__name__,)
access.INTERNAL.add(__name__)

# Bound by hwemu.kbuild when it loads the runtime: its cffi ffi and lib, and the
# guarded call of a C function pointer.
rt: Any = None


def _str(p) -> str:
    return rt.ffi.string(p).decode("utf-8", "replace") if p != rt.ffi.NULL else ""


# ---------------------------------------------------------------- memory

# (Where the table's arguments are the kernel function's, the function itself.)
kmalloc = slab.kmalloc_node_noprof
kfree = slab.kfree
ksize = slab.ksize
kvmalloc = util.kvmalloc_node_noprof
kvfree = util.kvfree


def kmem_cache_create(name, size: int, align: int, flags: int, ctor: int) -> int:
    c_ctor = None
    if ctor:
        def c_ctor(obj: int) -> None:
            rt.call(ctor, obj)
    return slab.kmem_cache_create(_str(name), size, align, flags, c_ctor)


kmem_cache_destroy = slab.kmem_cache_destroy


kmem_cache_alloc = slab.kmem_cache_alloc_node_noprof
kmem_cache_free = slab.kmem_cache_free
kmem_cache_size = slab.kmem_cache_size


def alloc_pages(gfp: int, order: int, node: int) -> int:
    return page_alloc.alloc_pages_node_noprof(node, gfp, order)


free_pages = page_alloc.__free_pages
page_address = page.page_address
virt_to_page = page.virt_to_page
kmap_local_page = highmem.kmap_local_page
kunmap_local = highmem.kunmap_local
kmap_atomic = highmem.kmap_atomic
kunmap_atomic = highmem.kunmap_atomic


kasan_mempool_poison_object = _kasan_poison_object
kasan_mempool_unpoison_object = _kasan_unpoison_object
kasan_mempool_poison_pages = _kasan_poison_pages
kasan_mempool_unpoison_pages = _kasan_unpoison_pages


def check_access(addr: int, size: int, write: int, ip: int) -> None:
    """An instrumented access the runtime could not pass in C: hwemu's own checks, as
    for a Python access (KASAN reports; an unmapped address oopses), without the
    access, which C makes when this returns."""
    access._access(addr, size, bool(write), _nothing)


def _nothing(space, off: int) -> None:
    return None


GP_FAULT = 4   # fault()'s write flag for a general protection fault (runtime.c)


def fault(addr: int, write: int, ip: int) -> None:
    """A fault in C (``ip``, unwound to the call from Python already): the oops of a
    page fault, or of a general protection fault (a non-canonical pointer), raised."""
    task = current()
    with rt.symbols.faulted_at(ip):
        if write & GP_FAULT:
            raise _bug.gp_fault_report(task.machine, task, _c_frame())
        raise _bug.page_fault_report(task.machine, task, addr, bool(write), _c_frame(),
                                     "not-present page")


# ---------------------------------------------------------------- locking, scheduling

PLAIN, IRQ, IRQSAVE, BH = range(4)   # how C takes a lock (see spinlock.h)
SOFTIRQ_DISABLE_OFFSET = 2 * sched.SOFTIRQ_OFFSET   # local_bh_disable()


POINT_DONE, WORD_DONE = 0x10, 0x20   # what the runtime's fast path did (runtime.c)


def spin_lock(lock: int, how: int) -> int:
    """``spin_lock*()`` on the ``spinlock_t`` at ``lock``: a preemption point, the word
    (done by the runtime, anywhere), spinning while another task holds it."""
    task = current()
    if not how & POINT_DONE:
        task.machine.sched.point(task)
    how &= 3
    status = rt.lib.hw_word_trylock(lock, task.cpu.id, task.pid)
    if status:
        spinlock._spin(lock, task, status, rt.lib.hw_word_trylock, _lock_bug)
    flags = task.irqs_off
    if how in (IRQ, IRQSAVE):
        task.irqs_off = True
    task.preempt_count += SOFTIRQ_DISABLE_OFFSET if how == BH else sched.PREEMPT_OFFSET
    return int(flags)


def spin_unlock(lock: int, how: int, flags: int) -> None:
    task = current()
    if how & WORD_DONE:
        status = how >> 8
    else:
        status = rt.lib.hw_word_unlock(lock, task.cpu.id, task.pid)
    how &= 3
    if status:
        spinlock._unlocked_slow(lock, task, status, _lock_bug)
    task.preempt_count -= SOFTIRQ_DISABLE_OFFSET if how == BH else sched.PREEMPT_OFFSET
    if how == IRQ:
        task.irqs_off = False
    elif how == IRQSAVE:
        task.irqs_off = bool(flags)
    task.machine.sched.point(task)


def _lock_bug(lock: int, status: int) -> _bug.KernelBug:
    word = rt.ffi.cast("uint32_t *", lock)
    owner = rt.ffi.cast("uint64_t *", lock)[2]
    task = current()
    holder = task.machine.sched.tasks.get(owner) if owner != spinlock.OWNER_INIT else None
    cpu = word[2]
    return spinlock.spin_bug(None, spinlock._BUGS[status], word[1], lock, holder,
                             -1 if cpu == spinlock.OWNER_CPU_INIT else cpu)


def spin_lock_init(lock: int) -> None:
    rt.lib.hw_word_init(lock)


def preempt(how: int) -> None:
    task = current()
    if how == 0:
        task.machine.sched.point(task)
    elif how == 1:
        sched.preempt_disable()
    elif how == 2:
        sched.preempt_enable()
        task.machine.sched.point(task)
    else:
        task.irqs_off = how == 3


def task_info(what: int) -> int:
    task = current()
    return (task.pid, task.cpu.id, task.cpu.node, task.preempt_count, int(task.irqs_off),
            int(bool(task.preempt_count & sched.IRQ_COUNT_MASK)),
            int(bool(task.preempt_count & sched.HARDIRQ_MASK)),
            int(bool(task.preempt_count & sched.SOFTIRQ_MASK)))[what]


def schedule_timeout(timeout: int, io: int) -> int:
    timeout = min(timeout, sched.MAX_SCHEDULE_TIMEOUT)
    return sched.io_schedule_timeout(timeout) if io else sched.schedule_timeout(timeout)


msleep = sched.msleep
set_current_state = sched.set_current_state


def jiffies() -> int:
    return current().machine.clock.jiffies()


init_waitqueue_head = wait.init_waitqueue_head


def _entry(wait_addr: int, exclusive: bool = False) -> wait.WaitQueueEntry:
    """The hwemu entry of the ``struct wait_queue_entry`` at ``wait_addr`` (C's), made
    when it is first prepared; kept by its task until ``finish_wait()``."""
    task = current()
    entries = task.c_waits
    if entries is None:
        entries = task.c_waits = {}
    entry = entries.get(wait_addr)
    if entry is None:
        entry = entries[wait_addr] = wait.WaitQueueEntry(task, exclusive)
    return entry


def prepare_to_wait(wq: int, wait_addr: int, state: int, excl: int) -> None:
    wait.prepare_to_wait(wq, _entry(wait_addr, bool(excl)), state)


def finish_wait(wq: int, wait_addr: int) -> None:
    wait.finish_wait(wq, _entry(wait_addr))
    current().c_waits.pop(wait_addr, None)


def wake_up(wq: int, nr: int) -> int:
    if wait._empty(wq):
        sched.preempt_point()
        return 0
    return wait._waitqueue(wq).wake_up(nr)


# ---------------------------------------------------------------- reports

_CONT = -1


def printk(level: int, text) -> None:
    machine = current().machine
    line = _str(text)
    if level == _CONT:
        machine.log.cont(line)
    else:
        machine.log.printk(line, KERN_WARNING if level < 0 else level)


def bug(file, line: int) -> None:
    task = current()
    raise _bug.bug_report(task.machine, task, _c_frame())


def warn(file, line: int, text) -> None:
    task = current()
    message = _str(text) if text != rt.ffi.NULL else None
    _bug.warn_report(task.machine, task, _c_frame(), message)


def dump_stack() -> None:
    task = current()
    _bug.dump_stack(task.machine, task, _c_frame())


def panic(text) -> None:
    _bug.panic(_str(text).rstrip("\n"))


def might_sleep(file, line: int) -> None:
    sched.might_sleep()


def symbolize(addr: int, buf, size: int) -> int:
    name = rt.symbols.symbol(addr).encode()[:size - 1]
    rt.ffi.memmove(buf, name + b"\0", len(name) + 1)
    return len(name)


def _c_frame():
    """The frame that stands for the C code calling now (the entry of this call)."""
    frame = sys._getframe(2)
    while frame.f_code not in _bug.NATIVE_ENTRY and frame.f_back is not None:
        frame = frame.f_back
    return frame


# ---------------------------------------------------------------- fault injection

_ATTRS: list[str] = [""]   # id -> the debugfs name C bound a struct fault_attr to


def fault_attr_bind(name, attr: int) -> int:
    """``fault_create_debugfs_attr()``: C's ``struct fault_attr`` stands for the
    machine's attribute of that name (made with the kernel's defaults if new)."""
    _ATTRS.append(_str(name))
    return len(_ATTRS) - 1


def should_fail(attr_id: int, size: int, flags: int) -> int:
    from .. import fault_inject
    machine = current().machine
    name = _ATTRS[attr_id]
    attr = machine.fault.attrs.get(name)
    if attr is None:
        attr = machine.fault.attrs[name] = fault_inject.FaultAttr(
            machine, name, None, machine.fault.seed)
    return fault_inject.should_fail_ex(attr, size, flags)


# ---------------------------------------------------------------- profiling, interrupts

def alloc_tag_push(file, line: int, func) -> int:
    """``alloc_hooks()``: the C call site becomes current's tag; 1 if pushed."""
    task = current()
    tags = task.machine.alloc_tags
    if not tags.enabled:
        return 0
    if task.c_tags is None:
        task.c_tags = []
    task.c_tags.append(task.alloc_tag)
    task.alloc_tag = tags.tag_of(_bug.source_path(_str(file)), line, _str(func))
    return 1


def alloc_tag_pop(pushed: int) -> None:
    if pushed:
        task = current()
        task.alloc_tag = task.c_tags.pop()


def run_in_interrupt(fn: int, arg: int, softirq: int) -> int:
    return sched.run_in_interrupt(rt.call, fn, arg, softirq=bool(softirq))


# ---------------------------------------------------------------- the mempool API

# The stock callbacks in their order in the glue (build.py's _MEMPOOL_GLUE) and the
# mempool package's names for them.
STOCK = ("mempool_alloc_slab", "mempool_free_slab", "mempool_kmalloc", "mempool_kfree",
         "mempool_alloc_pages", "mempool_free_pages")
STOCK_FNS: dict[int, str] = {}   # a module's glue stock callback address -> its name


def _callback(fn: int, alloc: bool):
    """A pool callback from C, for the mempool package: a stock one by its name (its
    own implementation's stock callback stands in), any other a call of the C."""
    import mempool
    if not fn:
        return None
    name = STOCK_FNS.get(fn)
    if name is not None:
        return getattr(mempool, name)
    if alloc:
        return lambda gfp, data: rt.call(fn, gfp, data)
    return lambda element, data: rt.call(fn, element, data)


def mempool_create(min_nr: int, alloc_fn: int, free_fn: int, pool_data: int, gfp: int,
                   node: int) -> int:
    import mempool
    return mempool.mempool_create_node_noprof(min_nr, _callback(alloc_fn, True),
                                              _callback(free_fn, False), pool_data, gfp,
                                              node)


def mempool_init(pool: int, min_nr: int, alloc_fn: int, free_fn: int, pool_data: int,
                 gfp: int, node: int) -> int:
    import mempool
    return mempool.mempool_init_node(pool, min_nr, _callback(alloc_fn, True),
                                     _callback(free_fn, False), pool_data, gfp, node)


def _pool_call(name: str):
    def call(*args):
        import mempool
        return getattr(mempool, name)(*args)
    call.__name__ = name
    return call


mempool_exit = _pool_call("mempool_exit")
mempool_destroy = _pool_call("mempool_destroy")
mempool_resize = _pool_call("mempool_resize")
mempool_alloc = _pool_call("mempool_alloc_noprof")
mempool_alloc_preallocated = _pool_call("mempool_alloc_preallocated")
mempool_free = _pool_call("mempool_free")


def _elems(elems: int, count: int):
    return rt.ffi.cast("uintptr_t *", elems), count


def mempool_alloc_bulk(pool: int, elems: int, count: int) -> int:
    """``mempool_alloc_bulk_noprof()`` on a C array of ``count`` element pointers."""
    import mempool
    array, _ = _elems(elems, count)
    got = [array[i] for i in range(count)]
    ret = mempool.mempool_alloc_bulk_noprof(pool, got, count)
    for i in range(count):
        array[i] = got[i]
    return ret


def mempool_free_bulk(pool: int, elems: int, count: int) -> int:
    import mempool
    array, _ = _elems(elems, count)
    return mempool.mempool_free_bulk(pool, [array[i] for i in range(count)], count)


def mempool_stock(which: int, a: int, b: int) -> int:
    """A stock callback called from C directly: ``which`` of :data:`STOCK`."""
    import mempool
    return getattr(mempool, STOCK[which])(a, b) or 0


WL_STOPPING, WL_COUNT, WL_POOL, WL_ARG = range(4)   # hwemu/workload.h


def workload(what: int, name, n: int) -> int:
    """A C workload's view of its run (hwemu.runs.workloads.CustomTask)."""
    run = current().c_run
    if run is None:
        raise RuntimeError("hwemu/workload.h: called outside a run's C workload")
    if what == WL_STOPPING:
        return int(run.stopping())
    key = _str(name)
    if what == WL_COUNT:
        run.count(key, n)
        return 0
    if what == WL_POOL:
        if key not in run.pools:
            raise KeyError(f"hwemu_pool({key!r}): the run has pools {sorted(run.pools)}")
        return run.pools[key]
    value = run.args.get(key, n)
    return int(value)


# The calls are the kernel's functions seen from C: no frames of their own in stacks.
_bug.STACK_INLINE.update(f.__code__ for f in list(globals().values())
                         if getattr(f, "__module__", None) == __name__ and
                         hasattr(f, "__code__"))
