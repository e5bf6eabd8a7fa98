"""Tests for hwemu.procfs: /proc/buddyinfo, zoneinfo, meminfo, vmstat and slabinfo.

Expected text follows the kernel's printing code (mm/vmstat.c frag_show() and
zoneinfo_show_print(), fs/proc/meminfo.c, mm/slab_common.c cache_show()); the numbers
are worked out here from the machine config with the kernel's formulas.
"""
import errno
import math
import re
import threading

import pytest

import hwemu
from hwemu.gfp import GFP_KERNEL
from hwemu.page import page_zonenum
from hwemu.page_alloc import __free_pages, alloc_pages
from hwemu.vmstat import NODE_STAT_ITEMS, VM_EVENT_ITEMS

KB_PER_PAGE = 4
MIB_PAGES = 256  # 4 KiB pages in 1 MiB

# ---------------------------------------------------------------- the tiny machine
# 64M of RAM on one node, x86_64: DMA [0, 16M), DMA32 [16M, 64M), no Normal.
# memblock reserves the first 1 MiB, so DMA manages pfns 256..4095.
DMA_SPANNED, DMA_MANAGED = 16 * MIB_PAGES, 15 * MIB_PAGES          # 4096, 3840
DMA32_MANAGED = 48 * MIB_PAGES                                    # 12288
LOWMEM_PAGES = DMA_MANAGED + DMA32_MANAGED                        # 16128
# DMA free blocks: [256, 512) order 8, [512, 1024) order 9, [1024, 4096) 3x order 10.
DMA_BUDDY = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3]


def watermarks(managed, lowmem_pages):
    """min/low/high/promo of a lowmem zone (__setup_per_zone_wmarks())."""
    min_free_kbytes = min(max(math.isqrt(lowmem_pages * KB_PER_PAGE * 16), 128), 262144)
    pages_min = min_free_kbytes >> 2
    tmp = pages_min * managed // lowmem_pages
    step = max(tmp >> 2, managed * 10 // 10000)  # watermark_scale_factor 10
    return tmp, tmp + step, tmp + 2 * step, tmp + 3 * step


def batchsize(managed):
    """zone_batchsize(), at least 1."""
    batch = max(min(managed >> 10, 256) // 4, 1)
    return max((1 << ((batch + batch // 2).bit_length() - 1)) - 1, 1)


# ---------------------------------------------------------------- parsing helpers

BUDDY_LINE = re.compile(r"^Node (\d+), zone ([ A-Za-z0-9]{8}) ((?:[ \d]{5}\d ){11})$")


def buddyinfo(m):
    """{(node, zone name): [nr_free per order]} from /proc/buddyinfo, format-checked."""
    out = {}
    for line in m.procfs.read("/proc/buddyinfo").splitlines():
        match = BUDDY_LINE.match(line)
        assert match, f"bad buddyinfo line {line!r}"
        counts = match.group(3)
        out[int(match.group(1)), match.group(2).strip()] = [
            int(counts[i * 7:i * 7 + 6]) for i in range(11)]
    return out


def free_of(counts):
    return sum(n << order for order, n in enumerate(counts))


def vmstat(m):
    pairs = [line.split(" ") for line in m.procfs.read("/proc/vmstat").splitlines()]
    assert all(len(p) == 2 and p[1].isdigit() for p in pairs)
    return {name: int(value) for name, value in pairs}


def meminfo(m):
    """{name: kB} from /proc/meminfo, each line checked against show_val_kb()."""
    out = {}
    for line in m.procfs.read("/proc/meminfo").splitlines():
        # "%-16s" label (colon included) then "%8lu kB"
        assert re.fullmatch(r"[A-Za-z_()]+: *[ \d]{7}\d kB", line), line
        assert len(line) == 27 and line[24:] == " kB", line
        name, value = line[:16].rstrip(), line[16:24]
        out[name.rstrip(":")] = int(value)
    return out


def zone_blocks(m):
    """{(node, zone name): [lines]} of /proc/zoneinfo."""
    blocks, key = {}, None
    for line in m.procfs.read("/proc/zoneinfo").splitlines():
        head = re.fullmatch(r"Node (\d+), zone ([ A-Za-z0-9]{8})", line)
        if head:
            key = int(head.group(1)), head.group(2).strip()
            blocks[key] = [line]
        else:
            blocks[key].append(line)
    return blocks


def pcp_counts(block):
    return [int(line.split()[-1]) for line in block if line.startswith("              count:")]


def split(counts, order):
    """The free counts after one allocation of ``order`` (__rmqueue_smallest + expand)."""
    counts = list(counts)
    k = next(o for o in range(order, 11) if counts[o])
    counts[k] -= 1
    for o in range(order, k):
        counts[o] += 1
    return counts


# ---------------------------------------------------------------- paths


def test_unknown_path_is_enoent(machine):
    for path in ("/proc/nonexistent", "/proc/pagetypeinfo", "proc/meminfo", "/proc/meminfo/"):
        with pytest.raises(FileNotFoundError) as exc:
            machine.procfs.read(path)
        assert exc.value.errno == errno.ENOENT
        assert exc.value.filename == path


def test_read_after_shutdown_raises(boot):
    m = boot("tiny")
    m.shutdown()
    with pytest.raises(hwemu.MachineDown):
        m.procfs.read("/proc/meminfo")


# ---------------------------------------------------------------- /proc/buddyinfo


def test_buddyinfo_after_boot_tiny(machine):
    text = machine.procfs.read("/proc/buddyinfo")
    lines = text.splitlines()
    assert text.endswith(" \n")  # "%6lu " per order, then '\n'
    # Populated zones only: no Normal, no Movable.
    assert [line[:21] for line in lines] == ["Node 0, zone      DMA", "Node 0, zone    DMA32"]
    # Nothing allocates from DMA at boot (DMA32 comes first in the zonelist).
    assert lines[0] == ("Node 0, zone      DMA"
                        "      0      0      0      0      0      0      0      0"
                        "      1      1      3 ")
    # DMA32 starts as 12 free order-10 blocks; what boot took from it is still out
    # (on per-CPU lists or allocated). Every page is in exactly one of those places.
    dma32 = buddyinfo(machine)[0, "DMA32"]
    pcp = sum(pcp_counts(zone_blocks(machine)[0, "DMA32"]))
    stat = vmstat(machine)
    allocated = sum(stat[f"pgalloc_{z}"] for z in ("dma", "dma32", "movable")) - stat["pgfree"]
    assert free_of(dma32) + pcp + allocated == DMA32_MANAGED


def test_buddyinfo_pristine_zone_5g(boot):
    """With a Normal zone, boot allocations land there and DMA32 stays pristine."""
    m = boot("tiny", machine__nodes=[{"mem": "5G"}])
    lines = m.procfs.read("/proc/buddyinfo").splitlines()
    assert lines[:2] == [
        "Node 0, zone      DMA      0      0      0      0      0      0      0      0"
        "      1      1      3 ",
        # [16M, 4G): 4080 MiB = 1020 aligned 4 MiB blocks
        "Node 0, zone    DMA32      0      0      0      0      0      0      0      0"
        "      0      0   1020 "]
    assert lines[2].startswith("Node 0, zone   Normal ")


def test_buddyinfo_order3_alloc_splits_one_block(machine):
    before = buddyinfo(machine)
    page = alloc_pages(GFP_KERNEL, 3)
    assert page and page_zonenum(page) == 1  # ZONE_DMA32
    after = buddyinfo(machine)
    assert after[0, "DMA"] == before[0, "DMA"]
    assert after[0, "DMA32"] == split(before[0, "DMA32"], 3)
    __free_pages(page, 3)
    assert buddyinfo(machine) == before  # the halves merge back


# ---------------------------------------------------------------- /proc/zoneinfo


def test_zoneinfo_dma_zone_line_by_line(machine):
    wmin, wlow, whigh, promo = watermarks(DMA_MANAGED, LOWMEM_PAGES)
    assert (wmin, wlow, whigh, promo) == (60, 75, 90, 105)  # hand check of the formula
    batch = batchsize(DMA_MANAGED)
    stat = vmstat(machine)
    # DMA is the first populated zone of node 0: it carries the per-node stats.
    expected = ["Node 0, zone      DMA", "  per-node stats"]
    expected += [f"      {name:<12s} {stat[name]}" for name in NODE_STAT_ITEMS]
    expected += [
        "  pages free     3840",
        "        boost    0",
        f"        min      {wmin}",
        f"        low      {wlow}",
        f"        high     {whigh}",
        f"        promo    {promo}",
        "        spanned  4096",
        "        present  4096",
        "        managed  3840",
        "        cma      0",
        # lowmem_reserve[]: DMA keeps 12288 / 256 = 48 pages from DMA32-and-up requests;
        # one entry per configured zone (DMA, DMA32, Normal, Movable on x86_64).
        "        protection: (0, 48, 48, 48)",
        "      nr_free_pages 3840",
        "      nr_free_pages_blocks 3584",  # orders >= pageblock_order 9: 512 + 3*1024
        "      nr_zone_inactive_anon 0",
        "      nr_zone_active_anon 0",
        "      nr_zone_inactive_file 0",
        "      nr_zone_active_file 0",
        "      nr_zone_unevictable 0",
        "      nr_zone_write_pending 0",
        "      nr_mlock     0",
        "      nr_free_cma  0",
        "  pagesets"]
    for cpu in range(8):
        expected += [f"    cpu: {cpu}",
                     "              count:    0",
                     f"              high:     {6 * batch}",
                     f"              batch:    {batch}",
                     f"              high_min: {6 * batch}",
                     f"              high_max: {6 * batch}",
                     "  vm stats threshold: 0"]
    expected += ["  node_unreclaimable:  0", "  start_pfn:           0"]
    assert zone_blocks(machine)[0, "DMA"] == expected


def test_zoneinfo_dma32_and_unpopulated_zones(machine):
    blocks = zone_blocks(machine)
    assert list(blocks) == [(0, "DMA"), (0, "DMA32"), (0, "Normal"), (0, "Movable")]
    wmin, wlow, whigh, promo = watermarks(DMA32_MANAGED, LOWMEM_PAGES)
    dma32 = blocks[0, "DMA32"]
    assert dma32[1].startswith("  pages free     ")  # per-node stats only once per node
    assert dma32[2:12] == ["        boost    0", f"        min      {wmin}",
                           f"        low      {wlow}", f"        high     {whigh}",
                           f"        promo    {promo}", "        spanned  12288",
                           "        present  12288", "        managed  12288",
                           "        cma      0", "        protection: (0, 0, 0, 0)"]
    assert dma32[-1] == "  start_pfn:           4096"
    batch = batchsize(DMA32_MANAGED)
    assert f"              batch:    {batch}" in dma32 and batch == 3
    # "pages free" agrees with buddyinfo (both exclude per-CPU lists)
    assert int(dma32[1].split()[-1]) == free_of(buddyinfo(machine)[0, "DMA32"])
    # Unpopulated zones: the short form, ending at the protection line.
    assert blocks[0, "Normal"] == [
        "Node 0, zone   Normal", "  pages free     0", "        boost    0",
        "        min      0", "        low      0", "        high     0",
        "        promo    0", "        spanned  0", "        present  0",
        "        managed  0", "        cma      0", "        protection: (0, 0, 0, 0)"]
    # Movable/HighMem-like zones get min = clamp(managed / 1024, 32, 128) even if empty.
    assert blocks[0, "Movable"][2:6] == ["        boost    0", "        min      32",
                                         "        low      32", "        high     32"]
    assert machine.procfs.read("/proc/zoneinfo").endswith("protection: (0, 0, 0, 0)\n")


def test_zoneinfo_per_cpu_counts_follow_allocations(machine):
    pages = [alloc_pages(GFP_KERNEL, 0) for _ in range(5)]
    try:
        block = zone_blocks(machine)[0, "DMA32"]
        stat = vmstat(machine)
        free = int(block[1].split()[-1])
        # Conservation: buddy + per-CPU lists + in use == managed.
        allocated = sum(stat[f"pgalloc_{z}"] for z in ("dma", "dma32")) - stat["pgfree"]
        assert free + sum(pcp_counts(block)) + allocated == DMA32_MANAGED
        assert sum(pcp_counts(block)) <= 8 * 6 * batchsize(DMA32_MANAGED)
    finally:
        for page in pages:
            __free_pages(page, 0)


# ---------------------------------------------------------------- /proc/meminfo

MEMINFO_ORDER = [
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active",
    "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)",
    "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Dirty", "Writeback", "AnonPages",
    "Mapped", "Shmem", "KReclaimable", "Slab", "SReclaimable", "SUnreclaim", "KernelStack",
    "PageTables", "SecPageTables", "NFS_Unstable", "Bounce", "WritebackTmp", "CommitLimit",
    "Committed_AS", "VmallocTotal", "VmallocUsed", "VmallocChunk", "Percpu", "Balloon"]
HIGHMEM_LINES = ["HighTotal", "HighFree", "LowTotal", "LowFree"]


def test_meminfo_tiny(machine):
    info = meminfo(machine)
    assert list(info) == MEMINFO_ORDER  # no HighTotal/LowTotal without CONFIG_HIGHMEM
    assert info["MemTotal"] == 64 * 1024 - 1024 == 64512  # 64M minus the reserved 1M
    buddy = buddyinfo(machine)
    assert info["MemFree"] == sum(free_of(c) for c in buddy.values()) * KB_PER_PAGE
    stat = vmstat(machine)
    assert info["MemFree"] == stat["nr_free_pages"] * KB_PER_PAGE
    # si_mem_available(): free - totalreserve + page cache and reclaimable slab beyond
    # what the low watermarks keep.
    wmark_low = (watermarks(DMA_MANAGED, LOWMEM_PAGES)[1]
                 + watermarks(DMA32_MANAGED, LOWMEM_PAGES)[1] + 0 + 32)  # + Normal, Movable
    cache = stat["nr_active_file"] + stat["nr_inactive_file"]
    slab = stat["nr_slab_reclaimable"] + stat["nr_kernel_misc_reclaimable"]
    available = (stat["nr_free_pages"] - machine.page_alloc.totalreserve
                 + cache - min(cache // 2, wmark_low) + slab - min(slab // 2, wmark_low))
    assert info["MemAvailable"] == max(available, 0) * KB_PER_PAGE
    assert info["CommitLimit"] == 64512 // 2  # overcommit_ratio 50, no swap
    assert info["VmallocTotal"] == 1 << 20  # the 1G vmalloc area of x86_64 here
    assert info["VmallocUsed"] == stat["nr_vmalloc"] * KB_PER_PAGE
    assert info["Slab"] == info["SReclaimable"] + info["SUnreclaim"]
    assert info["SUnreclaim"] == stat["nr_slab_unreclaimable"] * KB_PER_PAGE
    assert info["Cached"] == stat["nr_file_pages"] * KB_PER_PAGE
    for name in ("Buffers", "SwapCached", "SwapTotal", "SwapFree", "Mapped", "Shmem",
                 "KernelStack", "PageTables", "Bounce", "Committed_AS", "VmallocChunk"):
        assert info[name] == 0, name
    text = machine.procfs.read("/proc/meminfo")
    assert text.startswith("MemTotal:          64512 kB\n")


def test_meminfo_moves_with_allocations(machine):
    before = meminfo(machine)
    page = alloc_pages(GFP_KERNEL, 4)
    after = meminfo(machine)
    __free_pages(page, 4)
    assert before["MemFree"] - after["MemFree"] == 16 * KB_PER_PAGE
    assert after["MemTotal"] == before["MemTotal"]
    assert meminfo(machine)["MemFree"] == before["MemFree"]


def test_meminfo_highmem_lines_on_i386(highmem_machine):
    info = meminfo(highmem_machine)
    names = list(info)
    assert names[names.index("Mlocked") + 1:names.index("SwapTotal")] == HIGHMEM_LINES
    # i386: lowmem ends at 1G - 128M vmalloc = 896M; the first 1M is reserved.
    assert info["HighTotal"] == (2048 - 896) * 1024 == 1179648
    assert info["LowTotal"] == (896 - 1) * 1024 == 916480
    assert info["MemTotal"] == info["HighTotal"] + info["LowTotal"]
    assert info["HighFree"] + info["LowFree"] == info["MemFree"]
    buddy = buddyinfo(highmem_machine)
    assert info["HighFree"] == free_of(buddy[0, "HighMem"]) * KB_PER_PAGE
    assert info["VmallocTotal"] == 128 * 1024
    # i386 has no DMA32 zone; HighMem is listed.
    assert [k[1] for k in zone_blocks(highmem_machine)] == ["DMA", "Normal", "HighMem",
                                                             "Movable"]


# ---------------------------------------------------------------- /proc/vmstat


def test_vmstat_order_and_names(machine):
    names = [line.split(" ")[0] for line in machine.procfs.read("/proc/vmstat").splitlines()]
    events = [e for e in VM_EVENT_ITEMS if e != "pgalloc_high"]  # no CONFIG_HIGHMEM
    assert names == ["nr_free_pages", "nr_free_pages_blocks", *NODE_STAT_ITEMS, *events]


def test_vmstat_counts_allocations(machine):
    before = vmstat(machine)
    pcp_before = sum(pcp_counts(zone_blocks(machine)[0, "DMA32"]))
    pages = [(alloc_pages(GFP_KERNEL, 0), 0) for _ in range(5)] + [(alloc_pages(GFP_KERNEL, 2), 2)]
    mid = vmstat(machine)
    pcp_mid = sum(pcp_counts(zone_blocks(machine)[0, "DMA32"]))
    assert mid["pgalloc_dma32"] - before["pgalloc_dma32"] == 9
    assert mid["pgalloc_dma"] == before["pgalloc_dma"]
    # Pages that left the buddy lists went to the caller or onto a per-CPU list.
    assert (before["nr_free_pages"] + pcp_before) - (mid["nr_free_pages"] + pcp_mid) == 9
    for page, order in pages:
        __free_pages(page, order)
    after = vmstat(machine)
    assert after["pgfree"] - mid["pgfree"] == 9
    assert after["nr_free_pages"] >= mid["nr_free_pages"]


# ---------------------------------------------------------------- /proc/slabinfo


SLAB_LINE = re.compile(r"^(\S.{16}|\S{18,}) ([ \d]{5}\d) ([ \d]{5}\d) ([ \d]{5}\d) "
                       r"([ \d]{3}\d) ([ \d]{3}\d) : tunables    0    0    0 : slabdata "
                       r"([ \d]{5}\d) ([ \d]{5}\d)      0$")


def slabinfo(m):
    """{name: (active_objs, num_objs, objsize, objperslab, pagesperslab, active_slabs,
    num_slabs)} from /proc/slabinfo, format-checked (cache_show(): "%-17s %6lu %6lu %6u
    %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu")."""
    lines = m.procfs.read("/proc/slabinfo").splitlines()
    assert lines[0] == "slabinfo - version: 2.1"
    assert lines[1] == ("# name            <active_objs> <num_objs> <objsize> <objperslab> "
                        "<pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : "
                        "slabdata <active_slabs> <num_slabs> <sharedavail>")
    out = {}
    for text in lines[2:]:
        match = SLAB_LINE.match(text)
        assert match, f"bad slabinfo line {text!r}"
        out.setdefault(match.group(1).rstrip(), tuple(int(g) for g in match.groups()[1:]))
    return out


def test_slabinfo_format_and_counts(machine):
    from hwemu import slab
    before = slabinfo(machine)
    names = list(before)
    assert names[-1] == "kmem_cache"  # the first cache created is listed last
    assert "kmalloc-64" in names and names.index("kmalloc-64") < names.index("kmalloc-32")
    obj = slab.kmalloc(40, GFP_KERNEL)
    try:
        active, num, size, per_slab, pages, active_slabs, num_slabs = \
            slabinfo(machine)["kmalloc-64"]
        assert size == 64 and per_slab == pages * 4096 // 64
        assert num == per_slab * num_slabs and active_slabs == num_slabs >= 1
        assert active >= before["kmalloc-64"][0] + 1  # per-CPU arrays count as active
    finally:
        slab.kfree(obj)
    info = meminfo(machine)
    assert info["Slab"] == info["SReclaimable"] + info["SUnreclaim"] > 0


# ---------------------------------------------------------------- concurrency


def test_reads_are_safe_while_tasks_allocate(machine):
    machine.page_alloc.drain_all_pages()
    start = buddyinfo(machine)
    stop = threading.Event()

    def churn(seed):
        held, i = [], 0
        while not stop.is_set() or i < 200:
            order = (seed + i) % 4
            page = alloc_pages(GFP_KERNEL, order)
            if page:
                held.append((page, order))
            if len(held) > 8 or (i % 7 == 0 and held):
                __free_pages(*held.pop(0))
            i += 1
        for page, order in held:
            __free_pages(page, order)
        return i

    tasks = [machine.spawn(churn, s, name=f"churn{s}") for s in (0, 1)]
    try:
        for _ in range(30):
            buddy = buddyinfo(machine)
            assert buddy[0, "DMA"] == DMA_BUDDY
            for block in zone_blocks(machine).values():
                if len(block) > 12:  # populated: one snapshot per zone
                    free = next(x for x in block if x.startswith("  pages free"))
                    nr = next(x for x in block if x.startswith("      nr_free_pages "))
                    assert free.split()[-1] == nr.split()[-1]
            meminfo(machine)
            vmstat(machine)
        assert all(t.is_alive() for t in tasks)  # the reads overlapped the churn
    finally:
        stop.set()
        rounds = [t.join(10) for t in tasks]
    assert min(rounds) >= 200
    machine.page_alloc.drain_all_pages()
    assert buddyinfo(machine) == start  # every block merged back
