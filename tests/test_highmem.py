"""Tests for hwemu.highmem: persistent kmaps (PKMAP), kmap_local and kmap_atomic.

Expected behaviour is the kernel's (mm/highmem.c, include/linux/highmem*.h), as
summarised in /work/shared/spec/kernel-mm.md section 8.
"""

import pytest
from helpers import wait_until

import hwemu
from hwemu import KM_MAX_IDX, PAGE_SHIFT, PAGE_SIZE

CUT_HERE = "------------[ cut here ]------------"
LOWMEM_PFNS = (896 << 20) >> PAGE_SHIFT  # i386: 1G - 128M vmalloc is directly mapped


def high_page(i=0):
    """``struct page *`` of the i-th highmem page of the current machine."""
    return hwemu.pfn_to_page(LOWMEM_PFNS + i)


def pkmap_nr(hm, vaddr):
    return (vaddr - hm.PKMAP_BASE) >> PAGE_SHIFT


def warnings_in(m):
    return m.dmesg().count("WARNING: CPU:")


def mapped_lines(m, label):
    return [line for line in m.maps().splitlines() if f" {label}[" in line]


# ---------------------------------------------------------------- layout basics


def test_highmem_boundary_and_windows(highmem_machine):
    m = highmem_machine
    hm = m.highmem
    assert not hwemu.PageHighMem(hwemu.pfn_to_page(LOWMEM_PFNS - 1))
    assert hwemu.PageHighMem(high_page(0))
    assert hm.LAST_PKMAP == 1024
    assert hm.LAST_PKMAP_MASK == 1023
    assert hm.pkmap.end - hm.pkmap.start == hm.LAST_PKMAP * PAGE_SIZE
    assert hm.PKMAP_BASE == hm.pkmap.start
    # FIXADDR_TOP is fix index 0, the highest kmap_local slot; 16 slots per CPU.
    assert hm.FIXADDR_TOP == hm.fixmap.end - PAGE_SIZE
    assert hm.fixmap.end - hm.fixmap.start == KM_MAX_IDX * 8 * PAGE_SIZE
    # Nothing is mapped in either window at boot.
    assert (hm.pkmap_count == 0).all()
    assert mapped_lines(m, "pkmap") == [] and mapped_lines(m, "fixmap kmap_local") == []
    assert hwemu.page_address(high_page(0)) == 0


# ---------------------------------------------------------------- aliasing


def test_kmap_and_kmap_local_alias_the_same_highmem_page(highmem_machine):
    page = high_page(5)
    v = hwemu.kmap(page)
    loc = hwemu.kmap_local_page(page)
    assert v != loc
    hwemu.write_bytes(v + 100, b"written through kmap")
    assert hwemu.read_bytes(loc + 100, 20) == b"written through kmap"
    hwemu.store(loc + PAGE_SIZE - 8, 8, 0x1122334455667788)
    assert hwemu.load(v + PAGE_SIZE - 8, 8) == 0x1122334455667788
    hwemu.kunmap_local(loc)
    hwemu.kunmap(page)
    # The data lives in RAM, not in the mappings: it survives a flush and a remap.
    hwemu.kmap_flush_unused()
    loc = hwemu.kmap_local_page(page)
    assert hwemu.read_bytes(loc + 100, 20) == b"written through kmap"
    assert hwemu.load(loc + PAGE_SIZE - 8, 8) == 0x1122334455667788
    hwemu.kunmap_local(loc)


def test_highmem_above_4g_aliases_on_pae(boot):
    boot("i386-pae-highmem")
    page = hwemu.pfn_to_page((5 << 30) >> PAGE_SHIFT)  # node 1, above 4G
    assert hwemu.PageHighMem(page)
    v = hwemu.kmap(page)
    hwemu.store(v + 8, 8, 0xFEEDFACECAFEBEEF)
    loc = hwemu.kmap_local_page(page)
    assert hwemu.load(loc + 8, 8) == 0xFEEDFACECAFEBEEF
    hwemu.kunmap_local(loc)
    hwemu.kunmap(page)


def test_kmap_of_lowmem_page_is_its_direct_map_address(highmem_machine):
    hm = highmem_machine.highmem
    page = hwemu.pfn_to_page(0x1234)
    assert not hwemu.PageHighMem(page)
    v = hwemu.kmap(page)
    assert v == hwemu.page_address(page)
    assert v == hwemu.__va(hwemu.page_to_phys(page))
    hwemu.store(v + 16, 8, 0xABCDEF)
    assert hwemu.load(hwemu.__va(0x1234 * PAGE_SIZE + 16), 8) == 0xABCDEF
    # No PKMAP slot was used, and kunmap of a lowmem page does nothing.
    assert (hm.pkmap_count == 0).all()
    hwemu.kunmap(page)
    hwemu.kunmap(page)
    assert hwemu.load(v + 16, 8) == 0xABCDEF
    # kmap_local of lowmem pushes nothing: the next highmem map takes slot 0.
    assert hwemu.kmap_local_page(page) == v
    top = hwemu.kmap_local_page(high_page(1))
    assert top == hm.FIXADDR_TOP
    hwemu.kunmap_local(top)
    hwemu.kunmap_local(v)  # outside the fixmap: a no-op
    assert warnings_in(highmem_machine) == 0
    assert (hm.fixmap.ptes == -1).all()


def test_different_highmem_pages_never_alias(highmem_machine):
    pages = [high_page(i) for i in (10, 11, 12, 13)]
    addrs = [hwemu.kmap(pages[0]), hwemu.kmap(pages[1]),
             hwemu.kmap_local_page(pages[2]), hwemu.kmap_local_page(pages[3])]
    assert len(set(addrs)) == 4
    for i, a in enumerate(addrs):
        hwemu.memset(a, 0x11 * (i + 1), PAGE_SIZE)
    for i, a in enumerate(addrs):
        assert hwemu.read_bytes(a, PAGE_SIZE) == bytes([0x11 * (i + 1)]) * PAGE_SIZE
    hwemu.kunmap_local(addrs[3])
    hwemu.kunmap_local(addrs[2])
    hwemu.kunmap(pages[1])
    hwemu.kunmap(pages[0])


# ---------------------------------------------------------------- kmap refcounting


def test_kmap_refcount_idle_until_flush(highmem_machine):
    m = highmem_machine
    hm = m.highmem
    page = high_page(7)
    assert hwemu.page_address(page) == 0
    v1 = hwemu.kmap(page)
    v2 = hwemu.kmap(page)
    assert v1 == v2
    assert hm.PKMAP_BASE <= v1 < hm.PKMAP_BASE + hm.LAST_PKMAP * PAGE_SIZE
    nr = pkmap_nr(hm, v1)
    assert hm.pkmap_count[nr] == 3  # two users + 1
    assert hwemu.page_address(page) == v1
    assert hm.pkmap.ptes[nr] == LOWMEM_PFNS + 7
    hwemu.store(v1, 8, 42)

    hwemu.kunmap(page)
    assert hm.pkmap_count[nr] == 2
    hwemu.kunmap(page)
    assert hm.pkmap_count[nr] == 1
    # Idle, not flushed: the address is still the page's and still mapped.
    assert hwemu.page_address(page) == v1
    assert hwemu.load(v1, 8) == 42
    assert len(mapped_lines(m, "pkmap")) == 1
    # kmap of an idle page reuses its slot.
    assert hwemu.kmap(page) == v1
    assert hm.pkmap_count[nr] == 2
    hwemu.kunmap(page)
    assert hm.pkmap_count[nr] == 1

    hwemu.kmap_flush_unused()
    assert hm.pkmap_count[nr] == 0
    assert hwemu.page_address(page) == 0
    assert hm.pkmap.ptes[nr] == -1
    assert mapped_lines(m, "pkmap") == []
    for access, kind in ((lambda: hwemu.load(v1, 8), "read"),
                         (lambda: hwemu.store(v1, 8, 1), "write")):
        with pytest.raises(hwemu.Oops) as exc:
            access()
        assert f"BUG: unable to handle page fault for address: {v1:016x}" in exc.value.text
        assert f"#PF: supervisor {kind} access in kernel mode" in exc.value.text
    assert "D" in m.tainted
    # The page's data is intact in RAM.
    loc = hwemu.kmap_local_page(page)
    assert hwemu.load(loc, 8) == 42
    hwemu.kunmap_local(loc)


def test_kmap_flush_unused_keeps_busy_slots(highmem_machine):
    hm = highmem_machine.highmem
    busy, idle = high_page(1), high_page(2)
    vb, vi = hwemu.kmap(busy), hwemu.kmap(idle)
    hwemu.kunmap(idle)
    hwemu.kmap_flush_unused()
    assert hwemu.page_address(busy) == vb
    assert hm.pkmap_count[pkmap_nr(hm, vb)] == 2
    assert hwemu.page_address(idle) == 0
    assert hm.pkmap_count[pkmap_nr(hm, vi)] == 0
    hwemu.store(vb, 4, 7)
    hwemu.kunmap(busy)


def test_kunmap_of_page_not_kmapped_is_a_bug(highmem_machine):
    m = highmem_machine
    page = high_page(9)
    with pytest.raises(hwemu.KernelBug) as exc:
        hwemu.kunmap(page)
    assert "kernel BUG at hwemu/highmem.py:" in exc.value.text
    assert "kernel BUG at hwemu/highmem.py:" in m.dmesg()
    # kmap_lock was released on the way out: kmap still works.
    assert hwemu.preempt_count() == 0
    v = hwemu.kmap(page)
    hwemu.store(v, 8, 5)
    hwemu.kunmap(page)


def test_kunmap_of_idle_page_is_a_bug(highmem_machine):
    page = high_page(3)
    hwemu.kmap(page)
    hwemu.kunmap(page)  # count 1: idle
    with pytest.raises(hwemu.KernelBug) as exc:
        hwemu.kunmap(page)  # count would reach 0 without a flush
    assert "kernel BUG at hwemu/highmem.py:" in exc.value.text


# ---------------------------------------------------------------- PKMAP exhaustion


def fill_pkmap(hm, n):
    pages = [high_page(i) for i in range(n)]
    return pages, [hwemu.kmap(p) for p in pages]


def test_pkmap_scan_skips_slot_0_until_the_wrap(boot):
    m = boot("i386-pae-highmem")
    hm = m.highmem
    assert hm.LAST_PKMAP == 512
    pages, addrs = fill_pkmap(hm, hm.LAST_PKMAP)
    # map_new_virtual starts at last_pkmap_nr + 1 == 1; slot 0 is reached only
    # when the scan wraps, so exactly LAST_PKMAP kmaps fill the window.
    assert addrs[:511] == [hm.PKMAP_BASE + (i << PAGE_SHIFT) for i in range(1, 512)]
    assert addrs[511] == hm.PKMAP_BASE
    assert (hm.pkmap_count == 2).all()
    assert len(mapped_lines(m, "pkmap")) == 512
    # Every page has its own slot and its own data.
    for i, a in enumerate(addrs[::37]):
        hwemu.store(a, 8, i + 1000)
    for i, a in enumerate(addrs[::37]):
        assert hwemu.load(a, 8) == i + 1000
    # Nothing is idle: a flush frees nothing.
    hwemu.kmap_flush_unused()
    assert (hm.pkmap_count == 2).all()


def test_idle_slots_are_recycled_only_when_the_scan_wraps(boot):
    m = boot("i386-pae-highmem")
    hm = m.highmem
    pages = [high_page(i) for i in range(513)]
    addrs = []
    for p in pages[:511]:
        addrs.append(hwemu.kmap(p))
        hwemu.kunmap(p)
    # Slots 1..511 are idle (count 1) and still hold their pages.
    assert hm.pkmap_count[0] == 0 and (hm.pkmap_count[1:] == 1).all()
    assert hwemu.page_address(pages[0]) == addrs[0] == hm.PKMAP_BASE + PAGE_SIZE
    # The next scan wraps to 0: flush_all_zero_pkmaps() then slot 0 is free.
    v = hwemu.kmap(pages[511])
    assert v == hm.PKMAP_BASE
    assert [hwemu.page_address(p) for p in pages[:511]] == [0] * 511
    assert hm.pkmap_count[0] == 2 and (hm.pkmap_count[1:] == 0).all()
    assert mapped_lines(m, "pkmap") == [
        f"{v:016x}-{v + PAGE_SIZE:016x} rw-s   pkmap[0] pfn {LOWMEM_PFNS + 511:#x}"]
    with pytest.raises(hwemu.Oops):
        hwemu.load(addrs[0], 8)
    # ... and the scan goes on from slot 1.
    assert hwemu.kmap(pages[512]) == hm.PKMAP_BASE + PAGE_SIZE


def test_kmap_sleeps_when_window_full_and_gets_the_freed_slot(boot):
    m = boot("i386-pae-highmem")
    hm = m.highmem
    pages, addrs = fill_pkmap(hm, hm.LAST_PKMAP)
    assert (hm.pkmap_count == 2).all()
    extra = high_page(700)

    def blocked_kmap():
        v = hwemu.kmap(extra)
        return v, hwemu.load(v, 8)

    h = m.spawn(blocked_kmap)
    assert wait_until(lambda: h.task.state == hwemu.TASK_UNINTERRUPTIBLE)
    hwemu.msleep(50)
    assert h.is_alive()
    assert h.task.state == hwemu.TASK_UNINTERRUPTIBLE
    assert hm.pkmap_map_wait.active()
    assert hwemu.page_address(extra) == 0

    # Put a marker in the page the sleeper is waiting for (through a kmap_local).
    loc = hwemu.kmap_local_page(extra)
    hwemu.store(loc, 8, 0x5EED)
    hwemu.kunmap_local(loc)

    victim, freed = pages[100], addrs[100]
    hwemu.kunmap(victim)
    got, seen = h.join(timeout=10)
    assert got == freed
    assert seen == 0x5EED
    assert hwemu.page_address(extra) == freed
    assert hwemu.page_address(victim) == 0
    assert hm.pkmap_count[pkmap_nr(hm, freed)] == 2
    assert hm.pkmap.ptes[pkmap_nr(hm, freed)] == LOWMEM_PFNS + 700
    assert not hm.pkmap_map_wait.active()


def test_kmap_of_already_mapped_page_does_not_block_when_full(boot):
    m = boot("i386-pae-highmem")
    hm = m.highmem
    pages, addrs = fill_pkmap(hm, hm.LAST_PKMAP)
    page, addr = pages[42], addrs[42]
    hwemu.store(addr, 8, 0x4242)

    def kmap_mapped():
        v = hwemu.kmap(page)
        return v, hwemu.load(v, 8)

    h = m.spawn(kmap_mapped)
    v, seen = h.join(timeout=10)
    assert (v, seen) == (addr, 0x4242)
    assert hm.pkmap_count[pkmap_nr(hm, addr)] == 3
    hwemu.kunmap(page)
    hwemu.kunmap(page)
    assert hm.pkmap_count[pkmap_nr(hm, addr)] == 1


# ---------------------------------------------------------------- kmap_local


def test_kmap_local_stack_grows_down_in_the_fixmap(highmem_machine):
    m = highmem_machine
    hm = m.highmem
    pages = [high_page(i) for i in (20, 21, 22)]
    addrs = [hwemu.kmap_local_page(p) for p in pages]
    assert addrs == [hm.FIXADDR_TOP - i * PAGE_SIZE for i in range(3)]
    for a in addrs:
        assert a in hm.fixmap
        assert not hm.PKMAP_BASE <= a < hm.PKMAP_BASE + hm.LAST_PKMAP * PAGE_SIZE
    # kmap_local mappings are not recorded for page_address().
    assert [hwemu.page_address(p) for p in pages] == [0, 0, 0]
    # Migration is disabled, preemption is not.
    assert not hwemu.in_atomic()
    assert hwemu.current().migration_disabled == 3
    lines = mapped_lines(m, "fixmap kmap_local")
    assert len(lines) == 3
    for a, i in zip(addrs, (20, 21, 22)):
        assert f"{a:016x}-{a + PAGE_SIZE:016x} rw-s   fixmap kmap_local" in "\n".join(lines)
        assert hm.fixmap.ptes[(a - hm.fixmap.start) >> PAGE_SHIFT] == LOWMEM_PFNS + i
    for i, a in enumerate(addrs):
        hwemu.store(a, 8, i)
    # LIFO unmap; any address inside the page is accepted.
    hwemu.kunmap_local(addrs[2] + 123)
    hwemu.kunmap_local(addrs[1])
    assert hwemu.load(addrs[0], 8) == 0
    hwemu.kunmap_local(addrs[0] + PAGE_SIZE - 1)
    assert warnings_in(m) == 0
    assert m.tainted == "Not tainted"
    assert (hm.fixmap.ptes == -1).all()
    assert hwemu.current().migration_disabled == 0
    for a in addrs:
        with pytest.raises(hwemu.Oops):
            hwemu.load(a, 8)


def test_kmap_local_slots_are_per_cpu(highmem_machine):
    m = highmem_machine
    hm = m.highmem
    page = high_page(30)
    mine = hwemu.kmap_local_page(page)
    hwemu.store(mine, 8, 0xABC)
    mapped, done = hwemu.completion(), hwemu.completion()

    def other():
        a = hwemu.kmap_local_page(page)
        hwemu.complete(mapped)
        hwemu.wait_for_completion(done)   # all three CPUs hold a mapping of the page
        v = hwemu.load(a, 8)
        hwemu.kunmap_local(a)
        return hwemu.smp_processor_id(), a, v

    h1 = m.spawn(other, cpu=1)
    h2 = m.spawn(other, cpu=2)
    hwemu.wait_for_completion(mapped)
    hwemu.wait_for_completion(mapped)
    assert len(mapped_lines(m, "fixmap kmap_local")) == 3
    hwemu.complete_all(done)
    r1, r2 = h1.join(timeout=10), h2.join(timeout=10)
    assert mine == hm.FIXADDR_TOP
    assert r1 == (1, hm.FIXADDR_TOP - KM_MAX_IDX * PAGE_SIZE, 0xABC)
    assert r2 == (2, hm.FIXADDR_TOP - 2 * KM_MAX_IDX * PAGE_SIZE, 0xABC)
    assert hwemu.load(mine, 8) == 0xABC
    hwemu.kunmap_local(mine)
    assert warnings_in(m) == 0


def test_kunmap_local_out_of_order_warns_once_and_unmaps_the_top(highmem_machine):
    m = highmem_machine
    pa, pb = high_page(1), high_page(2)
    a = hwemu.kmap_local_page(pa)
    hwemu.store(a, 8, 0xA)
    b = hwemu.kmap_local_page(pb)
    hwemu.store(b, 8, 0xB)

    hwemu.kunmap_local(a)  # a is the bottom: wrong order
    log = m.dmesg()
    cut = log.index(CUT_HERE)
    msg = log.index("not the top of CPU 0's kmap_local stack")
    warn = log.index("WARNING: CPU: 0 PID: 1 at hwemu/highmem.py:")
    end = log.index("---[ end trace")
    assert cut < msg < warn < end
    assert f"kunmap_local({a:#x})" in log and f"top is {b:#x}" in log
    assert "W" in m.tainted
    # The kernel tears down the top slot, whatever address it was given.
    with pytest.raises(hwemu.Oops):
        hwemu.load(b, 8)
    assert hwemu.load(a, 8) == 0xA
    hwemu.kunmap_local(a)  # now the top: in order
    assert warnings_in(m) == 1
    assert (m.highmem.fixmap.ptes == -1).all()

    # WARN_ONCE: the same violation again prints no second splat...
    c = hwemu.kmap_local_page(pa)
    d = hwemu.kmap_local_page(pb)
    hwemu.kunmap_local(c)
    assert warnings_in(m) == 1
    assert m.dmesg().count(CUT_HERE) == 1
    # ...but still unmaps the top.
    with pytest.raises(hwemu.Oops):
        hwemu.load(d, 8)
    assert hwemu.load(c, 8) == 0xA
    hwemu.kunmap_local(c)
    assert (m.highmem.fixmap.ptes == -1).all()


def test_kunmap_local_on_empty_stack_is_a_bug(highmem_machine):
    m = highmem_machine
    a = hwemu.kmap_local_page(high_page(4))
    hwemu.kunmap_local(a)
    with pytest.raises(hwemu.KernelBug) as exc:
        hwemu.kunmap_local(a)
    assert "kernel BUG at hwemu/highmem.py:" in exc.value.text
    assert "kmap_local stack of init/1 is empty" in m.dmesg()
    assert hwemu.current().kmap_idx == 0
    # The stack is still usable.
    assert hwemu.kmap_local_page(high_page(4)) == a
    hwemu.kunmap_local(a)


def test_kmap_local_nesting_limit(highmem_machine):
    m = highmem_machine
    hm = m.highmem
    assert KM_MAX_IDX == 16
    pages = [high_page(i) for i in range(16)]
    addrs = [hwemu.kmap_local_page(p) for p in pages[:15]]
    assert addrs == [hm.FIXADDR_TOP - i * PAGE_SIZE for i in range(15)]
    with pytest.raises(hwemu.KernelBug) as exc:
        hwemu.kmap_local_page(pages[15])
    assert "kernel BUG at hwemu/highmem.py:" in exc.value.text
    # The BUG fired before any state changed.
    task = hwemu.current()
    assert task.kmap_idx == 15
    assert task.migration_disabled == 15
    assert hwemu.preempt_count() == 0
    assert int((hm.fixmap.ptes >= 0).sum()) == 15
    for i, a in enumerate(addrs):
        hwemu.store(a, 8, i)
    for i, a in reversed(list(enumerate(addrs))):
        assert hwemu.load(a, 8) == i
        hwemu.kunmap_local(a)
    assert warnings_in(m) == 0
    assert (hm.fixmap.ptes == -1).all()
    assert task.kmap_idx == 0 and task.migration_disabled == 0


# ---------------------------------------------------------------- kmap_atomic


def test_kmap_atomic_disables_preemption_and_pagefaults(highmem_machine):
    m = highmem_machine
    hm = m.highmem
    page = high_page(4)
    assert not hwemu.in_atomic() and not hwemu.pagefault_disabled()
    a = hwemu.kmap_atomic(page)
    assert a == hm.FIXADDR_TOP
    assert hwemu.in_atomic() and hwemu.preempt_count() == 1
    assert hwemu.pagefault_disabled()
    assert hwemu.page_address(page) == 0
    hwemu.store(a, 8, 77)
    b = hwemu.kmap_atomic(high_page(5))  # nests like kmap_local
    assert b == a - PAGE_SIZE
    assert hwemu.preempt_count() == 2
    hwemu.kunmap_atomic(b)
    assert hwemu.preempt_count() == 1 and hwemu.pagefault_disabled()

    with pytest.raises(TypeError):
        hwemu.kunmap_atomic(page)  # a struct page *, not the address
    assert hwemu.in_atomic() and hwemu.pagefault_disabled()
    assert hwemu.load(a, 8) == 77

    hwemu.kunmap_atomic(a)
    assert not hwemu.in_atomic() and not hwemu.pagefault_disabled()
    assert (hm.fixmap.ptes == -1).all()
    assert warnings_in(m) == 0


def test_kmap_inside_kmap_atomic_is_sleeping_in_atomic(highmem_machine):
    m = highmem_machine
    a = hwemu.kmap_atomic(high_page(1))
    page = high_page(2)
    v = hwemu.kmap(page)
    log = m.dmesg()
    i = log.index("BUG: sleeping function called from invalid context at hwemu/highmem.py:")
    assert "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1, name: init" in log[i:]
    assert "preempt_count: 1, expected: 0" in log[i:]
    assert "Call Trace:" in log[i:]
    assert "W" in m.tainted
    hwemu.kunmap(page)
    hwemu.kunmap_atomic(a)
    assert hwemu.page_address(page) == v


# ---------------------------------------------------------------- interrupts and exit


@pytest.mark.parametrize("softirq", [False, True])
def test_kmap_local_in_interrupt_uses_next_slot(highmem_machine, softirq):
    m = highmem_machine
    pa, pb = high_page(1), high_page(2)
    a = hwemu.kmap_local_page(pa)
    hwemu.store(a, 8, 1)

    def handler():
        assert hwemu.in_interrupt()
        x = hwemu.kmap_local_page(pb)
        hwemu.store(x, 8, 2)
        seen = hwemu.load(a, 8)  # the interrupted task's mapping is intact
        hwemu.kunmap_local(x)
        return x, seen

    x, seen = hwemu.run_in_interrupt(handler, softirq=softirq)
    assert x == a - PAGE_SIZE
    assert seen == 1
    assert warnings_in(m) == 0
    assert hwemu.load(a, 8) == 1
    assert hwemu.current().kmap_idx == 1
    # The slot the interrupt used is free again for the task.
    b = hwemu.kmap_local_page(pb)
    assert b == x
    assert hwemu.load(b, 8) == 2
    hwemu.kunmap_local(b)
    hwemu.kunmap_local(a)
    assert warnings_in(m) == 0


def test_interrupt_handler_leaving_kmap_local_behind_warns(highmem_machine):
    m = highmem_machine
    page = high_page(3)

    def leaky_handler():
        return hwemu.kmap_local_page(page)

    x = hwemu.run_in_interrupt(leaky_handler)
    log = m.dmesg()
    assert CUT_HERE in log
    assert "interrupt handler leaky_handler left 1 kmap_local mapping(s) behind" in log
    assert "WARNING: CPU: 0 PID: 1 at " in log
    assert "W" in m.tainted
    assert not hwemu.in_interrupt() and not hwemu.irqs_disabled()
    assert hwemu.preempt_count() == 0
    hwemu.kunmap_local(x)  # it is the top of the stack
    assert (m.highmem.fixmap.ptes == -1).all()
    assert warnings_in(m) == 1


def test_kmap_local_in_hardirq_with_irqs_enabled_warns(highmem_machine):
    m = highmem_machine

    def handler():
        hwemu.local_irq_enable()
        x = hwemu.kmap_local_page(high_page(1))
        hwemu.kunmap_local(x)
        hwemu.local_irq_disable()

    hwemu.run_in_interrupt(handler)
    assert "WARNING: CPU: 0 PID: 1 at hwemu/highmem.py:" in m.dmesg()
    assert warnings_in(m) == 1


def test_task_exiting_with_kmap_local_warns_and_unmaps(highmem_machine):
    m = highmem_machine
    hm = m.highmem
    pa, pb = high_page(1), high_page(2)

    def holder():
        a = hwemu.kmap_local_page(pa)
        b = hwemu.kmap_local_page(pb)
        hwemu.store(a, 8, 0x99)
        return a, b

    a, b = m.spawn(holder, cpu=3).join(timeout=10)
    assert a == hm.FIXADDR_TOP - 3 * KM_MAX_IDX * PAGE_SIZE and b == a - PAGE_SIZE
    log = m.dmesg()
    assert "WARNING: CPU: 3 PID: 2 at hwemu/highmem.py:" in log
    assert "holder/2 exited holding 2 kmap_local mapping(s)" in log
    assert warnings_in(m) == 1  # the teardown itself is in LIFO order
    assert (hm.fixmap.ptes == -1).all()
    assert mapped_lines(m, "fixmap kmap_local") == []
    for addr in (a, b):
        with pytest.raises(hwemu.Oops):
            hwemu.load(addr, 8)

    # A new task on that CPU starts with an empty, unmapped stack.
    def reuse():
        x = hwemu.kmap_local_page(pa)
        v = hwemu.load(x, 8)
        hwemu.kunmap_local(x)
        return x, v, hwemu.current().kmap_idx

    assert m.spawn(reuse, cpu=3).join(timeout=10) == (a, 0x99, 0)
    assert warnings_in(m) == 1


# ---------------------------------------------------------------- no highmem (x86_64)


def test_no_highmem_kmap_family_returns_page_address(machine):
    assert machine.highmem is None
    page = hwemu.pfn_to_page(100)
    addr = hwemu.page_address(page)
    assert addr == hwemu.__va(100 * PAGE_SIZE)
    assert not hwemu.PageHighMem(page)

    assert hwemu.kmap(page) == addr
    hwemu.kunmap(page)
    loc = hwemu.kmap_local_page(page)
    assert loc == addr
    assert hwemu.current().kmap_idx == 0 and not hwemu.in_atomic()
    a = hwemu.kmap_atomic(page)
    assert a == addr
    assert hwemu.in_atomic() and hwemu.pagefault_disabled()
    hwemu.kunmap_atomic(a)
    assert not hwemu.in_atomic() and not hwemu.pagefault_disabled()

    hwemu.store(loc, 8, 0x64)
    hwemu.kunmap_local(loc)  # a direct-map address: nothing to pop
    hwemu.kunmap_local(loc)
    hwemu.kmap_flush_unused()
    assert hwemu.load(addr, 8) == 0x64
    assert hwemu.current().kmap_idx == 0
    maps = machine.maps()
    assert "pkmap" not in maps and "fixmap" not in maps
    assert machine.warnings == [] and machine.tainted == "Not tainted"
