"""The machine's promises under abuse (issue 13): views after shutdown, huge and negative
lengths, misused APIs.

A stale view into a shut-down machine's memory raises MachineDown, from any thread;
the accessors check address and length before any work, so a wild or huge access is an
oops (or a clear exception), never MemoryError/OverflowError/TypeError or a crash; a
misused kernel API gives what the kernel gives. Cases that killed the interpreter
before run in a subprocess, so that a crash is a failure and not the end of the run.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwemu
from hwemu import access
from hwemu.errors import AddressError, KernelError, MachineDown, MachineError, Oops
from hwemu.page_types import PAGE_SIZE

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.yaml"
U64 = 1 << 64


def run_py(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter at the repository root (a SIGSEGV is rc -11)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- 1. views after shutdown

def test_every_view_of_a_shut_down_machine_raises_machine_down():
    r = run_py("""
        import hwemu
        m = hwemu.boot("configs/tiny.yaml", overrides={"kasan.enabled": True})
        p = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
        v = hwemu.page_struct(hwemu.alloc_pages(hwemu.GFP_KERNEL, 0))
        assert v._refcount == 1
        k, mm, mv = m.kasan, m.memmap, m.space.mv
        field = mm.page._refcount
        m.shutdown()
        uses = {"page_struct": lambda: v._refcount, "page_struct=": lambda: setattr(v, "flags", 1),
                "shadow": lambda: k.shadow(p), "byte_accessible": lambda: k.byte_accessible(p),
                "check_access": lambda: k.check_access(p, 8, False),
                "poison": lambda: k.poison(p, 8, 0xFB), "unpoison": lambda: k.unpoison(p, 8),
                "first_bad_addr": lambda: k.first_bad_addr(p, 64),
                "memmap.page": lambda: mm.page.flags[0], "memmap.pages": lambda: mm.pages[0],
                "space.mv": lambda: m.space.mv[0], "kept space.mv": lambda: mv[0],
                "kept field view": lambda: field[0], "load": lambda: hwemu.load(p, 8)}
        for name, use in uses.items():
            try:
                use()
                print(name, "returned")
            except hwemu.MachineDown:
                print(name, "MachineDown")
            except Exception as exc:
                print(name, type(exc).__name__)
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 14
    odd = [line for line in lines if not line.endswith(" MachineDown")]
    assert odd == ["kept space.mv ValueError", "kept field view ValueError"]


def test_a_thread_using_views_while_the_machine_shuts_down_gets_machine_down():
    """A plain thread holds a struct page view and the KASAN shadow: before the
    shutdown they read, after it MachineDown; a racing reader never sees another
    exception. The handshakes are events; no sleeps."""
    r = run_py("""
        import threading, hwemu
        m = hwemu.boot("configs/tiny.yaml", overrides={"kasan.enabled": True})
        p = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
        v = hwemu.page_struct(hwemu.alloc_pages(hwemu.GFP_KERNEL, 0))
        k = m.kasan
        read, down, seen = threading.Event(), threading.Event(), []
        used, second, racing = threading.Event(), threading.Event(), threading.Event()

        def reader():
            seen.append(("before", v._refcount, k.shadow(p)))
            read.set()
            down.wait()
            for use in (lambda: v._refcount, lambda: k.shadow(p), lambda: hwemu.load(p, 8)):
                try:
                    use()
                    seen.append("returned")
                except Exception as exc:
                    seen.append(type(exc).__name__)
            used.set()
            second.wait()
            racing.set()
            while True:                      # until the second machine is down
                try:
                    v2._refcount, k2.shadow(p2), k2.byte_accessible(p2)
                except hwemu.MachineDown:
                    seen.append("race MachineDown")
                    return
                except Exception as exc:
                    seen.append("race " + type(exc).__name__)
                    return

        t = threading.Thread(target=reader)
        t.start()
        read.wait()
        m.shutdown()
        down.set()
        used.wait()
        m2 = hwemu.boot("configs/tiny.yaml", overrides={"kasan.enabled": True})
        p2 = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
        v2, k2 = hwemu.page_struct(hwemu.alloc_pages(hwemu.GFP_KERNEL, 0)), m2.kasan
        second.set()
        racing.wait()
        m2.shutdown()                        # while the reader reads in a loop
        t.join()
        print(seen)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("[('before', 1, 0), 'MachineDown', 'MachineDown', "
                                "'MachineDown', 'race MachineDown']")


def test_accesses_racing_a_shutdown_end_in_machine_down():
    """A thread acting as the machine's task (``current.swap``, as the pytest plugin
    does) accesses the direct map and a vmalloc area in a loop while the machine
    shuts down: whatever the interleaving, its loop ends in MachineDown. 40 rounds,
    KASAN on and off; the only handshake is an event."""
    r = run_py("""
        import collections, threading, hwemu
        from hwemu.current import swap
        kinds = collections.Counter()
        for i in range(40):
            m = hwemu.boot("configs/tiny.yaml", overrides={"kasan.enabled": i % 2 == 0})
            p, vm = hwemu.kmalloc(64, hwemu.GFP_KERNEL), hwemu.vmalloc(8192)
            task, started = hwemu.current(), threading.Event()

            def reader():
                swap(task)
                while True:
                    try:
                        hwemu.load(p, 8), hwemu.store(p, 8, 1), hwemu.memset(p, 0, 64)
                        hwemu.load(vm, 8), hwemu.memcpy(vm, p, 64), hwemu.read_bytes(vm, 100)
                        started.set()
                    except Exception as exc:
                        kinds[type(exc).__name__] += 1
                        started.set()
                        return
            t = threading.Thread(target=reader)
            t.start()
            started.wait()
            m.shutdown()
            t.join()
        print(dict(kinds))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "{'MachineDown': 40}"


def test_a_thread_that_is_no_task_may_not_load_or_store(machine):
    p = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
    got = []

    def plain():
        for use in (lambda: hwemu.load(p, 8), lambda: hwemu.store(p, 8, 1),
                    lambda: hwemu.read_bytes(p, 8), lambda: hwemu.memset(p, 0, 8),
                    lambda: access.py_load(p, 8), lambda: hwemu.load(1 << 63, 8)):
            try:
                use()
                got.append("returned")
            except MachineError as exc:
                got.append(str(exc))
    t = threading.Thread(target=plain, name="plain")
    t.start()
    t.join()
    assert len(got) == 6 and all("'plain' is not a task of any machine" in g for g in got)
    assert machine.tainted == "Not tainted"
    hwemu.kfree(p)


# ---------------------------------------------------------------- 2. lengths checked first

@pytest.mark.parametrize("n", [1 << 32, 1 << 40, 1 << 63, U64 - 1])
def test_huge_memset_is_an_oops_not_memory_error(machine, n):
    p = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
    with pytest.raises(Oops, match="unable to handle page fault"):
        hwemu.memset(p, 0, n)
    with pytest.raises(Oops):
        hwemu.read_bytes(p, n)
    with pytest.raises(Oops):
        hwemu.memcpy(p, p + 8, n)
    hwemu.kfree(p)


def test_lengths_and_addresses_that_are_no_size_t_or_pointer(machine):
    p = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
    for call in (lambda: hwemu.memset(p, 0, U64), lambda: hwemu.read_bytes(p, -1),
                 lambda: hwemu.memset(p, 0, -(1 << 70))):
        with pytest.raises(ValueError, match="length"):
            call()
    with pytest.raises(AddressError, match="not a 64-bit pointer"):
        hwemu.load(U64, 8)
    # A negative int is the same pointer as its two's complement: ERR_PTR(-12).
    with pytest.raises(Oops, match="fffffffffffffff4"):
        hwemu.load(-12, 8)
    # A range that wraps past the top faults where its mapping ends.
    with pytest.raises(Oops, match=f"{U64 - 8:016x}"):
        hwemu.read_bytes(U64 - 8, 16)
    assert hwemu.load(p, 8) == hwemu.load(p - U64, 8)
    hwemu.kfree(p)


def test_kasan_reports_a_far_poisoned_granule_of_a_huge_access(boot):
    m = boot("tiny", kasan__enabled=True, kasan__multi_shot=True)
    lo, hi = m.space.fast_lo, m.space.fast_hi
    start = lo + 4 * PAGE_SIZE
    m.kasan.unpoison(start, hi - start)
    bad = hi - 4 * PAGE_SIZE
    m.kasan.poison(bad, 8, 0xFB)
    with hwemu.kasan.expect_report() as reports:
        with pytest.raises(Oops, match="unable to handle page fault"):
            hwemu.read_bytes(start, 1 << 40)       # the report, then the fault
    assert (reports[0].size, reports[0].bug_type) == (1 << 40, "slab-use-after-free")
    with hwemu.kasan.expect_report("out-of-bounds"):   # wraps: reported at once
        with pytest.raises(Oops):
            hwemu.read_bytes(start, U64 - 8)
    m.kasan.poison(bad, 8, 0)


# ---------------------------------------------------------------- 7. misuse

def test_kfree_of_an_err_ptr_warns_like_its_unsigned_pointer(machine):
    hwemu.kfree(-12)
    assert len(machine.warnings) == 1 and "kfree(0xfffffffffffffff4)" in machine.dmesg()
    hwemu.kfree(0)
    hwemu.kfree(16)   # NULL and ZERO_SIZE_PTR are ignored
    assert len(machine.warnings) == 1


def test_order_is_an_unsigned_int(machine):
    assert hwemu.alloc_pages(hwemu.GFP_KERNEL, -1) == 0   # 4294967295 > MAX_PAGE_ORDER
    assert len(machine.warnings) == 1 and "WARNING" in machine.warnings[0]
    assert hwemu.alloc_pages(hwemu.GFP_KERNEL | hwemu.__GFP_NOWARN, U64 - 1) == 0
    page = hwemu.alloc_pages(hwemu.GFP_KERNEL, 0)
    with pytest.raises(AddressError, match=r"4294967295 > MAX_PAGE_ORDER \(10\)"):
        hwemu.__free_pages(page, -1)
    hwemu.__free_pages(page, 0)


def test_a_zero_size_kmalloc_pool_holds_zero_size_ptr(boot):
    from mempool import mempool_alloc, mempool_create_kmalloc_pool, mempool_destroy, mempool_free
    boot("tiny", debug__slub_debug_on=False)
    pool = mempool_create_kmalloc_pool(4, 0)
    assert pool and mempool_alloc(pool, hwemu.GFP_KERNEL) == 16   # kmalloc(0)
    mempool_free(16, pool)
    mempool_destroy(pool)


def test_kasan_of_a_zero_size_kmalloc_pool_faults_on_its_struct_page(boot):
    """``kasan_mempool_poison_object(ZERO_SIZE_PTR)``: ``virt_to_folio(0x10)`` names a
    struct page that does not exist; reading it oopses."""
    from mempool import mempool_create_kmalloc_pool
    boot("tiny", kasan__enabled=True)
    with pytest.raises(Oops, match=r"struct page of virt_to_head_page\(0x10\)"):
        mempool_create_kmalloc_pool(4, 0)


def test_a_page_pool_of_order_minus_one_is_not_created(machine):
    from mempool import mempool_create_page_pool
    assert mempool_create_page_pool(2, -1) == 0
    assert len(machine.warnings) == 1


def test_a_pool_of_one_machine_allocates_there_while_another_is_current(boot):
    from mempool import (mempool_alloc, mempool_create_kmalloc_pool, mempool_destroy,
                         mempool_free, mempool_resize, mempool_stats)
    a = boot("tiny", machine__name="a")
    pool = mempool_create_kmalloc_pool(2, 64)
    b = boot("tiny", machine__name="b")
    assert hwemu.current().machine is b
    live = {m: m.slab.find_cache("kmalloc-64").nr_live for m in (a, b)}
    elements = [mempool_alloc(pool, hwemu.GFP_KERNEL) for _ in range(3)]
    assert all(a.space.base <= e < a.space.end for e in elements)
    for e in elements:   # the reserve is full: back to machine a's kfree(), no WARN
        mempool_free(e, pool)
    assert mempool_stats(pool)["free_allocator"] == 3
    assert mempool_resize(pool, 4) == 0 and mempool_stats(pool)["preallocated"] == 4
    mempool_destroy(pool)
    assert not a.warnings and not b.warnings and hwemu.current().machine is b
    assert b.slab.find_cache("kmalloc-64").nr_live == live[b]
    assert a.slab.find_cache("kmalloc-64").nr_live == live[a] - 2   # the reserve, gone


def test_a_zero_size_poisoned_element_oopses_at_zero_size_ptr(boot):
    """slub_debug poisons a reserved element: ``memset(obj, POISON_FREE, size - 1)``
    with ``size_t size`` 0 covers the whole address space from ``ZERO_SIZE_PTR``."""
    from mempool import mempool_create_kmalloc_pool
    boot("tiny", debug__slub_debug_on=True)
    with pytest.raises(Oops, match="0000000000000010"):
        mempool_create_kmalloc_pool(4, 0)


# ---------------------------------------------------------------- the accessors, any input

ADDRS = st.one_of(
    st.integers(-(1 << 65), 1 << 65),
    st.integers(0, 4096), st.integers(U64 - 4096, U64 - 1), st.integers(-4096, -1),
    st.sampled_from(["buf", "buf_end", "lo", "hi", "vm", "vm_guard", "end", "base"]))
LENGTHS = st.one_of(st.integers(-8, 64), st.sampled_from(
    [0, -1, 1 << 31, 1 << 32, 1 << 40, 1 << 62, 1 << 63, U64 - 1, U64, 1 << 70, -(1 << 64)]))
ACCESSORS = st.sampled_from(["load", "store", "read_bytes", "write_bytes", "memset",
                             "memcpy_src", "memcpy_dst"])


@pytest.fixture(scope="module", params=[False, True], ids=["kasan-off", "kasan-on"])
def places(request):
    with hwemu.boot(TINY, overrides={"kasan.enabled": request.param,
                                     "kasan.multi_shot": True}) as m:
        buf = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
        vm = hwemu.vmalloc(PAGE_SIZE)
        yield {"buf": buf, "buf_end": buf + 60, "lo": m.space.fast_lo, "hi": m.space.fast_hi - 8,
               "vm": vm, "vm_guard": vm + PAGE_SIZE - 4, "end": m.space.end - 4,
               "base": m.space.base, "machine": m}


def _call(op: str, addr: int, n: int, buf: int):
    if op == "load":
        return hwemu.load(addr, min(max(n, 1), 8) if n in (1, 2, 4, 8, 16) else 8)
    if op == "store":
        return hwemu.store(addr, 8, n & 0xFF)
    if op == "read_bytes":
        return hwemu.read_bytes(addr, n)
    if op == "write_bytes":
        return hwemu.write_bytes(addr, bytes(min(max(n, 0), 64)))
    if op == "memset":
        return hwemu.memset(addr, 0x5A, n)
    if op == "memcpy_src":
        return hwemu.memcpy(buf, addr, n)
    return hwemu.memcpy(addr, buf, n)


@settings(derandomize=True, max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=ACCESSORS, addr=ADDRS, n=LENGTHS)
def test_any_access_is_answered_by_an_oops_or_a_clear_exception(places, op, addr, n):
    if isinstance(addr, str):
        addr = places[addr]
    buf = places["buf"]
    try:
        _call(op, addr, n, buf)
    except (Oops, AddressError, MachineDown):
        pass
    except ValueError as exc:   # a length that is no size_t, a value that does not fit
        assert "length" in str(exc) or "fit" in str(exc), exc
    except KernelError as exc:
        pytest.fail(f"{op}({addr:#x}, {n:#x}): {type(exc).__name__}: {exc}")
    finally:
        hwemu.memset(buf, 0, 64)   # undo what a wild write into it did


def test_a_sample_of_the_wild_access_fuzz():
    """200 of ``make fuzz``'s accesses, one batch per machine kind; no time limit here
    (the script itself times, tests do not)."""
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz_access.py"),
                        "--accesses", "200", "--batch", "50", "--seed", "7", "--slow-ms", "0"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "crashes: 0  hangs: 0  worker errors: 0" in r.stdout
