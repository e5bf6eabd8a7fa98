"""Port of mm/mempool.c (newest behaviour: 6.19 with the 7.0 fixes), function for
function and in the same order, operating on emulated memory as the kernel does.

``struct mempool`` and its element array live in the machine's memory (kmalloc'ed);
every access to them goes through hwemu's instrumented accessors, so KASAN sees them.
Elements are raw pointers (``void *``) or ``struct page *`` for page pools. Callbacks
are function pointers: :func:`fnptr` gives any Python callable a stable one, and the
stock callbacks are recognised by identity, as the kernel compares ``pool->alloc``.

Not emulated: memory allocation profiling (the ``_noprof`` names and their wrappers
are the same functions; ``alloc_hooks()`` records nothing), kmemleak_update_trace().
"""
from __future__ import annotations

import ctypes
import struct
import sys
from typing import Any

from hwemu import bug, sched, spinlock, vmem
from hwemu.access import load, memset, read_bytes, store, write_bytes
from hwemu.alloc_tag import return_address
from hwemu.current import current, current_on, swap
from hwemu.errors import MachineError
from hwemu.fault_inject import FAULT_NOWARN, should_fail_ex
from hwemu.gfp import (GFP_KERNEL, GFP_NOWAIT, __GFP_DIRECT_RECLAIM, __GFP_IO, __GFP_NOMEMALLOC,
                       __GFP_NORETRY, __GFP_NOWARN, __GFP_ZERO)
from hwemu.highmem import kmap_local_page, kunmap_local
from hwemu.jump_label import KASAN, SLUB_DEBUG
from hwemu.kasan import (kasan_mempool_poison_object, kasan_mempool_poison_pages,
                         kasan_mempool_unpoison_object, kasan_mempool_unpoison_pages)
from hwemu.mmzone import NUMA_NO_NODE
from hwemu.page import nth_page, page_address
from hwemu.page_alloc import __free_pages, alloc_pages_noprof
from hwemu.page_types import PAGE_SIZE
from hwemu.printk import KERN_ERR, KERN_INFO
from hwemu.slab import (kfree, kmalloc_array, kmalloc_array_node_noprof, kmalloc_node_noprof,
                        kmalloc_noprof, kmem_cache_alloc_noprof, kmem_cache_free, kmem_cache_size)
from hwemu.spinlock import SPINLOCK_T_SIZE
from hwemu.wait import (DEFINE_WAIT, WAIT_QUEUE_HEAD_T_SIZE, finish_wait, init_waitqueue_head,
                        prepare_to_wait, wake_up, wq_has_sleeper)

from .stats import forget, start, stats_of

POISON_INUSE, POISON_FREE, POISON_END = 0x5A, 0x6B, 0xA5
ENOMEM = 12
HZ_WAIT = 5   # mempool_alloc_from_pool() sleeps at most 5 * HZ


class struct_mempool(ctypes.Structure):
    """``struct mempool`` (``mempool_t``), 64-bit layout: the one description of it."""
    _fields_ = [
        ("lock", ctypes.c_uint8 * SPINLOCK_T_SIZE),          # spinlock_t
        ("min_nr", ctypes.c_int32),
        ("curr_nr", ctypes.c_int32),
        ("elements", ctypes.c_uint64),    # void **
        ("pool_data", ctypes.c_uint64),   # void *
        ("alloc", ctypes.c_uint64),       # mempool_alloc_t *
        ("free", ctypes.c_uint64),        # mempool_free_t *
        ("wait", ctypes.c_uint8 * WAIT_QUEUE_HEAD_T_SIZE),   # wait_queue_head_t
    ]


SIZEOF_MEMPOOL = ctypes.sizeof(struct_mempool)
SIZEOF_PTR = struct_mempool.elements.size   # sizeof(void *): elements[i] is one


# ---------------------------------------------------------------- function pointers

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p)
_FN_BY_PTR: dict[int, object] = {}
_PTR_BY_FN: dict[object, int] = {}
_THUNKS: list = []


def fnptr(fn) -> int:
    """A stable function pointer for the Python callable ``fn`` (0 for None).

    The pointer is a real ctypes thunk address; calls made through a pool go straight
    to ``fn`` (looked up by the pointer), not through the thunk.
    """
    if fn is None:
        return 0
    ptr = _PTR_BY_FN.get(fn)
    if ptr is None:
        thunk = _CALLBACK(lambda *a: None)   # an address to stand for fn
        _THUNKS.append(thunk)
        ptr = ctypes.cast(thunk, ctypes.c_void_p).value or 0
        _PTR_BY_FN[fn], _FN_BY_PTR[ptr] = ptr, fn
    return ptr


def fn_of(ptr: int):
    """The Python callable behind function pointer ``ptr``."""
    fn = _FN_BY_PTR.get(ptr)
    if fn is None:
        raise bug.AddressError(f"{ptr:#x} is not a function pointer hwemu knows")
    return fn


# ---------------------------------------------------------------- struct access

_CODES: dict[Any, str] = {ctypes.c_int32: "i", ctypes.c_uint32: "I", ctypes.c_uint64: "Q"}
# Field name -> (offset, the struct of its value), from struct_mempool.
_FIELD = {name: (getattr(struct_mempool, name).offset,
                 struct.Struct("<" + _CODES[ctype]))
          for name, ctype, *_ in struct_mempool._fields_ if ctype in _CODES}


def _struct_of(first: str, last: str) -> struct.Struct:
    """The format of the fields ``first``..``last`` as they lie in memory, padding
    included."""
    names = [field[0] for field in struct_mempool._fields_]
    fmt, at = "<", getattr(struct_mempool, first).offset
    for name, ctype, *_ in struct_mempool._fields_[names.index(first):names.index(last) + 1]:
        offset = getattr(struct_mempool, name).offset
        if offset > at:   # the compiler's padding before an aligned field
            fmt += f"{offset - at}x"
        fmt += _CODES[ctype]
        at = offset + ctypes.sizeof(ctype)
    return struct.Struct(fmt)


_FIELDS = _struct_of("min_nr", "free")
_COUNTS = _struct_of("min_nr", "curr_nr")
_RESERVE = _struct_of("min_nr", "elements")
MIN_NR, CURR_NR = _FIELD["min_nr"][0], _FIELD["curr_nr"][0]


def _fields(pool: int) -> tuple[int, int, int, int, int, int]:
    """One checked read of the pool's fields after the lock: ``(min_nr, curr_nr,
    elements, pool_data, alloc, free)``."""
    return _FIELDS.unpack(read_bytes(pool + MIN_NR, _FIELDS.size))


def _get(pool: int, field: str) -> int:
    """``pool->field``, through the checked accessors."""
    offset, fmt = _FIELD[field]
    return fmt.unpack(read_bytes(pool + offset, fmt.size))[0]


def _set(pool: int, field: str, value: int) -> None:
    """``pool->field = value``, converted to the field's C type as an assignment
    converts it (``(void *)(long)-1`` is all ones)."""
    offset, fmt = _FIELD[field]
    bits = fmt.size * 8
    value &= (1 << bits) - 1
    if fmt.format[-1] == "i" and value >> (bits - 1):
        value -= 1 << bits
    write_bytes(pool + offset, fmt.pack(value))


LOCK, WAIT = struct_mempool.lock.offset, struct_mempool.wait.offset


def _lock(pool: int) -> int:
    return pool + LOCK


def _wait(pool: int) -> int:
    return pool + WAIT


# ---------------------------------------------------------------- debug poisoning

def _slub_debug_on(pool: int) -> bool:
    """``CONFIG_SLUB_DEBUG_ON`` and not ``kasan_enabled()`` (KASAN keeps metadata in
    freed objects) on the machine of ``pool``; callers test the static key first."""
    return vmem.space_of(pool).machine.slub_debug_on


def poison_error(pool: int, element: int, size: int, byte: int) -> None:
    """Report a reserved element whose poison was overwritten (no BUG)."""
    nr = _get(pool, "curr_nr")
    machine = current().machine
    width = machine.BITS_PER_LONG // 8
    start = max(byte - width, 0)
    end = min(byte + width, size)
    data = read_bytes(element + start, end - start)
    text = ("BUG: mempool element poison mismatch\n"
            f"Mempool {pool:016x} size {size}\n"
            f" nr={nr} @ {element:016x}: {'... ' if start > 0 else ''}0x"
            + "".join(f"{b:x} " for b in data) + ("..." if end < size else ""))
    machine.log.printk(text, KERN_ERR)
    text += "\n" + bug.dump_stack(machine, current(), sys._getframe(1))
    machine.warnings.append(text)


def __check_element(pool: int, element: int, size: int) -> None:
    data = read_bytes(element, size)
    for i, b in enumerate(data):
        if b != (POISON_END if i == size - 1 else POISON_FREE):
            poison_error(pool, element, size, i)
            return
    memset(element, POISON_INUSE, size)


def check_element(pool: int, element: int) -> None:
    """Verify and clear the poison of an element leaving the reserve."""
    if not _slub_debug_on(pool):
        return
    free = _get(pool, "free")
    pool_data = _get(pool, "pool_data")
    if free == MEMPOOL_FREE_SLAB:
        __check_element(pool, element, kmem_cache_size(pool_data))
    elif free == MEMPOOL_KFREE:
        __check_element(pool, element, pool_data)
    elif free == MEMPOOL_FREE_PAGES:
        _each_page(element, pool_data, lambda addr: __check_element(pool, addr, PAGE_SIZE),
                   lambda addr, n: __check_element(pool, addr, n))


def __poison_element(element: int, size: int) -> None:
    memset(element, POISON_FREE, (size - 1) & current().machine.SIZE_MAX)   # size_t
    store(element + size - 1, 1, POISON_END)


def poison_element(pool: int, element: int) -> None:
    """Fill an element entering the reserve with ``POISON_FREE`` and ``POISON_END``."""
    if not _slub_debug_on(pool):
        return
    alloc = _get(pool, "alloc")
    pool_data = _get(pool, "pool_data")
    if alloc == MEMPOOL_ALLOC_SLAB:
        __poison_element(element, kmem_cache_size(pool_data))
    elif alloc == MEMPOOL_KMALLOC:
        __poison_element(element, pool_data)
    elif alloc == MEMPOOL_ALLOC_PAGES:
        _each_page(element, pool_data, lambda addr: __poison_element(addr, PAGE_SIZE),
                   __poison_element)


def _each_page(page: int, order: int, per_page, whole) -> None:
    """Run ``per_page(addr)`` on each page through ``kmap_local_page`` (a HIGHMEM
    kernel: one page mapped at a time), or ``whole(addr, size)`` on the block."""
    if current().machine.highmem is not None:
        for i in range(1 << order):
            addr = kmap_local_page(nth_page(page, i))
            try:
                per_page(addr)
            finally:
                kunmap_local(addr)
    else:
        whole(page_address(page), PAGE_SIZE << order)


# ---------------------------------------------------------------- KASAN

def kasan_poison_element(pool: int, element: int) -> bool:
    alloc, pool_data = _get(pool, "alloc"), _get(pool, "pool_data")
    # The hook and add_element() are inlined into their caller (mempool_free_bulk(),
    # mempool_init_node(), mempool_resize()): _RET_IP_ is where that caller returns to.
    ip = sys._getframe(3)
    if alloc in (MEMPOOL_ALLOC_SLAB, MEMPOOL_KMALLOC):
        return kasan_mempool_poison_object(element, ip)
    if alloc == MEMPOOL_ALLOC_PAGES:
        return kasan_mempool_poison_pages(element, pool_data, ip)
    return True


def kasan_unpoison_element(pool: int, element: int) -> None:
    alloc, pool_data = _get(pool, "alloc"), _get(pool, "pool_data")
    if alloc == MEMPOOL_KMALLOC:
        kasan_mempool_unpoison_object(element, pool_data)
    elif alloc == MEMPOOL_ALLOC_SLAB:
        kasan_mempool_unpoison_object(element, kmem_cache_size(pool_data))
    elif alloc == MEMPOOL_ALLOC_PAGES:
        kasan_mempool_unpoison_pages(element, pool_data)


# ---------------------------------------------------------------- the reserve

def add_element(pool: int, element: int) -> None:
    """Push ``element`` on the reserve (pool lock held); KASAN may refuse it."""
    min_nr, curr_nr, elements = _RESERVE.unpack(read_bytes(pool + MIN_NR, _RESERVE.size))
    if min_nr != 0 and curr_nr >= min_nr:   # BUG_ON()
        bug.BUG()
    if SLUB_DEBUG.enabled:
        poison_element(pool, element)
    if not KASAN.enabled or kasan_poison_element(pool, element):
        store(elements + SIZEOF_PTR * curr_nr, SIZEOF_PTR, element)
        store(pool + CURR_NR, 4, curr_nr + 1)
    else:
        stats_of(pool).kasan_dropped += 1


def remove_element(pool: int) -> int:
    """Pop the most recently added element (pool lock held)."""
    _, curr_nr, elements = _RESERVE.unpack(read_bytes(pool + MIN_NR, _RESERVE.size))
    curr_nr -= 1
    if curr_nr < 0:   # BUG_ON()
        bug.BUG()
    store(pool + CURR_NR, 4, curr_nr)
    element = load(elements + SIZEOF_PTR * curr_nr, SIZEOF_PTR)
    if KASAN.enabled:
        kasan_unpoison_element(pool, element)
    if SLUB_DEBUG.enabled:
        check_element(pool, element)
    return element


# ---------------------------------------------------------------- lifetime

def mempool_exit(pool: int) -> None:
    """``mempool_exit()``: free the reserve and the array of a pool (no lock taken)."""
    if _foreign(pool, current()):
        return _on_machine_of(pool, mempool_exit, pool)
    while _get(pool, "curr_nr"):
        element = remove_element(pool)
        fn_of(_get(pool, "free"))(element, _get(pool, "pool_data"))
    kfree(_get(pool, "elements"))
    _set(pool, "elements", 0)
    forget(pool)


def mempool_destroy(pool: int) -> None:
    """``mempool_destroy()``: :func:`mempool_exit` and free the struct; NULL is fine."""
    if not pool:
        return
    if _foreign(pool, current()):
        return _on_machine_of(pool, mempool_destroy, pool)
    mempool_exit(pool)
    kfree(pool)


def mempool_init_node(pool: int, min_nr: int, alloc_fn, free_fn, pool_data: int,
                      gfp_mask: int, node_id: int) -> int:
    """``mempool_init_node()`` on a zeroed ``struct mempool *pool``: 0 or ``-ENOMEM``.

    ``alloc_fn``/``free_fn`` are function pointers (ints) or Python callables.
    """
    if _foreign(pool, current()):
        return _on_machine_of(pool, mempool_init_node, pool, min_nr, alloc_fn, free_fn,
                              pool_data, gfp_mask, node_id)
    spinlock.spin_lock_init(_lock(pool))
    stats = start(pool)
    _set(pool, "min_nr", min_nr)
    _set(pool, "pool_data", pool_data)
    _set(pool, "alloc", _as_ptr(alloc_fn))
    _set(pool, "free", _as_ptr(free_fn))
    init_waitqueue_head(_wait(pool))
    elements = kmalloc_array_node_noprof(max(1, min_nr), SIZEOF_PTR, gfp_mask, node_id)
    if not elements:
        return -ENOMEM
    _set(pool, "elements", elements)
    alloc = fn_of(_get(pool, "alloc"))
    while _get(pool, "curr_nr") < max(1, min_nr):   # preallocate, as if freed
        element = alloc(gfp_mask, pool_data)
        if not element:
            mempool_exit(pool)
            return -ENOMEM
        add_element(pool, element)
        stats.preallocated += 1
    return 0


def _on_machine_of(pool: int, fn, *args):
    """``fn(*args)`` with ``current`` switched to this context's task on the machine
    ``pool`` lies in. A thread that booted several machines runs as a task of the
    newest; a pool of an older one must still allocate and free there."""
    machine = vmem.space_of(pool).machine
    task = current_on(machine)
    if task is None:
        raise MachineError(f"pool {pool:#x} is on machine {machine.name!r}, which this "
                           "thread is no task of")
    saved = swap(task)
    try:
        return fn(*args)
    finally:
        swap(saved)


def _foreign(pool: int, task) -> bool:
    """Whether ``pool`` lies outside the machine of ``task``."""
    space = task.machine.space
    return not space.base <= pool < space.end


def _as_ptr(fn) -> int:
    return fn if isinstance(fn, int) else fnptr(fn)


def mempool_init_noprof(pool: int, min_nr: int, alloc_fn, free_fn, pool_data: int) -> int:
    """``mempool_init()``: :func:`mempool_init_node` with ``GFP_KERNEL`` on any node."""
    return mempool_init_node(pool, min_nr, alloc_fn, free_fn, pool_data, GFP_KERNEL,
                             NUMA_NO_NODE)


def mempool_create_node_noprof(min_nr: int, alloc_fn, free_fn, pool_data: int,
                               gfp_mask: int, node_id: int) -> int:
    """``mempool_create_node()``: a new ``struct mempool *``, or 0."""
    pool = kmalloc_node_noprof(SIZEOF_MEMPOOL, gfp_mask | __GFP_ZERO, node_id)
    if not pool:
        return 0
    if mempool_init_node(pool, min_nr, alloc_fn, free_fn, pool_data, gfp_mask, node_id):
        kfree(pool)
        return 0
    return pool


def mempool_create_noprof(min_nr: int, alloc_fn, free_fn, pool_data: int) -> int:
    """``mempool_create()``: ``GFP_KERNEL`` on any node."""
    return mempool_create_node_noprof(min_nr, alloc_fn, free_fn, pool_data,
                                      GFP_KERNEL, NUMA_NO_NODE)


def mempool_resize(pool: int, new_min_nr: int) -> int:
    """``mempool_resize()``: change ``min_nr``; shrink frees the surplus, grow refills
    with ``GFP_KERNEL`` (a refill failure still returns 0)."""
    if _foreign(pool, current()):
        return _on_machine_of(pool, mempool_resize, pool, new_min_nr)
    bug.BUG_ON(new_min_nr <= 0)
    sched.might_sleep()
    lock = _lock(pool)
    flags = spinlock.spin_lock_irqsave(lock)
    if new_min_nr <= _get(pool, "min_nr"):
        while new_min_nr < _get(pool, "curr_nr"):
            element = remove_element(pool)
            spinlock.spin_unlock_irqrestore(lock, flags)
            fn_of(_get(pool, "free"))(element, _get(pool, "pool_data"))
            flags = spinlock.spin_lock_irqsave(lock)
        _set(pool, "min_nr", new_min_nr)
        spinlock.spin_unlock_irqrestore(lock, flags)
        return 0
    spinlock.spin_unlock_irqrestore(lock, flags)
    new_elements = kmalloc_array(new_min_nr, SIZEOF_PTR, GFP_KERNEL)   # profiled, as in mm/
    if not new_elements:
        return -ENOMEM
    flags = spinlock.spin_lock_irqsave(lock)
    if new_min_nr <= _get(pool, "min_nr"):   # raced with another resize
        spinlock.spin_unlock_irqrestore(lock, flags)
        kfree(new_elements)
        return 0
    curr_nr = _get(pool, "curr_nr")
    write_bytes(new_elements, read_bytes(_get(pool, "elements"), SIZEOF_PTR * curr_nr))
    kfree(_get(pool, "elements"))
    _set(pool, "elements", new_elements)
    _set(pool, "min_nr", new_min_nr)
    while _get(pool, "curr_nr") < _get(pool, "min_nr"):
        spinlock.spin_unlock_irqrestore(lock, flags)
        element = fn_of(_get(pool, "alloc"))(GFP_KERNEL, _get(pool, "pool_data"))
        if not element:
            return 0
        flags = spinlock.spin_lock_irqsave(lock)
        if _get(pool, "curr_nr") < _get(pool, "min_nr"):
            add_element(pool, element)
            stats_of(pool).preallocated += 1
        else:
            spinlock.spin_unlock_irqrestore(lock, flags)
            fn_of(_get(pool, "free"))(element, _get(pool, "pool_data"))   # raced
            return 0
    spinlock.spin_unlock_irqrestore(lock, flags)
    return 0


# ---------------------------------------------------------------- allocation

def mempool_adjust_gfp(gfp_mask: int) -> tuple[int, int]:
    """``mempool_adjust_gfp(&gfp_mask)``: ``(gfp_mask, gfp_temp)``: the caller's mask
    with ``NOMEMALLOC|NORETRY|NOWARN`` added, and that without ``DIRECT_RECLAIM|IO``
    for the first pass."""
    gfp_mask |= __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN
    return gfp_mask, gfp_mask & ~(__GFP_DIRECT_RECLAIM | __GFP_IO)


def mempool_alloc_from_pool(pool: int, elems: list, count: int, allocated: int,
                            gfp: int) -> int:
    """Fill every missing slot of ``elems`` from the reserve, all or nothing; returns
    the new ``allocated``. When the reserve is short and ``gfp`` may sleep, wait on the
    pool (at most 5 s) before returning. Counts what it took (``alloc_reserve``)."""
    task = current()
    lock = pool + LOCK
    flags = spinlock.task_lock_irqsave(lock, task)
    curr_nr = load(pool + CURR_NR, 4)
    if curr_nr < count - allocated:
        if gfp & __GFP_DIRECT_RECLAIM:
            wait = DEFINE_WAIT()
            # Queued before the lock is dropped: a free in between cannot be missed.
            prepare_to_wait(_wait(pool), wait, sched.TASK_UNINTERRUPTIBLE)
            spinlock.task_unlock_irqrestore(lock, flags, task)
            clock = task.machine.clock
            slept = clock.now_ns()
            # Wake up now and then: memory pressure may ease without any free.
            sched.io_schedule_timeout(HZ_WAIT * clock.hz)
            finish_wait(_wait(pool), wait)
            stats_of(pool).wait(clock.now_ns() - slept)
        else:
            spinlock.task_unlock_irqrestore(lock, flags, task)
        return allocated
    stats = stats_of(pool)
    stats.alloc_reserve += count - allocated
    stats.reserve_left(curr_nr - (count - allocated))
    while allocated < count:   # the 7.0 form: elems[0..allocated) are filled
        elems[allocated] = remove_element(pool)
        allocated += 1
    spinlock.task_unlock_irqrestore(lock, flags, task)
    # smp_wmb(): pairs with the smp_rmb() in mempool_free_bulk(); one task runs at a time.
    return allocated


def _fail(attr_name: str, task) -> bool:
    """``should_fail_ex(&fail_mempool_alloc*, 1, FAULT_NOWARN)`` and its message,
    which names the caller of the allocation function that calls this."""
    attr = getattr(task.machine.fault, attr_name)
    if not task.fail_nth and not attr.probability:   # what should_fail_ex() tests first
        return False
    if should_fail_ex(attr, 1, FAULT_NOWARN):
        caller = bug.symbol(return_address(2))
        task.machine.log.printk(f"forcing mempool usage for {caller}", KERN_INFO)
        return True
    return False


def _might_alloc(gfp_mask: int) -> None:
    if gfp_mask & __GFP_DIRECT_RECLAIM:
        sched.might_sleep()


def mempool_alloc_noprof(pool: int, gfp_mask: int) -> int:
    """``mempool_alloc()``: an element from ``alloc_fn``, else from the reserve.

    Never NULL when ``gfp_mask`` has ``__GFP_DIRECT_RECLAIM``: it waits for a free.
    """
    task = current()
    if _foreign(pool, task):
        return _on_machine_of(pool, mempool_alloc_noprof, pool, gfp_mask)
    gfp_mask, gfp_temp = mempool_adjust_gfp(gfp_mask)
    if gfp_mask & __GFP_ZERO:
        bug.WARN_ON_ONCE(True)   # VM_WARN_ON_ONCE(gfp_mask & __GFP_ZERO)
    _might_alloc(gfp_mask)
    *_, pool_data, alloc_ptr, _ = _fields(pool)
    alloc = fn_of(alloc_ptr)
    while True:
        element = 0 if _fail("fail_mempool_alloc", task) else alloc(gfp_temp, pool_data)
        if element:
            stats_of(pool).alloc_allocator += 1
            return element
        elems = [0]
        if not mempool_alloc_from_pool(pool, elems, 1, 0, gfp_temp):
            if gfp_temp != gfp_mask:   # the first pass used the reduced mask
                gfp_temp = gfp_mask
                continue
            if gfp_mask & __GFP_DIRECT_RECLAIM:
                continue   # mempool_alloc_from_pool() slept on pool->wait
            stats_of(pool).alloc_null += 1
            return 0
        return elems[0]


def mempool_alloc_bulk_noprof(pool: int, elems: list, count: int) -> int:
    """``mempool_alloc_bulk()`` (7.0 form): fill ``elems[0..count)``; always 0.

    ``GFP_KERNEL`` semantics; the reserve is used only when it can fill every missing
    slot at once.
    """
    if _foreign(pool, current()):
        return _on_machine_of(pool, mempool_alloc_bulk_noprof, pool, elems, count)
    gfp_mask, gfp_temp = mempool_adjust_gfp(GFP_KERNEL)
    bug.WARN_ON_ONCE(count > _get(pool, "min_nr"))   # VM_WARN_ON_ONCE
    _might_alloc(gfp_mask)
    alloc = fn_of(_get(pool, "alloc"))
    pool_data = _get(pool, "pool_data")
    stats = stats_of(pool)
    allocated = 0
    use_pool = _fail("fail_mempool_alloc_bulk", current())
    while True:
        while not use_pool and allocated < count:
            elems[allocated] = alloc(gfp_temp, pool_data)
            if not elems[allocated]:
                use_pool = True
                break
            allocated += 1
            stats.alloc_allocator += 1
        if not use_pool:
            return 0
        allocated = mempool_alloc_from_pool(pool, elems, count, allocated, gfp_temp)
        gfp_temp = gfp_mask
        use_pool = False


def mempool_alloc_preallocated(pool: int) -> int:
    """``mempool_alloc_preallocated()``: an element from the reserve only, or NULL;
    never sleeps, never calls ``alloc_fn``."""
    elems = [0]
    mempool_alloc_from_pool(pool, elems, 1, 0, GFP_NOWAIT)
    if not elems[0]:
        stats_of(pool).alloc_null += 1
    return elems[0]


# ---------------------------------------------------------------- freeing

def mempool_free_bulk(pool: int, elems: list, count: int) -> int:
    """``mempool_free_bulk()``: refill the reserve from the start of ``elems``; returns
    how many it took (the caller frees the rest through the allocator)."""
    freed, added = 0, False
    # smp_rmb() pairs with the smp_wmb() in mempool_alloc_from_pool(): we read a
    # curr_nr at least as new as the allocation of the element being freed.
    lock = pool + LOCK
    min_nr, curr_nr = _COUNTS.unpack(read_bytes(pool + MIN_NR, _COUNTS.size))
    if curr_nr < min_nr:   # lockless pre-check (READ_ONCE)
        task = current()
        flags = spinlock.task_lock_irqsave(lock, task)
        while freed < count:
            min_nr, curr_nr = _COUNTS.unpack(read_bytes(pool + MIN_NR, _COUNTS.size))
            if curr_nr >= min_nr:
                break
            add_element(pool, elems[freed])
            freed += 1
            added = True
        spinlock.task_unlock_irqrestore(lock, flags, task)
    elif min_nr == 0 and curr_nr == 0:   # a zero-minimum pool keeps one
        flags = spinlock.spin_lock_irqsave(lock)
        if _get(pool, "curr_nr") == 0:
            add_element(pool, elems[freed])
            freed += 1
            added = True
        spinlock.spin_unlock_irqrestore(lock, flags)
    if added and wq_has_sleeper(pool + WAIT):
        wake_up(pool + WAIT)
    if freed:
        stats_of(pool).free_reserve += freed
    return freed


def mempool_free(element: int, pool: int) -> None:
    """``mempool_free()``: into the reserve if it is short, else to ``free_fn``."""
    if element and not mempool_free_bulk(pool, [element], 1):
        _free_to_allocator(element, pool)


def _free_to_allocator(element: int, pool: int) -> None:
    """``pool->free(element, pool->pool_data)``, on the pool's machine."""
    if _foreign(pool, current()):
        return _on_machine_of(pool, _free_to_allocator, element, pool)
    *_, pool_data, _, free = _fields(pool)
    stats_of(pool).free_allocator += 1
    fn_of(free)(element, pool_data)


# ---------------------------------------------------------------- stock callbacks

def mempool_alloc_slab(gfp_mask: int, pool_data: int) -> int:
    """``void *mempool_alloc_slab(gfp_t, void *pool_data)``: pool_data is the cache."""
    cache = current().machine.slab.cache_of(pool_data, "mempool_alloc_slab")
    bug.BUG_ON(cache.ctor is not None)   # VM_BUG_ON: no ctors in slab pools
    return kmem_cache_alloc_noprof(pool_data, gfp_mask)


def mempool_free_slab(element: int, pool_data: int) -> None:
    kmem_cache_free(pool_data, element)


def mempool_kmalloc(gfp_mask: int, pool_data: int) -> int:
    """pool_data is the element size."""
    return kmalloc_noprof(pool_data, gfp_mask)


def mempool_kfree(element: int, pool_data: int) -> None:
    kfree(element)


def mempool_alloc_pages(gfp_mask: int, pool_data: int) -> int:
    """pool_data is the order; the element is a ``struct page *``."""
    return alloc_pages_noprof(gfp_mask, pool_data)


def mempool_free_pages(element: int, pool_data: int) -> None:
    __free_pages(element, pool_data)


MEMPOOL_ALLOC_SLAB = fnptr(mempool_alloc_slab)
MEMPOOL_FREE_SLAB = fnptr(mempool_free_slab)
MEMPOOL_KMALLOC = fnptr(mempool_kmalloc)
MEMPOOL_KFREE = fnptr(mempool_kfree)
MEMPOOL_ALLOC_PAGES = fnptr(mempool_alloc_pages)
MEMPOOL_FREE_PAGES = fnptr(mempool_free_pages)
