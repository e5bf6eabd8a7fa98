"""mm/util.c: mem_dump_obj() and what lies at an address."""
import hwemu
from hwemu import GFP_KERNEL


def test_mem_dump_obj_of_a_slab_object(machine):
    p = hwemu.kmalloc(100, GFP_KERNEL)
    text = hwemu.mem_dump_obj(p + 24)
    assert text == f" slab kmalloc-128 start {p:016x} pointer offset 24 size 128"
    assert text.strip() in machine.dmesg()
    hwemu.kfree(p)


def test_mem_dump_obj_of_a_vmalloc_region(machine):
    v = hwemu.vmalloc(3 * 4096)
    text = hwemu.mem_dump_obj(v + 100)
    assert text.startswith(f" 3-page vmalloc region starting at {v:#x} allocated at ")
    assert "test_mem_dump_obj_of_a_vmalloc_region+0x" in text
    hwemu.vfree(v)


def test_mem_dump_obj_of_other_memory(machine):
    page = hwemu.alloc_pages(GFP_KERNEL, 0)
    assert hwemu.mem_dump_obj(hwemu.page_address(page)) == " non-slab/vmalloc memory"
    hwemu.__free_pages(page, 0)
    assert hwemu.mem_dump_obj(0) == " NULL pointer"
    assert hwemu.mem_dump_obj(16) == " zero-size pointer"   # ZERO_SIZE_PTR
    assert hwemu.mem_dump_obj(0x1000) == " non-paged memory"
