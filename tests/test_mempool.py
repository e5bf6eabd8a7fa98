"""Tests for the mempool port (mempool/_mempool.py) against the kernel's mm/mempool.c
(spec kernel-mm.md §1, §2, §3, §4.5, §9): creation and teardown, resize, the gfp masks
alloc_fn sees, the LIFO reserve, bulk allocation and freeing, zero-minimum pools, the
stock kmalloc/slab/page pools, waiting for a returned element, might_sleep, slub_debug
poisoning (x86_64 and i386 HIGHMEM), the KASAN mempool hooks, fault injection and a
concurrent stress run under memory pressure.

Every wait on another task has a timeout, so a broken port fails a test instead of
hanging it.
"""
import random
import re
import threading
from collections import Counter

import pytest
from helpers import wait_until

import hwemu
import mempool
from hwemu import (__GFP_HIGHMEM, __GFP_ZERO, GFP_ATOMIC, GFP_KERNEL, GFP_NOFS, GFP_NOIO,
                   GFP_NOWAIT, PAGE_SIZE)
from hwemu.kasan import expect_report
from hwemu.page import STRUCT_PAGE_SIZE
from mempool import (_mempool, mempool_alloc, mempool_alloc_bulk, mempool_alloc_preallocated,
                     mempool_create, mempool_create_node, mempool_destroy, mempool_exit,
                     mempool_free, mempool_free_bulk, mempool_init, mempool_init_node,
                     mempool_initialized, mempool_is_saturated, mempool_resize)

F = {name: getattr(mempool.struct_mempool, name).offset
     for name, _ in mempool.struct_mempool._fields_}
ENOMEM = 12
NUMA_NO_NODE = -1
SPINLOCK_MAGIC = 0xDEAD4EAD
HZ = 1000                       # the tiny machine's HZ
JOIN = 10.0                     # seconds any join may take before the test fails

# §1.3.6: the masks mempool_alloc hands alloc_fn, per caller mask.
KERNEL_FIRST, KERNEL_FULL = 0x92880, 0x92CC0
ATOMIC_ONLY = 0x92820
NOIO_FIRST, NOIO_FULL = 0x92800, 0x92C00


# ---------------------------------------------------------------- helpers

def field(pool, name):
    """A field of ``struct mempool`` read from emulated memory (ints are signed)."""
    f = getattr(mempool.struct_mempool, name)
    value = hwemu.load(pool + f.offset, f.size)
    return value - (1 << 32) if f.size == 4 and value >> 31 else value


def set_field(pool, name, value):
    f = getattr(mempool.struct_mempool, name)
    hwemu.store(pool + f.offset, f.size, value)


def curr_nr(pool):
    return field(pool, "curr_nr")


def min_nr(pool):
    return field(pool, "min_nr")


def elements_ptr(pool):
    return field(pool, "elements")


def reserve(pool):
    """The reserved elements, bottom of the stack first."""
    array = elements_ptr(pool)
    return [hwemu.load(array + 8 * i, 8) for i in range(curr_nr(pool))]


def log_lines(m):
    """dmesg without the ``[    0.000000] `` stamps (leading spaces of a line kept)."""
    return [re.sub(r"^\[\s*\d+\.\d{6}\] ", "", line) for line in m.dmesg().splitlines()]


def live_objects(m):
    """Allocated slab objects and large kmallocs of the machine."""
    m.slab.shrink()
    return sum(len(c.live) for c in m.slab.slab_caches) + len(m.slab.large)


def unexpected_kasan(m):
    return [r.text for r in m.kasan.reports if not r.expected]


class Backend:
    """Python ``alloc_fn``/``free_fn`` backed by kmalloc, recording what they get.

    ``fail`` makes every allocation fail; ``fail_next`` fails that many first.
    """

    def __init__(self):
        self.masks = []
        self.allocated = []
        self.freed = []
        self.fail = False
        self.fail_next = 0
        self.jiffies = []

    def alloc(self, gfp, pool_data):
        self.jiffies.append(hwemu.jiffies())     # first: never fewer than masks
        self.masks.append(gfp)
        if self.fail:
            return 0
        if self.fail_next:
            self.fail_next -= 1
            return 0
        element = hwemu.kmalloc(pool_data, gfp)
        assert element
        self.allocated.append(element)
        return element

    def clear(self):
        """Forget the calls so far (the elements stay known)."""
        self.masks.clear()
        self.jiffies.clear()

    def free(self, element, pool_data):
        self.freed.append(element)
        hwemu.kfree(element)


def create(backend, n, size=64):
    pool = mempool_create(n, backend.alloc, backend.free, size)
    assert pool
    return pool


def backed_pool(n, size=64):
    """A fresh ``Backend`` and a pool of ``n`` ``size``-byte elements made through it."""
    b = Backend()
    return b, create(b, n, size)


def forced_pool(attr, times):
    """A backed pool of 4 whose fault attribute ``attr`` then fires (probability 100)
    ``times`` times; the backend's calls so far forgotten: (backend, pool, reserve)."""
    b, pool = backed_pool(4)
    res = reserve(pool)
    attr.probability, attr.times = 100, times
    b.clear()
    return b, pool, res


def release(pool, *elements):
    """Free ``elements`` into ``pool`` in this order, then destroy it."""
    for e in elements:
        mempool_free(e, pool)
    mempool_destroy(pool)


def drain(pool):
    """Take every reserved element out (top of the stack first)."""
    out = []
    while curr_nr(pool):
        out.append(mempool_alloc_preallocated(pool))
    return out


def spawn_alloc(m, pool, gfp):
    return m.spawn(mempool_alloc, pool, gfp, name="mp_waiter")


def sleeping_on_pool(handle, pool):
    task = handle.task
    head = task.machine.waitqueues.get(pool + F["wait"])   # made by the first waiter
    return (task.state == hwemu.TASK_UNINTERRUPTIBLE and task.in_iowait
            and head is not None and head.active())


@pytest.fixture
def sleeps(monkeypatch):
    """Every io_schedule_timeout() (the pool's wait) made during the test."""
    calls = []
    real = hwemu.sched.io_schedule_timeout

    def spy(timeout):
        calls.append(timeout)
        return real(timeout)

    monkeypatch.setattr(hwemu.sched, "io_schedule_timeout", spy)
    return calls


def counting(monkeypatch, fnptr):
    """Wrap the Python function behind a stock callback pointer (keeping the pointer,
    so the pool still counts as a stock pool); returns the list of calls."""
    calls = []
    real = _mempool._FN_BY_PTR[fnptr]

    def wrapper(*args):
        result = real(*args)
        calls.append((args, result))
        return result

    monkeypatch.setitem(_mempool._FN_BY_PTR, fnptr, wrapper)
    return calls


# ================================================================ §1.4 creation

def test_create_fills_struct_and_preallocates_with_raw_gfp(machine, monkeypatch):
    seen = []
    real = _mempool.kmalloc_node_noprof

    def spy(size, flags, node):
        seen.append((size, flags, node))
        return real(size, flags, node)

    monkeypatch.setattr(_mempool, "kmalloc_node_noprof", spy)
    b = Backend()
    pool = mempool_create(3, b.alloc, b.free, 64)
    # kmalloc_node(sizeof(*pool), gfp_mask | __GFP_ZERO, node)
    assert seen == [(mempool.SIZEOF_MEMPOOL, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE)]
    assert hwemu.load(pool + F["lock"] + 4, 4) == SPINLOCK_MAGIC   # spinlock_t.magic
    assert (min_nr(pool), curr_nr(pool)) == (3, 3)
    assert field(pool, "pool_data") == 64
    assert field(pool, "alloc") == mempool.fnptr(b.alloc)
    assert field(pool, "free") == mempool.fnptr(b.free)
    # Preallocation: the raw init mask, nothing added; poisoned "as if freed".
    assert b.masks == [GFP_KERNEL] * 3
    assert reserve(pool) == b.allocated
    assert machine.slab.object_requested_size(elements_ptr(pool)) == 3 * 8
    assert mempool_initialized(pool) and mempool_is_saturated(pool)
    mempool_destroy(pool)


def test_create_node_passes_its_gfp_to_array_and_preallocation(machine, monkeypatch):
    arrays = []
    real = _mempool.kmalloc_array_node_noprof

    def spy(n, size, flags, node):
        arrays.append((n, size, flags, node))
        return real(n, size, flags, node)

    monkeypatch.setattr(_mempool, "kmalloc_array_node_noprof", spy)
    b = Backend()
    pool = mempool_create_node(2, b.alloc, b.free, 32, GFP_NOIO, 0)
    assert pool
    assert arrays == [(2, 8, GFP_NOIO, 0)]
    assert b.masks == [GFP_NOIO, GFP_NOIO]    # no NOMEMALLOC|NORETRY|NOWARN at init
    mempool_destroy(pool)


@pytest.mark.parametrize("n, slots", [(0, 1), (1, 1), (5, 5)])
def test_elements_array_has_max_1_min_nr_slots(machine, n, slots):
    b, pool = backed_pool(n)
    assert machine.slab.object_requested_size(elements_ptr(pool)) == 8 * slots
    assert curr_nr(pool) == slots == len(b.allocated)
    mempool_destroy(pool)


def test_init_on_a_zeroed_struct_and_exit(machine):
    pool = hwemu.kzalloc(mempool.SIZEOF_MEMPOOL, GFP_KERNEL)
    assert not mempool_initialized(pool)
    b = Backend()
    assert mempool_init(pool, 2, b.alloc, b.free, 48) == 0
    assert mempool_initialized(pool) and curr_nr(pool) == 2
    assert b.masks == [GFP_KERNEL, GFP_KERNEL]
    first, second = b.allocated
    mempool_exit(pool)
    assert b.freed == [second, first]          # popped off the stack
    assert not mempool_initialized(pool) and curr_nr(pool) == 0
    hwemu.kfree(pool)


def test_init_node_uses_the_given_gfp(machine):
    pool = hwemu.kzalloc(mempool.SIZEOF_MEMPOOL, GFP_KERNEL)
    b = Backend()
    assert mempool_init_node(pool, 3, b.alloc, b.free, 16, GFP_NOFS, NUMA_NO_NODE) == 0
    assert b.masks == [GFP_NOFS] * 3
    mempool_exit(pool)
    hwemu.kfree(pool)


def test_exit_of_a_zeroed_never_initialised_pool(machine):
    pool = hwemu.kzalloc(mempool.SIZEOF_MEMPOOL, GFP_KERNEL)
    before = live_objects(machine)
    mempool_exit(pool)     # curr_nr 0, kfree(NULL)
    assert not mempool_initialized(pool)
    assert live_objects(machine) == before
    hwemu.kfree(pool)


def test_init_failure_returns_enomem_and_cleans_up(machine):
    b = Backend()

    def flaky(gfp, pool_data):   # two elements, then nothing
        return b.alloc(gfp, pool_data) if len(b.masks) < 2 else b.masks.append(gfp) or 0

    pool = hwemu.kzalloc(mempool.SIZEOF_MEMPOOL, GFP_KERNEL)
    before = live_objects(machine)
    assert mempool_init(pool, 4, flaky, b.free, 64) == -ENOMEM
    assert len(b.masks) == 3
    assert b.freed == b.allocated[::-1]        # what was added, freed through free_fn
    assert not mempool_initialized(pool)
    assert curr_nr(pool) == 0
    assert live_objects(machine) == before     # the array is gone too
    hwemu.kfree(pool)


def test_create_failure_returns_null_and_frees_everything(machine):
    b = Backend()
    calls = []

    def flaky(gfp, pool_data):
        calls.append(gfp)
        return b.alloc(gfp, pool_data) if len(calls) == 1 else 0

    before = live_objects(machine)
    assert mempool_create(3, flaky, b.free, 64) == 0
    assert b.freed == b.allocated and len(b.freed) == 1
    assert live_objects(machine) == before     # struct, array and element freed


@pytest.mark.parametrize("nth", [1, 2])
def test_create_fails_when_struct_or_array_cannot_be_allocated(machine, nth):
    """fail-nth 1: the struct's kmalloc fails; 2: the element array's."""
    machine.fault.failslab.ignore_gfp_wait = False
    b = Backend()
    before = live_objects(machine)
    hwemu.current().fail_nth = nth
    assert mempool_create(2, b.alloc, b.free, 64) == 0
    assert b.masks == []                       # alloc_fn never reached
    assert live_objects(machine) == before


def test_init_fails_when_the_array_cannot_be_allocated(machine):
    machine.fault.failslab.ignore_gfp_wait = False
    pool = hwemu.kzalloc(mempool.SIZEOF_MEMPOOL, GFP_KERNEL)
    b = Backend()
    hwemu.current().fail_nth = 1
    assert mempool_init(pool, 2, b.alloc, b.free, 64) == -ENOMEM
    assert b.masks == [] and not mempool_initialized(pool)
    hwemu.kfree(pool)


def test_destroy_null_is_a_noop_and_destroy_frees_the_reserve(machine):
    mempool_destroy(0)
    b = Backend()
    before = live_objects(machine)
    pool = create(b, 3)
    taken = mempool_alloc_preallocated(pool)
    mempool_destroy(pool)   # no check for the element still handed out
    assert b.freed == b.allocated[:2][::-1]
    assert live_objects(machine) == before + 1
    hwemu.kfree(taken)
    assert live_objects(machine) == before


# ================================================================ §1.5 resize

@pytest.mark.parametrize("new", [0, -1])
def test_resize_to_nonpositive_is_a_bug(machine, new):
    b, pool = backed_pool(2)
    with pytest.raises(hwemu.KernelBug):
        mempool_resize(pool, new)
    assert "kernel BUG at mempool/_mempool.py" in machine.dmesg()
    assert (min_nr(pool), curr_nr(pool)) == (2, 2)
    mempool_destroy(pool)


def test_resize_shrink_frees_the_surplus_through_free_fn(machine):
    b, pool = backed_pool(5)
    array = elements_ptr(pool)
    assert mempool_resize(pool, 2) == 0
    assert (min_nr(pool), curr_nr(pool)) == (2, 2)
    assert b.freed == b.allocated[2:][::-1]    # the top three, LIFO
    assert reserve(pool) == b.allocated[:2]
    assert elements_ptr(pool) == array         # shrinking keeps the array
    assert mempool_resize(pool, 2) == 0        # equal: nothing happens
    assert len(b.freed) == 3 and b.masks == [GFP_KERNEL] * 5
    mempool_destroy(pool)


def test_resize_shrink_below_min_but_above_curr_frees_nothing(machine):
    b, pool = backed_pool(5)
    out = [mempool_alloc_preallocated(pool) for _ in range(3)]
    assert mempool_resize(pool, 4) == 0
    assert (min_nr(pool), curr_nr(pool)) == (4, 2) and b.freed == []
    for e in out:
        mempool_free(e, pool)
    assert curr_nr(pool) == 4 and len(b.freed) == 1    # the 5th went to free_fn
    mempool_destroy(pool)


def test_resize_grow_new_array_refilled_with_gfp_kernel(machine):
    b = Backend()
    pool = mempool_create_node(2, b.alloc, b.free, 64, GFP_NOIO, NUMA_NO_NODE)
    old = elements_ptr(pool)
    kept = reserve(pool)
    assert mempool_resize(pool, 5) == 0
    assert elements_ptr(pool) != old
    assert machine.slab.object_requested_size(elements_ptr(pool)) == 5 * 8
    assert machine.slab.object_requested_size(old) is None     # old array freed
    assert (min_nr(pool), curr_nr(pool)) == (5, 5)
    assert reserve(pool)[:2] == kept
    assert b.masks == [GFP_NOIO, GFP_NOIO] + [GFP_KERNEL] * 3    # plain GFP_KERNEL
    mempool_destroy(pool)


def test_resize_grow_with_failing_allocator_underfills_then_frees_top_up(machine):
    b, pool = backed_pool(2)
    b.fail_next = 1
    b.clear()
    assert mempool_resize(pool, 5) == 0       # a refill failure is still success
    assert b.masks == [GFP_KERNEL]
    assert (min_nr(pool), curr_nr(pool)) == (5, 2)
    assert not mempool_is_saturated(pool)
    foreign = [hwemu.kmalloc(64, GFP_KERNEL) for _ in range(4)]
    for e in foreign[:3]:
        mempool_free(e, pool)                 # tops the reserve up
    assert curr_nr(pool) == 5 and b.freed == []
    assert reserve(pool)[2:] == foreign[:3]
    mempool_free(foreign[3], pool)            # now full: free_fn
    assert b.freed == [foreign[3]]
    mempool_destroy(pool)


def test_resize_grow_partial_refill(machine):
    b, pool = backed_pool(1)

    def one_then_fail(gfp, pool_data):
        return b.alloc(gfp, pool_data) if len(b.masks) < 2 else b.masks.append(gfp) or 0

    set_field(pool, "alloc", mempool.fnptr(one_then_fail))
    assert mempool_resize(pool, 4) == 0
    assert (min_nr(pool), curr_nr(pool)) == (4, 2)
    mempool_destroy(pool)


def test_resize_grow_array_allocation_failure(machine):
    machine.fault.failslab.ignore_gfp_wait = False
    b, pool = backed_pool(2)
    array = elements_ptr(pool)
    hwemu.current().fail_nth = 1
    assert mempool_resize(pool, 6) == -ENOMEM
    assert (min_nr(pool), curr_nr(pool), elements_ptr(pool)) == (2, 2, array)
    mempool_destroy(pool)


class BlockingBackend(Backend):
    """A Backend whose allocations wait for ``release`` once ``block`` is set."""

    def __init__(self):
        super().__init__()
        self.block = False
        self.entered = hwemu.completion()
        self.release = hwemu.completion()

    def alloc(self, gfp, pool_data):
        if self.block:
            hwemu.complete(self.entered)
            hwemu.wait_for_completion(self.release)
        return super().alloc(gfp, pool_data)


def test_resize_grow_new_min_nr_takes_effect_before_the_refill(machine):
    """Checklist 10: while resize's alloc_fn runs (unlocked), frees already refill."""
    b = BlockingBackend()
    pool = create(b, 2)
    b.block = True
    t = machine.spawn(mempool_resize, pool, 4, name="mp_resize")
    hwemu.wait_for_completion(b.entered)
    assert min_nr(pool) == 4 and curr_nr(pool) == 2
    x = hwemu.kmalloc(64, GFP_KERNEL)
    mempool_free(x, pool)                      # taken: the pool is short of 4
    assert curr_nr(pool) == 3 and b.freed == []
    b.block = False
    hwemu.complete_all(b.release)
    assert t.join(JOIN) == 0
    assert curr_nr(pool) == 4
    assert reserve(pool) == b.allocated[:2] + [x, b.allocated[2]]
    mempool_destroy(pool)


def test_resize_grow_refill_raced_by_frees_gives_the_element_back(machine):
    b = BlockingBackend()
    pool = create(b, 2)
    b.block = True
    t = machine.spawn(mempool_resize, pool, 3, name="mp_resize")
    hwemu.wait_for_completion(b.entered)
    x = hwemu.kmalloc(64, GFP_KERNEL)
    mempool_free(x, pool)                      # fills the pool to the new minimum
    b.block = False
    hwemu.complete_all(b.release)
    assert t.join(JOIN) == 0
    assert curr_nr(pool) == 3 and reserve(pool)[-1] == x
    assert b.freed == [b.allocated[-1]]        # "raced": free_fn gets it
    mempool_destroy(pool)


def test_resize_grow_raced_by_a_bigger_resize(machine, monkeypatch):
    """A grow that finds min_nr already >= its target frees its new array."""
    b, pool = backed_pool(2)
    entered, release = hwemu.completion(), hwemu.completion()
    real = mempool._mempool.kmalloc_array
    first = [True]

    def slow_kmalloc_array(n, size, flags):
        if first[0]:
            first[0] = False
            hwemu.complete(entered)
            hwemu.wait_for_completion(release)
        return real(n, size, flags)

    monkeypatch.setattr(mempool._mempool, "kmalloc_array", slow_kmalloc_array)
    before = live_objects(machine)
    t = machine.spawn(mempool_resize, pool, 4, name="mp_resize")
    hwemu.wait_for_completion(entered)
    assert mempool_resize(pool, 5) == 0
    hwemu.complete_all(release)
    assert t.join(JOIN) == 0
    assert (min_nr(pool), curr_nr(pool)) == (5, 5)
    # The loser's array was freed: only the 3 new elements (and the bigger array
    # replacing the old one) remain.
    assert live_objects(machine) == before + 3
    mempool_destroy(pool)


# ================================================================ §1.3.6 / §1.7 alloc

@pytest.mark.parametrize("gfp, full, first", [
    (GFP_KERNEL, 0x92CC0, 0x92880), (GFP_NOFS, 0x92C40, 0x92800),
    (GFP_NOIO, 0x92C00, 0x92800), (GFP_NOIO | __GFP_HIGHMEM, 0x92C02, 0x92802),
    (GFP_ATOMIC, 0x92820, 0x92820), (GFP_NOWAIT, 0x92800, 0x92800)])
def test_mempool_adjust_gfp_table(gfp, full, first):
    assert mempool.mempool_adjust_gfp(gfp) == (full, first)


def test_alloc_uses_the_allocator_first(machine):
    b, pool = backed_pool(2)
    b.clear()
    e = mempool_alloc(pool, GFP_KERNEL)
    assert e == b.allocated[-1] and b.masks == [KERNEL_FIRST]
    assert curr_nr(pool) == 2
    mempool_free(e, pool)
    assert b.freed == [e]
    mempool_destroy(pool)


def test_alloc_gfp_kernel_on_an_empty_pool_first_then_full_mask_then_sleeps(machine):
    b, pool = backed_pool(1)
    (own,) = drain(pool)
    b.fail = True
    b.clear()
    t = spawn_alloc(machine, pool, GFP_KERNEL)
    assert wait_until(lambda: sleeping_on_pool(t, pool)), machine.dmesg()
    assert b.masks[:2] == [KERNEL_FIRST, KERNEL_FULL]
    assert all(mask == KERNEL_FULL for mask in b.masks[1:])
    assert t.is_alive()
    mempool_free(own, pool)
    assert t.join(JOIN) == own
    assert b.masks[-1] == KERNEL_FULL
    assert curr_nr(pool) == 0
    release(pool, own)


@pytest.mark.parametrize("gfp, mask", [(GFP_ATOMIC, ATOMIC_ONLY), (GFP_NOWAIT, 0x92800)])
def test_alloc_without_direct_reclaim_tries_once_and_returns_null(machine, sleeps, gfp,
                                                                 mask):
    b, pool = backed_pool(1)
    (own,) = drain(pool)
    b.fail = True
    b.clear()
    assert mempool_alloc(pool, gfp) == 0
    assert b.masks == [mask] and sleeps == []
    mempool_free(own, pool)
    assert mempool_alloc(pool, gfp) == own     # and with a reserve it gets it
    assert b.masks == [mask, mask]
    release(pool, own)


@pytest.mark.parametrize("gfp, first, full", [
    (GFP_KERNEL, KERNEL_FIRST, KERNEL_FULL), (GFP_NOFS, 0x92800, 0x92C40),
    (GFP_NOIO, NOIO_FIRST, NOIO_FULL)])
def test_alloc_retries_with_the_full_mask_when_the_reserve_is_empty(machine, sleeps, gfp,
                                                                     first, full):
    b, pool = backed_pool(1)
    (own,) = drain(pool)
    b.fail_next = 1
    b.clear()
    e = mempool_alloc(pool, gfp)
    assert b.masks == [first, full]
    assert sleeps == []                        # the first-pass reserve check never sleeps
    assert e == b.allocated[-1] and curr_nr(pool) == 0
    mempool_free(own, pool)
    mempool_free(e, pool)
    assert b.freed == [e]
    mempool_destroy(pool)


@pytest.mark.parametrize("gfp, first", [(GFP_KERNEL, KERNEL_FIRST), (GFP_NOIO, NOIO_FIRST),
                                        (GFP_ATOMIC, ATOMIC_ONLY)])
def test_a_nonempty_reserve_is_used_before_the_full_mask(machine, gfp, first):
    b, pool = backed_pool(2)
    b.fail = True
    b.clear()
    top = reserve(pool)[-1]
    assert mempool_alloc(pool, gfp) == top
    assert b.masks == [first]
    assert curr_nr(pool) == 1
    release(pool, top)


def test_reserve_is_lifo(machine):
    b, pool = backed_pool(3)
    out = drain(pool)
    assert out == b.allocated[::-1]
    b.fail = True
    mempool_free(out[1], pool)
    mempool_free(out[2], pool)
    mempool_free(out[0], pool)
    assert reserve(pool) == [out[1], out[2], out[0]]
    assert [mempool_alloc(pool, GFP_KERNEL) for _ in range(3)] == [out[0], out[2], out[1]]
    release(pool, *out)


def test_alloc_preallocated_never_calls_alloc_fn(machine, sleeps):
    b, pool = backed_pool(2)
    b.clear()
    first, second = b.allocated
    assert mempool_alloc_preallocated(pool) == second
    assert mempool_alloc_preallocated(pool) == first
    assert mempool_alloc_preallocated(pool) == 0     # empty: NULL, no sleep
    assert sleeps == []
    assert b.masks == []
    release(pool, first, second)


def test_gfp_zero_warns_once(machine):
    b, pool = backed_pool(1)
    before = len(machine.warnings)
    e = mempool_alloc(pool, GFP_KERNEL | __GFP_ZERO)
    assert e
    assert len(machine.warnings) == before + 1
    text = machine.warnings[-1]
    assert re.search(r"^WARNING: CPU: 0 PID: \d+ at mempool/_mempool\.py:\d+ "
                     r"mempool_alloc_noprof\+0x", text, re.M), text
    assert "WARNING: CPU" in machine.dmesg()
    assert b.masks[-1] & __GFP_ZERO                    # passed on as it is
    e2 = mempool_alloc(pool, GFP_KERNEL | __GFP_ZERO)  # _ONCE
    assert len(machine.warnings) == before + 1
    release(pool, e, e2)


# ================================================================ §1.8 bulk

def test_alloc_bulk_from_the_allocator(machine):
    b, pool = backed_pool(4)
    b.clear()
    elems = [0] * 3
    assert mempool_alloc_bulk(pool, elems, 3) == 0
    assert elems == b.allocated[4:] and b.masks == [KERNEL_FIRST] * 3
    assert curr_nr(pool) == 4
    assert mempool_free_bulk(pool, elems, 3) == 0
    release(pool, *elems)


def test_alloc_bulk_count_above_min_nr_warns(machine):
    b, pool = backed_pool(2)
    before = len(machine.warnings)
    elems = [0] * 3
    assert mempool_alloc_bulk(pool, elems, 3) == 0
    assert len(machine.warnings) == before + 1
    assert "mempool_alloc_bulk_noprof" in machine.warnings[-1]
    assert all(elems)
    release(pool, *elems)


def test_alloc_bulk_fills_the_missing_slots_from_the_reserve_at_once(machine):
    b, pool = backed_pool(4)
    res = reserve(pool)
    b.clear()

    def one_then_fail(gfp, pool_data):
        return b.alloc(gfp, pool_data) if len(b.masks) < 1 else b.masks.append(gfp) or 0

    set_field(pool, "alloc", mempool.fnptr(one_then_fail))
    elems = [0] * 3
    assert mempool_alloc_bulk(pool, elems, 3) == 0
    assert elems == [b.allocated[-1], res[3], res[2]]
    assert b.masks == [KERNEL_FIRST, KERNEL_FIRST]    # no full-mask pass needed
    assert curr_nr(pool) == 2
    assert mempool_free_bulk(pool, elems, 3) == 2      # from the start of elems
    assert reserve(pool) == res[:2] + elems[:2]
    mempool_free(elems[2], pool)                       # full: free_fn
    assert b.freed == [res[2]]
    mempool_destroy(pool)


def test_alloc_bulk_uses_the_reserve_only_if_it_fills_every_slot(machine):
    b, pool = backed_pool(4)
    out = [mempool_alloc_preallocated(pool) for _ in range(3)]
    (r0,) = reserve(pool)
    b.fail = True
    b.clear()
    elems = [0] * 3
    t = machine.spawn(mempool_alloc_bulk, pool, elems, 3, name="mp_bulk")
    assert wait_until(lambda: sleeping_on_pool(t, pool)), machine.dmesg()
    assert b.masks[:2] == [KERNEL_FIRST, KERNEL_FULL]
    assert curr_nr(pool) == 1 and elems == [0, 0, 0]   # nothing taken partially
    assert mempool_free_bulk(pool, out[:2], 2) == 2
    assert t.join(JOIN) == 0
    assert elems == [out[1], out[0], r0]
    assert curr_nr(pool) == 0
    for e in elems + out[2:]:
        mempool_free(e, pool)
    assert curr_nr(pool) == 4
    mempool_destroy(pool)


def test_alloc_bulk_ignores_stale_contents_of_elems(machine):
    b, pool = backed_pool(4)
    stale = drain(pool)
    assert mempool_free_bulk(pool, stale, 4) == 4      # slots keep their pointers
    b.fail = True
    b.clear()
    elems = stale
    assert mempool_alloc_bulk(pool, elems, 4) == 0
    assert b.masks == [KERNEL_FIRST]
    assert sorted(elems) == sorted(b.allocated)
    assert curr_nr(pool) == 0


def test_fail_mempool_alloc_bulk_fails_every_element_once(machine):
    b, pool, res = forced_pool(machine.fault.fail_mempool_alloc_bulk, 1)
    elems = [0] * 3
    assert mempool_alloc_bulk(pool, elems, 3) == 0
    assert b.masks == []                               # allocator never asked
    assert elems == res[:0:-1]
    lines = [ln for ln in log_lines(machine) if "forcing mempool usage" in ln]
    assert len(lines) == 1
    assert re.fullmatch(r"forcing mempool usage for "
                        r"test_fail_mempool_alloc_bulk_fails_every_element_once"
                        r"\+0x[0-9a-f]+/0x[0-9a-f]+", lines[0]), lines
    assert "FAULT_INJECTION" not in machine.dmesg()    # FAULT_NOWARN
    more = [0] * 3
    assert mempool_alloc_bulk(pool, more, 3) == 0      # times exhausted
    assert b.masks == [KERNEL_FIRST] * 3 and more == b.allocated[4:]
    release(pool, *elems, *more)


# ================================================================ §1.9 free

def test_free_into_a_short_pool_refills_and_into_a_full_pool_calls_free_fn(machine):
    b, pool = backed_pool(2)
    foreign = hwemu.kmalloc(64, GFP_KERNEL)    # any compatible element will do
    mempool_free(foreign, pool)
    assert b.freed == [foreign] and curr_nr(pool) == 2
    taken = mempool_alloc_preallocated(pool)
    other = hwemu.kmalloc(64, GFP_KERNEL)
    mempool_free(other, pool)                  # short: the reserve takes it
    assert curr_nr(pool) == 2 and reserve(pool)[-1] == other
    mempool_free(taken, pool)                  # full again: free_fn
    assert b.freed == [foreign, taken]
    mempool_free(0, pool)                      # NULL: nothing
    assert b.freed == [foreign, taken] and curr_nr(pool) == 2
    mempool_destroy(pool)


def test_free_bulk_takes_from_the_start_and_leaves_slots(machine):
    b, pool = backed_pool(4)
    drain(pool)
    b.freed.clear()
    xs = [hwemu.kmalloc(64, GFP_KERNEL) for _ in range(6)]
    assert mempool_free_bulk(pool, xs[:1], 1) == 1
    elems = list(xs[1:])
    assert mempool_free_bulk(pool, elems, 5) == 3
    assert elems == xs[1:]                     # the code does not NULL the slots
    assert reserve(pool) == xs[:4]
    assert mempool_free_bulk(pool, xs[4:], 2) == 0
    assert b.freed == []                       # the caller frees the rest
    for e in xs[4:] + b.allocated:
        hwemu.kfree(e)
    mempool_destroy(pool)


def test_is_saturated_and_initialized(machine):
    b, pool = backed_pool(2)
    assert mempool_is_saturated(pool) and mempool_initialized(pool)
    e = mempool_alloc_preallocated(pool)
    assert not mempool_is_saturated(pool)
    mempool_free(e, pool)
    assert mempool_is_saturated(pool)
    mempool_exit(pool)
    assert not mempool_initialized(pool)
    hwemu.kfree(pool)


# ================================================================ zero-minimum pools

def test_zero_min_pool_keeps_exactly_one_element(machine):
    b, pool = backed_pool(0)
    assert (min_nr(pool), curr_nr(pool)) == (0, 1) and len(b.allocated) == 1
    assert mempool_is_saturated(pool)
    (pre,) = b.allocated
    b.fail = True
    b.clear()
    assert mempool_alloc(pool, GFP_ATOMIC) == pre
    assert curr_nr(pool) == 0 and mempool_is_saturated(pool)
    assert mempool_alloc(pool, GFP_ATOMIC) == 0
    x = hwemu.kmalloc(64, GFP_KERNEL)
    mempool_free(x, pool)                      # the one slot is refilled
    assert reserve(pool) == [x] and b.freed == []
    mempool_free(pre, pool)                    # and only one
    assert b.freed == [pre] and curr_nr(pool) == 1
    assert mempool_free_bulk(pool, [pre], 1) == 0
    mempool_destroy(pool)
    assert b.freed == [pre, x]


def test_zero_min_pool_waiter_is_woken_by_a_free(machine):
    b, pool = backed_pool(0)
    (pre,) = drain(pool)
    b.fail = True
    t = spawn_alloc(machine, pool, GFP_KERNEL)
    assert wait_until(lambda: sleeping_on_pool(t, pool)), machine.dmesg()
    mempool_free(pre, pool)
    assert t.join(JOIN) == pre
    release(pool, pre)


# ================================================================ waiting (§1.3.7)

def test_waiter_is_woken_by_a_free_from_another_task_and_gets_that_element(boot):
    m = boot("tiny")
    b, pool = backed_pool(2)
    drain(pool)
    b.fail = True
    b.clear()
    t = spawn_alloc(m, pool, GFP_KERNEL)
    assert wait_until(lambda: sleeping_on_pool(t, pool)), m.dmesg()
    x = hwemu.kmalloc(64, GFP_KERNEL)
    start = hwemu.ktime_get()
    m.spawn(mempool_free, x, pool, name="mp_freer").join(JOIN)
    assert t.join(3.0) == x
    # Woken by the free, not by the 5 s timeout.
    assert hwemu.ktime_get() - start < 1_000_000_000
    assert b.masks == [KERNEL_FIRST, KERNEL_FULL, KERNEL_FULL]
    assert curr_nr(pool) == 0
    mempool_free(x, pool)
    release(pool, *b.allocated)


def test_waiter_without_frees_retries_every_5_hz_and_never_returns_null(machine, sleeps):
    b, pool = backed_pool(1)
    (own,) = drain(pool)
    b.fail = True
    b.clear()
    t = spawn_alloc(machine, pool, GFP_KERNEL)
    hwemu.msleep(40_000)            # 40 emulated seconds: about 8 timeouts of 5 s
    assert t.is_alive()             # still waiting, no NULL
    masks = list(b.masks)
    jiffies = list(b.jiffies)[:len(masks)]
    n = len(masks)
    assert 2 + 3 <= n <= 2 + 12, n
    assert masks[0] == KERNEL_FIRST and set(masks[1:]) == {KERNEL_FULL}
    gaps = [jiffies[i + 1] - jiffies[i] for i in range(1, n - 1)]
    assert gaps and min(gaps) >= 5 * HZ - 50, gaps        # slept the full 5 s each
    assert jiffies[1] - jiffies[0] < 5 * HZ               # no sleep in the first pass
    assert sleeps[:3] == [5 * HZ] * 3                     # io_schedule_timeout(5 * HZ)
    mempool_free(own, pool)
    assert t.join(JOIN) == own
    release(pool, own)


def test_every_waiter_is_woken(machine):
    """wake_up() is non-exclusive: all waiters retry; each free feeds one of them."""
    b, pool = backed_pool(3)
    out = drain(pool)
    b.fail = True
    ts = [spawn_alloc(machine, pool, GFP_NOIO) for _ in range(3)]
    assert wait_until(lambda: all(sleeping_on_pool(t, pool) for t in ts)), machine.dmesg()
    for e in out:
        mempool_free(e, pool)
    got = [t.join(JOIN) for t in ts]
    assert sorted(got) == sorted(out)
    release(pool, *got)


# ================================================================ might_sleep

SLEEPING_BUG = "BUG: sleeping function called from invalid context"


def test_gfp_kernel_under_a_spinlock_splats_but_atomic_does_not(machine):
    b, pool = backed_pool(1)
    lock = hwemu.spinlock.SpinLock()
    lock.lock()
    try:
        e1 = mempool_alloc(pool, GFP_ATOMIC)
        assert SLEEPING_BUG not in machine.dmesg()
        e2 = mempool_alloc(pool, GFP_KERNEL)
    finally:
        lock.unlock()
    lines = log_lines(machine)
    i = next(i for i, ln in enumerate(lines) if ln.startswith(SLEEPING_BUG))
    assert lines[i + 1].startswith("in_atomic(): 1, irqs_disabled(): 0")
    assert e1 and e2
    release(pool, e1, e2)


def test_gfp_kernel_in_an_interrupt_splats_but_atomic_does_not(machine):
    b, pool = backed_pool(1)
    e1 = hwemu.run_in_interrupt(mempool_alloc, pool, GFP_ATOMIC)
    assert e1 and SLEEPING_BUG not in machine.dmesg()
    e2 = hwemu.run_in_interrupt(mempool_alloc, pool, GFP_KERNEL)
    assert e2
    lines = log_lines(machine)
    i = next(i for i, ln in enumerate(lines) if ln.startswith(SLEEPING_BUG))
    assert lines[i + 1].startswith("in_atomic(): 1, irqs_disabled(): 1")
    assert "preempt_count: 10000" in lines[i + 2]
    release(pool, e1, e2)


def test_resize_might_sleep(machine):
    b, pool = backed_pool(3)
    lock = hwemu.spinlock.SpinLock()
    lock.lock()
    try:
        assert mempool_resize(pool, 2) == 0    # shrinking only frees, yet it may sleep
    finally:
        lock.unlock()
    assert any(ln.startswith(SLEEPING_BUG) for ln in log_lines(machine))
    mempool_destroy(pool)


def test_preallocated_and_free_in_an_interrupt_are_quiet(machine):
    b, pool = backed_pool(1)
    e = hwemu.run_in_interrupt(mempool_alloc_preallocated, pool)
    hwemu.run_in_interrupt(mempool_free, e, pool)
    assert SLEEPING_BUG not in machine.dmesg() and machine.tainted == "Not tainted"
    mempool_destroy(pool)


# ================================================================ stock pools

def test_kmalloc_pool_elements_are_kmalloc_objects_of_the_size(machine):
    before = live_objects(machine)
    pool = mempool.mempool_create_kmalloc_pool(3, 100)
    assert field(pool, "alloc") == mempool.MEMPOOL_KMALLOC
    assert field(pool, "free") == mempool.MEMPOOL_KFREE
    for e in reserve(pool):
        assert machine.slab.object_requested_size(e) == 100
        assert machine.slab.slab_of(e).cache.name == "kmalloc-128"
    e = mempool_alloc(pool, GFP_KERNEL)        # from kmalloc
    assert machine.slab.object_requested_size(e) == 100 and e not in reserve(pool)
    mempool_free(e, pool)
    big = mempool.mempool_create_kmalloc_pool(1, 10000)   # page-backed kmalloc
    (lg,) = reserve(big)
    assert machine.slab.object_requested_size(lg) == 10000 and lg in machine.slab.large
    mempool_destroy(big)
    mempool_destroy(pool)
    assert live_objects(machine) == before


def test_kmalloc_pool_embedded_with_mempool_init_kmalloc_pool(machine):
    pool = hwemu.kzalloc(mempool.SIZEOF_MEMPOOL, GFP_KERNEL)
    assert mempool.mempool_init_kmalloc_pool(pool, 2, 24) == 0
    assert [machine.slab.object_requested_size(e) for e in reserve(pool)] == [24, 24]
    mempool_exit(pool)
    hwemu.kfree(pool)


def test_slab_pool_elements_come_from_the_cache(machine):
    kc = hwemu.kmem_cache_create("mp_test", 100, 0, 0)
    cache = machine.slab.cache_of(kc, "test")
    pool = mempool.mempool_create_slab_pool(2, kc)
    assert field(pool, "pool_data") == kc
    assert len(cache.live) == 2
    for e in reserve(pool):
        assert machine.slab.slab_of(e).cache is cache
    e = mempool_alloc(pool, GFP_KERNEL)
    assert machine.slab.slab_of(e).cache is cache and len(cache.live) == 3
    release(pool, e)
    assert len(cache.live) == 0
    hwemu.kmem_cache_destroy(kc)


def test_slab_pool_of_a_cache_with_a_ctor_is_a_bug(machine):
    kc = hwemu.kmem_cache_create("mp_ctor", 64, 0, 0, ctor=lambda obj: None)
    with pytest.raises(hwemu.KernelBug):
        mempool.mempool_create_slab_pool(2, kc)
    assert "kernel BUG at mempool/_mempool.py" in machine.dmesg()
    assert machine.slab.cache_of(kc, "test").live == {}


def test_page_pool_elements_are_struct_pages_of_the_order(machine):
    order = 2
    pool = mempool.mempool_create_page_pool(3, order)
    memmap = machine.memmap
    assert field(pool, "pool_data") == order
    pfns = []
    for page in reserve(pool):
        assert memmap.start <= page < memmap.end            # a struct page *
        pfn = hwemu.page_to_pfn(page)
        assert pfn % (1 << order) == 0
        addr = hwemu.page_address(page)
        assert addr == hwemu.__va(pfn << hwemu.PAGE_SHIFT)
        assert hwemu.virt_to_page(addr) == page
        hwemu.memset(addr, 0x11, PAGE_SIZE << order)          # the whole block is ours
        pfns.append(pfn)
    assert len({p >> order for p in pfns}) == 3
    e = mempool_alloc(pool, GFP_KERNEL)
    assert memmap.start <= e < memmap.end
    release(pool, e)


def test_page_pool_holds_highmem_pages(highmem_machine):
    m = highmem_machine
    pool = mempool.mempool_create_page_pool(2, 0)
    low = reserve(pool)
    assert not any(hwemu.PageHighMem(p) for p in low)      # GFP_KERNEL at init
    high = mempool_alloc(pool, GFP_NOIO | __GFP_HIGHMEM)
    assert hwemu.PageHighMem(high) and hwemu.page_address(high) == 0
    taken = drain(pool)
    assert taken == low[::-1]
    mempool_free(high, pool)                                # into the reserve
    assert reserve(pool) == [high]
    mempool_free(taken[0], pool)
    assert reserve(pool) == [high, taken[0]]
    mempool_free(taken[1], pool)                            # full: __free_pages
    got = mempool_alloc_preallocated(pool), mempool_alloc_preallocated(pool)
    assert got == (taken[0], high)
    addr = hwemu.kmap_local_page(high)
    hwemu.store(addr, 8, 0x1234)
    assert hwemu.load(addr, 8) == 0x1234
    hwemu.kunmap_local(addr)
    for p in got:
        mempool_free(p, pool)
    mempool_destroy(pool)
    assert "poison" not in m.dmesg()


# ================================================================ §3 slub_debug poisoning

def poisoned(data):
    return data == bytes([0x6B]) * (len(data) - 1) + b"\xa5"


@pytest.fixture
def debug_machine(boot):
    return boot("tiny", debug__slub_debug_on=True)


def test_kmalloc_pool_poisons_exactly_pool_data_bytes(debug_machine):
    m = debug_machine
    pool = mempool.mempool_create_kmalloc_pool(2, 100)
    for e in reserve(pool):
        assert poisoned(hwemu.read_bytes(e, 100))
    e = mempool_alloc_preallocated(pool)
    assert hwemu.read_bytes(e, 100) == b"\x5a" * 100          # POISON_INUSE
    hwemu.memset(e, 0x11, 128)                                 # the whole kmalloc-128
    mempool_free(e, pool)
    data = hwemu.read_bytes(e, 128)
    assert poisoned(data[:100]) and data[100:] == b"\x11" * 28
    assert mempool_alloc_preallocated(pool) == e
    assert hwemu.read_bytes(e, 128) == b"\x5a" * 100 + b"\x11" * 28
    release(pool, e)
    assert "poison mismatch" not in m.dmesg()


def test_slab_pool_poisons_kmem_cache_size_bytes(debug_machine):
    kc = hwemu.kmem_cache_create("mp_poison", 100, 0, 0)
    assert hwemu.kmem_cache_size(kc) == 100
    pool = mempool.mempool_create_slab_pool(1, kc)
    e = mempool_alloc_preallocated(pool)
    hwemu.memset(e, 0x22, 104)                                 # object + alignment
    mempool_free(e, pool)
    data = hwemu.read_bytes(e, 104)
    assert poisoned(data[:100]) and data[100:] == b"\x22" * 4
    assert mempool_alloc_preallocated(pool) == e
    assert hwemu.read_bytes(e, 100) == b"\x5a" * 100
    release(pool, e)
    hwemu.kmem_cache_destroy(kc)


def test_custom_callbacks_are_not_poisoned(debug_machine):
    b, pool = backed_pool(1, 64)
    e = mempool_alloc_preallocated(pool)
    hwemu.memset(e, 0x33, 64)
    mempool_free(e, pool)
    assert hwemu.read_bytes(e, 64) == b"\x33" * 64
    assert mempool_alloc_preallocated(pool) == e
    assert hwemu.read_bytes(e, 64) == b"\x33" * 64
    release(pool, e)


def mismatch_report(m):
    """(index of the BUG line, lines) of the first poison mismatch report."""
    lines = log_lines(m)
    i = lines.index("BUG: mempool element poison mismatch")
    return i, lines


def poke_one(m, size, byte, value):
    """A kmalloc pool of one ``size``-byte element whose poison byte ``byte`` is set to
    ``value``; the element taken back out (it still is): (pool, element, report)."""
    pool = mempool.mempool_create_kmalloc_pool(1, size)
    (e,) = reserve(pool)
    hwemu.store(e + byte, 1, value)
    assert mempool_alloc_preallocated(pool) == e
    return pool, e, mismatch_report(m)


def test_poison_mismatch_report_exact_format(debug_machine):
    m = debug_machine
    pool = mempool.mempool_create_kmalloc_pool(4, 128)
    top = reserve(pool)[-1]
    hwemu.store(top + 20, 1, 0x00)
    e = mempool_alloc_preallocated(pool)
    assert e == top                                           # still handed out
    i, lines = mismatch_report(m)
    assert lines[i + 1] == f"Mempool {pool:016x} size 128"
    assert lines[i + 2] == (f" nr=3 @ {e:016x}: ... 0x6b 6b 6b 6b 6b 6b 6b 6b "
                            "0 6b 6b 6b 6b 6b 6b 6b ...")
    assert lines[i + 3].startswith("CPU: 0 ")
    assert "Call Trace:" in lines[i + 4:i + 8]
    assert any("remove_element" in ln for ln in lines[i + 4:i + 20])
    data = hwemu.read_bytes(e, 128)                           # not re-filled with 0x5a
    assert data[:20] == b"\x6b" * 20 and data[20] == 0
    assert not m.bugs.taint & (1 << 7)                        # no oops: no DIE taint
    hwemu.store(e, 1, 0)
    release(pool, e)


@pytest.mark.parametrize("byte, value, window", [
    (0, 0x05, "0x5 6b 6b 6b 6b 6b 6b 6b ..."),
    (3, 0xFF, "0x6b 6b 6b ff 6b 6b 6b 6b 6b 6b 6b ..."),
    (8, 0x00, "0x6b 6b 6b 6b 6b 6b 6b 6b 0 6b 6b 6b 6b 6b 6b 6b ..."),
    (9, 0x00, "... 0x6b 6b 6b 6b 6b 6b 6b 6b 0 6b 6b 6b 6b 6b 6b 6b ..."),
    (27, 0x10, "... 0x6b 6b 6b 6b 6b 6b 6b 6b 10 6b 6b 6b a5 "),
    (31, 0x00, "... 0x6b 6b 6b 6b 6b 6b 6b 6b 0 "),
])
def test_poison_mismatch_byte_window(debug_machine, byte, value, window):
    pool, e, (i, lines) = poke_one(debug_machine, 32, byte, value)
    assert lines[i + 1] == f"Mempool {pool:016x} size 32"
    assert lines[i + 2] == f" nr=0 @ {e:016x}: {window}"
    release(pool, e)


def test_poison_mismatch_is_reported_by_destroy_too(debug_machine):
    m = debug_machine
    pool = mempool.mempool_create_kmalloc_pool(2, 64)
    bottom = reserve(pool)[0]
    hwemu.store(bottom + 63, 1, 0x6B)                         # POISON_END overwritten
    mempool_destroy(pool)
    i, lines = mismatch_report(m)
    assert lines[i + 2] == f" nr=0 @ {bottom:016x}: ... 0x6b 6b 6b 6b 6b 6b 6b 6b 6b "
    assert lines.count("BUG: mempool element poison mismatch") == 1


def test_page_pool_x86_64_poisons_one_region(debug_machine):
    m = debug_machine
    pool = mempool.mempool_create_page_pool(1, 1)
    (page,) = reserve(pool)
    addr = hwemu.page_address(page)
    assert poisoned(hwemu.read_bytes(addr, 2 * PAGE_SIZE))    # 0xa5 only at the end
    assert hwemu.load(addr + PAGE_SIZE - 1, 1) == 0x6B
    hwemu.store(addr + PAGE_SIZE + 7, 1, 0x01)
    assert mempool_alloc_preallocated(pool) == page
    i, lines = mismatch_report(m)
    assert lines[i + 1] == f"Mempool {pool:016x} size 8192"
    assert lines[i + 2] == (f" nr=0 @ {addr:016x}: ... 0x6b 6b 6b 6b 6b 6b 6b 6b "
                            "1 6b 6b 6b 6b 6b 6b 6b ...")
    hwemu.memset(addr, 0, 2 * PAGE_SIZE)
    mempool_free(page, pool)
    assert poisoned(hwemu.read_bytes(addr, 2 * PAGE_SIZE))
    assert mempool_alloc_preallocated(pool) == page
    assert hwemu.read_bytes(addr, 2 * PAGE_SIZE) == b"\x5a" * (2 * PAGE_SIZE)
    release(pool, page)


def test_kasan_disables_poisoning(boot):
    m = boot("tiny", debug__slub_debug_on=True, kasan__enabled=True)
    pool = mempool.mempool_create_kmalloc_pool(1, 64)
    e = mempool_alloc_preallocated(pool)
    assert hwemu.read_bytes(e, 64) != b"\x5a" * 64
    hwemu.memset(e, 0x44, 64)
    mempool_free(e, pool)
    assert mempool_alloc_preallocated(pool) == e
    assert hwemu.read_bytes(e, 64) == b"\x44" * 64
    release(pool, e)
    assert "poison mismatch" not in m.dmesg() and not m.kasan.reports


# ---------------------------------------------------------------- i386 HIGHMEM

@pytest.fixture
def i386_debug(boot):
    return boot("i386-highmem", debug__slub_debug_on=True)


def sub_pages(page, order):
    return [page + i * STRUCT_PAGE_SIZE for i in range(1 << order)]


def read_page(page):
    addr = hwemu.kmap_local_page(page)
    try:
        return hwemu.read_bytes(addr, PAGE_SIZE)
    finally:
        hwemu.kunmap_local(addr)


def write_page_byte(page, off, value):
    addr = hwemu.kmap_local_page(page)
    hwemu.store(addr + off, 1, value)
    hwemu.kunmap_local(addr)


@pytest.fixture
def kmap_depths(monkeypatch):
    """kmap_idx right after each kmap_local_page() the mempool code makes."""
    depths = []
    real = _mempool.kmap_local_page

    def spy(page):
        addr = real(page)
        depths.append((hwemu.PageHighMem(page), hwemu.current().kmap_idx))
        return addr

    monkeypatch.setattr(_mempool, "kmap_local_page", spy)
    return depths


def test_i386_highmem_page_pool_poisons_page_by_page(i386_debug, kmap_depths):
    m = i386_debug
    order = 2
    pool = mempool.mempool_create_page_pool(2, order)
    for page in reserve(pool):                               # lowmem from GFP_KERNEL
        assert not hwemu.PageHighMem(page)
        for sub in sub_pages(page, order):                   # every 4K ends in 0xa5
            assert poisoned(hwemu.read_bytes(hwemu.page_address(sub), PAGE_SIZE))
    assert len(kmap_depths) == 2 * 4
    high = mempool_alloc(pool, GFP_NOIO | __GFP_HIGHMEM)
    assert hwemu.PageHighMem(high)
    low = drain(pool)
    for page in low:
        assert hwemu.read_bytes(hwemu.page_address(page), PAGE_SIZE << order) == \
            b"\x5a" * (PAGE_SIZE << order)
    kmap_depths.clear()
    mempool_free(high, pool)                                 # poisoned through kmap_local
    assert kmap_depths == [(True, 1)] * 4                    # one mapping at a time
    assert hwemu.current().kmap_idx == 0
    assert (m.highmem.fixmap.ptes < 0).all()                 # every slot unmapped again
    for sub in sub_pages(high, order):
        assert poisoned(read_page(sub))
    kmap_depths.clear()
    assert mempool_alloc_preallocated(pool) == high
    assert kmap_depths == [(True, 1)] * 4
    for sub in sub_pages(high, order):
        assert read_page(sub) == b"\x5a" * PAGE_SIZE
    assert "poison mismatch" not in m.dmesg()
    for page in low + [high]:
        mempool_free(page, pool)
    mempool_destroy(pool)


def test_i386_highmem_mismatch_in_one_sub_page(i386_debug, kmap_depths):
    m = i386_debug
    order = 2
    pool = mempool.mempool_create_page_pool(1, order)
    (low,) = drain(pool)
    high = mempool_alloc(pool, GFP_NOIO | __GFP_HIGHMEM)
    assert hwemu.PageHighMem(high)
    mempool_free(high, pool)
    subs = sub_pages(high, order)
    write_page_byte(subs[1], 100, 0x00)
    kmap_depths.clear()
    assert mempool_alloc_preallocated(pool) == high          # still handed out
    assert max(d for _, d in kmap_depths) == 1
    i, lines = mismatch_report(m)
    assert lines.count("BUG: mempool element poison mismatch") == 1
    assert lines[i + 1] == f"Mempool {pool:016x} size 4096"
    assert re.fullmatch(r" nr=0 @ [0-9a-f]{16}: \.\.\. 0x(6b ){4,8}0 (6b ){3,8}\.\.\.",
                        lines[i + 2]), lines[i + 2]
    at = int(lines[i + 2].split("@ ")[1][:16], 16)
    assert m.highmem.is_kmap_local(at)                       # the kmap_local address
    for n, sub in enumerate(subs):                           # the others were checked
        data = read_page(sub)
        if n == 1:
            assert data[:100] == b"\x6b" * 100 and data[100] == 0
        else:
            assert data == b"\x5a" * PAGE_SIZE
    assert hwemu.current().kmap_idx == 0
    release(pool, low, high)


def test_i386_highmem_mismatch_in_two_sub_pages_reports_twice(i386_debug):
    m = i386_debug
    pool = mempool.mempool_create_page_pool(1, 2)
    (page,) = reserve(pool)
    subs = sub_pages(page, 2)
    write_page_byte(subs[0], 5, 0x01)
    write_page_byte(subs[3], PAGE_SIZE - 1, 0x6B)
    assert mempool_alloc_preallocated(pool) == page
    lines = log_lines(m)
    assert lines.count("BUG: mempool element poison mismatch") == 2
    assert lines.count(f"Mempool {pool:016x} size 4096") == 2
    assert read_page(subs[1]) == read_page(subs[2]) == b"\x5a" * PAGE_SIZE
    release(pool, page)


def test_i386_poison_window_is_4_bytes(i386_debug):
    pool, e, (i, lines) = poke_one(i386_debug, 64, 20, 0x00)
    assert lines[i + 2].endswith(": ... 0x6b 6b 6b 6b 0 6b 6b 6b ...")


# ================================================================ §4 KASAN

@pytest.fixture
def kasan_machine(boot):
    return boot("tiny", kasan__enabled=True)


def test_kasan_reserved_kmalloc_elements_are_poisoned(kasan_machine):
    m = kasan_machine
    pool = mempool.mempool_create_kmalloc_pool(2, 100)
    for e in reserve(pool):
        with expect_report("slab-use-after-free"):
            hwemu.load(e, 1)
    e = mempool_alloc_preallocated(pool)
    hwemu.read_bytes(e, 100)                                   # accessible
    hwemu.store(e + 99, 1, 1)
    with expect_report("slab-out-of-bounds"):                 # redzone at pool_data
        hwemu.load(e + 100, 1)
    mempool_free(e, pool)
    with expect_report("slab-use-after-free"):
        hwemu.load(e + 50, 1)
    f = mempool_alloc(pool, GFP_KERNEL)                       # from kmalloc
    hwemu.read_bytes(f, 100)
    mempool_free(f, pool)
    mempool_destroy(pool)                                      # unpoisoned, then kfree
    assert unexpected_kasan(m) == []


def test_kasan_reserved_slab_elements_are_poisoned(kasan_machine):
    m = kasan_machine
    kc = hwemu.kmem_cache_create("mp_kasan", 40, 0, 0)
    pool = mempool.mempool_create_slab_pool(1, kc)
    (e,) = reserve(pool)
    with expect_report("slab-use-after-free"):
        hwemu.load(e + 39, 1)
    assert mempool_alloc_preallocated(pool) == e
    hwemu.read_bytes(e, 40)                                    # the whole object
    release(pool, e)
    hwemu.kmem_cache_destroy(kc)
    assert unexpected_kasan(m) == []


def test_kasan_reserved_pages_and_large_kmallocs_are_poisoned(kasan_machine):
    m = kasan_machine
    pool = mempool.mempool_create_page_pool(1, 1)
    (page,) = reserve(pool)
    addr = hwemu.page_address(page)
    with expect_report("use-after-free"):
        hwemu.load(addr + PAGE_SIZE, 8)
    assert mempool_alloc_preallocated(pool) == page
    hwemu.read_bytes(addr, 2 * PAGE_SIZE)
    mempool_free(page, pool)
    with expect_report("use-after-free"):
        hwemu.load(addr, 1)
    mempool_destroy(pool)
    big = mempool.mempool_create_kmalloc_pool(1, 10000)
    (lg,) = reserve(big)
    with expect_report("use-after-free"):
        hwemu.load(lg, 1)
    assert mempool_alloc_preallocated(big) == lg
    hwemu.read_bytes(lg, 10000)
    with expect_report("slab-out-of-bounds"):
        hwemu.load(lg + 10000, 1)
    mempool_free(lg, big)
    mempool_destroy(big)
    assert unexpected_kasan(m) == []


def test_kasan_resize_and_destroy_unpoison_before_freeing(kasan_machine):
    m = kasan_machine
    before = live_objects(m)
    pool = mempool.mempool_create_kmalloc_pool(4, 64)
    pages = mempool.mempool_create_page_pool(3, 1)
    assert mempool_resize(pool, 1) == 0 and mempool_resize(pages, 1) == 0
    assert mempool_resize(pool, 3) == 0
    mempool_destroy(pages)
    mempool_destroy(pool)
    assert m.kasan.reports == []
    assert live_objects(m) == before


def test_kasan_double_free_into_a_short_pool_is_dropped(kasan_machine, monkeypatch):
    m = kasan_machine
    kfrees = counting(monkeypatch, mempool.MEMPOOL_KFREE)
    pool = mempool.mempool_create_kmalloc_pool(4, 64)
    e1, e2 = mempool_alloc_preallocated(pool), mempool_alloc_preallocated(pool)
    mempool_free(e1, pool)
    assert curr_nr(pool) == 3
    live = len(m.slab.slab_of(e1).cache.live)
    with expect_report("double-free") as got:
        mempool_free(e1, pool)
    assert len(got) == 1
    assert f"Free of addr {e1:016x} by task init/1" in got[0].text
    assert curr_nr(pool) == 3 and reserve(pool).count(e1) == 1   # dropped
    assert kfrees == []                                           # free_fn not called
    assert len(m.slab.slab_of(e1).cache.live) == live
    release(pool, e2)
    assert unexpected_kasan(m) == []


def test_kasan_free_bulk_counts_a_rejected_element_as_freed(kasan_machine):
    m = kasan_machine
    pool = mempool.mempool_create_kmalloc_pool(4, 64)
    out = drain(pool)
    mempool_free(out[0], pool)
    with expect_report("double-free"):
        assert mempool_free_bulk(pool, [out[0], out[1], out[2]], 3) == 3
    assert reserve(pool) == [out[0], out[1], out[2]]
    release(pool, out[3])
    assert unexpected_kasan(m) == []


def test_kasan_invalid_free_into_a_short_pool_is_dropped(kasan_machine, monkeypatch):
    m = kasan_machine
    kfrees = counting(monkeypatch, mempool.MEMPOOL_KFREE)
    pool = mempool.mempool_create_kmalloc_pool(2, 64)
    e1, e2 = drain(pool)
    with expect_report("invalid-free"):
        mempool_free(e1 + 8, pool)
    assert curr_nr(pool) == 0 and kfrees == []
    mempool_free(e1, pool)
    mempool_free(e2, pool)
    assert curr_nr(pool) == 2
    big = mempool.mempool_create_kmalloc_pool(1, 10000)
    (lg,) = drain(big)
    with expect_report("invalid-free"):
        mempool_free(lg + 8, big)
    assert curr_nr(big) == 0
    mempool_free(lg, big)
    mempool_destroy(big)
    mempool_destroy(pool)
    assert unexpected_kasan(m) == []


def test_kasan_double_free_of_pages_into_a_short_pool(kasan_machine, monkeypatch):
    m = kasan_machine
    frees = counting(monkeypatch, mempool.MEMPOOL_FREE_PAGES)
    pool = mempool.mempool_create_page_pool(2, 0)
    p1, p2 = drain(pool)
    mempool_free(p1, pool)
    with expect_report("double-free"):
        mempool_free(p1, pool)
    assert reserve(pool) == [p1] and frees == []
    release(pool, p2)
    assert unexpected_kasan(m) == []


def test_kasan_double_free_into_a_full_pool_is_caught_by_kfree(kasan_machine, monkeypatch):
    m = kasan_machine
    kfrees = counting(monkeypatch, mempool.MEMPOOL_KFREE)
    pool = mempool.mempool_create_kmalloc_pool(2, 64)
    e = mempool_alloc(pool, GFP_KERNEL)                       # fresh from kmalloc
    mempool_free(e, pool)                                      # full: kfree
    assert len(kfrees) == 1
    with expect_report("double-free"):
        mempool_free(e, pool)
    assert len(kfrees) == 2 and curr_nr(pool) == 2
    mempool_destroy(pool)
    assert unexpected_kasan(m) == []


def test_kasan_custom_callbacks_get_no_annotations(kasan_machine):
    m = kasan_machine
    b, pool = backed_pool(3, 64)
    for e in reserve(pool):
        hwemu.read_bytes(e, 64)                                # not poisoned
    e = mempool_alloc_preallocated(pool)
    e2 = mempool_alloc_preallocated(pool)
    mempool_free(e, pool)
    mempool_free(e, pool)                                      # stored twice, no report
    assert reserve(pool)[-2:] == [e, e]
    assert mempool_alloc_preallocated(pool) == mempool_alloc_preallocated(pool) == e
    assert m.kasan.reports == []
    release(pool, e, e2)


def test_kasan_mempool_report_names_mempool_free_or_its_caller(kasan_machine):
    pool = mempool.mempool_create_kmalloc_pool(3, 64)
    e = mempool_alloc_preallocated(pool)
    mempool_alloc_preallocated(pool)
    mempool_free(e, pool)                     # curr 2 < 3: the next free is checked
    assert curr_nr(pool) == 2
    with expect_report("double-free") as got:
        mempool_free(e, pool)
    head = got[0].text.split("\n")[1]
    assert re.match(r"BUG: KASAN: double-free in (mempool_free|"
                    r"test_kasan_mempool_report_names_mempool_free_or_its_caller)\+0x",
                    head), head


# ================================================================ §1.13 / §9 fault injection

def test_fail_mempool_alloc_forces_the_reserve(machine):
    attr = machine.fault.fail_mempool_alloc
    b, pool, res = forced_pool(attr, 3)
    got = []
    for _ in range(3):
        got.append(mempool_alloc(pool, GFP_KERNEL))
    assert got == res[:0:-1] and b.masks == []                # allocator not called
    lines = [ln for ln in log_lines(machine) if ln.startswith("forcing mempool usage for ")]
    assert len(lines) == 3
    for line in lines:
        assert re.fullmatch(r"forcing mempool usage for "
                            r"test_fail_mempool_alloc_forces_the_reserve"
                            r"\+0x[0-9a-f]+/0x[0-9a-f]+", line), line
    assert "FAULT_INJECTION" not in machine.dmesg()
    assert attr.times == 0
    e = mempool_alloc(pool, GFP_KERNEL)                        # times used up
    assert b.masks == [KERNEL_FIRST] and e == b.allocated[-1]
    release(pool, *got, e)


def test_fail_mempool_alloc_is_checked_on_every_retry(machine):
    b, pool = backed_pool(1)
    (own,) = drain(pool)
    attr = machine.fault.fail_mempool_alloc
    attr.probability, attr.times = 100, 1
    b.clear()
    e = mempool_alloc(pool, GFP_KERNEL)     # forced, empty reserve, retry: allocator
    assert b.masks == [KERNEL_FULL] and e == b.allocated[-1]
    attr.times = 1
    assert mempool_alloc(pool, GFP_ATOMIC) == 0                # forced, nothing left
    assert b.masks == [KERNEL_FULL]
    attr.times = 3
    t = spawn_alloc(machine, pool, GFP_KERNEL)   # forced 3 times (two 5 s waits),
    assert t.join(JOIN) == b.allocated[-1]       # then the allocator
    assert b.masks == [KERNEL_FULL] * 2
    assert len([ln for ln in log_lines(machine) if "forcing mempool usage" in ln]) == 5
    release(pool, own, e, b.allocated[-1])


# ================================================================ stress

def test_stress_mixed_alloc_free_under_memory_pressure(boot, monkeypatch, sleeps):
    """8 tasks allocate (GFP_KERNEL/GFP_NOIO/GFP_ATOMIC) and free on one kmalloc pool
    while fail_mempool_alloc fails half the allocator attempts and a hog holds the
    machine's free memory. A task only makes a blocking allocation while it holds no
    element (mempool's forward-progress rule); with elements in hand it may only use
    GFP_ATOMIC/GFP_NOWAIT."""
    m = boot("tiny", machine__cpus=10, debug__slub_debug_on=True)
    size, nr, rounds = 256, 8, 1000
    allocs = counting(monkeypatch, mempool.MEMPOOL_KMALLOC)
    frees = counting(monkeypatch, mempool.MEMPOOL_KFREE)
    m.slab.shrink()
    cache = m.slab.find_cache("kmalloc-256")
    cache_live0 = len(cache.live)
    pool = mempool.mempool_create_kmalloc_pool(nr, size)
    attr = m.fault.fail_mempool_alloc
    attr.probability, attr.times, attr.verbose = 50, -1, 0

    stop = []
    hog_ready = hwemu.completion()
    lock = threading.Lock()
    outstanding = set()
    nulls = []                  # allocations with direct reclaim that returned NULL
    stats = {"max_curr": 0, "atomic_null": 0, "samples": 0, "hogged": 0}

    def sample():
        c = curr_nr(pool)
        stats["samples"] += 1
        if c > stats["max_curr"]:
            stats["max_curr"] = c

    def hog():
        grabbed = []
        try:
            m.page_alloc.drain_all_pages()
            got = hwemu.add_anon_pages(max(0, hwemu.nr_free_pages() - 600))
            # The rest down to the watermarks, without reclaim (no OOM killer).
            got += m.vmscan.add_anon_pages(
                1 << 20, (hwemu.GFP_HIGHUSER_MOVABLE | hwemu.__GFP_NOWARN)
                & ~hwemu.__GFP_DIRECT_RECLAIM)
            stats["hogged"] = got
            # And the free objects of the pool's kmalloc cache, so that alloc_fn
            # really fails (an atomic mask may dig below the pool's NOMEMALLOC one).
            while True:
                p = hwemu.kmalloc(size, GFP_NOWAIT | hwemu.__GFP_NOWARN)
                if not p:
                    break
                grabbed.append(p)
            stats["grabbed"] = len(grabbed)
            hwemu.complete_all(hog_ready)
            while not stop:
                hwemu.msleep(20)
        except hwemu.Killed:
            pass
        finally:
            hwemu.complete_all(hog_ready)
            for p in grabbed:
                hwemu.kfree(p)
        return hwemu.release_anon_pages()

    def take(seed, n, gfp, held):
        e = mempool_alloc(pool, gfp)
        if not e:
            if gfp & hwemu.__GFP_DIRECT_RECLAIM:
                nulls.append(gfp)
            else:
                stats["atomic_null"] += 1
            return
        with lock:
            assert e not in outstanding, "element handed out twice"
            outstanding.add(e)
        tag = seed << 32 | n << 8 | len(held)
        hwemu.store(e, 8, tag)
        hwemu.memset(e + 8, seed, size - 8)
        held.append((e, tag))

    def worker(seed):
        rng = random.Random(seed)
        for n in range(rounds):
            held = []
            # One allocation that may wait, with nothing in hand ...
            take(seed, n, rng.choice([GFP_KERNEL, GFP_NOIO, GFP_ATOMIC]), held)
            # ... then a burst that must not: GFP_ATOMIC/GFP_NOWAIT only.
            for _ in range(rng.randrange(5)):
                take(seed, n, rng.choice([GFP_ATOMIC, GFP_NOWAIT]), held)
            sample()
            rng.shuffle(held)
            for e, tag in held:
                assert hwemu.load(e, 8) == tag
                assert hwemu.load(e + size - 1, 1) == seed
                with lock:
                    outstanding.remove(e)
                mempool_free(e, pool)
            sample()
        return seed

    h = m.spawn(hog, name="memhog")
    hwemu.wait_for_completion(hog_ready)
    workers = [m.spawn(worker, seed, name=f"mpw{seed}") for seed in range(8)]
    deadline = hwemu.ktime_get() + 300 * 10**9
    while any(w.is_alive() for w in workers) and hwemu.ktime_get() < deadline:
        sample()
        hwemu.msleep(1)
    stop.append(True)
    assert [w.join(JOIN) for w in workers] == list(range(8))
    h.join(JOIN)
    assert nulls == []
    assert stats["max_curr"] <= nr and stats["samples"] >= 16 * rounds
    assert not outstanding
    assert stats["hogged"] > 10000 or m.vmstat["oom_kill"]
    failed = sum(1 for _, r in allocs if not r)     # real allocator failures
    assert failed
    # verbose 0 silences fault injection's own dump, not mempool's pr_info.
    assert any(ln.startswith("forcing mempool usage for take+0x") for ln in log_lines(m))
    mempool_destroy(pool)
    # Every element alloc_fn produced went back through free_fn exactly once.
    assert sum(1 for _, r in allocs if r) == len(frees)
    assert Counter(r for _, r in allocs if r) == Counter(a[0] for a, _ in frees)
    assert len(cache.live) == cache_live0                   # no kmalloc-256 leaked
    assert "poison mismatch" not in m.dmesg()
