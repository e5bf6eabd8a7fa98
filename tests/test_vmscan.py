"""Reclaim and the OOM killer: page cache, anonymous memory, kswapd, direct reclaim."""
import pytest
from helpers import wait_until

import hwemu
from hwemu import (__GFP_NORETRY, __GFP_NOWARN, __GFP_RETRY_MAYFAIL, GFP_ATOMIC, GFP_KERNEL,
                   GFP_NOIO, __free_pages, alloc_pages)


def fill_kernel(gfp):
    """Allocate order-0 pages with ``gfp`` until one fails; returns them."""
    pages = []
    while True:
        page = alloc_pages(gfp, 0)
        if not page:
            return pages
        pages.append(page)


def free_all(pages):
    for page in pages:
        __free_pages(page, 0)


def stat(m, item):
    return m.vmstat[item]


def test_page_cache_fills_memory_and_direct_reclaim_takes_it_back(machine):
    free = hwemu.nr_free_pages()
    cached = hwemu.add_to_page_cache(100_000)
    assert 0 < cached < free                      # the fill stops at the watermarks
    assert stat(machine, "nr_file_pages") == stat(machine, "nr_inactive_file") == cached
    pages = fill_kernel(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN)
    # Direct reclaim freed clean page cache for these allocations.
    assert len(pages) > cached // 2
    assert stat(machine, "pgsteal_direct") > 0
    assert stat(machine, "nr_file_pages") < cached
    free_all(pages)


def test_dirty_page_cache_needs_io_and_fs_to_be_reclaimed(machine):
    hwemu.add_to_page_cache(100_000, dirty=True)
    dirty = stat(machine, "nr_dirty")
    assert dirty > 0
    # GFP_NOIO may not write back: it gets what is free down to the min watermark,
    # then fails; the dirty pages all stay.
    noio = fill_kernel(GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN)
    assert stat(machine, "nr_dirty") == dirty and stat(machine, "pgsteal_direct") == 0
    free_all(noio)
    # GFP_KERNEL may: they are written back (costing emulated IO time) and freed.
    j0 = hwemu.jiffies()
    pages = fill_kernel(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN)
    assert len(pages) > 0 and stat(machine, "nr_dirty") < dirty
    assert hwemu.jiffies() - j0 >= 1                # writeback took time
    free_all(pages)


def test_noio_reclaim_of_dirty_page_cache_frees_nothing_and_keeps_the_lru(machine):
    """Reclaim that may not write back skips an LRU of dirty pages whole, leaving its
    order as it was (the oldest page is the one GFP_KERNEL reclaim takes first)."""
    vmscan = machine.vmscan
    hwemu.add_to_page_cache(100_000, dirty=True)
    lrus = {zid: list(lru) for zid, lru in vmscan.file_lru.items()}
    assert all(vmscan.file_dirty[zid] == len(lru) for zid, lru in lrus.items())
    pages = fill_kernel(GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN)
    assert {zid: list(lru) for zid, lru in vmscan.file_lru.items()} == lrus
    assert machine.vmstat["pgsteal_direct"] == 0
    zone = next(z for z in machine.page_alloc.zones if lrus[id(z)])
    oldest = lrus[id(zone)][0]
    assert vmscan.shrink_zone(zone, 1, GFP_KERNEL) == 1
    assert oldest not in vmscan.file_lru[id(zone)]
    assert vmscan.file_dirty[id(zone)] == len(lrus[id(zone)]) - 1
    free_all(pages)


def test_kswapd_reclaims_to_the_high_watermark(machine):
    hwemu.add_to_page_cache(100_000)
    zone = max(machine.page_alloc.zones, key=lambda z: z.managed_pages)
    # Dip below the low watermark with atomic allocations: they wake kswapd0.
    pages = []
    while zone.free_pages >= zone.low_wmark_pages():
        pages.append(alloc_pages(GFP_ATOMIC, 0))
    pages.append(alloc_pages(GFP_ATOMIC, 0))
    assert wait_until(lambda: zone.free_pages >= zone.high_wmark_pages(), timeout=10)
    assert stat(machine, "kswapd_wake") > 0 and stat(machine, "pgsteal_kswapd") > 0
    assert any(t.comm == "kswapd0" for t in machine.sched.tasks.values())
    free_all(pages)


def test_noretry_fails_where_retry_mayfail_and_oom_do_not(boot):
    m = boot("tiny")

    def hog():
        return hwemu.add_anon_pages(1_000_000)

    h = m.spawn(hog)
    with pytest.raises(hwemu.Killed):
        h.join(timeout=60)
    # The hog filled memory, then the OOM killer took it all back when the hog's own
    # allocation could not be satisfied otherwise.
    log = m.dmesg()
    assert "hog invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, " \
           "oom_score_adj=0" in log
    assert "Tasks state (memory values in pages):" in log
    assert f"Out of memory: Killed process {h.pid} (hog) total-vm:" in log
    assert f"oom_reaper: reaped process {h.pid} (hog), now anon-rss:0kB" in log
    assert m.vmscan.rss(h.pid) == 0 and stat(m, "oom_kill") == 1


def test_oom_kills_the_biggest_task_for_another_tasks_allocation(boot):
    m = boot("tiny")
    ready = []

    def hog():
        ready.append(hwemu.add_anon_pages(8000))
        while True:  # sleeps killably until the fatal signal
            hwemu.set_current_state(hwemu.TASK_KILLABLE)
            hwemu.schedule_timeout(machine_hz)

    machine_hz = m.HZ

    h = m.spawn(hog)
    assert wait_until(lambda: ready, timeout=30)
    # RETRY_MAYFAIL and NORETRY never invoke the OOM killer: they fail.
    pages = fill_kernel(GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)
    assert stat(m, "oom_kill") == 0
    # A plain GFP_KERNEL allocation does: the hog dies, the allocation succeeds.
    page = alloc_pages(GFP_KERNEL, 0)
    assert page and stat(m, "oom_kill") == 1
    with pytest.raises(hwemu.Killed):
        h.join(timeout=30)
    assert "init invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0" in m.dmesg()
    free_all(pages + [page])


def test_no_killable_task_panics(boot):
    m = boot("tiny")
    pages = fill_kernel(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN)
    with pytest.raises(hwemu.KernelPanic, match="System is deadlocked on memory"):
        alloc_pages(GFP_KERNEL, 0)
    assert "Out of memory and no killable processes..." in m.dmesg()
    free_all(pages)


def test_gfp_nofs_does_not_kill(boot):
    """IO-less allocations wait for memory instead of killing (the kernel loops)."""
    m = boot("tiny")
    pages = fill_kernel(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN)
    got = []

    def nofs():
        got.append(alloc_pages(hwemu.GFP_NOFS, 0))

    h = m.spawn(nofs)
    assert not wait_until(lambda: got, timeout=0.3)     # still waiting, nobody killed
    assert stat(m, "oom_kill") == 0
    __free_pages(pages.pop(), 0)
    m.page_alloc.drain_all_pages()
    h.join(timeout=30)
    assert got and got[0]
    free_all(pages + got)


def test_drop_caches_and_exit_free_everything(machine):
    machine.page_alloc.drain_all_pages()
    free = hwemu.nr_free_pages()
    hwemu.add_to_page_cache(500)
    assert hwemu.drop_caches() == 500

    def user():
        return hwemu.add_anon_pages(300)

    assert machine.spawn(user).join(timeout=10) == 300   # exit frees the task's memory
    machine.page_alloc.drain_all_pages()
    assert hwemu.nr_free_pages() == free
    assert stat(machine, "nr_file_pages") == stat(machine, "nr_anon_pages") == 0
