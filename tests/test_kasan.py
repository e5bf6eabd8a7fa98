"""KASAN (generic mode): reports, shadow layout, allocator and mempool hooks, quarantine.

Expected shadow rows are written by hand from the rules of spec §5 (not copied from the
emulator's output). Layout facts they rely on, all checked by the tests themselves:

* kmalloc-128 with KASAN: object 128 + redzone 64 = 192, rounded up to the cache's
  alignment. kmalloc caches are aligned to the largest power of two dividing their size
  (``create_boot_cache()``: ``align = max(align, 1U << (ffs(size) - 1))``), so the
  stride is **256**: every object is followed by 128 bytes (16 granules) of ``fc``.
* A 40-byte kmem_cache (no ctor, no flags): 40 + 16 bytes of alloc meta (the free meta
  fits inside the object) = 56 = 40 + optimal_redzone(40): stride 56, i.e. 7 granules
  per object, ``00 00 00 00 00 fc fc``.

Objects are taken from a brand-new slab (:func:`fresh_slab`) so that every row of the
"Memory state" dump is known: the first objects of a new slab are handed out in address
order and the rest of the slab is still all redzone.
"""
import random
import re
import sys

import pytest

import hwemu
from hwemu import GFP_KERNEL, PAGE_SIZE
from hwemu.kasan import (expect_report, kasan_check_read, kasan_check_write, kasan_mem_to_shadow,
                         kasan_mempool_poison_object, kasan_mempool_poison_pages,
                         kasan_mempool_unpoison_object, kasan_mempool_unpoison_pages, kasan_poison,
                         kasan_unpoison)

RULER = "=" * 66
SYM = r"\+0x[0-9a-f]+/0x[0-9a-f]+"
PHYS = "The buggy address belongs to the physical page:"
MEMSTATE = "Memory state around the buggy address:"

# Hand-written shadow rows (16 shadow bytes = 128 bytes of memory each).
FC16 = "fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc"
FF16 = "ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff"
FE16 = "fe fe fe fe fe fe fe fe fe fe fe fe fe fe fe fe"
F816 = "f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8 f8"
Z16 = "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
KM100 = "00 00 00 00 00 00 00 00 00 00 00 00 04 fc fc fc"     # kmalloc(100) in kmalloc-128
FREED128 = "fa fb fb fb fb fb fb fb fb fb fb fb fb fb fb fb"  # a freed 128-byte object
VM100 = "00 00 00 00 00 00 00 00 00 00 00 00 04 f8 f8 f8"     # vmalloc(100)
# The 40-byte cache, all objects allocated: granule g is "00" if g % 7 < 5 else "fc".
C40_ROW = {
    128: "00 00 00 fc fc 00 00 00 00 00 fc fc 00 00 00 00",
    256: "00 fc fc 00 00 00 00 00 fc fc 00 00 00 00 00 fc",
    384: "fc 00 00 00 00 00 fc fc 00 00 00 00 00 fc fc 00",
    512: "00 00 00 00 fc fc 00 00 00 00 00 fc fc 00 00 00",
    640: "00 00 fc fc 00 00 00 00 00 fc fc 00 00 00 00 00",
    768: "fc fc 00 00 00 00 00 fc fc 00 00 00 00 00 fc fc",
}


# ---------------------------------------------------------------- the accessing helpers
# Each bad access or free is made by one of these, so the report's header must name it.

def read_byte(addr):
    return hwemu.load(addr, 1)


def read8(addr):
    return hwemu.load(addr, 8)


def read16(addr):
    return hwemu.load(addr, 16)


def write_byte(addr):
    hwemu.store(addr, 1, 0x5A)


def copy_out(addr, n):
    return hwemu.read_bytes(addr, n)


def free_it(p):
    hwemu.kfree(p)


def cache_free_it(cache, p):
    hwemu.kmem_cache_free(cache, p)


def kmalloc_site(size):
    return hwemu.kmalloc(size, GFP_KERNEL)


def cache_alloc_site(cache):
    return hwemu.kmem_cache_alloc(cache, GFP_KERNEL)


def vmalloc_site(size):
    return hwemu.vmalloc(size)


def check_r(addr, size):
    return kasan_check_read(addr, size)


def check_w(addr, size):
    return kasan_check_write(addr, size)


def mempool_put(p):
    return kasan_mempool_poison_object(p)


def mempool_take(p, size):
    kasan_mempool_unpoison_object(p, size)


def mempool_put_pages(page, order):
    return kasan_mempool_poison_pages(page, order)


# ---------------------------------------------------------------- fixtures and tools

@pytest.fixture
def km(boot):
    """The tiny machine with KASAN on (single-shot, kasan.fault=report)."""
    return boot("tiny", kasan__enabled=True)


@pytest.fixture
def kmm(boot):
    """The tiny machine with KASAN on and kasan_multi_shot."""
    return boot("tiny", kasan__enabled=True, kasan__multi_shot=True)


def shadow(addr, n):
    """The ``n`` shadow bytes of the granules from ``addr`` (read through the shadow)."""
    return hwemu.read_bytes(kasan_mem_to_shadow(addr), n)


def fresh_slab(m, alloc, n):
    """The first ``n`` objects of a slab created for this call, in address order.

    Allocates (and keeps) objects from existing slabs until one comes from a new slab.
    """
    first = alloc()
    cache = m.slab.slab_of(first).cache
    known = set(cache.slabs)
    if len(known) == 1 and first == m.slab.slab_of(first).base and \
            cache.live.keys() == {first}:
        p = first   # the cache had no slab: this one is new
    else:
        for _ in range(20000):
            p = alloc()
            if m.slab.slab_of(p).pfn not in known:
                break
        else:
            pytest.fail("no new slab after 20000 allocations")
    slab = m.slab.slab_of(p)
    objs = [p] + [alloc() for _ in range(n - 1)]
    assert objs == [slab.base + i * cache.size for i in range(n)]
    return cache, slab, objs


def k100_slab(m):
    """kmalloc(100) x 3 at the start of a new kmalloc-128 slab: (slab, third object)."""
    cache, slab, objs = fresh_slab(m, lambda: kmalloc_site(100), 3)
    assert cache.name == "kmalloc-128"
    assert cache.object_size == 128 and cache.size == 256   # see the module docstring
    assert objs[2] == slab.base + 512
    return slab, objs[2]


def c40_slab(m, n=20):
    c = hwemu.kmem_cache_create("kasan_test_40", 40, 0, 0)
    cache, slab, objs = fresh_slab(m, lambda: cache_alloc_site(c), n)
    assert cache.size == 56 and cache.object_size == 40
    return c, slab, objs


def only_report(m):
    assert len(m.kasan.reports) == 1, [r.bug_type for r in m.kasan.reports]
    return m.kasan.reports[0]


def check_report(r, bug_type, func, access, *, described=True):
    """The fixed frame of every report; returns its lines."""
    lines = r.text.split("\n")
    assert lines[0] == RULER and lines[-1] == RULER, r.text
    assert RULER not in lines[1:-1]
    assert re.fullmatch(rf"BUG: KASAN: {re.escape(bug_type)} in {func}{SYM}", lines[1]), lines[1]
    assert lines[2] == access
    assert lines[3] == ""
    assert re.match(r"CPU: \d+ UID: 0 PID: \d+ Comm: \S+ (Not tainted|Tainted: .*)", lines[4])
    assert lines[5].startswith("Hardware name: ")
    assert lines[6:8] == ["Call Trace:", " <TASK>"]
    assert re.match(rf" {func}{SYM} ", lines[8]), lines[8]
    end = lines.index(" </TASK>")
    if described:
        assert lines[end + 1] == ""
    else:   # no metadata: nothing but the stack
        assert end == len(lines) - 2, r.text
    assert r.bug_type == bug_type
    return lines


def check_object(lines, obj, cache, object_size, dist, rel, state, region):
    i = lines.index(f"The buggy address belongs to the object at {obj:016x}")
    assert lines[i + 1:i + 5] == [
        f" which belongs to the cache {cache} of size {object_size}",
        f"The buggy address is located {dist} bytes {rel}",
        f" {state}{region}-byte region [{obj:016x}, {obj + region:016x})",
        ""]
    return i


def no_object(lines):
    assert not any(line.startswith("The buggy address belongs to the object") for line in lines)
    assert "Allocated by task 1:" not in lines and not any(
        line.startswith("Freed by") for line in lines)


def check_stacks(lines, alloc_frame=None, free_frame=None):
    """"Allocated by task 1:" always (slab objects); "Freed by task 1:" only if freed."""
    a = lines.index("Allocated by task 1:")
    frames = lines[a + 1:lines.index("", a)]
    assert frames and all(re.match(rf" \S+{SYM} \S+:\d+$", f) for f in frames), frames
    if alloc_frame:
        assert any(f.startswith(f" {alloc_frame}+0x") for f in frames), frames
    if free_frame is None:
        assert not any(line.startswith("Freed by") for line in lines)
        return a, None
    f = lines.index("Freed by task 1:")
    assert f > a
    frames = lines[f + 1:lines.index("", f)]
    assert any(fr.startswith(f" {free_frame}+0x") for fr in frames), frames
    return a, f


def check_page(lines, head_pfn, page_type=None):
    """The physical page block: ``dump_page()`` of the head page ``head_pfn``."""
    i = lines.index(PHYS)
    j = lines.index("page dumped because: kasan: bad access detected", i)
    block = lines[i + 1:j]
    m = re.fullmatch(r"page: refcount:-?\d+ mapcount:-?\d+ mapping:[0-9a-f]{16} "
                     r"index:0x[0-9a-f]+ pfn:(0x[0-9a-f]+)", block[0])
    assert m, block[0]
    assert int(m.group(1), 16) == head_pfn
    assert any(line.startswith("flags: 0x") for line in block)
    assert sum(line.startswith("raw: ") for line in block) == 2
    types = [line for line in block if line.startswith("page_type:")]
    if page_type is not None:
        assert types == [f"page_type: {page_type}"]
    assert lines[j + 1] == ""
    return i


def check_memory_state(lines, first_bad, rows):
    """Five rows of 16 shadow bytes, the middle one ``>`` and followed by the caret.

    ``rows``: the five expected shadow rows (None: memory not owned by the test, only
    the format is checked)."""
    i = lines.index(MEMSTATE)
    assert i + 8 == len(lines) and lines[i + 7] == RULER
    mid = first_bad & ~127
    got = lines[i + 1:i + 4] + lines[i + 5:i + 7]
    for k, (line, exp) in enumerate(zip(got, rows)):
        m = re.fullmatch(r"([ >])([0-9a-f]{16}): ((?:[0-9a-f]{2} ){15}[0-9a-f]{2})", line)
        assert m, line
        assert m.group(1) == (">" if k == 2 else " ")
        assert int(m.group(2), 16) == mid + (k - 2) * 128
        if exp is not None:
            assert m.group(3) == exp, f"row {k}: {line}"
    granule = (first_bad - mid) // 8
    assert lines[i + 4] == " " * (19 + 3 * granule) + "^"
    return i


def in_order(*indexes):
    assert list(indexes) == sorted(indexes), indexes


def dmesg_lines(m):
    """The log without the ``[ time] `` prefixes."""
    return [re.sub(r"^\[[ \d.]+\] ?", "", line) for line in m.dmesg().split("\n")]


def contains_block(haystack, block):
    n = len(block)
    return any(haystack[i:i + n] == block for i in range(len(haystack) - n + 1))


def read_access(addr, n):
    return f"Read of size {n} at addr {addr:016x} by task init/1"


def write_access(addr, n):
    return f"Write of size {n} at addr {addr:016x} by task init/1"


def free_access(addr):
    return f"Free of addr {addr:016x} by task init/1"


# ================================================================ 1. bug types

def test_slab_out_of_bounds_kmalloc_one_past_the_end(km):
    slab, obj = k100_slab(km)
    read_byte(obj + 100)
    r = only_report(km)
    lines = check_report(r, "slab-out-of-bounds", "read_byte", read_access(obj + 100, 1))
    a, _ = check_stacks(lines, alloc_frame="kmalloc_site")
    o = check_object(lines, obj, "kmalloc-128", 128, 0, "to the right of", "allocated ", 100)
    p = check_page(lines, slab.pfn, "f5(slab)")
    s = check_memory_state(lines, obj + 100, [KM100, FC16, KM100, FC16, FC16])
    in_order(a, o, p, s)


def test_slab_out_of_bounds_kmem_cache_past_object_size(km):
    c, slab, objs = c40_slab(km)
    obj = objs[9]
    assert obj == slab.base + 504
    read_byte(obj + 40)
    r = only_report(km)
    lines = check_report(r, "slab-out-of-bounds", "read_byte", read_access(obj + 40, 1))
    check_stacks(lines, alloc_frame="cache_alloc_site")
    check_object(lines, obj, "kasan_test_40", 40, 0, "to the right of", "allocated ", 40)
    check_page(lines, slab.pfn, "f5(slab)")
    check_memory_state(lines, obj + 40, [C40_ROW[256], C40_ROW[384], C40_ROW[512],
                                         C40_ROW[640], C40_ROW[768]])


def test_slab_out_of_bounds_16_byte_access_into_the_redzone(km):
    slab, obj = k100_slab(km)
    read16(obj + 88)   # bytes 88..103: the last 4 are past the 100 asked for
    r = only_report(km)
    lines = check_report(r, "slab-out-of-bounds", "read16", read_access(obj + 88, 16))
    check_object(lines, obj, "kmalloc-128", 128, 88, "inside of", "allocated ", 100)
    # first_bad_addr: the first granule with a non-zero shadow byte (04 at obj+96)
    check_memory_state(lines, obj + 96, [KM100, FC16, KM100, FC16, FC16])


def test_slab_out_of_bounds_read_bytes_one_past_the_end(km):
    slab, obj = k100_slab(km)
    copy_out(obj, 101)
    r = only_report(km)
    lines = check_report(r, "slab-out-of-bounds", "copy_out", read_access(obj, 101))
    check_object(lines, obj, "kmalloc-128", 128, 0, "inside of", "allocated ", 100)
    check_memory_state(lines, obj + 96, [KM100, FC16, KM100, FC16, FC16])
    assert (r.addr, r.size, r.is_write) == (obj, 101, False)


def test_slab_use_after_free(km):
    slab, obj = k100_slab(km)
    free_it(obj)
    assert shadow(obj, 16) == bytes([0xFA] + [0xFB] * 15)
    read_byte(obj + 16)
    r = only_report(km)
    lines = check_report(r, "slab-use-after-free", "read_byte", read_access(obj + 16, 1))
    a, f = check_stacks(lines, alloc_frame="kmalloc_site", free_frame="free_it")
    o = check_object(lines, obj, "kmalloc-128", 128, 16, "inside of", "freed ", 128)
    p = check_page(lines, slab.pfn, "f5(slab)")
    s = check_memory_state(lines, obj + 16, [KM100, FC16, FREED128, FC16, FC16])
    in_order(a, f, o, p, s)


def test_use_after_free_on_pages(km):
    page = hwemu.alloc_pages(GFP_KERNEL, 0)
    addr = hwemu.page_address(page)
    pfn = hwemu.page_to_pfn(page)
    hwemu.__free_pages(page, 0)
    read8(addr + 2048 + 16)
    r = only_report(km)
    lines = check_report(r, "use-after-free", "read8", read_access(addr + 2064, 8))
    no_object(lines)
    p = check_page(lines, pfn)
    assert lines[lines.index(" </TASK>") + 2] == PHYS   # right after the stack
    s = check_memory_state(lines, addr + 2064, [FF16] * 5)
    in_order(p, s)


def test_use_after_free_on_large_kmalloc(km):
    p = kmalloc_site(3 * PAGE_SIZE)
    assert km.slab.slab_of(p) is None and p % PAGE_SIZE == 0
    free_it(p)
    read_byte(p + PAGE_SIZE + 8)
    r = only_report(km)
    lines = check_report(r, "use-after-free", "read_byte", read_access(p + PAGE_SIZE + 8, 1))
    no_object(lines)
    check_page(lines, hwemu.virt_to_pfn(p) + 1)   # freed: no compound page any more
    check_memory_state(lines, p + PAGE_SIZE + 8, [FF16] * 5)


def test_slab_out_of_bounds_past_a_large_kmalloc(km):
    p = kmalloc_site(8195)    # > KMALLOC_MAX_CACHE_SIZE: an order-2 large kmalloc
    assert km.slab.slab_of(p) is None
    read_byte(p + 8195)
    r = only_report(km)
    lines = check_report(r, "slab-out-of-bounds", "read_byte", read_access(p + 8195, 1))
    no_object(lines)
    check_page(lines, hwemu.virt_to_pfn(p), "f8(large_kmalloc)")
    check_memory_state(lines, p + 8195, [
        Z16, Z16, "03 fe fe fe fe fe fe fe fe fe fe fe fe fe fe fe", FE16, FE16])


def test_double_free_kfree(km):
    slab, obj = k100_slab(km)
    free_it(obj)
    free_it(obj)
    r = only_report(km)
    assert (r.bug_type, r.addr, r.is_write) == ("double-free", obj, True)
    lines = check_report(r, "double-free", "free_it", free_access(obj))
    check_stacks(lines, alloc_frame="kmalloc_site", free_frame="free_it")
    check_object(lines, obj, "kmalloc-128", 128, 0, "inside of", "", 128)
    check_page(lines, slab.pfn, "f5(slab)")
    check_memory_state(lines, obj, [KM100, FC16, FREED128, FC16, FC16])


def test_double_free_kmem_cache_free(km):
    c, slab, objs = c40_slab(km)
    obj = objs[9]
    cache_free_it(c, obj)
    cache_free_it(c, obj)
    r = only_report(km)
    lines = check_report(r, "double-free", "cache_free_it", free_access(obj))
    check_stacks(lines, alloc_frame="cache_alloc_site", free_frame="cache_free_it")
    check_object(lines, obj, "kasan_test_40", 40, 0, "inside of", "", 40)
    # obj is the last granule of the row at base+384 (504 = 63 * 8)
    check_memory_state(lines, obj, [
        C40_ROW[128], C40_ROW[256],
        "fc 00 00 00 00 00 fc fc 00 00 00 00 00 fc fc fa",
        "fb fb fb fb fc fc 00 00 00 00 00 fc fc 00 00 00",
        C40_ROW[640]])


def test_double_free_large_kmalloc(km):
    p = kmalloc_site(3 * PAGE_SIZE)
    free_it(p)
    free_it(p)
    r = only_report(km)
    lines = check_report(r, "double-free", "free_it", free_access(p))
    no_object(lines)
    check_page(lines, hwemu.virt_to_pfn(p))
    check_memory_state(lines, p, [None, None, FF16, FF16, FF16])


def test_invalid_free_of_an_interior_pointer(kmm):
    slab, obj = k100_slab(kmm)
    free_it(obj + 8)
    r = only_report(kmm)
    lines = check_report(r, "invalid-free", "free_it", free_access(obj + 8))
    check_stacks(lines, alloc_frame="kmalloc_site")   # not freed: no "Freed by"
    check_object(lines, obj, "kmalloc-128", 128, 8, "inside of", "", 100)
    check_memory_state(lines, obj + 8, [KM100, FC16, KM100, FC16, FC16])
    assert copy_out(obj, 100) is not None   # still allocated and usable
    free_it(obj)
    assert len(kmm.kasan.reports) == 1


def test_invalid_free_inside_a_large_kmalloc(kmm):
    p = kmalloc_site(3 * PAGE_SIZE)
    free_it(p + PAGE_SIZE + 8)
    r = only_report(kmm)
    lines = check_report(r, "invalid-free", "free_it", free_access(p + PAGE_SIZE + 8))
    no_object(lines)
    check_page(lines, hwemu.virt_to_pfn(p), "f8(large_kmalloc)")
    check_memory_state(lines, p + PAGE_SIZE + 8, [Z16] * 5)
    free_it(p)
    assert len(kmm.kasan.reports) == 1




def test_vmalloc_out_of_bounds(km):
    v = vmalloc_site(100)
    read_byte(v + 100)
    r = only_report(km)
    lines = check_report(r, "vmalloc-out-of-bounds", "read_byte", read_access(v + 100, 1))
    no_object(lines)
    i = lines.index("The buggy address belongs to the virtual mapping at")
    assert lines[i + 1] == f" [{v:016x}, {v + 2 * PAGE_SIZE:016x}) created by:"
    assert re.fullmatch(rf" vmalloc_site{SYM}", lines[i + 2])
    assert lines[i + 3] == ""
    check_page(lines, hwemu.vmalloc_to_pfn(v))
    check_memory_state(lines, v + 100, [None, None, VM100, F816, F816])


def test_vmalloc_guard_page_reports_then_oopses(km):
    v = vmalloc_site(100)
    with pytest.raises(hwemu.Oops):
        read_byte(v + PAGE_SIZE)          # the guard page: not mapped
    r = only_report(km)
    lines = check_report(r, "vmalloc-out-of-bounds", "read_byte",
                         read_access(v + PAGE_SIZE, 1))
    assert PHYS not in lines              # no page behind the guard
    check_memory_state(lines, v + PAGE_SIZE, [F816] * 5)
    log = dmesg_lines(km)
    assert log.index(lines[1]) < log.index(
        f"BUG: unable to handle page fault for address: {v + PAGE_SIZE:016x}")


def deref(addr):
    return hwemu.load(addr, 8)


def test_null_ptr_deref_reports_then_oopses(km):
    with pytest.raises(hwemu.Oops, match="NULL pointer dereference"):
        deref(8)
    r = only_report(km)
    lines = check_report(r, "null-ptr-deref", "deref", read_access(8, 8), described=False)
    assert MEMSTATE not in lines and PHYS not in lines
    assert (r.addr, r.size, r.is_write) == (8, 8, False)
    log = dmesg_lines(km)
    assert log.index(lines[1]) < log.index(
        "BUG: kernel NULL pointer dereference, address: 0000000000000008")


def test_zero_size_ptr_deref_is_a_null_ptr_deref(km):
    z = kmalloc_site(0)
    assert z == 16   # ZERO_SIZE_PTR
    with pytest.raises(hwemu.Oops):
        deref(z)
    check_report(only_report(km), "null-ptr-deref", "deref", read_access(16, 8),
                 described=False)


def test_wild_memory_access_reports_then_oopses(km):
    wild = 0x7FFF00001000
    assert not km.space.base <= wild < km.space.end
    with pytest.raises(hwemu.Oops):
        deref(wild)
    r = only_report(km)
    check_report(r, "wild-memory-access", "deref", read_access(wild, 8), described=False)
    assert "Memory state" not in r.text


# ================================================================ 2. bookkeeping

def test_report_record_text_in_dmesg_and_taint(kmm):
    p = kmalloc_site(100)
    assert kmm.tainted == "Not tainted"
    write_byte(p + 100)
    r = only_report(kmm)
    assert (r.bug_type, r.addr, r.size, r.is_write) == ("slab-out-of-bounds", p + 100, 1, True)
    lines = check_report(r, "slab-out-of-bounds", "write_byte", write_access(p + 100, 1))
    assert "Not tainted" in lines[4]
    assert contains_block(dmesg_lines(kmm), lines)
    assert kmm.tainted.startswith("Tainted: ") and kmm.tainted[len("Tainted: ") + 5] == "B"
    free_it(p)
    read_byte(p)
    assert [x.bug_type for x in kmm.kasan.reports] == ["slab-out-of-bounds",
                                                       "slab-use-after-free"]
    second = kmm.kasan.reports[1].text.split("\n")
    assert "Tainted: G    B" in second[4]
    assert contains_block(dmesg_lines(kmm), second)
    log = dmesg_lines(kmm)
    assert log.count("Disabling lock debugging due to kernel taint") == 1
    # printed right after the first report, at its first taint
    assert log.index("Disabling lock debugging due to kernel taint") == \
        log.index(lines[1]) + len(lines) - 1


def test_stacks_name_the_allocating_and_freeing_tasks(km):
    h = km.spawn(kmalloc_site, 100, name="allocator")
    p = h.join(timeout=10)
    assert h.pid != 1
    free_it(p)
    read_byte(p)
    lines = check_report(only_report(km), "slab-use-after-free", "read_byte",
                         read_access(p, 1))
    a = lines.index(f"Allocated by task {h.pid}:")
    assert any(f.startswith(" kmalloc_site+0x") for f in lines[a + 1:lines.index("", a)])
    f = lines.index("Freed by task 1:")
    assert any(x.startswith(" free_it+0x") for x in lines[f + 1:lines.index("", f)])


def test_single_shot_by_default(km):
    assert km.kasan.multi_shot is False
    p = kmalloc_site(100)
    read_byte(p + 100)
    assert read_byte(p + 101) is not None   # reported? no: the access goes on
    write_byte(p + 120)
    free_it(p + 8)
    free_it(p)
    read_byte(p)
    assert len(km.kasan.reports) == 1
    assert sum(line.startswith("BUG: KASAN:") for line in dmesg_lines(km)) == 1


def test_multi_shot_reports_everything(kmm):
    p = kmalloc_site(100)
    read_byte(p + 100)
    free_it(p + 8)
    free_it(p)
    read_byte(p)
    free_it(p)
    assert [r.bug_type for r in kmm.kasan.reports] == [
        "slab-out-of-bounds", "invalid-free", "slab-use-after-free", "double-free"]
    assert sum(line.startswith("BUG: KASAN:") for line in dmesg_lines(kmm)) == 4


def test_expect_report_passes_and_returns_the_reports(km):
    p = kmalloc_site(100)
    with expect_report("slab-out-of-bounds") as got:
        read_byte(p + 100)
    assert [r.bug_type for r in got] == ["slab-out-of-bounds"]
    assert got[0] is km.kasan.reports[0] and got[0].expected is True
    # multi-shot inside the block: an earlier report does not silence the next one
    free_it(p)
    with expect_report("slab-use-after-free") as got:
        read_byte(p)
    assert len(got) == 1 and len(km.kasan.reports) == 2
    with expect_report():
        free_it(p)
    assert km.kasan.multi_shot is False   # restored: silent again outside
    read_byte(p)
    assert len(km.kasan.reports) == 3
    assert all(r.expected for r in km.kasan.reports)


def test_reports_outside_expect_report_are_not_expected(kmm):
    p = kmalloc_site(100)
    read_byte(p + 100)
    with expect_report("slab-out-of-bounds"):
        read_byte(p + 101)
    assert [r.expected for r in kmm.kasan.reports] == [False, True]


def test_expect_report_fails_on_the_wrong_type(km):
    p = kmalloc_site(100)
    with pytest.raises(AssertionError, match="slab-use-after-free.*slab-out-of-bounds"):
        with expect_report("slab-use-after-free"):
            read_byte(p + 100)
    assert len(km.kasan.reports) == 1


def test_expect_report_fails_without_a_report(km):
    p = kmalloc_site(100)
    with pytest.raises(AssertionError, match="none was made"):
        with expect_report("slab-out-of-bounds"):
            read_byte(p + 99)
    with pytest.raises(AssertionError):
        with expect_report():
            pass
    assert km.kasan.reports == []


def test_expect_report_fails_with_kasan_off(boot):
    m = boot("tiny")
    assert not m.kasan.enabled
    p = kmalloc_site(100)
    with pytest.raises(AssertionError, match="not enabled"):
        with expect_report("slab-out-of-bounds"):
            read_byte(p + 100)
    assert m.kasan.reports == [] and m.tainted == "Not tainted"


def test_lock_debugging_message_after_an_earlier_warn(km):
    hwemu.WARN(True, "an earlier warning")
    assert "W" in km.tainted
    p = kmalloc_site(100)
    read_byte(p + 100)
    assert "Disabling lock debugging due to kernel taint" in dmesg_lines(km)


def test_stacktrace_off_has_no_free_stack(boot):
    m = boot("tiny", kasan__enabled=True, kasan__stacktrace=False)
    p = kmalloc_site(100)
    free_it(p)
    assert shadow(p, 2) == b"\xfb\xfb"   # no free meta: no 0xFA marker
    read_byte(p)
    r = only_report(m)
    lines = check_report(r, "slab-use-after-free", "read_byte", read_access(p, 1))
    assert not any(line.startswith("Freed by") for line in lines)


# ================================================================ 3. kasan.fault

def test_fault_panic(boot):
    m = boot("tiny", kasan__enabled=True, kasan__fault="panic")
    p = kmalloc_site(100)
    with pytest.raises(hwemu.KernelPanic, match=r"kasan\.fault=panic set \.\.\."):
        read_byte(p + 100)
    r = only_report(m)
    log = dmesg_lines(m)
    assert log.index(r.text.split("\n")[1]) < log.index(
        "Kernel panic - not syncing: kasan.fault=panic set ...")


def test_fault_panic_on_write(boot):
    m = boot("tiny", kasan__enabled=True, kasan__fault="panic_on_write",
             kasan__multi_shot=True)
    p = kmalloc_site(100)
    read_byte(p + 100)                      # a read: report and go on
    assert len(m.kasan.reports) == 1
    with pytest.raises(hwemu.KernelPanic, match=r"kasan\.fault=panic_on_write set \.\.\."):
        write_byte(p + 100)
    assert len(m.kasan.reports) == 2
    with pytest.raises(hwemu.KernelPanic):  # invalid frees count as writes
        free_it(p + 8)
    free_it(p)
    with pytest.raises(hwemu.KernelPanic):  # and so do double frees
        free_it(p)
    assert [r.bug_type for r in m.kasan.reports] == [
        "slab-out-of-bounds", "slab-out-of-bounds", "invalid-free", "double-free"]


# ================================================================ 4. stress

ACCESS_SIZES = (1, 2, 4, 8, 16)


def poke(rng, p, size):
    """One random valid access inside ``[p, p + size)``."""
    op = rng.randrange(4)
    if op < 2:
        n = rng.choice([s for s in ACCESS_SIZES if s <= size])
        off = rng.randint(0, size - n)
        if op == 0:
            hwemu.load(p + off, n)
        else:
            hwemu.store(p + off, n, rng.getrandbits(8 * n))
    else:
        off = rng.randrange(size)
        n = rng.randint(0, size - off)
        if op == 2:
            hwemu.memset(p + off, rng.randrange(256), n)
        else:
            assert len(hwemu.read_bytes(p + off, n)) == n


def planted_off_by_one(p, size):
    return hwemu.load(p + size, 1)


def stress_worker(cache, seed, rounds, plant_at):
    """Random valid kmalloc/kzalloc/krealloc/kfree, kmem_cache and vmalloc work with
    random in-bounds accesses; at round ``plant_at`` one read one byte past an object.
    Returns (planted (obj, size) or None, {op: count})."""
    rng = random.Random(seed)
    objsize = hwemu.kmem_cache_size(cache)
    kobjs, cobjs, vobjs = [], [], []
    planted = None
    ops = dict.fromkeys(("kmalloc", "kzalloc", "krealloc", "kfree", "cache_alloc",
                         "cache_free", "vmalloc", "vfree", "access"), 0)
    for i in range(rounds):
        if i == plant_at:
            if not kobjs:
                kobjs.append([hwemu.kmalloc(100, GFP_KERNEL), 100])
            p, size = rng.choice(kobjs)
            planted_off_by_one(p, size)
            planted = (p, size)
        r = rng.random()
        if r < 0.16 or not kobjs:
            size = rng.randint(1, 4096)
            if rng.random() < 0.5:
                p = hwemu.kzalloc(size, GFP_KERNEL)
                assert hwemu.read_bytes(p, size) == bytes(size)
                ops["kzalloc"] += 1
            else:
                p = hwemu.kmalloc(size, GFP_KERNEL)
                ops["kmalloc"] += 1
            assert p
            kobjs.append([p, size])
        elif r < 0.24:
            ent = rng.choice(kobjs)
            new = rng.randint(1, 4096)
            keep = min(ent[1], new)
            stamp = rng.randrange(256)
            hwemu.memset(ent[0], stamp, keep)
            q = hwemu.krealloc(ent[0], new, GFP_KERNEL)
            assert q
            assert hwemu.read_bytes(q, keep) == bytes([stamp]) * keep
            ent[0], ent[1] = q, new
            ops["krealloc"] += 1
        elif r < 0.34:
            hwemu.kfree(kobjs.pop(rng.randrange(len(kobjs)))[0])
            ops["kfree"] += 1
        elif r < 0.42:
            o = hwemu.kmem_cache_alloc(cache, GFP_KERNEL)
            assert o
            cobjs.append(o)
            ops["cache_alloc"] += 1
        elif r < 0.48 and cobjs:
            hwemu.kmem_cache_free(cache, cobjs.pop(rng.randrange(len(cobjs))))
            ops["cache_free"] += 1
        elif r < 0.51:
            size = rng.randint(1, 3 * PAGE_SIZE)
            v = hwemu.vzalloc(size) if rng.random() < 0.5 else hwemu.vmalloc(size)
            assert v
            vobjs.append((v, size))
            ops["vmalloc"] += 1
        elif r < 0.53 and vobjs:
            hwemu.vfree(vobjs.pop(rng.randrange(len(vobjs)))[0])
            ops["vfree"] += 1
        else:
            pool = rng.random()
            if pool < 0.6 or not (cobjs or vobjs):
                p, size = rng.choice(kobjs)
            elif pool < 0.8 and cobjs:
                p, size = rng.choice(cobjs), objsize
            elif vobjs:
                p, size = rng.choice(vobjs)
            else:
                p, size = rng.choice(kobjs)
            poke(rng, p, size)
            ops["access"] += 1
    for p, _ in kobjs:
        hwemu.kfree(p)
    for o in cobjs:
        hwemu.kmem_cache_free(cache, o)
    for v, _ in vobjs:
        hwemu.vfree(v)
    return planted, ops


STRESS_TASKS = 4
STRESS_ROUNDS = 3000


def run_stress(m, plant_task=None):
    cache = hwemu.kmem_cache_create("kasan_stress", 72, 0, 0)
    plant_at = STRESS_ROUNDS // 2
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)   # interleave the tasks finely
    try:
        tasks = [m.spawn(stress_worker, cache, 1000 + i, STRESS_ROUNDS,
                         plant_at if i == plant_task else -1, name=f"kstress{i}")
                 for i in range(STRESS_TASKS)]
        results = [t.join(timeout=60) for t in tasks]
    finally:
        sys.setswitchinterval(interval)
    for _, ops in results:
        assert min(ops.values()) > 20, ops   # every kind of work was done
    hwemu.kmem_cache_destroy(cache)
    return tasks, [planted for planted, _ in results]


@pytest.mark.parametrize("config,quarantine", [("tiny", None), ("tiny", "16K"),
                                               ("x86_64-numa4", "16K")])
def test_stress_valid_accesses_never_report(boot, config, quarantine):
    """With the default quarantine, and with a small one so that freed objects are
    recycled (and released from the quarantine by other tasks) all the time; on NUMA,
    remote objects go back to their own node's slabs."""
    extra = {} if quarantine is None else {"kasan__quarantine_size": quarantine}
    km = boot(config, kasan__enabled=True, **extra)
    tasks, results = run_stress(km)
    assert results == [None] * STRESS_TASKS
    assert km.kasan.reports == [], km.kasan.reports[0].text
    assert km.tainted == "Not tainted"
    assert not [r for r in km.slab.reports if r.kind == "leak"]
    assert km.kasan.quarantine_bytes <= km.kasan.quarantine_max


def test_stress_finds_exactly_the_planted_off_by_one(km):
    tasks, results = run_stress(km, plant_task=2)
    p, size = results[2]
    assert [x for i, x in enumerate(results) if i != 2] == [None] * (STRESS_TASKS - 1)
    r = only_report(km)
    assert (r.bug_type, r.addr, r.size, r.is_write) == ("slab-out-of-bounds", p + size, 1,
                                                        False)
    lines = r.text.split("\n")
    assert re.fullmatch(rf"BUG: KASAN: slab-out-of-bounds in planted_off_by_one{SYM}",
                        lines[1])
    assert lines[2] == (f"Read of size 1 at addr {p + size:016x} by task "
                        f"kstress2/{tasks[2].pid}")
    assert f"Allocated by task {tasks[2].pid}:" in lines


# ================================================================ 5. quarantine

def test_quarantine_keeps_freed_objects_from_reuse(km):
    assert km.kasan.quarantine_max == (64 << 20) // 32
    first = kmalloc_site(100)
    free_it(first)
    seen = []
    for _ in range(300):   # 300 * 256 bytes: far below the quarantine size
        p = kmalloc_site(100)
        seen.append(p)
        free_it(p)
    assert first not in seen
    assert len(set(seen)) == len(seen)
    assert km.kasan.reports == []


def test_quarantine_size_config(boot):
    m = boot("tiny", kasan__enabled=True, kasan__quarantine_size=4096)
    assert m.kasan.quarantine_max == 4096
    first = kmalloc_site(100)   # kmalloc-128: 256 bytes each, 16 fit in 4096
    free_it(first)
    seen = []
    for _ in range(100):
        p = kmalloc_site(100)
        seen.append(p)
        free_it(p)
    # Still quarantined while it and the objects freed after it fit in 4096 bytes.
    assert first not in seen[:16]
    assert first in seen
    assert m.kasan.quarantine_bytes <= 4096
    assert m.kasan.reports == []


def test_kmem_cache_destroy_with_quarantined_objects(km):
    c = hwemu.kmem_cache_create("kasan_q", 100, 0, 0)
    objs = [cache_alloc_site(c) for _ in range(50)]
    for o in objs:
        cache_free_it(c, o)
    cache = km.slab.caches[c]
    assert sum(q is cache for q, _ in km.kasan.quarantine) == 50
    hwemu.kmem_cache_destroy(c)
    assert c not in km.slab.caches
    assert not any(q is cache for q, _ in km.kasan.quarantine)
    assert not [r for r in km.slab.reports if r.kind == "leak"]
    assert not any("still has objects" in w for w in km.warnings)
    assert km.kasan.quarantine_bytes == sum(q.size for q, _ in km.kasan.quarantine)
    assert km.kasan.reports == []


def test_kmem_cache_shrink_empties_the_quarantine_of_that_cache(km):
    c = hwemu.kmem_cache_create("kasan_q", 100, 0, 0)
    cache = km.slab.caches[c]
    objs = [cache_alloc_site(c) for _ in range(50)]
    other = kmalloc_site(100)
    free_it(other)
    for o in objs:
        cache_free_it(c, o)
    hwemu.kmem_cache_shrink(c)
    q = list(km.kasan.quarantine)
    assert not any(qc is cache for qc, _ in q)
    assert any(obj == other for _, obj in q)      # other caches keep theirs
    assert km.kasan.quarantine_bytes == sum(qc.size for qc, _ in q)
    assert cache.num_slabs == 0                   # the objects really were freed
    again = [cache_alloc_site(c) for _ in range(50)]
    for o in again:
        hwemu.memset(o, 0, 100)
    assert km.kasan.reports == []


# ================================================================ 6. mempool hooks

def test_mempool_poison_object_then_access_is_use_after_free(kmm):
    p = kmalloc_site(100)
    assert mempool_put(p) is True
    assert shadow(p, 16) == bytes([0xFA] + [0xFB] * 15)
    with expect_report("slab-use-after-free") as got:
        read_byte(p + 8)
    lines = got[0].text.split("\n")
    check_stacks(lines, alloc_frame="kmalloc_site", free_frame="mempool_put")
    check_object(lines, p, "kmalloc-128", 128, 8, "inside of", "freed ", 128)
    assert not any(obj == p for _, obj in kmm.kasan.quarantine)   # no quarantine


def test_mempool_unpoison_object_kmalloc_element(kmm):
    p = kmalloc_site(100)
    assert mempool_put(p)
    mempool_take(p, 50)
    assert shadow(p, 16) == bytes([0] * 6 + [2] + [0xFC] * 9)
    copy_out(p, 50)
    assert kmm.kasan.reports == []
    read_byte(p + 50)
    r = only_report(kmm)
    lines = check_report(r, "slab-out-of-bounds", "read_byte", read_access(p + 50, 1))
    a, _ = check_stacks(lines, alloc_frame="mempool_take")   # the new alloc site
    frames = lines[a + 1:lines.index("", a)]
    assert not any(f.startswith(" kmalloc_site+") for f in frames)
    check_object(lines, p, "kmalloc-128", 128, 0, "to the right of", "allocated ", 50)


def test_mempool_poison_object_twice_is_a_double_free(kmm):
    p = kmalloc_site(100)
    assert mempool_put(p) is True
    assert mempool_put(p) is False
    r = only_report(kmm)
    lines = check_report(r, "double-free", "mempool_put", free_access(p))
    check_object(lines, p, "kmalloc-128", 128, 0, "inside of", "", 128)


def test_mempool_poison_object_interior_pointer_is_an_invalid_free(kmm):
    p = kmalloc_site(100)
    assert mempool_put(p + 8) is False
    r = only_report(kmm)
    check_report(r, "invalid-free", "mempool_put", free_access(p + 8))
    assert shadow(p, 13) == bytes([0] * 12 + [4])   # untouched


def test_mempool_unpoison_slab_element_makes_the_whole_object_usable(kmm):
    c = hwemu.kmem_cache_create("kasan_pool", 40, 0, 0)
    o = cache_alloc_site(c)
    assert mempool_put(o)
    assert shadow(o, 7) == bytes([0xFA, 0xFB, 0xFB, 0xFB, 0xFB, 0xFC, 0xFC])
    mempool_take(o, 10)     # not a kmalloc cache: the size is ignored
    assert shadow(o, 7) == bytes([0, 0, 0, 0, 0, 0xFC, 0xFC])
    copy_out(o, 40)
    assert kmm.kasan.reports == []
    with expect_report("slab-out-of-bounds") as got:
        read_byte(o + 40)
    check_stacks(got[0].text.split("\n"), alloc_frame="mempool_take")


def test_mempool_large_kmalloc_element(kmm):
    p = kmalloc_site(3 * PAGE_SIZE)   # order 2: 16K
    assert mempool_put(p) is True
    assert shadow(p, 2048) == b"\xff" * 2048
    with expect_report("use-after-free"):
        read_byte(p + 5000)
    mempool_take(p, 5001)
    assert shadow(p, 2048) == bytes([0] * 625 + [1] + [0xFE] * (2048 - 626))
    copy_out(p, 5001)
    assert len(kmm.kasan.reports) == 1
    with expect_report("slab-out-of-bounds"):
        read_byte(p + 5001)
    assert mempool_put(p) is True
    assert mempool_put(p) is False
    assert kmm.kasan.reports[-1].bug_type == "double-free"
    mempool_take(p, 5001)
    assert mempool_put(p + PAGE_SIZE) is False
    assert kmm.kasan.reports[-1].bug_type == "invalid-free"


def test_mempool_page_hooks(kmm):
    page = hwemu.alloc_pages(GFP_KERNEL, 1)
    addr = hwemu.page_address(page)
    assert mempool_put_pages(page, 1) is True
    assert shadow(addr, 1024) == b"\xff" * 1024
    with expect_report("use-after-free"):
        read8(addr + PAGE_SIZE)
    assert mempool_put_pages(page, 1) is False
    r = kmm.kasan.reports[-1]
    check_report(r, "double-free", "mempool_put_pages", free_access(addr))
    kasan_mempool_unpoison_pages(page, 1)
    assert shadow(addr, 1024) == bytes(1024)
    hwemu.memset(addr, 0, 2 * PAGE_SIZE)
    assert len(kmm.kasan.reports) == 2


def test_mempool_page_hooks_tail_pages(kmm):
    # Non-compound pages (mempool page pools): every page is its own head, no report.
    page = hwemu.alloc_pages(GFP_KERNEL, 1)
    second = hwemu.pfn_to_page(hwemu.page_to_pfn(page) + 1)
    assert mempool_put_pages(second, 0) is True
    kasan_mempool_unpoison_pages(second, 0)
    # A tail page of a compound page is an invalid free.
    comp = hwemu.alloc_pages(GFP_KERNEL | hwemu.__GFP_COMP, 1)
    tail = hwemu.pfn_to_page(hwemu.page_to_pfn(comp) + 1)
    assert mempool_put_pages(tail, 0) is False
    check_report(only_report(kmm), "invalid-free", "mempool_put_pages",
                 free_access(hwemu.page_address(tail)))


def test_mempool_highmem_pages_are_not_tracked(boot):
    m = boot("i386-highmem", kasan__enabled=True, kasan__multi_shot=True)
    assert m.kasan.enabled
    page = hwemu.alloc_pages(hwemu.GFP_HIGHUSER, 0)
    assert hwemu.PageHighMem(page)
    assert mempool_put_pages(page, 0) is True
    assert mempool_put_pages(page, 0) is True    # no double-free check either
    addr = hwemu.kmap(page)
    hwemu.store(addr, 8, 0x1234)
    assert hwemu.load(addr, 8) == 0x1234
    hwemu.kunmap(page)
    kasan_mempool_unpoison_pages(page, 0)
    hwemu.__free_pages(page, 0)
    assert m.kasan.reports == []
    # lowmem is still checked on this machine
    p = kmalloc_site(100)
    with expect_report("slab-out-of-bounds"):
        read_byte(p + 100)


def test_mempool_hooks_with_kasan_off(boot):
    m = boot("tiny")
    p = kmalloc_site(100)
    L = kmalloc_site(3 * PAGE_SIZE)
    page = hwemu.alloc_pages(GFP_KERNEL, 0)
    for _ in range(2):
        assert mempool_put(p) is True
        assert mempool_put(p + 8) is True
        assert mempool_put(L) is True
        assert mempool_put_pages(page, 0) is True
    assert mempool_take(p, 10) is None
    assert kasan_mempool_unpoison_pages(page, 0) is None
    copy_out(p, 128)
    copy_out(L, 3 * PAGE_SIZE)
    assert kasan_check_read(p, 4096) is True and kasan_check_write(p, 1) is True
    kasan_poison(p, 8, 0xFF)
    kasan_unpoison(p, 3)
    read_byte(p)
    assert m.kasan.reports == [] and m.tainted == "Not tainted"


# ================================================================ 7. the check API

def test_kasan_check_read_and_write(kmm):
    p = kmalloc_site(100)
    assert check_r(p, 100) is True
    assert check_w(p + 99, 1) is True
    assert check_r(p + 200, 0) is True       # size 0: nothing to check
    assert kmm.kasan.reports == []
    assert check_r(p, 101) is False
    r = kmm.kasan.reports[-1]
    check_report(r, "slab-out-of-bounds", "check_r", read_access(p, 101))
    assert check_w(p + 100, 1) is False
    r = kmm.kasan.reports[-1]
    check_report(r, "slab-out-of-bounds", "check_w", write_access(p + 100, 1))
    assert r.is_write
    free_it(p)
    assert check_r(p, 1) is False
    assert kmm.kasan.reports[-1].bug_type == "slab-use-after-free"
    assert len(kmm.kasan.reports) == 3


def test_kasan_mem_to_shadow(km):
    p = kmalloc_site(100)
    v = hwemu.vmalloc(10)
    for addr in (p, p + 1, p + 7, p + 8, p + 100, v, km.space.base):
        assert kasan_mem_to_shadow(addr) == (addr >> 3) + km.KASAN_SHADOW_OFFSET
    assert kasan_mem_to_shadow(p + 7) == kasan_mem_to_shadow(p)
    assert kasan_mem_to_shadow(p + 8) == kasan_mem_to_shadow(p) + 1


def test_kasan_poison_and_unpoison_partial_granules(kmm):
    p = kmalloc_site(128)
    kasan_poison(p + 16, 16, 0xFC)
    assert shadow(p, 5) == bytes([0, 0, 0xFC, 0xFC, 0])
    with expect_report("slab-out-of-bounds"):
        read_byte(p + 16)
    kasan_unpoison(p + 16, 13)
    assert shadow(p, 5) == bytes([0, 0, 0, 5, 0])
    read_byte(p + 28)
    assert len(kmm.kasan.reports) == 1
    with expect_report("out-of-bounds"):   # partial granule, accessible one after it
        read_byte(p + 29)
    kasan_unpoison(p + 16, 16)
    assert shadow(p, 5) == bytes(5)
    # An unaligned address: WARN and nothing done, as the kernel's kasan_poison.
    warnings = len(kmm.warnings)
    kasan_poison(p + 4, 8, 0xFC)
    assert len(kmm.warnings) == warnings + 1
    assert shadow(p, 5) == bytes(5)


def test_kasan_poison_unaligned_size_warns(kmm):
    p = kmalloc_site(128)
    warnings = len(kmm.warnings)
    kasan_poison(p, 12, 0xFC)
    assert len(kmm.warnings) == warnings + 1
    assert shadow(p, 3) == bytes(3)


def test_kasan_unpoison_unaligned_address_warns(kmm):
    p = kmalloc_site(128)
    kasan_poison(p, 16, 0xFC)
    warnings = len(kmm.warnings)
    kasan_unpoison(p + 4, 8)
    assert len(kmm.warnings) == warnings + 1
    assert shadow(p, 2) == b"\xfc\xfc"


# ================================================================ 8. allocator hooks

def test_new_slab_is_redzone_except_objects_handed_out(km):
    slab, obj = k100_slab(km)
    n = (PAGE_SIZE << slab.order) // 8
    handed = bytes([0] * 12 + [4] + [0xFC] * 3 + [0xFC] * 16)    # kmalloc(100) + redzone
    untouched = bytes([0xFC] * 32)
    expect = handed * 3 + untouched * (slab.objects - 3)
    expect += bytes([0xFC]) * (n - len(expect))                   # the slab's tail, if any
    assert shadow(slab.base, n) == expect


def test_new_slab_with_ctor(km):
    seen = []

    def ctor(obj):
        hwemu.memset(obj, 0xAB, 40)   # the ctor may touch the whole object
        seen.append(obj)

    c = hwemu.kmem_cache_create("kasan_ctor", 40, 0, 0, ctor)
    o = cache_alloc_site(c)
    slab = km.slab.slab_of(o)
    cache = slab.cache
    assert cache.size == 80   # 40 + free pointer 8 + alloc meta 16 + free meta 16
    assert len(seen) == slab.objects and o == slab.base
    assert km.kasan.reports == []
    assert shadow(o, 10) == bytes([0] * 5 + [0xFC] * 5)
    assert shadow(o + 80, 10) == bytes([0xFC] * 10)   # constructed, not handed out
    assert hwemu.read_bytes(o, 40) == b"\xab" * 40


@pytest.mark.parametrize("align", [0, 64])
def test_kmem_cache_alloc_unpoisons_exactly_object_size(kmm, align):
    """kasan_unpoison(object, cache->object_size): the last granule's shadow byte is
    object_size % 8 (0 when it is a whole granule), and the byte at object_size is
    already out of bounds, for every object size a cache can have."""
    sizes = list(range(1, 130)) + [191, 255, 300, 1001, 4095, 4097, 8000]
    for size in sizes:
        c = hwemu.kmem_cache_create(f"kasan_size_{size}", size, align, 0)
        o = hwemu.kmem_cache_alloc(c, GFP_KERNEL)
        last = (size - 1) >> 3
        assert shadow(o + last * 8, 1)[0] == (size & 7 or 0), size
        assert shadow(o, last) == bytes(last), size
        copy_out(o, size)
        assert all(r.expected for r in kmm.kasan.reports), size
        with expect_report("slab-out-of-bounds"):
            read_byte(o + size)
        hwemu.kmem_cache_free(c, o)
        hwemu.kmem_cache_destroy(c)


def test_the_kernels_mempool_slab_oob_case(kmm):
    """mm/kasan/kasan_test_c.c, mempool_slab_oob_right: a 123-byte cache behind a slab
    mempool; reading byte 123 of an element is slab-out-of-bounds."""
    import mempool
    c = hwemu.kmem_cache_create("test_cache", 123, 0, 0)
    pool = mempool.mempool_create_slab_pool(1, c)
    e = mempool.mempool_alloc(pool, GFP_KERNEL)
    with expect_report("slab-out-of-bounds"):
        read_byte(e + 123)
    mempool.mempool_free(e, pool)
    mempool.mempool_destroy(pool)
    hwemu.kmem_cache_destroy(c)


KMALLOC_BUCKETS = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)


def bucket(size):
    return next(b for b in KMALLOC_BUCKETS if size <= b)


@pytest.mark.parametrize("zero", [False, True])
def test_kmalloc_unpoisons_exactly_the_requested_bytes(kmm, zero):
    for size in (1, 7, 8, 9, 13, 63, 64, 65, 96, 100, 127, 128, 129, 192, 200, 1000,
                 4095, 4096, 4097, 8191, 8192):
        p = (hwemu.kzalloc if zero else hwemu.kmalloc)(size, GFP_KERNEL)
        b = bucket(size)
        assert hwemu.ksize(p) == b
        granules = b // 8 + 1   # the object and the first granule of its redzone
        expect = bytes(size >> 3) + (bytes([size & 7]) if size & 7 else b"")
        expect += b"\xfc" * (granules - len(expect))
        assert shadow(p, granules) == expect, size
        if zero:
            assert hwemu.read_bytes(p, size) == bytes(size)
        copy_out(p, size)
        hwemu.kfree(p)
    assert kmm.kasan.reports == []


def test_krealloc_in_place_moves_the_redzone(kmm):
    p = kmalloc_site(50)          # kmalloc-64
    assert shadow(p, 8) == bytes([0] * 6 + [2, 0xFC])
    assert hwemu.krealloc(p, 60, GFP_KERNEL) == p
    assert shadow(p, 8) == bytes([0] * 7 + [4])
    copy_out(p, 60)
    assert hwemu.krealloc(p, 20, GFP_KERNEL) == p
    assert shadow(p, 8) == bytes([0, 0, 4] + [0xFC] * 5)
    read_byte(p + 19)
    assert kmm.kasan.reports == []
    with expect_report("slab-out-of-bounds"):
        read_byte(p + 20)
    hwemu.memset(p, 0x11, 20)
    q = hwemu.krealloc(p, 100, GFP_KERNEL)   # too big: moved, the old one freed
    assert q != p
    assert shadow(q, 16) == bytes([0] * 12 + [4] + [0xFC] * 3)
    assert shadow(p, 8) == bytes([0xFA] + [0xFB] * 7)
    assert hwemu.read_bytes(q, 20) == b"\x11" * 20
    # large kmalloc grows in place up to its pages
    L = kmalloc_site(9000)         # order 2
    assert hwemu.krealloc(L, 12000, GFP_KERNEL) == L
    assert shadow(L + 11992, 2) == bytes([0, 0xFE])
    copy_out(L, 12000)
    assert len(kmm.kasan.reports) == 1


def test_ksize_is_the_object_size_and_unpoisons_nothing(kmm):
    p = kmalloc_site(100)
    assert hwemu.ksize(p) == 128
    c = hwemu.kmem_cache_create("kasan_ks", 40, 0, 0)
    assert hwemu.ksize(cache_alloc_site(c)) == 40
    L = kmalloc_site(8195)
    assert hwemu.ksize(L) == 4 * PAGE_SIZE
    with expect_report("slab-out-of-bounds"):   # ksize() does not unpoison (6.1+)
        read_byte(p + 100)


def test_ksize_of_a_freed_object_reports(kmm):
    p = kmalloc_site(100)
    free_it(p)
    with expect_report("slab-use-after-free"):
        assert hwemu.ksize(p) == 0


def test_vmalloc_and_vzalloc_areas(kmm):
    v = hwemu.vmalloc(100)
    area = hwemu.find_vm_area(v)
    assert area.size == 2 * PAGE_SIZE            # one page and the guard
    assert shadow(v, 1024) == bytes([0] * 12 + [4]) + b"\xf8" * (1024 - 13)
    copy_out(v, 100)
    z = hwemu.vzalloc(5001)
    assert hwemu.find_vm_area(z).size == 3 * PAGE_SIZE
    assert shadow(z, 1536) == bytes(625) + b"\x01" + b"\xf8" * (1536 - 626)
    assert hwemu.read_bytes(z, 5001) == bytes(5001)
    assert kmm.kasan.reports == []
    hwemu.vfree(v)
    assert shadow(v, 1024) == b"\xf8" * 1024




def test_vrealloc_grow_in_place_unpoisons(kmm):
    v = hwemu.vmalloc(64)
    assert hwemu.vrealloc(v, 200, GFP_KERNEL) == v
    assert shadow(v, 26) == bytes(25) + b"\xf8"


def test_vrealloc_shrink_in_place_poisons(kmm):
    v = hwemu.vmalloc(200)
    assert hwemu.vrealloc(v, 64, GFP_KERNEL) == v
    assert shadow(v, 26) == bytes(8) + b"\xf8" * 18


def test_pages_accessible_when_allocated_ff_when_freed(kmm):
    page = hwemu.alloc_pages(GFP_KERNEL, 2)
    addr = hwemu.page_address(page)
    assert shadow(addr, 2048) == bytes(2048)
    hwemu.memset(addr, 0x77, 4 * PAGE_SIZE)
    assert kmm.kasan.reports == []
    hwemu.__free_pages(page, 2)
    assert shadow(addr, 2048) == b"\xff" * 2048


# ================================================================ bugs found elsewhere

def test_free_of_a_pointer_in_the_slab_tail_is_an_invalid_free(kmm):
    c, slab, objs = c40_slab(kmm, 1)
    assert slab.objects * 56 < PAGE_SIZE << slab.order   # 73 objects, 8 bytes of tail
    tail = slab.base + slab.objects * 56
    cache_free_it(c, tail)
    r = only_report(kmm)
    lines = check_report(r, "invalid-free", "cache_free_it", free_access(tail))
    last = slab.base + (slab.objects - 1) * 56
    assert f"The buggy address belongs to the object at {last:016x}" in lines


def test_slab_validate_with_quarantined_objects(km):
    p = kmalloc_site(100)
    free_it(p)
    assert km.slab.validate() == []


def test_physical_page_block_of_a_compound_slab_has_the_head_line(km):
    slab, obj = k100_slab(km)
    assert slab.order >= 1
    read_byte(obj + 100)
    lines = only_report(km).text.split("\n")
    i = lines.index(PHYS)
    assert re.fullmatch(rf"head: order:{slab.order} mapcount:0 entire_mapcount:0 "
                        r"nr_pages_mapped:0 pincount:0", lines[i + 2])


def test_boot_time_slab_objects_are_allocated_to_kasan(boot):
    """The caches' own descriptors and names, kmalloc'ed while the slab allocator boots,
    are allocated objects like any other: reading them reports nothing."""
    m = boot("tiny", kasan__enabled=True, kasan__multi_shot=True)
    for s in m.slab.slab_caches:
        hwemu.read_bytes(s.addr, 8)
        assert hwemu.read_bytes(s.struct.name, len(s.name) + 1) == s.name.encode() + b"\0"
    assert m.kasan.reports == []
