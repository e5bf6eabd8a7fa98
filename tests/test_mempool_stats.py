"""Per-pool counters and element descriptions (mempool.stats)."""
from helpers import wait_until

import hwemu
import mempool
from hwemu import GFP_ATOMIC, GFP_KERNEL


def failing_pool(min_nr, size=64):
    """A kmalloc-backed pool whose allocator fails while ``fail[0]`` is true."""
    fail = [False]

    def alloc_fn(gfp, data):
        return 0 if fail[0] else hwemu.kmalloc(data, gfp)

    pool = mempool.mempool_create(min_nr, alloc_fn, lambda e, d: hwemu.kfree(e), size)
    return pool, fail


def test_counters_follow_where_elements_come_from_and_go(machine):
    pool, fail = failing_pool(2)
    assert mempool.mempool_stats(pool)["preallocated"] == 2
    a = mempool.mempool_alloc(pool, GFP_KERNEL)           # allocator
    fail[0] = True
    b = mempool.mempool_alloc(pool, GFP_KERNEL)           # reserve
    c = mempool.mempool_alloc_preallocated(pool)          # reserve
    assert mempool.mempool_alloc(pool, GFP_ATOMIC) == 0   # empty: NULL
    for e in (a, b, c):
        mempool.mempool_free(e, pool)                     # two refill, one to kfree
    s = mempool.mempool_stats(pool)
    assert (s["alloc_allocator"], s["alloc_reserve"], s["alloc_null"]) == (1, 2, 1)
    assert (s["free_reserve"], s["free_allocator"]) == (2, 1)
    assert s["waits"] == 0
    mempool.mempool_destroy(pool)


def test_wait_is_counted_with_its_duration(machine):
    pool, fail = failing_pool(1)
    fail[0] = True
    held = mempool.mempool_alloc(pool, GFP_KERNEL)        # the only element
    got = machine.spawn(mempool.mempool_alloc, pool, GFP_KERNEL)
    assert wait_until(lambda: mempool.mempool_stats(pool)["waits"] >= 1, timeout=10)
    mempool.mempool_free(held, pool)
    assert got.join(timeout=10) == held
    s = mempool.mempool_stats(pool)
    assert s["waits"] >= 1 and s["max_wait_ns"] < 6 * 10**9   # 5*HZ, plus slack
    assert s["wait_ns"] >= s["max_wait_ns"] >= s["p99_wait_ns"] > 0
    mempool.mempool_destroy(pool)


def test_kasan_dropped_elements_are_counted(boot):
    boot("tiny", kasan__enabled=True)
    pool = mempool.mempool_create_kmalloc_pool(2, 64)
    e = mempool.mempool_alloc_preallocated(pool)
    f = mempool.mempool_alloc_preallocated(pool)  # the reserve is empty now
    mempool.mempool_free(e, pool)                 # back in the reserve, poisoned
    with hwemu.kasan.expect_report("double-free"):
        mempool.mempool_free(e, pool)             # the pool is short: KASAN drops it
    assert mempool.mempool_stats(pool)["kasan_dropped"] == 1
    mempool.mempool_free(f, pool)
    mempool.mempool_destroy(pool)


def test_describe_tells_reserve_object_and_page_states(machine):
    pool = mempool.mempool_create_kmalloc_pool(2, 100)
    top = mempool.mempool_alloc_preallocated(pool)
    mempool.mempool_free(top, pool)
    assert mempool.describe(top) == f"{top:#x}: element in the reserve of pool {pool:#x} " \
                                    "(slot 1 of 2)"
    obj = hwemu.kmalloc(100, GFP_KERNEL)
    assert mempool.describe(obj + 4) == (f"{obj + 4:#x}: object {obj:#x} of cache "
                                         "kmalloc-128 (4 bytes into it): allocated, 100 "
                                         "bytes asked for")
    hwemu.kfree(obj)
    assert mempool.describe(obj).endswith(": free")
    page = hwemu.alloc_pages(GFP_KERNEL, 0)
    addr = hwemu.page_address(page)
    pfn = hwemu.page_to_pfn(page)
    assert mempool.describe(addr) == f"{addr:#x}: direct-map page pfn {pfn:#x}: allocated"
    assert mempool.describe(page) == f"{page:#x}: struct page of pfn {pfn:#x}, refcount 1"
    hwemu.__free_pages(page, 0)
    v = hwemu.vmalloc(100)
    assert "vmalloc area" in mempool.describe(v + 10)
    hwemu.vfree(v)
    mempool.mempool_destroy(pool)
