"""machine.drgn(): a drgn.Program over an emulated machine, on which drgn's own helpers
give what hwemu's kernel functions give (skipped without drgn, which the test extra
installs)."""
import ctypes

import pytest

from test_runs import hwemu_cli

import hwemu
import mempool
from hwemu import GFP_KERNEL
from hwemu.page import PG_dirty, PG_referenced, page_struct, struct_page
from hwemu.vmalloc import vfree, vmalloc

drgn = pytest.importorskip("drgn")


@pytest.fixture
def prog(machine):
    return machine.drgn()


def test_drgn_pfn_to_page_and_page_to_virt_are_hwemus(machine, prog):
    from drgn.helpers.linux.mm import page_to_pfn, page_to_virt, pfn_to_page, virt_to_page
    for pfn in (0, 1, 0x1234, machine.memmap.max_pfn - 1):
        page = pfn_to_page(prog, pfn)
        assert page.value_() == hwemu.pfn_to_page(pfn)
        assert page_to_pfn(page).value_() == pfn
        assert page_to_virt(page).value_() == hwemu.page_address(hwemu.pfn_to_page(pfn))
    p = hwemu.kmalloc(32, GFP_KERNEL)
    assert virt_to_page(prog, p).value_() == hwemu.virt_to_page(p)
    hwemu.kfree(p)


def test_drgn_reads_struct_page_as_hwemu_wrote_it(machine, prog):
    from drgn.helpers.linux.mm import PageSlab, compound_head, decode_page_flags, virt_to_page
    page = hwemu.alloc_pages(GFP_KERNEL, 0)
    page_struct(page).flags |= 1 << PG_referenced | 1 << PG_dirty
    p = drgn.Object(prog, "struct page *", page)
    assert decode_page_flags(p) == "PG_referenced|PG_dirty"
    assert p._refcount.counter.value_() == 1
    assert not PageSlab(p)
    page_struct(page).flags &= ~(1 << PG_referenced | 1 << PG_dirty)
    hwemu.__free_pages(page, 0)
    x = hwemu.kmalloc(64, GFP_KERNEL)
    slab_page = virt_to_page(prog, x)
    assert PageSlab(slab_page)
    slab = drgn.cast("struct slab *", compound_head(slab_page))
    assert slab.slab_cache.name.string_() == b"kmalloc-64"
    assert slab.slab_cache.object_size.value_() == 64
    hwemu.kfree(x)


def test_drgn_reads_a_mempool_as_hwemu_sees_it(machine, prog):
    pool = mempool.mempool_create_kmalloc_pool(4, 64)
    e = mempool.mempool_alloc(pool, GFP_KERNEL)
    mp = drgn.Object(prog, "mempool_t *", pool)
    t = mempool.mempool_t
    assert mp.min_nr.value_() == hwemu.load(pool + t.min_nr.offset, 4) == 4
    assert mp.curr_nr.value_() == hwemu.load(pool + t.curr_nr.offset, 4) == 4
    elements = hwemu.load(pool + t.elements.offset, 8)
    assert mp.elements.value_() == elements
    assert [mp.elements[i].value_() for i in range(4)] == \
        [hwemu.load(elements + 8 * i, 8) for i in range(4)]
    assert mp.pool_data.value_() == 64
    assert mp.alloc.value_() == mempool.MEMPOOL_KMALLOC
    assert mp.free.type_.type.type.kind == drgn.TypeKind.FUNCTION   # mempool_free_t *
    mempool.mempool_free(e, pool)
    mempool.mempool_destroy(pool)


def test_drgn_reads_memory_as_it_is_and_faults_where_none_is(machine, prog):
    x = hwemu.kmalloc(100, GFP_KERNEL)
    hwemu.write_bytes(x, bytes(range(100)))
    assert prog.read(x, 100) == hwemu.read_bytes(x, 100)
    v = vmalloc(2 * 4096)
    hwemu.write_bytes(v + 4090, b"across pages")
    assert prog.read(v + 4090, 12) == b"across pages"
    pa = hwemu.virt_to_phys(x)
    assert prog.read(pa, 100, True) == bytes(range(100))   # physical: the machine's RAM
    with pytest.raises(drgn.FaultError):
        prog.read(v + 2 * 4096, 8)     # the guard page after the area
    with pytest.raises(drgn.FaultError):
        prog.read(machine.space.base + 8, 8)
    hwemu.kfree(x)
    vfree(v)


def test_drgn_after_shutdown_faults(boot):
    m = boot("tiny")
    prog = m.drgn()
    p = hwemu.kmalloc(8, GFP_KERNEL)
    m.shutdown()
    with pytest.raises(drgn.FaultError, match="shut down"):
        prog.read(p, 8)


def test_drgn_types_keep_the_ctypes_layouts(machine, prog):
    """Every member drgn sees lies where the ctypes struct lays out its field."""
    from hwemu.drgn_program import C_TYPES, laid_out_structs
    structs = laid_out_structs()
    assert {"page", "slab", "kmem_cache", "mempool"} <= set(structs)
    for tag, cls in structs.items():
        t = prog.type(f"struct {tag}")
        assert drgn.sizeof(t) == ctypes.sizeof(cls), tag
        for name, *_ in cls._fields_:
            alts = C_TYPES.get(tag, {}).get(name, ((name, None),))
            for member, _ in alts:
                assert drgn.offsetof(t, member) == getattr(cls, name).offset, (tag, member)
    assert drgn.sizeof(prog.type("struct page")) == ctypes.sizeof(struct_page)


def test_drgn_helpers_in_the_shell_need_no_prog():
    """``hwemu shell`` makes its machine's program drgn's default, as drgn's CLI does."""
    code = ("from drgn.helpers.linux.mm import PageSlab, virt_to_page\n"
            "print(PageSlab(virt_to_page(kmalloc(8, GFP_KERNEL))), prog is drgn_default())\n")
    r = hwemu_cli("shell", "configs/tiny.yaml", "-c",
                  "from drgn import get_default_prog as drgn_default\n" + code)
    assert (r.returncode, r.stdout) == (0, "True True\n"), r.stderr
