"""Emulation of include/linux/mm.h and mm_types.h: ``struct page`` in a vmemmap, and
the pfn/page/virtual/physical conversions.

``struct page`` (64 bytes) lives in the machine's vmemmap region at
``vmemmap + pfn * 64``; a ``struct page *`` is that address. The node and zone of a
page are encoded in the top bits of ``page->flags`` as the kernel does
(``NODES_PGSHIFT``/``ZONES_PGSHIFT``). Struct pages are initialised one memory section
(128 MiB) at a time on first use, like ``CONFIG_DEFERRED_STRUCT_PAGE_INIT``: boot
time and host memory do not grow with RAM size.

Not emulated: folios as a separate type, ``page->virtual`` (highmem addresses are
looked up in the pkmap hash, as with ``HASHED_PAGE_VIRTUAL``).
"""
from __future__ import annotations

import bisect
import ctypes
import threading
from typing import Any

import numpy as np

from . import vmem
from .bug import AddressError
from .current import current
from .errors import MachineDown
from .mmzone import MAX_NUMNODES, NODES_SHIFT, ZONE_HIGHMEM
from .page_types import PAGE_SHIFT, PAGE_SIZE


class struct_page(ctypes.Structure):
    """``struct page`` (64-bit layout on every machine). The buddy allocator, slab
    (:class:`struct_slab`) and compound pages overlay these words as the kernel's
    unions do."""
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("lru_next", ctypes.c_uint64),   # struct list_head lru; compound_head on tails
        ("lru_prev", ctypes.c_uint64),
        ("mapping", ctypes.c_uint64),
        ("index", ctypes.c_uint64),
        ("private", ctypes.c_uint64),    # buddy order while PageBuddy
        ("_mapcount", ctypes.c_int32),   # page_type in its top byte when typed
        ("_refcount", ctypes.c_int32),
        ("memcg_data", ctypes.c_uint64),
    ]

    def __repr__(self) -> str:
        """As :class:`PageView`'s: ``dump_page()``'s first line and the flags by name
        (with the pfn when the struct is in a live machine's vmemmap)."""
        addr = ctypes.addressof(self)
        try:
            pfn: int | None = _memmap_of(addr).page_to_pfn(addr)
        except Exception:   # a copy, or not in a machine: no pfn to show
            pfn = None
        return f"<struct page *{addr:#x}: {describe_page(self, pfn)}>"


class struct_slab(ctypes.Structure):
    """``struct slab`` (mm/slab.h): the head ``struct page`` of a slab, seen as a slab."""
    _fields_ = [
        ("__page_flags", ctypes.c_uint64),
        ("slab_cache", ctypes.c_uint64),      # struct kmem_cache *
        ("slab_list_next", ctypes.c_uint64),  # struct list_head slab_list
        ("slab_list_prev", ctypes.c_uint64),
        ("freelist", ctypes.c_uint64),        # first free object
        ("counters", ctypes.c_uint64),        # inuse:16, objects:15, frozen:1
        ("__page_type", ctypes.c_uint32),
        ("__page_refcount", ctypes.c_int32),
        ("obj_exts", ctypes.c_uint64),
    ]


PAGE_DTYPE = np.dtype(struct_page)
STRUCT_PAGE_SIZE = ctypes.sizeof(struct_page)
assert STRUCT_PAGE_SIZE == 64 == ctypes.sizeof(struct_slab)
STRUCT_PAGE_SHIFT = STRUCT_PAGE_SIZE.bit_length() - 1   # pointer arithmetic by shifts
PAGE_LRU = struct_page.lru_next.offset   # offsetof(struct page, lru): &page->lru

# page->flags layout: | NODE | ZONE | ... | PG_* flags |
ZONES_SHIFT = 3
NODES_PGSHIFT = 64 - NODES_SHIFT
ZONES_PGSHIFT = NODES_PGSHIFT - ZONES_SHIFT
NODES_MASK = MAX_NUMNODES - 1
ZONES_MASK = (1 << ZONES_SHIFT) - 1

# enum pageflags (the ones the emulator uses).
PG_locked, PG_writeback, PG_referenced, PG_uptodate, PG_dirty, PG_lru, PG_head = range(7)
PG_reserved, PG_private = 13, 14
PAGEFLAG_NAMES = ("locked", "writeback", "referenced", "uptodate", "dirty", "lru", "head",
                  "waiters", "active", "workingset", "owner_priv_1", "owner_2", "arch_1",
                  "reserved", "private")

# Flags a page may not have when it is freed.
PAGE_FLAGS_CHECK_AT_FREE = sum(1 << PAGEFLAG_NAMES.index(n) for n in (
    "lru", "locked", "private", "writeback", "reserved", "active"))

# enum pagetype (include/linux/page-flags.h): the top byte of page->page_type.
PGTY_buddy, PGTY_offline, PGTY_table, PGTY_guard = 0xF0, 0xF1, 0xF2, 0xF3
PGTY_hugetlb, PGTY_slab, PGTY_zsmalloc, PGTY_unaccepted = 0xF4, 0xF5, 0xF6, 0xF7
PGTY_large_kmalloc = 0xF8
PAGE_TYPE_NAMES = {PGTY_buddy: "buddy", PGTY_offline: "offline", PGTY_table: "table",
                   PGTY_guard: "guard", PGTY_hugetlb: "hugetlb", PGTY_slab: "slab",
                   PGTY_zsmalloc: "zsmalloc", PGTY_unaccepted: "unaccepted",
                   PGTY_large_kmalloc: "large_kmalloc"}
NO_PAGE_TYPE = -1   # _mapcount of a page with no type that nobody maps


def format_page_flags(flags: int) -> str:
    """``%pGp`` of ``page->flags``: ``0x...(names|node=N|zone=Z)``."""
    names = [n for i, n in enumerate(PAGEFLAG_NAMES) if flags >> i & 1]
    names += [f"node={flags >> NODES_PGSHIFT & NODES_MASK}",
              f"zone={flags >> ZONES_PGSHIFT & ZONES_MASK}"]
    return f"{flags:#x}({'|'.join(names)})"


def format_page_head(pfn: int | None, refcount: int, mapcount: int, mapping: int,
                     index: int) -> str:
    """The first line of ``__dump_page()``: ``page: refcount:1 mapcount:0 mapping:...
    index:0x0 pfn:0x1000``; ``mapcount`` is the raw ``_mapcount`` word (shown + 1, and 0
    for a typed page, as the kernel shows it). Without a ``pfn``, no ``pfn:``."""
    shown = 0 if page_type_of(mapcount) is not None else mapcount + 1
    return (f"page: refcount:{refcount} mapcount:{shown} mapping:{mapping:016x} "
            f"index:{index:#x}" + (f" pfn:{pfn:#x}" if pfn is not None else ""))


def describe_page(page: struct_page, pfn: int | None) -> str:
    """``__dump_page()``'s first line for ``page`` (the fields of a ``struct page``),
    then its flags by name and its page type, on one line."""
    text = (format_page_head(pfn, page._refcount, page._mapcount, page.mapping, page.index)
            + f" flags:{format_page_flags(page.flags)}")
    pgty = page_type_of(page._mapcount)
    if pgty is not None:
        text += f" page_type:{pgty:x}({PAGE_TYPE_NAMES.get(pgty, '?')})"
    return text


def PAGE_TYPE(pgty: int) -> int:
    """The ``_mapcount`` word (an s32) of a page of type ``pgty``."""
    return (pgty << 24) - (1 << 32)


def page_type_of(mapcount: int) -> int | None:
    """The ``PGTY_*`` a ``_mapcount`` word holds, or None for an untyped page."""
    pgty = (mapcount >> 24) & 0xFF
    return pgty if mapcount < -1 and pgty >= PGTY_buddy else None


_VIEW_CODES = {ctypes.c_uint64: "Q", ctypes.c_int32: "i", ctypes.c_uint32: "I"}


class FieldViews:
    """One typed, strided view per field of a struct laid out in an array: the field
    ``f`` of element ``i`` is ``views.f[i]`` (a ``struct page`` field of a pfn)."""

    def __init__(self, raw: memoryview, struct, track=lambda view: view):
        """:param track: registers each view for release at shutdown
            (:meth:`~hwemu.vmem.AddressSpace.track`)"""
        size = ctypes.sizeof(struct)
        for name, ctype in struct._fields_:
            width = ctypes.sizeof(ctype)
            offset = getattr(struct, name).offset
            view = track(raw.cast(_VIEW_CODES[ctype]))  # type: ignore[call-overload]
            setattr(self, name.lstrip("_") if name.startswith("__") else name,
                    track(view[offset // width::size // width]))

    def __getattr__(self, name: str) -> memoryview:
        """Reached only for a name that is no field (they are set above)."""
        raise AttributeError(f"no field {name!r}")


SECTION_SIZE_BITS = 27  # x86_64 memory section: 128 MiB
PFN_SECTION_SHIFT = SECTION_SIZE_BITS - PAGE_SHIFT
PAGES_PER_SECTION = 1 << PFN_SECTION_SHIFT


class MemMap:
    """The vmemmap of one machine and its memory model (sparsemem-vmemmap)."""

    def __init__(self, machine, start: int, nodes, page_offset: int, max_low_pfn: int):
        space = machine.space
        self.machine = machine
        self.start = start
        self.nodes = nodes
        self.max_pfn = nodes[-1].node_end_pfn
        self.end = self.page_of(self.max_pfn)
        self.page_offset = page_offset
        self.max_low_pfn = max_low_pfn
        # Every view of the vmemmap is released at shutdown (close() drops the numpy
        # array first): a stale one raises instead of reading unmapped memory.
        raw = space.view(start, self.max_pfn * STRUCT_PAGE_SIZE)
        self.pages: Any = np.frombuffer(raw, dtype=PAGE_DTYPE)
        # Field views for the allocators' hot paths: page->f of pfn p is
        # self.page.f[p], and a slab's slab->f is self.slab.f[p].
        self.page: Any = FieldViews(raw, struct_page, space.track)
        self.slab: Any = FieldViews(raw, struct_slab, space.track)
        self._words: Any = space.track(raw.cast("Q"))
        self._node_starts = [n.node_start_pfn for n in nodes]
        self._no_holes = all(a.node_end_pfn == b.node_start_pfn for a, b in zip(nodes, nodes[1:]))
        self._ready = bytearray(-(-self.max_pfn // PAGES_PER_SECTION))
        self._lock = threading.Lock()
        # Set by the page allocator: fn(lo, hi) gives free pages of a newly
        # initialised range their buddy state, as boot would have.
        self.section_init_hook = None

    def close(self) -> None:
        """At shutdown, before the memory goes: every view of the vmemmap is replaced
        by one that raises :class:`~hwemu.errors.MachineDown`, and the numpy array
        (which would keep the memory exported) is dropped."""
        dead = vmem.DeadMemory(self.machine.space)
        self.pages = self.page = self.slab = self._words = dead

    # ------------------------------------------------------------ deferred init

    def ensure(self, pfn_lo: int, pfn_hi: int) -> None:
        """Initialise the sections of struct pages for ``[pfn_lo, pfn_hi)`` if needed."""
        for sec in range(pfn_lo >> PFN_SECTION_SHIFT, ((pfn_hi - 1) >> PFN_SECTION_SHIFT) + 1):
            if not self._ready[sec]:
                self._init_section(sec)

    def on_access(self, addr: int, n: int) -> None:
        """Region hook: raw reads/writes of the vmemmap see initialised pages."""
        first, last = self.pfn_of(addr), self.pfn_of(addr + n - 1)
        self.ensure(first, min(last + 1, self.max_pfn))

    def _init_section(self, sec: int) -> None:
        """``__init_single_page()`` for every present page of one section."""
        with self._lock:
            if self._ready[sec]:
                return
            lo = sec << PFN_SECTION_SHIFT
            hi = min(lo + PAGES_PER_SECTION, self.max_pfn)
            for node in self.nodes:
                for z in node.node_zones:
                    a, b = max(lo, z.zone_start_pfn), min(hi, z.zone_end_pfn)
                    if a >= b:
                        continue
                    view = self.pages[a:b]
                    view["flags"] = (node.node_id << NODES_PGSHIFT) | (z.idx << ZONES_PGSHIFT)
                    lru = self.page_of(np.arange(a, b, dtype=np.uint64)) + PAGE_LRU
                    view["lru_next"] = lru  # INIT_LIST_HEAD(&page->lru)
                    view["lru_prev"] = lru
                    view["_mapcount"] = -1  # no page_type, not mapped
                    view["_refcount"] = 1   # init_page_count()
            if self.section_init_hook is not None:
                self.section_init_hook(lo, hi)
            self._ready[sec] = 1

    # ------------------------------------------------------------ memory model

    def page_of(self, pfn):
        """``__pfn_to_page()`` (sparsemem-vmemmap): ``vmemmap + pfn``, unchecked; an
        array of pfns gives an array. The one home of the pfn -> ``struct page *``
        formula; :meth:`pfn_to_page` is its checked form."""
        return self.start + pfn * STRUCT_PAGE_SIZE

    def pfn_of(self, page: int) -> int:
        """``__page_to_pfn()``: ``page - vmemmap``, unchecked (a pointer into a struct
        page gives that page's pfn); :meth:`page_to_pfn` is its checked form."""
        return (page - self.start) >> STRUCT_PAGE_SHIFT

    # ------------------------------------------------------------ conversions

    def pfn_valid(self, pfn: int) -> bool:
        if self._no_holes:
            return self._node_starts[0] <= pfn < self.max_pfn
        i = bisect.bisect(self._node_starts, pfn) - 1
        return i >= 0 and pfn < self.nodes[i].node_end_pfn

    def pfn_to_page(self, pfn: int) -> int:
        if not self.pfn_valid(pfn):
            raise AddressError(f"pfn_to_page({pfn:#x}): {self._why_invalid(pfn)}")
        return self.page_of(pfn)

    def page_to_pfn(self, page: int) -> int:
        if not self.start <= page < self.end:
            raise AddressError(f"{page:#x} is not a struct page *: outside the vmemmap "
                               f"[{self.start:#x}-{self.end:#x}) of machine "
                               f"{self.machine.name!r}")
        pfn, rem = divmod(page - self.start, STRUCT_PAGE_SIZE)
        if rem:
            raise AddressError(f"{page:#x} is not a struct page *: {rem} bytes into the "
                               f"struct page of pfn {pfn:#x} (sizeof(struct page) is "
                               f"{STRUCT_PAGE_SIZE})")
        if not self.pfn_valid(pfn):
            raise AddressError(f"{page:#x} is the struct page of pfn {pfn:#x}, which "
                               f"{self._why_invalid(pfn)}")
        return pfn

    def _why_invalid(self, pfn: int) -> str:
        if pfn < 0 or pfn >= self.max_pfn:
            return f"beyond the end of RAM (max_pfn {self.max_pfn:#x})"
        return "lies in a hole between nodes (no memory there)"

    def page_flags(self, pfn: int) -> int:
        """``page->flags`` of ``pfn``, its section initialised first."""
        if not self._ready[pfn >> PFN_SECTION_SHIFT]:
            self._init_section(pfn >> PFN_SECTION_SHIFT)
        return self.page.flags[pfn]

    def raw_words(self, pfn: int) -> list[int]:
        """The eight words of ``pfn``'s struct page, as ``dump_page()``'s ``raw:`` lines."""
        n = STRUCT_PAGE_SIZE // 8
        return self._words[pfn * n:(pfn + 1) * n].tolist()

    def nid(self, pfn: int) -> int:
        """The node of ``pfn``, from its ``page->flags``."""
        return self.page.flags[pfn] >> NODES_PGSHIFT & NODES_MASK

    def zonenum(self, pfn: int) -> int:
        """The zone index of ``pfn``, from its ``page->flags``."""
        return self.page.flags[pfn] >> ZONES_PGSHIFT & ZONES_MASK

    # ------------------------------------------------------------ page-flags.h

    def compound_head(self, pfn: int) -> int:
        """``compound_head()``: the head pfn of ``pfn``'s compound page; a tail's
        ``compound_head`` word is the head's ``struct page *`` with bit 0 set."""
        link = self.page.lru_next[pfn]
        return self.pfn_of(link - 1) if link & 1 else pfn

    def PageHead(self, pfn: int) -> bool:
        return bool(self.page.flags[pfn] >> PG_head & 1)

    def compound_order(self, pfn: int) -> int:
        """``folio_order()`` of a head pfn: kept in the low byte of the next page's
        flags (``folio->_flags_1``); 0 for a page that is no head."""
        if not self.page.flags[pfn] >> PG_head & 1:
            return 0
        return self.page.flags[pfn + 1] & 0xFF

    def page_type(self, pfn: int) -> int | None:
        """The ``PGTY_*`` of ``pfn`` (set on head pages), or None."""
        return page_type_of(self.page._mapcount[pfn])

    def lowmem_virt(self, pfn: int) -> int:
        return self.page_offset + (pfn << PAGE_SHIFT)

    def direct_map_pa(self, addr: int, what: str) -> int:
        """``__pa(addr)`` for a direct-map address; raises for any other."""
        pa = addr - self.page_offset
        if 0 <= pa < self.max_low_pfn << PAGE_SHIFT:
            return pa
        where = self.machine.space.region_at(addr)
        desc = f"in the {where.label}" if where else self.machine.space.describe(addr)
        raise AddressError(f"{what}({addr:#x}): not a direct-map address ({desc}); "
                           f"the direct map is [{self.page_offset:#x}-"
                           f"{self.lowmem_virt(self.max_low_pfn):#x})")


def _memmap_of(addr: int) -> MemMap:
    return vmem.space_of(addr).machine.memmap


def _memmap() -> MemMap:
    return current().machine.memmap


def pfn_valid(pfn: int) -> bool:
    """``pfn_valid(pfn)``: a struct page exists for ``pfn`` on the current machine."""
    return _memmap().pfn_valid(pfn)


def pfn_to_page(pfn: int) -> int:
    """:return: ``struct page *`` of ``pfn`` on the current machine."""
    return _memmap().pfn_to_page(pfn)


def page_to_pfn(page: int) -> int:
    """:param page: ``struct page *``"""
    return _memmap_of(page).page_to_pfn(page)


def nth_page(page: int, n: int) -> int:
    """``nth_page(page, n)``: the struct page ``n`` pages after ``page`` (``page + n``
    in C: the vmemmap is one array)."""
    return page + n * STRUCT_PAGE_SIZE


def page_to_phys(page: int) -> int:
    return page_to_pfn(page) << PAGE_SHIFT


def page_to_nid(page: int) -> int:
    """Node of ``page``, read from ``page->flags``."""
    mm = _memmap_of(page)
    return mm.page_flags(mm.page_to_pfn(page)) >> NODES_PGSHIFT & NODES_MASK


def page_zonenum(page: int) -> int:
    """``enum zone_type`` of ``page``, read from ``page->flags``."""
    mm = _memmap_of(page)
    return mm.page_flags(mm.page_to_pfn(page)) >> ZONES_PGSHIFT & ZONES_MASK


def page_pgdat(page: int):
    return _memmap_of(page).nodes[page_to_nid(page)]


def page_zone(page: int):
    """:return: the ``struct zone`` of ``page``."""
    return page_pgdat(page).node_zones[page_zonenum(page)]


def _pfn_of(page: int) -> tuple[MemMap, int]:
    mm = _memmap_of(page)
    pfn = mm.page_to_pfn(page)
    mm.ensure(pfn, pfn + 1)
    return mm, pfn


def compound_head(page: int) -> int:
    """``compound_head(page)``: the ``struct page *`` of the head of ``page``'s
    compound page (``page`` itself if it is not a tail)."""
    mm, pfn = _pfn_of(page)
    return mm.page_of(mm.compound_head(pfn))


def _has_type(page: int, pgty: int) -> bool:
    mm, pfn = _pfn_of(page)
    return mm.page_type(mm.compound_head(pfn)) == pgty


def PageBuddy(page: int) -> bool:
    """The first page of a free block in the buddy allocator."""
    mm, pfn = _pfn_of(page)
    return mm.page_type(pfn) == PGTY_buddy


def PageSlab(page: int) -> bool:
    """``page`` belongs to a slab (its head page has type ``PGTY_slab``)."""
    return _has_type(page, PGTY_slab)


def PageLargeKmalloc(page: int) -> bool:
    """``page`` belongs to a kmalloc too large for the kmalloc caches."""
    return _has_type(page, PGTY_large_kmalloc)


def page_slab(page: int) -> int:
    """``page_slab(page)``: the ``struct slab *`` (the head page) of a slab page, or 0."""
    head = compound_head(page)
    return head if _has_type(page, PGTY_slab) else 0


def PageHighMem(page: int) -> bool:
    """True for a page with no permanent kernel mapping (beyond lowmem)."""
    mm = _memmap_of(page)
    return mm.page_to_pfn(page) >= mm.max_low_pfn


def is_highmem_idx(idx: int) -> bool:
    return idx == ZONE_HIGHMEM


def page_address(page: int) -> int:
    """``page_address()``: the kernel virtual address of ``page``.

    :param page: ``struct page *``
    :return: ``void *``; 0 for a highmem page that is not kmapped.
    """
    mm = _memmap_of(page)
    pfn = mm.page_to_pfn(page)
    if pfn < mm.max_low_pfn:
        return mm.lowmem_virt(pfn)
    return mm.machine.highmem.page_address_map.get(page, 0)


class PageView:
    """A view of one ``struct page``: its fields (those of :class:`struct_page`) read
    and written as attributes, through the machine's vmemmap views. Once the machine is
    shut down, any use raises :class:`~hwemu.errors.MachineDown` (a ctypes struct at
    the address would kill the process)."""

    __slots__ = ("_memmap", "_pfn", "page")
    # The fields, properties made below from struct_page._fields_.
    flags: int
    lru_next: int
    lru_prev: int
    mapping: int
    index: int
    private: int
    _mapcount: int
    _refcount: int
    memcg_data: int

    def __init__(self, memmap: MemMap, pfn: int, page: int):
        self._memmap, self._pfn, self.page = memmap, pfn, page

    def __repr__(self) -> str:
        """``<struct page *0x...: page: refcount:1 mapcount:0 mapping:... index:0x0
        pfn:0x1000 flags:0x...(lru|dirty|node=0|zone=1)>``: what ``dump_page()`` says
        first, with the flags by name."""
        try:
            copy = struct_page()
            for field in struct_page._fields_:
                setattr(copy, field[0], getattr(self, field[0]))
        except MachineDown:
            return f"<struct page *{self.page:#x}: pfn:{self._pfn:#x} (machine down)>"
        return f"<struct page *{self.page:#x}: {describe_page(copy, self._pfn)}>"


def _page_field(name: str) -> property:
    """The property for ``page->name``: the memmap's view of that field at the pfn."""
    def get(self: PageView) -> int:
        try:
            return getattr(self._memmap.page, name)[self._pfn]
        except ValueError as exc:   # released by a shutdown on another thread just now
            raise _page_view_error(self, exc) from None

    def put(self: PageView, value: int) -> None:
        try:
            getattr(self._memmap.page, name)[self._pfn] = value
        except ValueError as exc:
            raise _page_view_error(self, exc) from None
    return property(get, put, doc=f"``page->{name}``")


def _page_view_error(view: PageView, exc: ValueError) -> Exception:
    """MachineDown if the view's machine went down, else ``exc`` (a value that does
    not fit the field)."""
    if view._memmap.machine.down:
        return view._memmap.machine.space.down_error()
    return exc


for _field in struct_page._fields_:
    setattr(PageView, _field[0], _page_field(_field[0]))


def page_struct(page: int) -> PageView:
    """A view of ``*page`` (initialised), for code that reads or writes its fields.

    :param page: ``struct page *``
    """
    mm = _memmap_of(page)
    pfn = mm.page_to_pfn(page)
    mm.ensure(pfn, pfn + 1)
    return PageView(mm, pfn, page)


def page_ref_count(page: int) -> int:
    return page_struct(page)._refcount


def virt_to_phys(addr: int) -> int:
    """``virt_to_phys()``/``__pa()`` for a direct-map address."""
    return _memmap_of(addr).direct_map_pa(addr, "virt_to_phys")


def phys_to_virt(phys: int) -> int:
    """``phys_to_virt()``/``__va()``: only lowmem has a linear mapping."""
    mm = _memmap()
    if 0 <= phys < mm.max_low_pfn << PAGE_SHIFT:
        return mm.page_offset + phys
    raise AddressError(f"phys_to_virt({phys:#x}): beyond the end of lowmem "
                       f"({mm.max_low_pfn << PAGE_SHIFT:#x}): highmem has no linear "
                       "mapping; kmap() its page instead")


__pa = virt_to_phys
__va = phys_to_virt


def virt_to_pfn(addr: int) -> int:
    return virt_to_phys(addr) >> PAGE_SHIFT


def virt_to_page(addr: int) -> int:
    """``virt_to_page()``: ``struct page *`` of a direct-map address."""
    mm = _memmap_of(addr)
    pfn = mm.direct_map_pa(addr, "virt_to_page") >> PAGE_SHIFT
    if not mm.pfn_valid(pfn):
        raise AddressError(f"virt_to_page({addr:#x}): pfn {pfn:#x} {mm._why_invalid(pfn)}")
    return mm.pfn_to_page(pfn)


def virt_addr_valid(addr: int) -> bool:
    """``virt_addr_valid()``: a direct-map address backed by a valid pfn."""
    try:
        mm = _memmap_of(addr)
        return mm.pfn_valid(mm.direct_map_pa(addr, "virt_addr_valid") >> PAGE_SHIFT)
    except AddressError:
        return False


def offset_in_page(addr: int) -> int:
    return addr & (PAGE_SIZE - 1)
