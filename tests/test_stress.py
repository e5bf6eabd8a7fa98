"""Concurrency stress: many tasks mapping highmem at once must never see a wrong page."""
import os
import random

import hwemu
from hwemu import PAGE_SHIFT

NR_PAGES = 1500          # more pages than PKMAP slots: the scan wraps and flushes
HELD = 40                # kmaps one task holds at a time; 7 tasks stay under 512 slots


def highmem_pfns(machine):
    first = machine.memmap.max_low_pfn
    return list(range(first, first + NR_PAGES))


def stamp(pfns):
    for pfn in pfns:
        addr = hwemu.kmap_local_page(hwemu.pfn_to_page(pfn))
        hwemu.store(addr, 8, pfn)
        hwemu.kunmap_local(addr)


def worker(pfns, seed, rounds):
    """Hold up to HELD kmaps, nest kmap_local inside, check every page's stamp."""
    rng = random.Random(seed)
    held = []
    for _ in range(rounds):
        pfn = rng.choice(pfns)
        page = hwemu.pfn_to_page(pfn)
        addr = hwemu.kmap(page)
        assert hwemu.load(addr, 8) == pfn
        held.append((page, addr, pfn))
        inner = rng.choice(pfns)
        local = hwemu.kmap_local_page(hwemu.pfn_to_page(inner))
        assert hwemu.load(local, 8) == inner
        assert hwemu.load(addr, 8) == pfn       # still the same page underneath
        hwemu.kunmap_local(local)
        if len(held) > HELD or rng.random() < 0.3:
            page, addr, pfn = held.pop(rng.randrange(len(held)))
            assert hwemu.load(addr, 8) == pfn
            hwemu.kunmap(page)
    for page, _, _ in held:
        hwemu.kunmap(page)
    return hwemu.preempt_count(), hwemu.current().kmap_idx


def test_concurrent_kmap_and_kmap_local(boot):
    m = boot("i386-pae-highmem", machine__cpus=8)
    pfns = highmem_pfns(m)
    stamp(pfns)
    tasks = [m.spawn(worker, pfns, seed, 1500) for seed in range(7)]
    assert [t.join(timeout=120) for t in tasks] == [(0, 0)] * 7
    assert (m.highmem.pkmap_count <= 1).all()   # every kmap was dropped
    assert m.tainted == "Not tainted", m.dmesg()


def test_direct_map_and_kmap_alias_under_concurrent_writers(boot):
    """Writers through kmap, readers through kmap_local: the RAM is one."""
    m = boot("i386-highmem", machine__cpus=8)
    first = m.memmap.max_low_pfn

    def writer(i):
        page = hwemu.pfn_to_page(first + i)
        for value in range(1, 300):
            addr = hwemu.kmap(page)
            hwemu.store(addr, 8, value)
            hwemu.kunmap(page)
            local = hwemu.kmap_local_page(page)
            assert hwemu.load(local, 8) == value
            hwemu.kunmap_local(local)
        return hwemu.page_to_pfn(page) << PAGE_SHIFT

    tasks = [m.spawn(writer, i) for i in range(7)]
    phys = [t.join(timeout=120) for t in tasks]
    assert phys == [(first + i) << PAGE_SHIFT for i in range(7)]
    for p in phys:
        assert int.from_bytes(os.pread(m.ram.fd, 8, p), "little") == 299
