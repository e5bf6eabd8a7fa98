"""hwemu shell: describe() of every kind of address and of tasks, stack_trace(), and
``hwemu shell [CONFIG] [-c CODE]`` (machine.drgn() is tests/test_drgn_program.py)."""
import subprocess
import sys

import pytest
from test_runs import ROOT, hwemu_cli

import hwemu
import mempool
from hwemu import GFP_KERNEL
from hwemu.gfp import __GFP_COMP
from hwemu.page import (PG_dirty, PG_referenced, PGTY_buddy, format_page_flags, nth_page,
                        page_struct)
from hwemu.shell import describe, find_task, for_each_task, stack_trace
from hwemu.vmalloc import vfree, vmalloc


def my_alloc(gfp_mask, pool_data):
    return hwemu.kmalloc(pool_data, gfp_mask)


def my_free(element, pool_data):
    hwemu.kfree(element)


# ---------------------------------------------------------------- describe()

def test_describe_a_struct_page_names_its_fields_and_flags(machine):
    page = hwemu.alloc_pages(GFP_KERNEL, 0)
    page_struct(page).flags |= 1 << PG_referenced | 1 << PG_dirty
    text = describe(page)
    pfn = hwemu.page_to_pfn(page)
    assert text.splitlines()[0] == (f"struct page {page:#x}: pfn {pfn:#x} (phys "
                                    f"{pfn << 12:#x}), node 0, zone DMA32")
    flags = format_page_flags(page_struct(page).flags)
    assert "(referenced|dirty|node=0|zone=1)" in flags
    assert f"  flags      {flags}" in text
    assert "  _refcount  1" in text
    assert f"  virtual    {hwemu.page_address(page):#x}" in text
    assert "  state      allocated (refcount 1)" in text
    assert describe(page + 24).startswith(f"{page + 24:#x}: 24 bytes into a struct page\n"
                                          f"struct page {page:#x}")
    page_struct(page).flags &= ~(1 << PG_referenced | 1 << PG_dirty)
    hwemu.__free_pages(page, 0)


def test_describe_a_tail_page_names_its_head(machine):
    head = hwemu.alloc_pages(GFP_KERNEL | __GFP_COMP, 2)
    tail = nth_page(head, 3)
    text = describe(tail)
    assert f"(tail of struct page {head:#x})" in text
    assert f"  state      tail of the compound page at pfn {hwemu.page_to_pfn(head):#x}" in text
    assert "  lru        next " in describe(head)
    hwemu.__free_pages(head, 2)


def test_describe_a_free_buddy_page_and_a_slab_page(machine):
    memmap = machine.memmap
    memmap.ensure(0, memmap.max_pfn)
    pfn = next(p for p in range(memmap.max_pfn) if memmap.page_type(p) == PGTY_buddy)
    text = describe(hwemu.pfn_to_page(pfn))
    assert (f"  state      free: first page of a buddy block of order "
            f"{memmap.page.private[pfn]}") in text
    p = hwemu.kmalloc(64, GFP_KERNEL)
    text = describe(hwemu.virt_to_page(p))
    assert "(page_type slab)" in text
    assert "  state      slab of cache kmalloc-64: " in text
    hwemu.kfree(p)


def test_describe_a_slab_object_allocated_then_freed(machine):
    p = hwemu.kmalloc(40, GFP_KERNEL)
    cache = machine.slab.slab_of(p).cache
    lines = describe(p + 8).splitlines()
    assert lines[0] == (f"{p + 8:#x}: object {p:#x} of cache kmalloc-64 (8 bytes into it): "
                        "allocated, 40 bytes asked for")
    assert lines[1] == (f"  cache      kmalloc-64 (struct kmem_cache {cache.addr:#x}): "
                        "object_size 64, size 64")
    assert lines[2] == f"  object     {p:#x}, 8 bytes into it"
    assert lines[3].startswith(f"  slab       struct page {hwemu.virt_to_page(p):#x} ")
    hwemu.kfree(p)
    assert describe(p).splitlines()[0] == f"{p:#x}: object {p:#x} of cache kmalloc-64: free"


def test_describe_a_freed_object_in_the_kasan_quarantine(boot):
    boot("tiny", kasan__enabled=True)
    p = hwemu.kmalloc(100, GFP_KERNEL)
    hwemu.kfree(p)
    assert describe(p).splitlines()[0] == (f"{p:#x}: object {p:#x} of cache kmalloc-128: "
                                           "freed, in the KASAN quarantine")


def test_describe_a_pool_names_its_fields_and_callbacks(machine):
    pool = mempool.mempool_create(3, my_alloc, my_free, 96)
    e = mempool.mempool_alloc(pool, GFP_KERNEL)
    elements = hwemu.load(pool + mempool.mempool_t.elements.offset, 8)
    reserve = [hwemu.load(elements + 8 * i, 8) for i in range(3)]
    assert describe(pool).splitlines() == [
        f"struct mempool {pool:#x} (mempool_t)",
        "  min_nr     3",
        "  curr_nr    3  (saturated)",
        f"  elements   {elements:#x}: [{', '.join(f'{x:#x}' for x in reserve)}]",
        "  pool_data  0x60",
        "  alloc      my_alloc",
        "  free       my_free",
        "  counters   1 from alloc, 0 from the reserve, 0 NULL, 0 wait(s)",
    ]
    assert describe(reserve[1]).startswith(f"{reserve[1]:#x}: element in the reserve of "
                                           f"pool {pool:#x} (slot 1 of 3)\n  cache      ")
    mempool.mempool_free(e, pool)
    mempool.mempool_destroy(pool)


def test_describe_a_pool_struct_inside_its_slab_object(machine):
    pool = mempool.mempool_create_kmalloc_pool(2, 64)
    text = describe(pool + 4)   # inside the struct: the object, and the pool it holds
    assert f"  object     {pool:#x}, 4 bytes into it" in text
    assert f"  it holds:\n  struct mempool {pool:#x} (mempool_t)" in text
    assert "    alloc      mempool_kmalloc\n    free       mempool_kfree" in text
    mempool.mempool_destroy(pool)


def test_describe_pages_behind_other_addresses(machine):
    v = vmalloc(3 * 4096)
    text = describe(v + 4096)
    assert text.startswith(f"{v + 4096:#x}: vmalloc area [{v:#x}, ")
    assert "  in:\n  struct page " in text
    vfree(v)
    page = hwemu.alloc_pages(GFP_KERNEL, 0)
    addr = hwemu.page_address(page) + 100
    assert describe(addr).startswith(f"{addr:#x}: direct-map page pfn "
                                     f"{hwemu.page_to_pfn(page):#x}: allocated\n  in:\n"
                                     f"  struct page {page:#x}")
    hwemu.__free_pages(page, 0)


def test_describe_a_wild_address(machine):
    assert describe(0x1234) == ("0x1234: not memory of this machine's allocators "
                                "(outside machine 'tiny')")
    hole = machine.space.base + 8
    assert describe(hole) == (f"{hole:#x}: not memory of this machine's allocators "
                              "(unmapped hole in machine 'tiny' (at the start, before "
                              "direct map))")
    with pytest.raises(TypeError, match="an address"):
        describe("kmalloc")


def test_describe_a_kmap_window_slot_names_the_page_mapped_there(highmem_machine):
    page = hwemu.alloc_pages(hwemu.GFP_HIGHUSER, 0)
    addr = hwemu.kmap_local_page(page)
    pfn = hwemu.page_to_pfn(page)
    region = highmem_machine.space.region_at(addr)
    slot = (addr - region.start) >> 12
    assert describe(addr + 8).splitlines()[:3] == [
        f"{addr + 8:#x}: fixmap kmap_local slot {slot}: maps pfn {pfn:#x}", "  in:",
        f"  struct page {page:#x}: pfn {pfn:#x} (phys {pfn << 12:#x}), node 0, zone HighMem"]
    hwemu.kunmap_local(addr)
    assert describe(addr) == f"{addr:#x}: fixmap kmap_local slot {slot}: not mapped"
    hwemu.__free_pages(page, 0)


def test_repl_shows_a_description_as_its_text(machine):
    p = hwemu.kmalloc(8, GFP_KERNEL)
    assert repr(describe(p)) == str(describe(p))
    hwemu.kfree(p)


# ---------------------------------------------------------------- tasks

def sleeper():
    hwemu.msleep(50)


def test_describe_and_stack_trace_of_a_task(machine):
    t = machine.spawn(sleeper, name="sleeper")
    hwemu.msleep(5)   # it runs, and sleeps
    assert find_task(t.pid) is t.task
    assert t.task in for_each_task()
    trace = stack_trace(t).splitlines()
    assert trace == stack_trace(t.pid).splitlines()
    frames = [line.split()[1].split("+")[0] for line in trace]
    assert frames[frames.index("msleep") + 1] == "sleeper"
    assert trace[frames.index("sleeper")].endswith(
        f"tests/test_shell.py:{sleeper.__code__.co_firstlineno + 1}")
    text = describe(t).splitlines()
    assert text[0] == (f"task sleeper/{t.pid} on CPU {t.task.cpu.id}: D (uninterruptible "
                       "sleep), preempt_count 0x0, irqs on")
    assert text[1:] == ["stack:", *("  " + line for line in trace)]
    t.join()
    assert stack_trace(t) == f"sleeper/{t.pid} has exited: no stack"


def test_stack_trace_of_the_task_asking_starts_at_its_caller(machine):
    first = stack_trace(hwemu.current()).splitlines()[0]
    assert first.startswith("#0  test_stack_trace_of_the_task_asking_starts_at_its_caller+0x")
    with pytest.raises(LookupError, match="no task with pid 999"):
        stack_trace(999)


# ---------------------------------------------------------------- hwemu shell

def test_shell_c_runs_code_on_the_booted_machine():
    code = ("p = kmalloc(100, GFP_KERNEL)\n"
            "print(describe(p).splitlines()[0].split(': ', 1)[1])\n"
            "print(machine.name, stack_trace(find_task(1)).splitlines()[0].split()[1])\n"
            "print(mempool is not None, callable(mempool_create), callable(vmalloc))\n")
    r = hwemu_cli("shell", "configs/tiny.yaml", "-c", code)
    assert r.returncode == 0, r.stderr
    described, task, names = r.stdout.splitlines()
    assert described.startswith("object 0x")
    assert described.endswith(" of cache kmalloc-128: allocated, 100 bytes asked for")
    assert task.startswith("tiny <module>+0x")   # task 1 runs the code
    assert names == "True True True"


def test_shell_c_fails_with_the_traceback_and_the_default_config_boots():
    r = hwemu_cli("shell", "-c", "print(machine.name); 1/0")
    assert r.returncode == 1
    assert r.stdout == "hwemu\n"   # the packaged default machine
    assert r.stderr.rstrip().endswith("ZeroDivisionError: division by zero")


def test_shell_reads_a_session_from_stdin():
    r = subprocess.run([sys.executable, "-m", "hwemu.cli", "shell", "configs/tiny.yaml"],
                       input="print(machine)\n", capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "<Machine 'tiny': 1 node(s), 8 CPUs>" in r.stdout
    assert "hwemu shell: machine 'tiny': 1 node(s), 8 CPU(s), 64M RAM, KASAN off" in \
        r.stdout + r.stderr   # the banner (stderr for the standard REPL)


def test_the_repl_is_ipython_when_it_is_installed(machine, monkeypatch, capsys):
    """IPython gets the shell's namespace; the banner says what is booted and in scope."""
    import types

    from hwemu.shell import interact
    seen = {}
    fake = types.ModuleType("IPython")
    try:
        import drgn
    except ImportError:   # no prog then: the shell runs without drgn
        drgn = None

    def start_ipython(argv, user_ns):
        seen.update(argv=argv, ns=user_ns)
        if drgn is not None:   # drgn's helpers need no prog in the shell
            assert drgn.get_default_prog() is user_ns["prog"]
    fake.start_ipython = start_ipython
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert interact(machine) == 0
    ns = seen["ns"]
    assert ns["machine"] is machine and ns["describe"] is describe
    assert ns["kmalloc"] is hwemu.kmalloc and ns["mempool_create"] is mempool.mempool_create
    assert ns["vmalloc"] is vmalloc and ns["__GFP_ZERO"] == hwemu.__GFP_ZERO
    assert seen["argv"] == ["--no-banner"]
    out = capsys.readouterr().out
    assert out.startswith("hwemu shell: machine 'tiny': 1 node(s), 8 CPU(s), 64M RAM, "
                          "KASAN off; you are task init/1 on CPU 0.\n")
    assert "describe(addr or task), stack_trace(task)" in out
    if drgn is not None:   # ... while it runs: the machine's program goes with it
        with pytest.raises(drgn.NoDefaultProgramError):
            drgn.get_default_prog()
