"""A ``drgn.Program`` over an emulated machine: drgn's view of a live kernel, where the
"kernel" is a hwemu machine (``machine.drgn()``; needs ``pip install 'hwemu[drgn]'``).

drgn reads a kernel through three things, and this module gives each:

- **memory**: one virtual segment per region of the machine's address space (direct
  map, vmalloc, kmap windows, vmemmap, KASAN shadow), read without KASAN checks as
  ``/proc/kcore`` is, and faulting (``drgn.FaultError``) where nothing is mapped; and
  the machine's RAM as physical memory.
- **types** (a kernel's DWARF): every struct hwemu lays out in emulated memory is a
  ctypes ``Structure`` named ``struct_<tag>`` (``struct_page``, ``struct_slab``,
  ``struct_kmem_cache``, ``struct_mempool``); offsets and sizes come from it, the C
  types of its words from :data:`C_TYPES`, so ``page.lru.next`` or
  ``pool.elements[0]`` read as they would in a kernel.
- **objects** (a kernel's symbols and constants): ``vmemmap``, ``page_offset_base``,
  ``PAGE_SHIFT``, ``max_pfn``, the ``PG_*`` page flags, ``VMCOREINFO``... enough for
  drgn's own helpers: ``pfn_to_page()``, ``page_to_virt()``, ``virt_to_page()``,
  ``PageSlab()``, ``compound_head()``, ``decode_page_flags()``.

Not given: symbols of kernel variables hwemu keeps in Python (``slab_caches``,
``init_task``...), so helpers that walk them (``for_each_task()``,
``slab_cache_for_each_slab()``) do not work; stack unwinding (use
:func:`hwemu.shell.stack_trace`); page tables (a virtual address is read where it
is mapped, not translated).
"""
from __future__ import annotations

import ctypes
import functools
import os
from typing import Any, Callable

from .mmzone import MAX_NUMNODES
from .page import PAGE_TYPE, PAGEFLAG_NAMES, PGTY_slab, struct_page, struct_slab
from .page_types import PAGE_SHIFT, PAGE_SIZE
from .slab import struct_kmem_cache
from .spinlock import SPINLOCK_T_SIZE
from .wait import WAIT_QUEUE_HEAD_T_SIZE


def _named(**c_types: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """Fields that keep their ctypes name in C, each with its C type."""
    return {name: ((name, c_type),) for name, c_type in c_types.items()}


# The C type of a ctypes field, where the ctypes type does not say it (a pointer held
# in a c_uint64, a struct list_head flattened into two words). struct tag -> ctypes
# field -> the members at its offset: one (name, C type) is a plain member, more make
# an anonymous union (the kernel's overlays), and a field mapped to () belongs to the
# member before it (the second word of a struct list_head). Fields not named here get
# the C type of their ctypes type.
C_TYPES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "page": {
        **_named(flags="unsigned long"),
        "lru_next": (("lru", "struct list_head"), ("compound_head", "unsigned long")),
        "lru_prev": (),
        **_named(mapping="struct address_space *", index="pgoff_t",
                 private="unsigned long"),
        "_mapcount": (("_mapcount", "atomic_t"), ("page_type", "unsigned int")),
        **_named(_refcount="atomic_t", memcg_data="unsigned long"),
    },
    "slab": {
        **_named(__page_flags="unsigned long", slab_cache="struct kmem_cache *"),
        "slab_list_next": (("slab_list", "struct list_head"),),
        "slab_list_prev": (),
        **_named(freelist="void *", counters="unsigned long", __page_refcount="atomic_t"),
    },
    "kmem_cache": _named(cpu_sheaves="void *", flags="slab_flags_t",
                         min_partial="unsigned long", allocflags="gfp_t",
                         name="const char *"),
    "mempool": _named(lock="spinlock_t", elements="void **", pool_data="void *",
                      alloc="mempool_alloc_t *", free="mempool_free_t *",
                      wait="wait_queue_head_t"),
}

_CTYPE_NAMES = {ctypes.c_uint64: "unsigned long", ctypes.c_int64: "long",
                ctypes.c_uint32: "unsigned int", ctypes.c_int32: "int",
                ctypes.c_uint16: "unsigned short", ctypes.c_int16: "short",
                ctypes.c_uint8: "unsigned char", ctypes.c_int8: "signed char"}


def laid_out_structs() -> dict[str, type[ctypes.Structure]]:
    """struct tag -> the ctypes ``Structure`` laying it out, for every ``struct_<tag>``
    of hwemu and mempool imported so far (mempool's once a pool can exist)."""
    found: dict[str, type[ctypes.Structure]] = {
        "page": struct_page, "slab": struct_slab, "kmem_cache": struct_kmem_cache}
    for cls in ctypes.Structure.__subclasses__():
        module = cls.__module__.split(".")[0]
        if cls.__name__.startswith("struct_") and module in ("hwemu", "mempool"):
            found.setdefault(cls.__name__[len("struct_"):], cls)
    for cls in list(found.values()):   # and the structs inside them
        for _, ctype, *_ in cls._fields_:
            if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
                found.setdefault(ctype.__name__.removeprefix("struct_"), ctype)
    return found


# ---------------------------------------------------------------- types

class _Types:
    """The type finder of one program: builds each type once, on first lookup."""

    def __init__(self, prog):
        import drgn
        self.drgn, self.prog = drgn, prog
        self.cache: dict[tuple[str, str], Any] = {}
        self.structs = laid_out_structs()
        k = drgn.TypeKind
        self.builders: dict[tuple[Any, str], Callable[[], Any]] = {
            (k.STRUCT, "list_head"): self._list_head,
            (k.STRUCT, "address_space"): lambda: prog.struct_type("address_space"),
            (k.TYPEDEF, "atomic_t"): self._atomic_t,
            (k.TYPEDEF, "pgoff_t"): lambda: self._typedef("pgoff_t", "unsigned long"),
            (k.TYPEDEF, "phys_addr_t"): lambda: self._typedef("phys_addr_t",
                                                              "unsigned long long"),
            (k.TYPEDEF, "gfp_t"): lambda: self._typedef("gfp_t", "unsigned int"),
            (k.TYPEDEF, "slab_flags_t"): lambda: self._typedef("slab_flags_t", "unsigned int"),
            (k.TYPEDEF, "spinlock_t"): lambda: self._opaque("spinlock_t", SPINLOCK_T_SIZE),
            (k.TYPEDEF, "wait_queue_head_t"): lambda: self._opaque("wait_queue_head_t",
                                                                   WAIT_QUEUE_HEAD_T_SIZE),
            (k.TYPEDEF, "mempool_alloc_t"): self._mempool_alloc_t,
            (k.TYPEDEF, "mempool_free_t"): self._mempool_free_t,
            (k.TYPEDEF, "mempool_t"): lambda: prog.typedef_type("mempool_t",
                                                                prog.type("struct mempool")),
            (k.ENUM, "pageflags"): self._pageflags,
        }
        for tag in self.structs:
            self.builders[(k.STRUCT, tag)] = lambda tag=tag: self._struct(tag)

    def find(self, prog, kinds, name: str, filename: str | None):
        """``register_type_finder()``'s callback: the type ``name`` of one of ``kinds``."""
        for kind in kinds:
            build = self.builders.get((kind, name))
            if build is not None:
                key = (str(kind), name)
                if key not in self.cache:
                    self.cache[key] = build()
                return self.cache[key]
        return None

    def _typedef(self, name: str, target: str):
        return self.prog.typedef_type(name, self.prog.type(target))

    def _opaque(self, name: str, size: int):
        """A kernel type whose insides are hwemu's own (a spinlock word, a wait queue):
        a struct of its words."""
        prog = self.prog
        words = prog.array_type(prog.type("unsigned long" if size % 8 == 0 else "unsigned char"),
                                size // 8 if size % 8 == 0 else size)
        return prog.typedef_type(name, prog.struct_type(
            None, size, [self.drgn.TypeMember(words, "__hwemu", 0)]))

    def _list_head(self):
        prog, drgn = self.prog, self.drgn

        def ptr():
            return prog.pointer_type(prog.type("struct list_head"))
        return prog.struct_type("list_head", 16, [drgn.TypeMember(ptr, "next", 0),
                                                  drgn.TypeMember(ptr, "prev", 64)])

    def _atomic_t(self):
        prog = self.prog
        return prog.typedef_type("atomic_t", prog.struct_type(
            None, 4, [self.drgn.TypeMember(prog.type("int"), "counter", 0)]))

    def _mempool_alloc_t(self):
        prog, P = self.prog, self.drgn.TypeParameter
        fn = prog.function_type(prog.type("void *"), [P(prog.type("gfp_t"), "gfp_mask"),
                                                       P(prog.type("void *"), "pool_data")])
        return prog.typedef_type("mempool_alloc_t", fn)

    def _mempool_free_t(self):
        prog, P = self.prog, self.drgn.TypeParameter
        fn = prog.function_type(prog.void_type(), [P(prog.type("void *"), "element"),
                                                    P(prog.type("void *"), "pool_data")])
        return prog.typedef_type("mempool_free_t", fn)

    def _pageflags(self):
        """``enum pageflags``: the ``PG_*`` bits hwemu uses, and ``__NR_PAGEFLAGS``."""
        names = [f"PG_{n}" for n in PAGEFLAG_NAMES] + ["__NR_PAGEFLAGS"]
        return self.prog.enum_type("pageflags", self.prog.type("unsigned int"),
                                   [self.drgn.TypeEnumerator(n, i) for i, n in enumerate(names)])

    def _struct(self, tag: str):
        """``struct tag`` from its ctypes layout and :data:`C_TYPES`; a member whose C
        type would not fit the bytes of the fields it stands for is an error."""
        cls, prog, drgn = self.structs[tag], self.prog, self.drgn
        notes = C_TYPES.get(tag, {})
        fields = [(name, ctype, getattr(cls, name).offset) for name, ctype, *_ in cls._fields_]
        members = []
        for i, (name, ctype, offset) in enumerate(fields):
            alts = notes.get(name)
            if alts == ():
                continue    # the second word of the member before
            if alts is None:
                alts = ((name, self._ctype_name(ctype)),)
            span = next((o for n, _, o in fields[i + 1:] if notes.get(n) != ()),
                        ctypes.sizeof(cls)) - offset
            size = max(self._sizeof(c) for _, c in alts)
            if size > span:
                raise TypeError(f"struct {tag}: {alts} takes {size} bytes, the ctypes "
                                f"field {name} and what follows it {span}")
            parts = [drgn.TypeMember(self._lazy(c), n, 0) for n, c in alts]
            if len(parts) == 1:
                members.append(drgn.TypeMember(self._lazy(alts[0][1]), alts[0][0],
                                               offset * 8))
            else:   # the kernel's anonymous union of overlays
                members.append(drgn.TypeMember(prog.union_type(None, size, parts), None,
                                               offset * 8))
        return prog.struct_type(tag, ctypes.sizeof(cls), members)

    def _sizeof(self, c_type: str) -> int:
        """The size of ``c_type``, without building the struct a pointer points to
        (which may be the one being built)."""
        return 8 if c_type.endswith("*") else self.drgn.sizeof(self.prog.type(c_type))

    def _lazy(self, c_type: str) -> Callable[[], Any]:
        """The type named ``c_type``, looked up when drgn first needs it (a struct may
        point to one being built)."""
        return lambda: self.prog.type(c_type)

    def _ctype_name(self, ctype) -> str:
        if issubclass(ctype, ctypes.Array):
            raise TypeError(f"{ctype}: an array field needs a C type in C_TYPES")
        if issubclass(ctype, ctypes.Structure):
            return f"struct {ctype.__name__.removeprefix('struct_')}"
        return _CTYPE_NAMES[ctype]


# ---------------------------------------------------------------- objects

def _objects(machine, prog) -> dict[str, Callable[[], Any]]:
    """The kernel symbols and constants the program knows: name -> its object."""
    from drgn import Object
    memmap, vm = machine.memmap, machine.vmalloc
    pageflags = lambda: prog.type("enum pageflags")  # noqa: E731
    objs: dict[str, Callable[[], Any]] = {
        # x86-64 with KASLR: the bases of the direct map, vmemmap and vmalloc area.
        "page_offset_base": lambda: Object(prog, "unsigned long", memmap.page_offset),
        "vmemmap_base": lambda: Object(prog, "unsigned long", memmap.start),
        "vmalloc_base": lambda: Object(prog, "unsigned long", vm.VMALLOC_START),
        "vmemmap": lambda: Object(prog, "struct page *", memmap.start),
        "PAGE_OFFSET": lambda: Object(prog, "unsigned long", memmap.page_offset),
        "VMALLOC_START": lambda: Object(prog, "unsigned long", vm.VMALLOC_START),
        "VMALLOC_END": lambda: Object(prog, "unsigned long", vm.VMALLOC_END),
        "PAGE_SHIFT": lambda: Object(prog, "int", PAGE_SHIFT),
        "PAGE_SIZE": lambda: Object(prog, "unsigned long", PAGE_SIZE),
        "PAGE_MASK": lambda: Object(prog, "unsigned long", -PAGE_SIZE % (1 << 64)),
        "max_pfn": lambda: Object(prog, "unsigned long", memmap.max_pfn),
        "max_low_pfn": lambda: Object(prog, "unsigned long", memmap.max_low_pfn),
        "MAX_NUMNODES": lambda: Object(prog, "int", MAX_NUMNODES),
        "nr_cpu_ids": lambda: Object(prog, "unsigned int", len(machine.sched.cpus)),
        "VMCOREINFO": lambda: _vmcoreinfo(machine, prog),
    }
    if machine.kasan.enabled:
        objs["KASAN_SHADOW_OFFSET"] = lambda: Object(prog, "unsigned long",
                                                     machine.KASAN_SHADOW_OFFSET)
    for i, name in enumerate([f"PG_{n}" for n in PAGEFLAG_NAMES] + ["__NR_PAGEFLAGS"]):
        objs[name] = functools.partial(lambda i: Object(prog, pageflags(), i), i)
    return objs


def _vmcoreinfo(machine, prog):
    """``VMCOREINFO``: the note a kernel leaves for debuggers, with what drgn's helpers
    read from it (the slab page type, since PG_slab is gone)."""
    from drgn import Object
    from .bug import UTS_RELEASE
    text = (f"OSRELEASE={UTS_RELEASE}\nPAGESIZE={PAGE_SIZE}\n"
            f"NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)={PAGE_TYPE(PGTY_slab)}\n"
            f"SYMBOL(vmemmap)={machine.memmap.start:x}\n").encode() + b"\0"
    return Object(prog, prog.array_type(prog.type("char"), len(text)), list(text))


# ---------------------------------------------------------------- memory

def _reader(machine) -> Callable[[int, int, int, bool], bytes]:
    """drgn's read callback for one region: the bytes as they are, no KASAN check (a
    debugger is no kernel code); a fault where nothing is mapped."""
    from drgn import FaultError
    space = machine.space

    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        if machine.down:
            raise FaultError(f"machine {machine.name!r} has been shut down", address)
        with space.pgtable_lock:
            fault = space.first_fault(address, count)
            if fault is not None:
                raise FaultError(fault.reason, fault.addr)
            space.check(address, count)   # the regions' hooks: struct pages initialised
            off = address - space.base
            return space.mv[off:off + count].tobytes()
    return read


def _read_ram(machine) -> Callable[[int, int, int, bool], bytes]:
    """drgn's read callback for physical memory: the machine's RAM file (a read of a
    page never written gives zeros and allocates nothing)."""
    from drgn import FaultError

    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        if machine.down:
            raise FaultError(f"machine {machine.name!r} has been shut down", address)
        return os.pread(machine.ram.fd, count, address)
    return read


def drgn_program(machine):
    """A ``drgn.Program`` over ``machine``: its memory, the types of the structs hwemu
    lays out and the symbols drgn's Linux helpers need (see the module docstring).

    :return: ``drgn.Program``; raises ImportError without drgn
        (``pip install 'hwemu[drgn]'``).
    """
    import drgn
    machine._alive()
    prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                      drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    for region in machine.space.regions:
        prog.add_memory_segment(region.start, region.end - region.start,
                                _reader(machine))
    prog.add_memory_segment(0, machine.ram.size, _read_ram(machine), physical=True)
    types = _Types(prog)
    prog.register_type_finder("hwemu", types.find, enable_index=0)
    objects = _objects(machine, prog)

    def find_object(prog, name: str, flags, filename: str | None):
        make = objects.get(name)
        return make() if make is not None else None
    prog.register_object_finder("hwemu", find_object, enable_index=0)
    return prog
