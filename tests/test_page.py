"""mm.h conversions, struct page contents and the NUMA/zone topology of booted machines.

Every expected node, zone and address below is derived in this file from the machine
description (node ranges, architecture, movablecore) and the x86 zone rules, never
read back from hwemu's own zone table:

* ``ZONE_DMA``: physical memory below 16M;
* ``ZONE_DMA32``: below 4G (x86_64 only);
* ``ZONE_NORMAL``: the rest on x86_64; up to 896M on i386 (1G minus the 128M vmalloc
  area, the end of lowmem);
* ``ZONE_HIGHMEM``: above 896M on i386;
* ``ZONE_MOVABLE``: the top ``movablecore / nr_nodes`` of every node.
"""
from dataclasses import dataclass

import pytest

import hwemu
from hwemu.page import NODES_MASK, NODES_PGSHIFT, STRUCT_PAGE_SIZE, ZONES_MASK, ZONES_PGSHIFT

K, M, G = 1 << 10, 1 << 20, 1 << 30
PAGE = 4096
I386_LOWMEM = 896 * M


@dataclass(frozen=True)
class Spec:
    """What a config describes, written out by hand from the YAML / dict."""
    config: object              # name in configs/ or a config dict
    arch: str
    nodes: tuple                # ((start, end), ...) physical bytes
    movable_per_node: int = 0
    cpus: int = 4

    @property
    def ram_end(self):
        return self.nodes[-1][1]

    @property
    def lowmem_end(self):
        return min(I386_LOWMEM, self.ram_end) if self.arch == "i386" else self.ram_end


SPECS = {
    "tiny": Spec("tiny", "x86_64", ((0, 64 * M),), cpus=8),
    "x86_64-numa4": Spec("x86_64-numa4", "x86_64",
                         tuple((i * G, (i + 1) * G) for i in range(4)), cpus=8),
    "i386-highmem": Spec("i386-highmem", "i386", ((0, 2 * G),)),
    "i386-pae-highmem": Spec("i386-pae-highmem", "i386", ((0, 3 * G), (3 * G, 6 * G))),
    "hole": Spec({"machine": {"name": "hole",
                              "nodes": [{"mem": "64M"}, {"start": "256M", "mem": "64M"}]}},
                 "x86_64", ((0, 64 * M), (256 * M, 320 * M))),
    "movable": Spec({"machine": {"name": "movable", "nodes": [{"mem": "256M"}, {"mem": "256M"}],
                                 "movablecore": "128M"}},
                    "x86_64", ((0, 256 * M), (256 * M, 512 * M)), movable_per_node=64 * M),
    # Node 1 straddles 4G, so it has both ZONE_DMA32 and ZONE_NORMAL.
    "above-4g": Spec({"machine": {"name": "above4g", "nodes": [{"mem": "3G"}, {"mem": "3G"}]}},
                     "x86_64", ((0, 3 * G), (3 * G, 6 * G))),
}


def expected_zone(spec: Spec, nid: int, phys: int) -> int:
    """The zone of physical address ``phys`` of node ``nid``, from the x86 rules."""
    start, end = spec.nodes[nid]
    assert start <= phys < end
    if spec.movable_per_node and phys >= end - spec.movable_per_node:
        return hwemu.ZONE_MOVABLE
    if phys < 16 * M:
        return hwemu.ZONE_DMA
    if spec.arch == "x86_64":
        return hwemu.ZONE_DMA32 if phys < 4 * G else hwemu.ZONE_NORMAL
    return hwemu.ZONE_NORMAL if phys < I386_LOWMEM else hwemu.ZONE_HIGHMEM


def zone_segments(spec: Spec, nid: int) -> list[tuple[int, int, int]]:
    """``(zone, start, end)`` physical spans of node ``nid``: the node cut at every
    zone boundary of the architecture and at the start of its movable part."""
    start, end = spec.nodes[nid]
    cuts = {16 * M, 4 * G} if spec.arch == "x86_64" else {16 * M, I386_LOWMEM}
    if spec.movable_per_node:
        cuts.add(end - spec.movable_per_node)
    edges = [start, *sorted(c for c in cuts if start < c < end), end]
    return [(expected_zone(spec, nid, a), a, b) for a, b in zip(edges, edges[1:])]


def boundary_pfns(spec: Spec):
    """``(nid, pfn)`` for the first and last pfn of every populated zone of every node."""
    for nid in range(len(spec.nodes)):
        for _, a, b in zone_segments(spec, nid):
            yield nid, a // PAGE
            yield nid, b // PAGE - 1


def is_highmem(spec: Spec, phys: int) -> bool:
    return spec.arch == "i386" and phys >= I386_LOWMEM


def expected_flags(nid: int, zone: int) -> int:
    return (nid << NODES_PGSHIFT) | (zone << ZONES_PGSHIFT)


@pytest.fixture(params=list(SPECS), ids=list(SPECS))
def booted(request, boot):
    spec = SPECS[request.param]
    return spec, boot(spec.config)


def page_offset(m):
    return m.layout["direct map"][0]


def vmemmap_start(m):
    return m.layout["vmemmap"][0]


# ---------------------------------------------------------------------------- topology


def test_node_data_matches_config(booted):
    spec, m = booted
    assert hwemu.num_online_nodes() == len(spec.nodes)
    assert list(hwemu.for_each_online_node()) == list(range(len(spec.nodes)))
    for nid, (start, end) in enumerate(spec.nodes):
        pgdat = hwemu.NODE_DATA(nid)
        assert pgdat.node_id == nid
        assert pgdat.node_start_pfn == start // PAGE
        assert pgdat.node_spanned_pages == (end - start) // PAGE
        assert pgdat.node_end_pfn == end // PAGE


def test_zone_table_matches_first_principles(booted):
    """Every populated zone spans exactly the segment the zone rules give; every other
    zone of the node is empty."""
    spec, m = booted
    for nid in range(len(spec.nodes)):
        expect = {z: (a // PAGE, b // PAGE) for z, a, b in zone_segments(spec, nid)}
        for z, zone in enumerate(hwemu.NODE_DATA(nid).node_zones):
            assert (zone.idx, zone.node, zone.name) == (z, nid, hwemu.ZONE_NAMES[z])
            if z in expect:
                assert zone.populated()
                assert (zone.zone_start_pfn, zone.zone_end_pfn) == expect[z], \
                    f"node {nid} zone {zone.name}"
            else:
                assert not zone.populated() and zone.spanned_pages == 0, \
                    f"node {nid} zone {zone.name} should be empty"


def test_conversions_round_trip_at_zone_boundaries(booted):
    spec, m = booted
    base, po = vmemmap_start(m), page_offset(m)
    checked = 0
    for nid, pfn in boundary_pfns(spec):
        phys = pfn * PAGE
        zone = expected_zone(spec, nid, phys)
        where = f"node {nid} pfn {pfn:#x} ({hwemu.ZONE_NAMES[zone]})"

        assert hwemu.pfn_valid(pfn), where
        page = hwemu.pfn_to_page(pfn)
        assert page == base + pfn * STRUCT_PAGE_SIZE, where
        assert hwemu.page_to_pfn(page) == pfn, where
        assert hwemu.page_to_phys(page) == phys, where
        assert hwemu.page_to_nid(page) == nid, where
        assert hwemu.page_zonenum(page) == zone, where
        z = hwemu.page_zone(page)
        assert z is hwemu.NODE_DATA(nid).node_zones[zone], where
        assert pfn in z, where
        assert hwemu.PageHighMem(page) == is_highmem(spec, phys), where

        if is_highmem(spec, phys):
            assert hwemu.page_address(page) == 0, where
            with pytest.raises(hwemu.AddressError):
                hwemu.__va(phys)
        else:
            va = hwemu.page_address(page)
            assert va == po + phys, where
            assert hwemu.__va(phys) == hwemu.phys_to_virt(phys) == va, where
            assert hwemu.__pa(va) == hwemu.virt_to_phys(va) == phys, where
            assert hwemu.virt_to_phys(va + PAGE - 1) == phys + PAGE - 1, where
            assert hwemu.virt_to_page(va) == page, where
            assert hwemu.virt_to_page(va + PAGE - 1) == page, where
            assert hwemu.virt_to_pfn(va + 123) == pfn, where
            assert hwemu.virt_addr_valid(va) and hwemu.virt_addr_valid(va + PAGE - 1), where
        checked += 1
    assert checked >= 2 * len(spec.nodes)


def test_pfn_valid_at_node_edges_and_holes(booted):
    spec, m = booted
    ends = {e // PAGE for _, e in spec.nodes}
    starts = {s // PAGE for s, _ in spec.nodes}
    for s, e in spec.nodes:
        first, last = s // PAGE, e // PAGE - 1
        assert hwemu.pfn_valid(first) and hwemu.pfn_valid(last)
        # One past the node: valid only if the next node starts right there.
        assert hwemu.pfn_valid(last + 1) == (last + 1 in starts)
        # One before the node: valid only if the previous node ends right there.
        assert hwemu.pfn_valid(first - 1) == (first > 0 and first in ends)
    assert not hwemu.pfn_valid(spec.ram_end // PAGE)
    assert not hwemu.pfn_valid(-1)
    assert not hwemu.pfn_valid(1 << 52)


PG_RESERVED = 1 << 13
BUDDY = 0xF000_0000  # page_type of a free block's head, in the _mapcount word


def boot_state(pfn):
    """(_refcount, _mapcount word, private, extra flags) of a page right after boot.

    The first MiB is reserved (PG_reserved, refcount 1); all else is free: refcount 0,
    and the head of each free block (the largest aligned block, max order 10) has
    page_type buddy and its order in private.
    """
    if pfn < 256:
        return 1, 0xFFFF_FFFF, 0, PG_RESERVED
    order = min(10, (pfn & -pfn).bit_length() - 1)
    if pfn < 1024 or pfn % 1024 == 0:   # 256 (order 8), 512 (order 9), then order 10
        return 0, BUDDY, order, 0
    return 0, 0xFFFF_FFFF, 0, 0


def test_page_flags_and_fields_after_boot(booted):
    """__init_single_page() then the buddy allocator: node and zone in page->flags,
    an empty lru list, reserved or free state; through page_struct() and raw loads."""
    spec, m = booted
    for nid, pfn in boundary_pfns(spec):
        zone = expected_zone(spec, nid, pfn * PAGE)
        refcount, mapcount, private, extra = boot_state(pfn)
        page = hwemu.pfn_to_page(pfn)
        ps = hwemu.page_struct(page)
        assert ps.flags == expected_flags(nid, zone) | extra
        assert ps.flags >> NODES_PGSHIFT & NODES_MASK == nid
        assert ps.flags >> ZONES_PGSHIFT & ZONES_MASK == zone
        assert ps._refcount == hwemu.page_ref_count(page) == refcount
        assert ps._mapcount & 0xFFFF_FFFF == mapcount
        assert ps.lru_next == ps.lru_prev == page + 8
        assert (ps.mapping, ps.index, ps.private) == (0, 0, private)
        # Raw, as kernel code would read the words.
        assert hwemu.load(page, 8) == expected_flags(nid, zone) | extra
        assert hwemu.load(page + 8, 8) == page + 8
        assert hwemu.load(page + 16, 8) == page + 8
        assert hwemu.load(page + 48, 4) == mapcount
        assert hwemu.load(page + 52, 4) == refcount


# A 64G machine in four 16G nodes: most of it is above 4G (ZONE_NORMAL).
BIG = {"machine": {"name": "big64", "cpus": 2, "nodes": [{"mem": "16G"}] * 4}}
SECTION_PAGES = (128 * M) // PAGE


def test_raw_access_initialises_struct_pages_deep_in_a_big_machine(boot):
    """Struct pages are initialised lazily, a section at a time; a raw load of a
    struct page nobody has looked at yet must still see the initialised page."""
    m = boot(BIG)
    last_pfn = 64 * G // PAGE - 1
    page = vmemmap_start(m) + last_pfn * STRUCT_PAGE_SIZE  # no helper touches it first
    assert hwemu.load(page, 8) == expected_flags(3, hwemu.ZONE_NORMAL)
    assert hwemu.load(page + 8, 8) == page + 8
    assert hwemu.load(page + 16, 8) == page + 8
    assert hwemu.load(page + 48, 4) == 0xFFFF_FFFF   # free, not a block head
    assert hwemu.load(page + 52, 4) == 0
    assert hwemu.pfn_to_page(last_pfn) == page
    assert hwemu.page_to_nid(page) == 3

    # One read spanning the last struct page of a section and the first of the next
    # (both untouched so far) sees both initialised.
    boundary = 40 * SECTION_PAGES          # pfn 0x140000: 5G, node 0, ZONE_NORMAL
    first = vmemmap_start(m) + (boundary - 1) * STRUCT_PAGE_SIZE
    raw = hwemu.read_bytes(first, 2 * STRUCT_PAGE_SIZE)
    for i, _pfn in enumerate((boundary - 1, boundary)):
        words = raw[i * 64:(i + 1) * 64]
        pg = first + i * 64
        assert int.from_bytes(words[0:8], "little") == expected_flags(0, hwemu.ZONE_NORMAL)
        assert int.from_bytes(words[8:16], "little") == pg + 8
        assert int.from_bytes(words[52:56], "little") == 0   # free pages

    # A raw store into an uninitialised section is not undone by the lazy init that
    # a later conversion triggers.
    pfn = 60 * G // PAGE + 5               # node 3, untouched section
    pg = vmemmap_start(m) + pfn * STRUCT_PAGE_SIZE
    hwemu.store(pg + 40, 8, 0xDEADBEEF)   # page->private
    assert hwemu.page_to_nid(pg) == 3
    assert hwemu.page_zonenum(pg) == hwemu.ZONE_NORMAL
    assert hwemu.page_struct(pg).private == 0xDEADBEEF
    assert hwemu.page_ref_count(pg) == 0   # a free page


# ---------------------------------------------------------------------------- highmem


@pytest.mark.parametrize("name", ["i386-highmem", "i386-pae-highmem"])
def test_page_address_of_highmem_page_is_zero_until_kmapped(boot, name):
    boot(name)
    last_low = hwemu.pfn_to_page(I386_LOWMEM // PAGE - 1)
    first_high = hwemu.pfn_to_page(I386_LOWMEM // PAGE)
    assert not hwemu.PageHighMem(last_low) and hwemu.PageHighMem(first_high)
    assert hwemu.page_address(last_low) == hwemu.__va(I386_LOWMEM - PAGE)
    assert hwemu.page_address(first_high) == 0

    # kmap_local mappings are CPU-local and never become page_address().
    local = hwemu.kmap_local_page(first_high)
    assert local != 0 and hwemu.page_address(first_high) == 0
    hwemu.kunmap_local(local)

    vaddr = hwemu.kmap(first_high)
    assert vaddr and hwemu.page_address(first_high) == vaddr
    with pytest.raises(hwemu.AddressError):   # not a direct-map address
        hwemu.virt_to_phys(vaddr)
    assert not hwemu.virt_addr_valid(vaddr)
    hwemu.kunmap(first_high)
    # The slot stays until the pkmaps are flushed, as in mm/highmem.c.
    assert hwemu.page_address(first_high) == vaddr
    hwemu.kmap_flush_unused()
    assert hwemu.page_address(first_high) == 0


# ---------------------------------------------------------------------------- bad args


def assert_address_error(fn, *args, mentions):
    with pytest.raises(hwemu.AddressError) as info:
        fn(*args)
    assert mentions in str(info.value), f"{mentions!r} not in {str(info.value)!r}"
    return str(info.value)


def test_pfn_in_hole_and_beyond_max_are_rejected(boot):
    m = boot(SPECS["hole"].config)
    hole_pfn = 100 * M // PAGE
    assert not hwemu.pfn_valid(hole_pfn)
    msg = assert_address_error(hwemu.pfn_to_page, hole_pfn, mentions=f"{hole_pfn:#x}")
    assert "hole" in msg
    # The struct page slot of a hole pfn is not a struct page *.
    bogus = vmemmap_start(m) + hole_pfn * STRUCT_PAGE_SIZE
    assert_address_error(hwemu.page_to_pfn, bogus, mentions=f"{bogus:#x}")
    assert_address_error(hwemu.page_to_nid, bogus, mentions=f"{bogus:#x}")

    max_pfn = 320 * M // PAGE
    assert_address_error(hwemu.pfn_to_page, max_pfn, mentions=f"{max_pfn:#x}")
    assert_address_error(hwemu.pfn_to_page, -1, mentions="-0x1")

    # A direct-map address in the hole is no valid virtual address.
    assert not hwemu.virt_addr_valid(page_offset(m) + 100 * M)


def test_bad_struct_page_pointers_are_rejected(machine):
    page = hwemu.pfn_to_page(1000)
    for bad in (page + 8, page + 63, page - 8):
        msg = assert_address_error(hwemu.page_to_pfn, bad, mentions=f"{bad:#x}")
        assert "not a struct page" in msg
        for fn in (hwemu.page_to_nid, hwemu.page_zonenum, hwemu.page_address,
                   hwemu.PageHighMem, hwemu.page_struct):
            assert_address_error(fn, bad, mentions=f"{bad:#x}")

    va = hwemu.page_address(page)   # a direct-map address, not a struct page *
    msg = assert_address_error(hwemu.page_to_pfn, va, mentions=f"{va:#x}")
    assert "vmemmap" in msg
    end = vmemmap_start(machine) + 64 * M // PAGE * STRUCT_PAGE_SIZE
    assert_address_error(hwemu.page_to_pfn, end, mentions=f"{end:#x}")
    # Not in any machine at all.
    assert_address_error(hwemu.page_to_pfn, 0x1000, mentions="0x1000")


def test_virt_to_phys_rejects_non_direct_map_addresses(machine):
    vmalloc = machine.layout["vmalloc"][0] + 5 * PAGE
    msg = assert_address_error(hwemu.virt_to_phys, vmalloc, mentions=f"{vmalloc:#x}")
    assert "vmalloc" in msg
    assert_address_error(hwemu.__pa, vmalloc, mentions=f"{vmalloc:#x}")
    assert_address_error(hwemu.virt_to_page, vmalloc, mentions=f"{vmalloc:#x}")
    vmemmap = vmemmap_start(machine)
    assert_address_error(hwemu.virt_to_phys, vmemmap, mentions=f"{vmemmap:#x}")
    end = page_offset(machine) + 64 * M   # one past the direct map
    assert_address_error(hwemu.virt_to_phys, end, mentions=f"{end:#x}")
    below = page_offset(machine) - 1
    assert_address_error(hwemu.virt_to_phys, below, mentions=f"{below:#x}")
    for addr in (vmalloc, vmemmap, end, below, 0, 0xFFFF_8880_0000_0000):
        assert not hwemu.virt_addr_valid(addr)
    assert_address_error(hwemu.phys_to_virt, 64 * M, mentions=f"{64 * M:#x}")


def test_phys_to_virt_of_highmem_is_rejected(highmem_machine):
    assert hwemu.phys_to_virt(I386_LOWMEM - 1) == page_offset(highmem_machine) + I386_LOWMEM - 1
    for phys in (I386_LOWMEM, 1536 * M):
        msg = assert_address_error(hwemu.phys_to_virt, phys, mentions=f"{phys:#x}")
        assert "kmap" in msg
        assert_address_error(hwemu.__va, phys, mentions=f"{phys:#x}")


def test_node_data_of_missing_node(boot):
    boot("x86_64-numa4")
    for nid in (99, 4, -1):
        assert_address_error(hwemu.NODE_DATA, nid, mentions=f"NODE_DATA({nid})")
    assert_address_error(hwemu.node_distance, 0, 99, mentions="99")


# ---------------------------------------------------------------------------- NUMA


def test_node_distance_matches_numa4_matrix(boot):
    boot("x86_64-numa4")
    matrix = [[10, 16, 22, 16],
              [16, 10, 16, 22],
              [22, 16, 10, 16],
              [16, 22, 16, 10]]
    for a in range(4):
        for b in range(4):
            assert hwemu.node_distance(a, b) == matrix[a][b]


def test_node_distance_defaults_without_slit(boot):
    boot(SPECS["hole"].config)
    assert hwemu.node_distance(0, 0) == hwemu.node_distance(1, 1) == 10
    assert hwemu.node_distance(0, 1) == hwemu.node_distance(1, 0) == 20


@pytest.mark.parametrize("config, cpus", [("x86_64-numa4", 8), ("x86_64-numa4", 6),
                                          ("x86_64-numa4", 4), ("i386-pae-highmem", 4)])
def test_cpu_to_node_spreads_cpus_over_nodes(boot, config, cpus):
    m = boot(config, machine__cpus=cpus)
    nodes = hwemu.num_online_nodes()
    placement = [hwemu.cpu_to_node(c) for c in range(cpus)]
    assert all(0 <= n < nodes for n in placement)
    counts = [placement.count(n) for n in range(nodes)]
    assert max(counts) - min(counts) <= 1, placement
    assert min(counts) >= 1, placement
    assert hwemu.numa_node_id() == hwemu.cpu_to_node(hwemu.smp_processor_id())
    last = cpus - 1
    got = m.spawn(lambda: (hwemu.smp_processor_id(), hwemu.numa_node_id()), cpu=last)
    assert got.join(timeout=10) == (last, placement[last])


def test_a_page_prints_as_dump_page_says_it(boot):
    """repr() of a page view (and of a ``struct page`` at its address) is
    ``dump_page()``'s first line with the flags by name, and the struct's address."""
    import ctypes

    from hwemu.page import struct_page
    m = boot("tiny")
    page = hwemu.alloc_pages(hwemu.GFP_KERNEL, 0)
    pfn = hwemu.page_to_pfn(page)
    view = hwemu.page_struct(page)
    view.flags |= 1 << 4 | 1 << 5                       # PG_dirty, PG_lru
    view.mapping, view.index = 0x1234000, 7
    text = repr(view)
    assert text == (f"<struct page *{page:#x}: page: refcount:1 mapcount:0 "
                    f"mapping:0000000001234000 index:0x7 pfn:{pfn:#x} "
                    f"flags:{view.flags:#x}(dirty|lru|node=0|zone={hwemu.page_zonenum(page)})>")
    assert text.split(": ", 1)[1][:-1] in m.page_alloc.format_page(pfn, "x").replace(
        "\nflags: ", " flags:")
    assert repr(struct_page.from_address(page)) == text
    copy = struct_page.from_buffer_copy(ctypes.string_at(page, STRUCT_PAGE_SIZE))
    assert f"index:0x7 flags:{view.flags:#x}(" in repr(copy)   # no pfn: not in a vmemmap
    view.flags &= ~(1 << 4 | 1 << 5)
    view.mapping = view.index = 0
    hwemu.__free_pages(page, 0)

    slab = hwemu.virt_to_page(obj := hwemu.kmalloc(64, hwemu.GFP_KERNEL))
    assert repr(hwemu.page_struct(slab)).endswith(" page_type:f5(slab)>")
    hwemu.kfree(obj)
    m.shutdown()
    assert repr(view) == f"<struct page *{page:#x}: pfn:{pfn:#x} (machine down)>"
