"""The slab allocator (hwemu/slab.py), checked against mm/slub.c and mm/slab_common.c (6.x).

kmalloc size classes and large kmalloc, kzalloc/krealloc/kmalloc_array, struct page
state of slabs, kmem_cache_create/alloc/free/destroy with constructors and alignment,
NUMA placement, slabs going back to the page allocator, vmstat accounting, every kind
of bad free, the leak report of kmem_cache_destroy, failslab, the out-of-memory
message and a multi-task stress test. Most tests end with :func:`audit`: every cache
is consistent (each object allocated or free exactly once).
"""
import random
import re
import threading

import pytest

import hwemu
from hwemu import slab as S
from hwemu.bug import TAINT, AddressError, KernelPanic
from hwemu.gfp import (__GFP_HIGHMEM, __GFP_NOWARN, __GFP_RECLAIMABLE, __GFP_THISNODE, __GFP_ZERO,
                       GFP_ATOMIC, GFP_DMA, GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOWAIT)
from hwemu.page import page_address, page_struct, page_to_nid, virt_to_page
from hwemu.page_alloc import __free_pages, alloc_pages
from hwemu.slab import (KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE, SLAB_HWCACHE_ALIGN, SLAB_PANIC,
                        SLAB_RECLAIM_ACCOUNT, SLAB_TYPESAFE_BY_RCU, ZERO_SIZE_PTR, kcalloc, kfree,
                        kfree_sensitive, kmalloc, kmalloc_array, kmalloc_array_node, kmalloc_node,
                        kmalloc_size_roundup, kmem_cache_alloc, kmem_cache_alloc_node,
                        kmem_cache_create, kmem_cache_destroy, kmem_cache_free, kmem_cache_shrink,
                        kmem_cache_size, krealloc, ksize, kzalloc, virt_to_cache)
from hwemu.util import kvmalloc_array

PAGE_SIZE = 4096
PG_head = 6


# ---------------------------------------------------------------- helpers

def audit(m):
    assert m.slab.validate() == []


def free_pages_now(m):
    """Free pages after every per-CPU cache (slab and page) has been emptied."""
    m.slab.shrink()
    m.page_alloc.drain_all_pages()
    return sum(z.free_pages for z in m.page_alloc.zones)


def cache_name(obj):
    addr = virt_to_cache(obj)
    return hwemu.sched.current().machine.slab.caches[addr].name if addr else None


def page_type(page):
    return (page_struct(page)._mapcount >> 24) & 0xFF


def head_page(obj):
    """compound_head(virt_to_page(obj))."""
    page = virt_to_page(obj)
    nxt = page_struct(page).lru_next
    return nxt - 1 if nxt & 1 else page


def write(obj, data):
    hwemu.write_bytes(obj, data)


def read(obj, n):
    return hwemu.read_bytes(obj, n)


def log(m):
    return m.dmesg()


def new_lines(m, since):
    return m.log.dmesg().splitlines()[since:]


def nlines(m):
    return len(m.log.dmesg().splitlines())


def exhaust(gfp=GFP_ATOMIC | __GFP_NOWARN):
    """Take every free page the page allocator will give; returns [(page, order)]."""
    held = []
    for order in range(10, -1, -1):
        while True:
            page = alloc_pages(gfp, order)
            if not page:
                break
            held.append((page, order))
    return held


# ---------------------------------------------------------------- size classes

SIZE_CLASSES = [
    (1, "kmalloc-8"), (8, "kmalloc-8"), (9, "kmalloc-16"), (16, "kmalloc-16"),
    (17, "kmalloc-32"), (24, "kmalloc-32"), (32, "kmalloc-32"), (33, "kmalloc-64"),
    (64, "kmalloc-64"), (65, "kmalloc-96"), (96, "kmalloc-96"), (97, "kmalloc-128"),
    (128, "kmalloc-128"), (129, "kmalloc-192"), (192, "kmalloc-192"),
    (193, "kmalloc-256"), (256, "kmalloc-256"), (257, "kmalloc-512"),
    (512, "kmalloc-512"), (513, "kmalloc-1k"), (1024, "kmalloc-1k"),
    (1025, "kmalloc-2k"), (2048, "kmalloc-2k"), (2049, "kmalloc-4k"),
    (4096, "kmalloc-4k"), (4097, "kmalloc-8k"), (8192, "kmalloc-8k"),
]


def test_kmalloc_size_classes(machine):
    bucket = {n: int(n.split("-")[1].replace("k", "")) * (1024 if n.endswith("k") else 1)
              for _, n in SIZE_CLASSES}
    for size, name in SIZE_CLASSES:
        p = kmalloc(size, GFP_KERNEL)
        assert p and p % 8 == 0
        assert cache_name(p) == name, size
        assert ksize(p) == bucket[name] >= size
        assert kmalloc_size_roundup(size) == bucket[name]
        assert machine.slab.object_requested_size(p) == size
        kfree(p)
        assert machine.slab.object_requested_size(p) is None
    assert KMALLOC_MAX_CACHE_SIZE == 8192 and KMALLOC_MAX_SIZE == 4 << 20
    assert kmalloc_size_roundup(8193) == 16384 and kmalloc_size_roundup(0) == 0
    audit(machine)


def test_kmalloc_caches_geometry(machine):
    """Alignment of kmalloc caches is the largest power of two dividing the size; slab
    orders come from calculate_order() with 8 CPUs (20 objects minimum)."""
    sl = machine.slab
    geo = {s.name: (s.align, s.order, s.objects) for s in sl.slab_caches}
    assert geo["kmalloc-8"] == (8, 0, 512)
    assert geo["kmalloc-96"] == (32, 0, 42)
    assert geo["kmalloc-192"] == (64, 0, 21)
    assert geo["kmalloc-256"] == (256, 1, 32)
    assert geo["kmalloc-1k"] == (1024, 3, 32)
    assert geo["kmalloc-8k"] == (8192, 3, 4)
    assert sl.find_cache("kmalloc-8k").min_order == 1
    # the cache of caches holds its own descriptor
    kc = sl.kmem_cache
    assert virt_to_cache(kc.addr) == kc.addr
    assert sl.caches[virt_to_cache(sl.kmalloc_normal[6].addr)] is kc


def test_kmalloc_types(machine):
    assert cache_name(p1 := kmalloc(100, GFP_KERNEL | __GFP_RECLAIMABLE)) == "kmalloc-rcl-128"
    assert cache_name(p2 := kmalloc(100, GFP_KERNEL_ACCOUNT)) == "kmalloc-cg-128"
    assert cache_name(p3 := kmalloc(100, GFP_KERNEL | GFP_DMA)) == "dma-kmalloc-128"
    assert page_to_nid(virt_to_page(p3)) == 0 and p3 - machine.memmap.page_offset < 16 << 20
    for p in (p1, p2, p3):
        kfree(p)
    audit(machine)


def test_kmalloc_zero_and_null(machine):
    assert kmalloc(0, GFP_KERNEL) == ZERO_SIZE_PTR
    kfree(ZERO_SIZE_PTR)
    kfree(0)
    assert ksize(ZERO_SIZE_PTR) == 0 and ksize(0) == 0
    assert kmem_cache_destroy(0) is None
    assert machine.slab.reports == [] and "BUG" not in log(machine)


def test_large_kmalloc_comes_from_pages(machine):
    m = machine
    before = free_pages_now(m)
    unrecl = m.vmstat["nr_slab_unreclaimable"]
    p = kmalloc(8193, GFP_KERNEL)
    assert p and p % (4 * PAGE_SIZE) == 0
    page = virt_to_page(p)
    assert page_address(page) == p
    assert page_struct(page).flags >> PG_head & 1          # compound head
    assert page_type(page) == S.PGTY_large_kmalloc        # 0xf8
    assert virt_to_cache(p) == 0
    assert ksize(p) == 16384
    assert m.slab.object_requested_size(p) == 8193
    assert m.vmstat["nr_slab_unreclaimable"] == unrecl + 4
    write(p + 16380, b"abcd")
    kfree(p)
    assert m.vmstat["nr_slab_unreclaimable"] == unrecl
    assert free_pages_now(m) == before
    big = kmalloc(KMALLOC_MAX_SIZE, GFP_KERNEL)
    assert big and ksize(big) == KMALLOC_MAX_SIZE
    kfree(big)
    assert kmalloc(KMALLOC_MAX_SIZE + 1, GFP_KERNEL | __GFP_NOWARN) == 0
    assert m.slab.reports == []


def test_kzalloc_zeroes(machine):
    for size in (24, 100, 3000, 10000):
        p = kmalloc(size, GFP_KERNEL)
        write(p, b"\xff" * ksize(p))
        kfree(p)
        z = kzalloc(size, GFP_KERNEL)
        assert z == p   # LIFO per-CPU array / same pages
        assert read(z, ksize(z)) == bytes(ksize(z))
        kfree(z)
    c = kcalloc(10, 12, GFP_KERNEL)
    assert read(c, 120) == bytes(120) and cache_name(c) == "kmalloc-128"
    kfree(c)
    audit(machine)


def test_kmalloc_array_overflow(machine):
    assert kmalloc_array(1 << 32, 1 << 32, GFP_KERNEL) == 0
    assert kmalloc_array((1 << 63) + 1, 2, GFP_KERNEL) == 0
    assert kcalloc(1 << 40, 1 << 30, GFP_KERNEL) == 0
    p = kmalloc_array(4, 16, GFP_KERNEL)
    assert cache_name(p) == "kmalloc-64"
    q = kmalloc_array_node(3, 8, GFP_KERNEL, 0)
    assert cache_name(q) == "kmalloc-32"
    kfree(p)
    kfree(q)
    assert machine.slab.reports == []


def test_array_overflow_is_the_machines_size_max(highmem_machine):
    """2**20 elements of 8K are 8G, more than an i386 size_t holds: kmalloc_array() and
    kvmalloc_array() both return NULL quietly (check_mul_overflow() against the
    machine's SIZE_MAX, not a WARN from a kmalloc too large)."""
    m = highmem_machine
    assert m.SIZE_MAX == (1 << 32) - 1
    assert kmalloc_array(1 << 20, 1 << 13, GFP_KERNEL) == 0
    assert kvmalloc_array(1 << 20, 1 << 13, GFP_KERNEL) == 0
    assert m.warnings == []
    assert "WARNING" not in m.dmesg()


def test_krealloc(machine):
    m = machine
    p = kmalloc(20, GFP_KERNEL)
    write(p, bytes(range(20)))
    assert krealloc(p, 30, GFP_KERNEL) == p          # still fits kmalloc-32
    assert m.slab.object_requested_size(p) == 30
    q = krealloc(p, 100, GFP_KERNEL)                   # grows into kmalloc-128
    assert q != p and cache_name(q) == "kmalloc-128"
    assert read(q, 20) == bytes(range(20))
    assert m.slab.object_requested_size(p) is None     # the old object was freed
    assert krealloc(q, 10, GFP_KERNEL) == q            # shrinks in place
    assert m.slab.object_requested_size(q) == 10 and read(q, 10) == bytes(range(10))
    # __GFP_ZERO zeroes what was not requested before
    write(q + 10, b"\xee" * 118)
    assert krealloc(q, 120, GFP_KERNEL | __GFP_ZERO) == q
    assert read(q, 10) == bytes(range(10)) and read(q, 110) == bytes(range(10)) + bytes(100)
    # to and from a large kmalloc
    big = krealloc(q, 20000, GFP_KERNEL)
    assert ksize(big) == 32768 and read(big, 10) == bytes(range(10))
    small = krealloc(big, 50, GFP_KERNEL)
    assert small == big                                 # fits: kept in place
    assert krealloc(small, 0, GFP_KERNEL) == ZERO_SIZE_PTR  # frees
    assert m.slab.object_requested_size(small) is None
    n = krealloc(0, 50, GFP_KERNEL)                     # NULL: kmalloc
    assert cache_name(n) == "kmalloc-64"
    n2 = krealloc(ZERO_SIZE_PTR, 8, GFP_KERNEL)
    assert cache_name(n2) == "kmalloc-8"
    kfree(n)
    kfree(n2)
    assert m.slab.reports == []
    audit(m)


def test_kfree_sensitive_clears(machine):
    p = kmalloc(40, GFP_KERNEL)
    write(p, b"\x5a" * 64)
    kfree_sensitive(p)
    assert read(p, 64) == bytes(64)
    audit(machine)


# ---------------------------------------------------------------- struct page of slabs

def test_slab_page_state(machine):
    m = machine
    p = kmalloc(64, GFP_KERNEL)
    page = virt_to_page(p)
    sp = page_struct(page)
    cache = m.slab.find_cache("kmalloc-64")
    assert page_type(page) == S.PGTY_slab                 # 0xf5 in _mapcount's top byte
    assert sp._mapcount == S.PAGE_TYPE_SLAB
    assert sp.lru_next == cache.addr                      # slab->slab_cache @8
    assert sp._refcount == 0                              # slab pages are frozen
    slab = m.slab.slab_of(p)
    assert sp.private == slab.inuse | slab.objects << 16  # counters @40
    assert sp.index == (slab.free[-1] if slab.free else 0)  # freelist @32
    # a multi-page slab: tail pages point at the head
    q = kmalloc(1024, GFP_KERNEL)
    big = m.slab.slab_of(q)
    assert big.order == 3
    last = big.base + (PAGE_SIZE << big.order) - 8         # in the last tail page
    assert virt_to_page(last) != big.page and head_page(last) == big.page
    assert virt_to_cache(last) == m.slab.find_cache("kmalloc-1k").addr
    head = big.page
    assert page_struct(head).flags >> PG_head & 1
    assert page_struct(head).lru_next == m.slab.find_cache("kmalloc-1k").addr
    assert page_type(head) == S.PGTY_slab
    kfree(p)
    kfree(q)
    audit(m)


# ---------------------------------------------------------------- kmem_cache

def test_kmem_cache_lifecycle_and_ctor(machine):
    m = machine
    before = free_pages_now(m)
    calls = []

    def ctor(obj):
        calls.append(obj)
        hwemu.store(obj, 8, 0xC0FFEE)

    c = kmem_cache_create("widget", 200, 0, 0, ctor)
    assert c and kmem_cache_size(c) == 200
    s = m.slab.caches[c]
    st = s.struct
    assert st.object_size == 200 and st.size == s.size == 200 + 8  # free pointer after
    assert st.offset == 200 and st.ctor != 0 and st.refcount == 1
    assert hwemu.read_bytes(st.name, 7) == b"widget\0"
    objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(3)]
    assert len(calls) == s.objects                     # the whole slab, once
    assert set(objs) <= set(calls)
    assert all(hwemu.load(o, 8) == 0xC0FFEE for o in objs)
    hwemu.store(objs[0], 8, 1)
    kmem_cache_free(c, objs[0])
    again = kmem_cache_alloc(c, GFP_KERNEL)
    assert again == objs[0] and hwemu.load(again, 8) == 1   # no ctor on reuse
    assert len(calls) == s.objects
    more = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(s.objects)]
    assert len(calls) == 2 * s.objects                 # a second slab was populated
    for o in more + objs[1:] + [again]:
        kmem_cache_free(c, o)
    audit(m)
    kmem_cache_destroy(c)
    assert c not in m.slab.caches and "widget" not in [x.name for x in m.slab.slab_caches]
    assert free_pages_now(m) == before
    assert m.slab.reports == []
    with pytest.raises(AddressError):
        kmem_cache_alloc(c, GFP_KERNEL)


def test_kmem_cache_alignment(machine):
    m = machine
    a = kmem_cache_create("hw40", 40, 0, SLAB_HWCACHE_ALIGN, None)
    b = kmem_cache_create("hw24", 24, 0, SLAB_HWCACHE_ALIGN, None)   # fits twice in 64
    c = kmem_cache_create("al128", 72, 128, 0, None)
    d = kmem_cache_create("plain", 12, 0, 0, None)
    geo = {n: (m.slab.caches[x].align, m.slab.caches[x].size)
           for n, x in (("a", a), ("b", b), ("c", c), ("d", d))}
    assert geo == {"a": (64, 64), "b": (32, 32), "c": (128, 128), "d": (8, 16)}
    for cache, align in ((a, 64), (b, 32), (c, 128), (d, 8)):
        objs = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(50)]
        assert all(o % align == 0 for o in objs)
        assert len(set(objs)) == 50
        for o in objs:
            kmem_cache_free(cache, o)
        kmem_cache_destroy(cache)
    with pytest.raises(ValueError):
        kmem_cache_create("bad", 32, 24, 0, None)
    audit(m)


def test_kmem_cache_create_duplicates_and_failures(machine):
    m = machine
    a = kmem_cache_create("twin", 32, 0, 0, None)
    b = kmem_cache_create("twin", 32, 0, 0, None)
    assert a and b and a != b
    assert kmem_cache_create("huge", KMALLOC_MAX_SIZE + 1, 0, 0, None) == 0
    assert "kmem_cache_create(huge) integrity check failed" in log(m)
    assert "__kmem_cache_create_args(huge) failed with error -22" in log(m)
    with pytest.raises(KernelPanic, match="Failed to create slab 'huge'. Error -22"):
        kmem_cache_create("huge", KMALLOC_MAX_SIZE + 1, 0, SLAB_PANIC, None)
    r = kmem_cache_create("rcu", 64, 0, SLAB_TYPESAFE_BY_RCU, None)
    assert m.slab.caches[r].offset == 64                 # free pointer outside
    for x in (a, b, r):
        kmem_cache_destroy(x)


def test_kmem_cache_alloc_node(boot):
    m = boot("x86_64-numa4")
    c = kmem_cache_create("nodal", 128, 0, 0, None)
    for nid in range(4):
        objs = [kmem_cache_alloc_node(c, GFP_KERNEL, nid) for _ in range(40)]
        assert {page_to_nid(virt_to_page(o)) for o in objs} == {nid}
        k = kmalloc_node(300, GFP_KERNEL, nid)
        t = kmalloc_node(100, GFP_KERNEL | __GFP_THISNODE, nid)
        big = kmalloc_node(20000, GFP_KERNEL, nid)
        assert {page_to_nid(virt_to_page(x)) for x in (k, t, big)} == {nid}
        for o in objs:
            kmem_cache_free(c, o)   # remote frees go straight back to their slabs
        for x in (k, t, big):
            kfree(x)
    local = kmem_cache_alloc(c, GFP_KERNEL)
    assert page_to_nid(virt_to_page(local)) == hwemu.numa_node_id()
    kmem_cache_free(c, local)
    with pytest.raises(AddressError):
        kmem_cache_alloc_node(c, GFP_KERNEL, 7)
    audit(m)
    kmem_cache_destroy(c)


def test_empty_slabs_go_back_and_vmstat(machine):
    m = machine
    before = free_pages_now(m)
    a = kmem_cache_create("unrecl", 256, 0, 0, None)
    r = kmem_cache_create("recl", 256, 0, SLAB_RECLAIM_ACCOUNT, None)
    sa, sr = m.slab.caches[a], m.slab.caches[r]
    unrecl = m.vmstat["nr_slab_unreclaimable"]   # after the names were kmalloc'ed
    recl = m.vmstat["nr_slab_reclaimable"]
    objs_a = [kmem_cache_alloc(a, GFP_KERNEL) for _ in range(1000)]
    objs_r = [kmem_cache_alloc(r, GFP_KERNEL) for _ in range(300)]
    pages_a = sa.num_slabs << sa.order
    pages_r = sr.num_slabs << sr.order
    assert pages_a >= 1000 * 256 // PAGE_SIZE
    assert m.vmstat["nr_slab_unreclaimable"] == unrecl + pages_a
    assert m.vmstat["nr_slab_reclaimable"] == recl + pages_r
    info = sa.slabinfo()
    cached = sum(len(objs) for objs in sa.pcs)   # per-CPU objects count as active
    assert info["active_objs"] == 1000 + cached and info["num_objs"] == sa.num_slabs * sa.objects
    assert info["objs_per_slab"] == sa.objects and info["pagesperslab"] == 1 << sa.order
    for o in objs_a + objs_r:
        kfree(o)
    # empty slabs beyond min_partial were freed already; shrink frees the rest
    assert sa.num_slabs <= sa.min_partial + 1
    kmem_cache_shrink(a)
    kmem_cache_shrink(r)
    assert sa.num_slabs == 0 and sr.num_slabs == 0
    assert m.vmstat["nr_slab_unreclaimable"] == unrecl
    assert m.vmstat["nr_slab_reclaimable"] == recl
    kmem_cache_destroy(a)
    kmem_cache_destroy(r)
    assert free_pages_now(m) == before


def test_unexpected_gfp_is_fixed_up(machine):
    m = machine
    c = kmem_cache_create("fixme", 64, 0, 0, None)
    p = kmem_cache_alloc(c, GFP_KERNEL | __GFP_HIGHMEM)
    assert p and m.memmap.page_offset <= p
    assert ("Unexpected gfp: 0x2 (__GFP_HIGHMEM). Fixing up to gfp: 0xcc0 (GFP_KERNEL). "
            "Fix your code!") in log(m)
    big = kmalloc(10000, GFP_KERNEL | __GFP_HIGHMEM)
    assert big and log(m).count("Unexpected gfp: 0x2") == 2
    kfree(big)
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


# ---------------------------------------------------------------- bad frees

def test_wrong_cache_warns_and_frees_to_the_real_cache(machine):
    m = machine
    a = kmem_cache_create("cache_a", 48, 0, 0, None)
    b = kmem_cache_create("cache_b", 48, 0, 0, None)
    x = kmem_cache_alloc(b, GFP_KERNEL)
    kmem_cache_free(a, x)
    text = log(m)
    assert "cache_from_obj: Wrong slab cache. cache_a but object is from cache_b" in text
    assert re.search(r"WARNING: CPU: 0 PID: 1 at hwemu/slab.py:\d+ cache_from_obj", text)
    assert m.tainted != "Not tainted" and m.bugs.taint >> TAINT["WARN"] & 1
    assert m.slab.caches[b].nr_live == 0                  # freed, to cache_b
    assert m.slab.object_requested_size(x) is None
    assert kmem_cache_alloc(b, GFP_KERNEL) == x          # and handed out again
    kmem_cache_free(b, x)
    assert [r.kind for r in m.slab.reports] == ["wrong-cache"]
    audit(m)
    kmem_cache_destroy(a)
    kmem_cache_destroy(b)


def test_interior_pointer_free(machine):
    m = machine
    p = kmalloc(64, GFP_KERNEL)
    kfree(p + 8)
    lines = log(m).splitlines()
    i = next(i for i, ln in enumerate(lines) if "Invalid object pointer" in ln)
    assert lines[i - 1].endswith("=" * 77)
    assert re.search(r"BUG kmalloc-64 \(Not tainted\): Invalid object pointer "
                     rf"0x{p + 8:016x}$", lines[i])
    assert lines[i + 1].endswith("-" * 77)
    slab_line = next(ln for ln in lines[i:] if "] Slab 0x" in ln)
    assert re.search(rf"Slab 0x{m.slab.slab_of(p).page:016x} objects=64 used=\d+ "
                     r"fp=0x[0-9a-f]{16} flags=0x[0-9a-f]+\(node=0\|zone=\d\)$", slab_line)
    assert f"FIX kmalloc-64: Object at 0x{p + 8:016x} not freed" in log(m)
    assert m.bugs.taint >> TAINT["BAD_PAGE"] & 1
    assert m.slab.object_requested_size(p) == 64        # still allocated
    kfree(p)                                             # the real free works
    assert [r.kind for r in m.slab.reports] == ["invalid-free"]
    audit(m)


def test_double_free(machine):
    m = machine
    objs = [kmalloc(32, GFP_KERNEL) for _ in range(10)]
    x = objs[3]
    write(x, b"doublefr" * 4)
    kfree(x)
    kfree(x)
    text = log(m)
    assert re.search(r"BUG kmalloc-32 \(Not tainted\): Object already free", text)
    assert re.search(rf"Object 0x{x:016x} @offset={x - m.slab.slab_of(x).base} "
                     r"fp=0x[0-9a-f]{16}", text)
    assert re.search(rf"Object   {x:016x}: 64 6f 75 62", text)   # hex dump of the object
    assert f"FIX kmalloc-32: Object at 0x{x:016x} not freed" in text
    assert m.slab.check_free(x)[0] == S.FREE_DOUBLE_FREE
    assert m.slab.check_free(x + 1)[0] == S.FREE_INVALID_POINTER
    # no object is handed out twice afterwards
    fresh = [kmalloc(32, GFP_KERNEL) for _ in range(500)]
    live = fresh + [o for o in objs if o != x]
    assert len(set(live)) == len(live)
    assert fresh.count(x) == 1
    for o in live:
        kfree(o)
    assert [r.kind for r in m.slab.reports] == ["double-free"]
    audit(m)


def test_free_of_non_slab_pointers(machine):
    m = machine
    page = alloc_pages(GFP_KERNEL, 0)
    addr = page_address(page)
    kfree(addr)
    assert "page dumped because: Not a kmalloc allocation" in log(m)
    assert re.search(r"WARNING: CPU: 0 PID: 1 at hwemu/slab.py:\d+ "
                     r"free_large_kmalloc_report", log(m))
    assert page_struct(page)._refcount == 1               # left alone
    vmalloc_start = m.layout["vmalloc"][0]
    kfree(vmalloc_start + 0x1000)                         # no crash, reported
    assert "Not a kmalloc allocation" in log(m).splitlines()[-1]
    big = kmalloc(3 * PAGE_SIZE, GFP_KERNEL)
    kfree(big + PAGE_SIZE)                                # inside a large kmalloc
    assert m.slab.object_requested_size(big) == 3 * PAGE_SIZE
    kfree(big)
    kfree(big)                                            # a large double free
    c = kmem_cache_create("victim", 32, 0, 0, None)
    kmem_cache_free(c, addr)
    assert "virt_to_cache: Object is not a Slab page!" in log(m)
    assert [r.kind for r in m.slab.reports] == ["not-slab", "not-slab", "invalid-free",
                                                "not-slab", "not-slab"]
    __free_pages(page, 0)
    kmem_cache_destroy(c)
    audit(m)


def test_destroy_with_leaks_reports_and_keeps_the_cache(machine):
    m = machine
    c = kmem_cache_create("leaky", 100, 0, 0, None)
    objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(5)]
    kmem_cache_free(c, objs[1])
    kmem_cache_free(c, objs[3])
    start = nlines(m)
    kmem_cache_destroy(c)
    new = new_lines(m, start)
    assert any(re.search(r"BUG leaky \(Not tainted\): Objects remaining on "
                         r"__kmem_cache_shutdown\(\)$", ln) for ln in new)
    slab = m.slab.slab_of(objs[0])
    listed = [ln for ln in new if re.search(r"\] Object 0x[0-9a-f]{16} @offset=\d+$", ln)]
    assert [int(re.search(r"0x([0-9a-f]{16})", ln).group(1), 16) for ln in listed] == \
        [objs[0], objs[2], objs[4]]
    assert f"Object 0x{objs[2]:016x} @offset={objs[2] - slab.base}" in listed[1]
    assert any(re.search(r"Slab 0x[0-9a-f]{16} objects=\d+ used=3 ", ln) for ln in new)
    warn = next(ln for ln in new if "Slab cache still has objects" in ln)
    assert re.search(r"kmem_cache_destroy leaky: Slab cache still has objects when called "
                     r"from test_destroy_with_leaks_reports_and_keeps_the_cache\+0x", warn)
    assert m.bugs.taint >> TAINT["BAD_PAGE"] & 1
    assert c in m.slab.caches                              # the cache stays alive
    assert m.slab.caches[c].struct.refcount == 0
    p = kmem_cache_alloc(c, GFP_KERNEL)                   # and still works
    assert p and p not in objs
    for o in (p, objs[0], objs[2], objs[4]):
        kmem_cache_free(c, o)
    kmem_cache_shrink(c)
    assert m.slab.caches[c].num_slabs == 0
    assert [r.kind for r in m.slab.reports] == ["leak"]
    audit(m)


def test_leak_list_is_capped(machine):
    m = machine
    c = kmem_cache_create("manyleaks", 8, 0, 0, None)
    objs = [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(300)]
    kmem_cache_destroy(c)
    text = m.slab.reports[-1].text
    assert text.count("@offset=") == S.LEAK_LIST_MAX
    assert f"({300 - S.LEAK_LIST_MAX} more objects in this slab not listed)" in text
    for o in objs:
        kmem_cache_free(c, o)


# ---------------------------------------------------------------- failure paths

def test_failslab(machine):
    m = machine
    fs = m.fault.failslab
    fs.probability = 100
    fs.times = -1
    assert kmalloc(64, GFP_ATOMIC) == 0
    assert "FAULT_INJECTION: forcing a failure." in log(m)
    p = kmalloc(64, GFP_KERNEL)           # ignore-gfp-wait: GFP_KERNEL never fails
    assert p
    c = kmem_cache_create("fs", 32, 0, 0, None)   # the cache of caches is exempt
    assert c and kmem_cache_alloc(c, GFP_NOWAIT) == 0
    big = kmalloc(20000, GFP_ATOMIC)     # large kmalloc is not a slab allocation
    assert big
    fs.ignore_gfp_wait = False
    assert kmalloc(64, GFP_KERNEL) == 0
    fs.probability = 0
    q = kmalloc(64, GFP_ATOMIC)
    assert q
    for x in (p, q, big):
        kfree(x)
    kmem_cache_destroy(c)
    audit(m)


def test_slab_oom_message_and_nowarn(machine):
    m = machine
    c = kmem_cache_create("oomtest", 500, 0, 0, None)
    s = m.slab.caches[c]
    held = exhaust()
    start = nlines(m)
    assert kmem_cache_alloc(c, GFP_ATOMIC | __GFP_NOWARN) == 0
    assert not any("SLUB: Unable" in ln for ln in new_lines(m, start))
    assert kmem_cache_alloc(c, GFP_ATOMIC) == 0
    new = new_lines(m, start)
    i = next(i for i, ln in enumerate(new) if "SLUB: Unable to allocate memory" in ln)
    assert new[i].endswith("SLUB: Unable to allocate memory on CPU 0 (of node 0) on node "
                           "-1, gfp=0x820(GFP_ATOMIC)")
    assert new[i + 1].endswith(f"  cache: oomtest, object size: 500, buffer size: 504, "
                               f"default order: {s.order}, min order: 0")
    assert new[i + 2].endswith("  node 0: slabs: 0, objs: 0, free: 0")
    assert any("page allocation failure: order:0" in ln for ln in new)
    for page, order in held:
        __free_pages(page, order)
    p = kmem_cache_alloc(c, GFP_ATOMIC)
    assert p
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)
    audit(m)


# ---------------------------------------------------------------- per-CPU arrays and stress

def test_might_sleep_in_atomic_context(machine):
    m = machine
    p = hwemu.run_in_interrupt(kmalloc, 64, GFP_ATOMIC)   # fine in an interrupt
    assert p and "sleeping function called" not in log(m)
    q = hwemu.run_in_interrupt(kmalloc, 64, GFP_KERNEL)   # might_alloc() splats
    assert "BUG: sleeping function called from invalid context" in log(m)
    kfree(p)
    kfree(q)
    audit(m)


def test_ctor_with_gfp_zero_warns(machine):
    m = machine
    c = kmem_cache_create("ctorzero", 64, 0, 0, lambda obj: hwemu.store(obj, 8, 7))
    p = kmem_cache_alloc(c, GFP_KERNEL | __GFP_ZERO)
    assert re.search(r"WARNING: CPU: 0 PID: 1 at hwemu/slab.py:\d+ _new_slab", log(m))
    assert hwemu.load(p, 8) == 0      # zeroed after the constructor ran
    kmem_cache_free(c, p)
    kmem_cache_destroy(c)


def test_remote_cpu_frees_and_flush(machine):
    m = machine
    c = kmem_cache_create("xcpu", 64, 0, 0, None)
    s = m.slab.caches[c]
    objs = m.spawn(lambda: [kmem_cache_alloc(c, GFP_KERNEL) for _ in range(200)],
                   cpu=1).join()
    m.spawn(lambda: [kmem_cache_free(c, o) for o in objs], cpu=2).join()
    assert len(s.pcs[2]) <= s.pcs_max and s.pcs[2]     # freed into CPU 2's array
    assert len(set(objs)) == 200 and s.nr_live == 0
    audit(m)
    s.flush_all(hwemu.current())
    assert all(not a for a in s.pcs)
    assert s.slabinfo()["active_objs"] == 0
    kmem_cache_destroy(c)


def test_stress_four_tasks(machine):
    m = machine
    before = free_pages_now(m)
    unrecl = m.vmstat["nr_slab_unreclaimable"]
    sizes = [8, 24, 64, 96, 100, 192, 250, 700, 1500, 4000, 8192, 9000, 20000]

    shared = []          # objects handed from one task to another (remote frees)
    lock = threading.Lock()

    def worker(seed):
        rng = random.Random(seed)
        held = {}
        for i in range(3000):
            r = rng.random()
            if r < 0.05 and held:
                p = rng.choice(list(held))
                with lock:
                    shared.append((p, *held.pop(p)))
            elif r < 0.1:
                with lock:
                    item = shared.pop() if shared else None
                if item:
                    p, stamp, size = item
                    assert read(p, 8) == stamp and read(p + size - 8, 8) == stamp, hex(p)
                    kfree(p)
            elif held and (len(held) > 60 or r < 0.5):
                p = rng.choice(list(held))
                stamp, size = held.pop(p)
                assert read(p, 8) == stamp and read(p + size - 8, 8) == stamp, hex(p)
                kfree(p)
            else:
                size = rng.choice(sizes)
                p = kmalloc(size, GFP_KERNEL if rng.random() < 0.7 else GFP_ATOMIC)
                assert p and p not in held
                stamp = (seed << 32 | i).to_bytes(8, "little")
                write(p, stamp)
                write(p + size - 8, stamp)
                held[p] = (stamp, size)
        for p, (stamp, size) in held.items():
            assert read(p, 8) == stamp and read(p + size - 8, 8) == stamp
            kfree(p)
        return True

    handles = [m.spawn(worker, seed) for seed in range(1, 5)]
    assert all(h.join(timeout=60) for h in handles)
    for p, stamp, _size in shared:
        assert read(p, 8) == stamp
        kfree(p)
    assert m.slab.reports == []
    audit(m)
    assert free_pages_now(m) == before
    assert m.vmstat["nr_slab_unreclaimable"] == unrecl
