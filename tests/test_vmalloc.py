"""Tests for hwemu.vmalloc: vmalloc/vzalloc/vfree, vmap/vunmap, vmalloc_to_page and the
kvmalloc family, checked against mm/vmalloc.c and mm/slub.c (6.19 era)."""
import errno
import random

import pytest

import hwemu
from hwemu import PAGE_SIZE
from hwemu.gfp import __GFP_HIGHMEM, __GFP_NOWARN, __GFP_ZERO, GFP_ATOMIC, GFP_KERNEL
from hwemu.page_alloc import __free_page, alloc_page, nr_free_pages
from hwemu.util import kvcalloc, kvfree, kvmalloc, kvmalloc_array, kvmalloc_node, kvzalloc
from hwemu.vmalloc import (PAGE_KERNEL, VM_ALLOC, VM_MAP, VM_NO_GUARD, __vmalloc,
                           __vmalloc_node_range, find_vm_area, get_vm_area_size, is_vmalloc_addr,
                           vfree, vfree_atomic, vmalloc, vmalloc_node, vmalloc_to_page,
                           vmalloc_to_pfn, vmap, vrealloc, vunmap, vzalloc)

MiB = 1 << 20


def pages_of(n):
    return -(-n // PAGE_SIZE)


def drained_free(m):
    m.page_alloc.drain_all_pages()
    return nr_free_pages()


def warns(m):
    return m.dmesg().count("WARNING: CPU:")


def pattern(seed, n):
    return bytes((seed * 131 + i * 7) & 0xFF for i in range(n))


# ---------------------------------------------------------------- allocation and mapping


@pytest.mark.parametrize("size", [1, 4096, 4097, MiB])
def test_vmalloc_maps_whole_pages_with_a_guard(machine, size):
    nr = pages_of(size)
    a = vmalloc(size)
    assert a and a % PAGE_SIZE == 0 and is_vmalloc_addr(a)
    area = find_vm_area(a)
    assert (area.addr, area.nr_pages, area.size) == (a, nr, (nr + 1) * PAGE_SIZE)
    assert area.flags == VM_ALLOC and area.requested_size == size
    assert get_vm_area_size(area) == nr * PAGE_SIZE
    assert area.caller.startswith("test_vmalloc_maps_whole_pages_with_a_guard+0x")
    assert machine.vmstat["nr_vmalloc"] == nr
    pfns = [vmalloc_to_pfn(a + i * PAGE_SIZE) for i in range(nr)]
    assert len(set(pfns)) == nr
    assert [vmalloc_to_page(a + i * PAGE_SIZE) for i in range(nr)] == area.pages
    assert vmalloc_to_page(a + nr * PAGE_SIZE) == 0  # the guard page maps nothing
    data = pattern(size, nr * PAGE_SIZE)  # the whole last page is usable
    hwemu.write_bytes(a, data)
    hwemu.store(a + size - 1, 1, 0x5A)
    assert hwemu.load(a + size - 1, 1) == 0x5A
    assert hwemu.read_bytes(a, size - 1) == data[:size - 1]
    vfree(a)
    assert machine.vmstat["nr_vmalloc"] == 0
    assert machine.warnings == []


def test_first_fit_places_areas_back_to_back(machine):
    vm = machine.vmalloc
    a = vmalloc(4097)
    b = vmalloc(1)
    assert a == vm.VMALLOC_START
    assert b == a + find_vm_area(a).size  # right after a's guard page
    c = __vmalloc_node_range(PAGE_SIZE, 1, vm.VMALLOC_START, vm.VMALLOC_END, GFP_KERNEL,
                             PAGE_KERNEL, VM_NO_GUARD, -1)
    d = vmalloc(1)
    assert find_vm_area(c).size == PAGE_SIZE and d == c + PAGE_SIZE
    assert find_vm_area(b + 100) is find_vm_area(b)
    assert find_vm_area(b + PAGE_SIZE).addr == b  # the guard belongs to the area
    for p in (a, b, c, d):
        vfree(p)


def test_vmalloc_pages_alias_the_direct_map(machine):
    a = vmalloc(4 * PAGE_SIZE)
    hwemu.write_bytes(a, pattern(1, 4 * PAGE_SIZE))
    for i in range(4):
        page = vmalloc_to_page(a + i * PAGE_SIZE + 123)
        virt = hwemu.page_address(page)
        assert hwemu.read_bytes(virt, PAGE_SIZE) == pattern(1, 4 * PAGE_SIZE)[
            i * PAGE_SIZE:(i + 1) * PAGE_SIZE]
        hwemu.store(virt + 8, 8, 0x1122334455667788 + i)
        assert hwemu.load(a + i * PAGE_SIZE + 8, 8) == 0x1122334455667788 + i
    vfree(a)


def test_vmalloc_maps_highmem_pages_that_alias_kmap(highmem_machine):
    m = highmem_machine
    nr = 64
    a = vmalloc(nr * PAGE_SIZE)
    data = pattern(7, nr * PAGE_SIZE)
    hwemu.write_bytes(a, data)
    pages = [vmalloc_to_page(a + i * PAGE_SIZE) for i in range(nr)]
    assert all(hwemu.PageHighMem(p) for p in pages)  # vmalloc asks for __GFP_HIGHMEM
    for i, page in enumerate(pages):
        assert hwemu.page_address(page) == 0  # no permanent mapping
        v = hwemu.kmap_local_page(page)
        assert hwemu.read_bytes(v, PAGE_SIZE) == data[i * PAGE_SIZE:(i + 1) * PAGE_SIZE]
        hwemu.store(v, 4, 0xCAFE0000 + i)
        hwemu.kunmap_local(v)
        assert hwemu.load(a + i * PAGE_SIZE, 4) == 0xCAFE0000 + i
    vfree(a)
    assert m.vmstat["nr_vmalloc"] == 0 and m.warnings == []


def test_guard_page_and_freed_range_fault(machine):
    a = vmalloc(4097)
    hwemu.load(a + 4097, 1)                     # same page as the last byte: mapped
    hwemu.store(a + 2 * PAGE_SIZE - 8, 8, 42)   # the rest of the last page is usable
    with pytest.raises(hwemu.Oops) as exc:
        hwemu.load(a + 2 * PAGE_SIZE, 1)
    assert "not mapped in the vmalloc" in str(exc.value)
    assert f"BUG: unable to handle page fault for address: {a + 2 * PAGE_SIZE:016x}" \
        in machine.dmesg()
    vfree(a)
    for off in (0, PAGE_SIZE):
        with pytest.raises(hwemu.Oops):
            hwemu.load(a + off, 8)
    assert vmalloc_to_page(a) == 0 and find_vm_area(a) is None
    assert vmalloc(PAGE_SIZE)  # the machine goes on


def test_vzalloc_zeroes_recycled_dirty_pages(machine):
    dirty = []
    for _ in range(32):
        page = alloc_page(GFP_KERNEL)
        hwemu.memset(hwemu.page_address(page), 0xAA, PAGE_SIZE)
        dirty.append(hwemu.page_to_pfn(page))
    for pfn in dirty:
        __free_page(hwemu.pfn_to_page(pfn))
    a = vzalloc(32 * PAGE_SIZE)
    got = {vmalloc_to_pfn(a + i * PAGE_SIZE) for i in range(32)}
    assert got & set(dirty)  # really reused those pages
    assert hwemu.read_bytes(a, 32 * PAGE_SIZE) == bytes(32 * PAGE_SIZE)
    vfree(a)
    b = __vmalloc(3 * PAGE_SIZE, GFP_KERNEL | __GFP_ZERO)
    assert hwemu.read_bytes(b, 3 * PAGE_SIZE) == bytes(3 * PAGE_SIZE)
    vfree(b)


def test_vfree_returns_every_page(machine):
    start = drained_free(machine)
    a = vmalloc(MiB)
    assert start - drained_free(machine) >= MiB // PAGE_SIZE
    vfree(a)
    assert drained_free(machine) == start
    assert machine.vmstat["nr_vmalloc"] == 0


def test_freed_ranges_are_reused_after_a_purge(machine):
    vm = machine.vmalloc
    a = vmalloc(PAGE_SIZE)
    vfree(a)
    b = vmalloc(PAGE_SIZE)
    assert b != a  # lazily freed: not reused until purged
    assert f"0x{a:016x}-0x{a + 2 * PAGE_SIZE:016x}    8192 unpurged vm_area" \
        in vm.vmallocinfo()
    assert vm.purge_vmap_area_lazy() == 2
    assert vmalloc(PAGE_SIZE) == a
    assert "unpurged" not in vm.vmallocinfo()


def test_vmallocinfo_lines(boot):
    m = boot("x86_64-numa4")
    a = vmalloc_node(3 * PAGE_SIZE, 2)
    line = m.vmalloc.vmallocinfo().splitlines()[0]
    assert line.startswith(f"0x{a:016x}-0x{a + 4 * PAGE_SIZE:016x}   16384 "
                           "test_vmallocinfo_lines+0x")
    assert line.endswith(" pages=3 vmalloc N2=3")
    vfree(a)


# ---------------------------------------------------------------- bad frees


def test_vfree_of_null_does_nothing(machine):
    vfree(0)
    assert machine.warnings == []


def test_vfree_bad_addresses_warn_and_free_nothing(machine):
    vm = machine.vmalloc
    a = vmalloc(2 * PAGE_SIZE)
    hwemu.write_bytes(a, pattern(3, 2 * PAGE_SIZE))
    free_before = drained_free(machine)
    vfree(a + 8)
    log = machine.dmesg()
    assert f"Trying to vfree() bad address ({a + 8:016x})" in log
    assert f"Trying to vfree() nonexistent vm area ({a + 8:016x})" in log
    nowhere = vm.VMALLOC_END - PAGE_SIZE
    vfree(nowhere)
    assert f"Trying to vfree() nonexistent vm area ({nowhere:016x})" in machine.dmesg()
    assert len(machine.warnings) == 3 and "W" in machine.tainted
    assert hwemu.read_bytes(a, 2 * PAGE_SIZE) == pattern(3, 2 * PAGE_SIZE)
    assert find_vm_area(a).nr_pages == 2 and drained_free(machine) == free_before
    vfree(a)
    vfree(a)  # double free
    assert machine.dmesg().count(f"Trying to vfree() nonexistent vm area ({a:016x})") == 1
    assert drained_free(machine) == free_before + 2


def test_vfree_of_an_aligned_inner_address_frees_the_area(machine):
    # The kernel looks the area up by containment (__find_vmap_area), so this works.
    a = vmalloc(3 * PAGE_SIZE)
    vfree(a + PAGE_SIZE)
    assert find_vm_area(a) is None and machine.warnings == []
    assert machine.vmstat["nr_vmalloc"] == 0


# ---------------------------------------------------------------- failures


def test_vmalloc_larger_than_ram_fails_with_the_kernel_message(machine):
    assert vmalloc(1 << 31) == 0
    assert ("init: vmalloc error: size 2147483648, exceeds total pages, "
            "mode:0xcc0(GFP_KERNEL), nodemask=(null),cpuset=/,mems_allowed=0") \
        in machine.dmesg()


def test_exhausted_window_warns_unless_nowarn(boot):
    m = boot("tiny", machine__vmalloc="8M")
    vm = m.vmalloc
    assert vm.VMALLOC_END - vm.VMALLOC_START == 8 * MiB
    assert vmalloc(16 * MiB) == 0
    log = m.dmesg()
    assert (f"vmalloc_node_range for size {16 * MiB + PAGE_SIZE} failed: Address range "
            f"restricted to {vm.VMALLOC_START:#x} - {vm.VMALLOC_END:#x}") in log
    assert (f"init: vmalloc error: size {16 * MiB}, vm_struct allocation failed, "
            "mode:0xcc0(GFP_KERNEL), nodemask=(null)") in log
    m.log.clear()
    assert __vmalloc(16 * MiB, GFP_KERNEL | __GFP_NOWARN) == 0
    assert m.dmesg() == ""
    # Fill the window: seven 1M areas with their guards fit in 8M, an eighth does not.
    areas = [vmalloc(MiB) for _ in range(7)]
    assert all(areas) and __vmalloc(MiB, GFP_KERNEL | __GFP_NOWARN) == 0
    vfree(areas[3])
    assert vmalloc(MiB) == areas[3]  # the overflow path purged the lazy range
    for a in areas:
        vfree(a)


def test_partial_page_failure_frees_what_it_got(machine):
    fpa = machine.fault.fail_page_alloc
    fpa.min_order, fpa.ignore_gfp_highmem, fpa.ignore_gfp_wait = 0, False, False
    start = drained_free(machine)
    hwemu.current().fail_nth = 5  # the fifth page allocation fails
    assert vmalloc(8 * PAGE_SIZE) == 0
    assert ("init: vmalloc error: size 16384, failed to allocate pages, "
            "mode:0xcc2(GFP_KERNEL|__GFP_HIGHMEM), nodemask=(null)") in machine.dmesg()
    assert drained_free(machine) == start and machine.vmstat["nr_vmalloc"] == 0
    assert machine.vmalloc.vmallocinfo().endswith("unpurged vm_area\n")
    m_before = machine.dmesg()
    hwemu.current().fail_nth = 2
    assert __vmalloc(4 * PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN) == 0
    assert machine.dmesg() == m_before


def test_mapping_failure_frees_everything(machine, monkeypatch):
    # vm.max_map_count exhausted: the host mmap() of a page fails with ENOMEM.
    def no_more_maps(*args):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")
    start = drained_free(machine)
    monkeypatch.setattr(machine.space, "set_ptes", no_more_maps)
    assert vmalloc(3 * PAGE_SIZE) == 0
    assert "init: vmalloc error: size 12288, failed to map pages" in machine.dmesg()
    assert drained_free(machine) == start and machine.vmstat["nr_vmalloc"] == 0


def test_unsupported_gfp_is_fixed_up_with_a_warning(machine):
    a = __vmalloc(PAGE_SIZE, GFP_KERNEL | __GFP_HIGHMEM)
    assert a
    assert ("Unexpected gfp: 0x2 (__GFP_HIGHMEM). Fixing up to gfp: 0xcc0 (GFP_KERNEL). "
            "Fix your code!") in machine.dmesg()
    vfree(a)
    with pytest.raises(ValueError):  # only PAGE_KERNEL protections are emulated
        __vmalloc_node_range(1, 1, machine.vmalloc.VMALLOC_START,
                             machine.vmalloc.VMALLOC_END, GFP_KERNEL, 0, 0, -1)


def test_vmalloc_zero_warns_once(machine):
    assert vmalloc(0) == 0
    assert len(machine.warnings) == 1


# ---------------------------------------------------------------- context rules


def test_vmalloc_may_sleep_but_gfp_atomic_may_not(machine):
    hwemu.preempt_disable()
    try:
        a = __vmalloc(2 * PAGE_SIZE, GFP_ATOMIC)
        assert a and machine.warnings == []
        b = vmalloc(PAGE_SIZE)
    finally:
        hwemu.preempt_enable()
    assert "BUG: sleeping function called from invalid context" in machine.dmesg()
    vfree(a)
    vfree(b)


def test_vmalloc_in_interrupt_is_a_bug(machine):
    with pytest.raises(hwemu.KernelBug):
        hwemu.run_in_interrupt(vmalloc, PAGE_SIZE)


def test_vfree_in_interrupt_is_deferred_to_task_context(machine):
    a = vmalloc(2 * PAGE_SIZE)
    b = vmalloc(PAGE_SIZE)
    hwemu.store(a, 8, 0xDEAD)
    hwemu.run_in_interrupt(vfree, a)
    hwemu.run_in_interrupt(vfree_atomic, b, softirq=True)
    assert find_vm_area(a) and find_vm_area(b)
    assert hwemu.load(a, 8) == 0      # llist_add() linked it: first on its list
    assert hwemu.load(b, 8) == a      # next node: the previous head
    assert machine.warnings == [] and "sleeping function" not in machine.dmesg()
    vfree(0)  # any vfree in task context runs the deferred work first
    assert find_vm_area(a) is None and find_vm_area(b) is None
    assert machine.vmstat["nr_vmalloc"] == 0


def test_vfree_under_a_spinlock_splats(machine):
    a = vmalloc(PAGE_SIZE)
    hwemu.preempt_disable()
    vfree(a)
    hwemu.preempt_enable()
    assert "BUG: sleeping function called from invalid context" in machine.dmesg()
    assert find_vm_area(a) is None


# ---------------------------------------------------------------- NUMA


def test_vmalloc_node_places_pages_on_the_node(boot):
    boot("x86_64-numa4")
    for node in range(4):
        a = vmalloc_node(64 * PAGE_SIZE, node)
        nids = {hwemu.page_to_nid(vmalloc_to_page(a + i * PAGE_SIZE)) for i in range(64)}
        assert nids == {node}
        vfree(a)
    with pytest.raises(hwemu.AddressError):
        vmalloc_node(PAGE_SIZE, 4)


# ---------------------------------------------------------------- vmap, vrealloc


def test_vmap_aliases_pages_and_vunmap_keeps_them(machine):
    pages = [alloc_page(GFP_KERNEL) for _ in range(2)]
    v = vmap([pages[0], pages[1], pages[0]], 3, VM_MAP, PAGE_KERNEL)
    assert v and find_vm_area(v).flags == VM_MAP and find_vm_area(v).nr_pages == 0
    hwemu.store(v, 8, 0xABCDEF)
    assert hwemu.load(v + 2 * PAGE_SIZE, 8) == 0xABCDEF
    assert hwemu.load(hwemu.page_address(pages[0]), 8) == 0xABCDEF
    assert vmalloc_to_page(v + PAGE_SIZE) == pages[1]
    vunmap(v)
    with pytest.raises(hwemu.Oops):
        hwemu.load(v, 8)
    assert hwemu.load(hwemu.page_address(pages[0]), 8) == 0xABCDEF
    vunmap(v)
    assert f"Trying to vunmap() nonexistent vm area ({v:016x})" in machine.dmesg()
    for p in pages:
        __free_page(p)


def test_vrealloc_grows_in_place_then_moves(machine):
    a = vmalloc(100)
    hwemu.write_bytes(a, pattern(9, 100))
    assert vrealloc(a, 4000, GFP_KERNEL) == a  # still inside the mapped page
    b = vrealloc(a, 3 * PAGE_SIZE, GFP_KERNEL)
    assert b != a and hwemu.read_bytes(b, 100) == pattern(9, 100)
    assert find_vm_area(a) is None and find_vm_area(b).requested_size == 3 * PAGE_SIZE
    assert vrealloc(b, 0, GFP_KERNEL) == 0 and find_vm_area(b) is None


# ---------------------------------------------------------------- concurrency


def test_concurrent_vmalloc_vfree_keep_contents(machine):
    start = drained_free(machine)

    def worker(seed):
        rng = random.Random(seed)
        live = []
        for i in range(150):
            if live and (len(live) > 6 or rng.random() < 0.4):
                a, n, tag = live.pop(rng.randrange(len(live)))
                assert hwemu.read_bytes(a, n) == pattern(tag, n), f"{seed}: corrupted"
                vfree(a)
            else:
                n = rng.randrange(1, 5 * PAGE_SIZE)
                a = vmalloc(n)
                assert a
                tag = seed * 1000 + i
                hwemu.write_bytes(a, pattern(tag, n))
                live.append((a, n, tag))
        for a, n, tag in live:
            assert hwemu.read_bytes(a, n) == pattern(tag, n)
            vfree(a)
        return True

    tasks = [machine.spawn(worker, s) for s in range(4)]
    assert all(t.join(timeout=60) for t in tasks)
    assert machine.warnings == []
    assert machine.vmstat["nr_vmalloc"] == 0
    assert drained_free(machine) == start


# ---------------------------------------------------------------- kvmalloc


@pytest.fixture
def slab():
    from hwemu import slab
    return slab


def test_kvmalloc_small_comes_from_kmalloc(machine, slab):
    p = kvmalloc(64, GFP_KERNEL)
    assert p and not is_vmalloc_addr(p) and hwemu.virt_addr_valid(p)
    hwemu.store(p, 8, 7)
    kvfree(p)
    q = kvzalloc(3 * PAGE_SIZE, GFP_KERNEL)  # kmalloc succeeds when memory is plentiful
    assert q and not is_vmalloc_addr(q)
    assert hwemu.read_bytes(q, 3 * PAGE_SIZE) == bytes(3 * PAGE_SIZE)
    kvfree(q)
    assert machine.vmstat["nr_vmalloc"] == 0


def test_kvmalloc_falls_back_to_vmalloc_when_kmalloc_fails(machine, slab):
    fpa = machine.fault.fail_page_alloc
    fpa.probability, fpa.times = 100, -1  # defaults spare __GFP_HIGHMEM and order 0
    p = kvmalloc(64 << 10, GFP_KERNEL)
    assert p and is_vmalloc_addr(p) and find_vm_area(p).nr_pages == 16
    hwemu.write_bytes(p, pattern(5, 64 << 10))
    z = kvcalloc(8, 4096, GFP_KERNEL)
    assert is_vmalloc_addr(z) and hwemu.read_bytes(z, 8 << 12) == bytes(8 << 12)
    node = kvmalloc_node(16 << 10, GFP_KERNEL, 0)
    assert is_vmalloc_addr(node)
    assert "page allocation failure" not in machine.dmesg()  # the kmalloc try is quiet
    fpa.probability = 0
    for a in (p, z, node):
        kvfree(a)
    assert machine.vmstat["nr_vmalloc"] == 0


def test_kvmalloc_array_overflow_is_null(machine, slab):
    assert kvmalloc_array(1 << 40, 1 << 40, GFP_KERNEL) == 0
    assert kvcalloc(1 << 33, 1 << 31, GFP_KERNEL) == 0


def test_kvmalloc_of_a_page_or_less_never_falls_back(machine, slab):
    fs = machine.fault.failslab
    fs.probability, fs.times, fs.ignore_gfp_wait = 100, -1, False
    assert kvmalloc(PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN) == 0
    p = kvmalloc(5000, GFP_KERNEL)  # kmalloc-8k fails, vmalloc takes over
    fs.probability = 0
    assert p and is_vmalloc_addr(p)
    kvfree(p)
