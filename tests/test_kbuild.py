"""Kernel C on the emulated machine (hwemu.kbuild): a block driver around a mempool and
a reserve pool, both written here in kernel style (tests/kbuild/), compiled against
hwemu and run on its machines: calls both ways, the build cache, gcc's errors, oopses
and KASAN reports naming C functions and lines, interrupts, BUG/WARN, and a race in C
found by the schedule explorer and replayed.

The C includes tests/kbuild/kdrv.h, the kernel API it uses written on hwemu's call
table (hwemu/rt.h). Lines the tests look for are marked in the C with "blkdrv:"
comments and found by :func:`line_of`, not hard-coded.
"""
import re
import sys
import time
from pathlib import Path

import pytest

import helpers

import hwemu
from hwemu import GFP_KERNEL, kmalloc, store
from hwemu import kbuild

HERE = Path(__file__).resolve().parent
KB = HERE / "kbuild"
BLKDRV, RESPOOL = KB / "blkdrv.c", KB / "respool.c"
DRIVER = [BLKDRV, RESPOOL]
TINY = str(HERE.parent / "configs" / "tiny.yaml")
KASAN = pytest.mark.hwemu_config(TINY, kasan__enabled=True)
NO_KASAN = pytest.mark.hwemu_config(TINY, kasan__enabled=False)
MIN_NR = 4

pytestmark = pytest.mark.skipif(sys.platform != "linux" or sys.maxsize < 2**32,
                                reason="kernel C runs on 64-bit Linux hosts only")


def line_of(marker: str, path: Path = BLKDRV) -> int:
    return helpers.line_of(marker, path)


def driver(**kwargs):
    return kbuild.load(DRIVER, **kwargs)


def one_request():
    """The driver, and a device of it with one 512-byte request submitted."""
    mod = driver()
    dev = mod.blkdrv_create(MIN_NR)
    mod.blkdrv_submit(dev, 1, 512)
    return mod, dev


def wild_oops(machine, address, match):
    """blkdrv_wild(``address``) in uninstrumented C: an Oops matching ``match``; the
    driver and the log."""
    mod = driver(kasan=False)
    with pytest.raises(hwemu.Oops, match=match):
        mod.blkdrv_wild(address)
    return mod, machine.dmesg()


# ---------------------------------------------------------------- load, call, cache

@NO_KASAN
def test_load_and_call(hwemu_machine):
    mod = driver()
    assert {"blkdrv_create", "blkdrv_submit", "blkdrv_complete", "blkdrv_destroy",
            "respool_create", "respool_alloc", "respool_free", "respool_destroy",
            "racy_inc", "empty", "hwemu_calls"} <= set(mod.exports)
    # static functions are not exported
    assert not {"add_element", "remove_element", "blkdrv_queue"} & set(mod.exports)
    assert mod.sources == DRIVER and mod.kasan is False
    with pytest.raises(AttributeError, match="no exported function 'add_element'"):
        mod.add_element   # noqa: B018
    assert mod.empty() is None
    pid = hwemu.current().pid
    assert mod.hwemu_calls(3) == 3 * pid   # C -> hwemu -> C, in the calling task

    pool = mod.respool_create(MIN_NR, 64)
    assert pool and mod.respool_curr_nr(pool) == MIN_NR
    got = [mod.respool_alloc(pool) for _ in range(MIN_NR + 1)]
    assert got[-1] == 0 and len(set(got[:-1])) == MIN_NR       # then the reserve is dry
    for element in reversed(got[:-1]):
        mod.respool_free(pool, element)
    # LIFO: the element given back last is handed out first
    assert mod.respool_alloc(pool) == got[0]
    mod.respool_free(pool, got[0])
    assert mod.respool_curr_nr(pool) == MIN_NR
    mod.respool_destroy(pool)


def test_second_load_comes_from_the_cache():
    kbuild.load(RESPOOL, kasan=False)   # built, or already in the cache
    times = []
    for _ in range(3):
        t = time.perf_counter()
        mod = kbuild.load(RESPOOL, kasan=False)
        times.append(time.perf_counter() - t)
    assert "racy_inc" in mod.exports
    assert min(times) < 0.1, f"a cached load() took {min(times):.3f} s"


def test_a_compile_error_is_gccs(tmp_path):
    bad = tmp_path / "broken_drv.c"
    bad.write_text('#include "hwemu/rt.h"\n\nint broken(void)\n{\n\treturn undeclared_thing;\n}\n')
    with pytest.raises(kbuild.CompileError) as info:
        kbuild.load(bad, kasan=False)
    text = str(info.value)
    assert re.search(rf"^{re.escape(str(bad))}:5:\d+: error: .*undeclared_thing",
                     text, re.M), text
    assert "src0" not in text   # the build directory's copy is never named


# ---------------------------------------------------------------- faults

@NO_KASAN
def test_fault_in_uninstrumented_c_is_an_oops(hwemu_machine):
    mod, log = wild_oops(hwemu_machine, 0x100, "address: 0000000000000100")
    assert "BUG: kernel NULL pointer dereference, address: 0000000000000100" in log
    assert re.search(r"RIP: 0010:blkdrv_wild\+0x[0-9a-f]+/0x[0-9a-f]+", log), log
    assert mod.hwemu_calls(1) == hwemu.current().pid   # the process and machine go on


@KASAN
def test_wild_pointer_in_instrumented_c_is_an_oops(hwemu_machine, expect_kasan_report):
    mod = driver()
    assert mod.kasan is True
    line = line_of("blkdrv: wild pointer")
    with expect_kasan_report("wild-memory-access"), pytest.raises(hwemu.Oops):
        mod.blkdrv_wild(0x7ff0_0000_1000)
    log = hwemu_machine.dmesg()
    # KASAN's check, before the access, names the C function and line; then the oops
    assert "BUG: KASAN: wild-memory-access in blkdrv_wild+" in log
    assert re.search(rf"blkdrv_wild\+\S+ \S*blkdrv\.c:{line}\n", log), log
    assert "BUG: unable to handle page fault for address: 00007ff000001000" in log
    assert "Oops: 0000 [#1] PREEMPT SMP KASAN" in log
    assert re.search(r"RIP: 0010:blkdrv_wild\+", log), log
    dev = mod.blkdrv_create(MIN_NR)   # alive: the driver still works
    assert mod.blkdrv_submit(dev, 8, 4096) == 0
    assert hwemu.run_in_interrupt(mod.blkdrv_complete, dev) == 1
    mod.blkdrv_destroy(dev)


@NO_KASAN
def test_non_canonical_pointer_is_a_general_protection_fault(hwemu_machine):
    _, log = wild_oops(hwemu_machine, 0xdead_0000_0000_0100, "general protection fault")
    assert "NULL pointer dereference" not in log
    assert re.search(r"Oops: general protection fault: 0000 \[#1\]", log), log
    assert re.search(r"RIP: 0010:blkdrv_wild\+", log), log


# ---------------------------------------------------------------- the driver

def run_driver(machine, mod, rounds: int, per_round: int) -> int:
    """Submit ``per_round`` requests ``rounds`` times, completing each round from an
    interrupt on an idle CPU; the device, destroyed; returns the bytes completed."""
    dev = mod.blkdrv_create(MIN_NR)
    assert dev and mod.blkdrv_reserve(dev) == MIN_NR
    tags = []
    for r in range(rounds):
        tags += [mod.blkdrv_submit(dev, r * per_round + i, 512 * (i + 1))
                 for i in range(per_round)]
        assert machine.interrupt(mod.blkdrv_complete, dev).join() == per_round
    assert tags == list(range(rounds * per_round))
    n = rounds * per_round
    assert (mod.blkdrv_submitted(dev), mod.blkdrv_completed(dev),
            mod.blkdrv_completed_in_irq(dev)) == (n, n, n)
    assert mod.blkdrv_reserve(dev) == MIN_NR   # GFP_NOIO took from the slab, not the reserve
    total = mod.blkdrv_bytes(dev)
    mod.blkdrv_destroy(dev)
    return total


@NO_KASAN
def test_driver_completes_in_hard_irq(hwemu_machine):
    mod = driver()
    assert mod.blkdrv_in_hardirq() == 0
    assert hwemu.run_in_interrupt(mod.blkdrv_in_hardirq) == 1
    assert hwemu.run_in_interrupt(mod.blkdrv_in_hardirq, softirq=True) == 0
    assert run_driver(hwemu_machine, mod, 20, 10) == 20 * 512 * sum(range(1, 11))
    assert hwemu_machine.warnings == []
    assert "blkdrv: 4 requests in reserve" in hwemu_machine.dmesg()


@KASAN
def test_driver_under_kasan(hwemu_machine):
    mod = driver()
    assert run_driver(hwemu_machine, mod, 10, 10) == 10 * 512 * sum(range(1, 11))
    # the reserve, used and refilled from the completion
    dev = mod.blkdrv_create(MIN_NR)
    for i in range(MIN_NR):
        assert mod.blkdrv_submit_reserved(dev, i, 512) == i
    assert mod.blkdrv_submit_reserved(dev, 9, 512) < 0 and mod.blkdrv_reserve(dev) == 0
    assert hwemu.run_in_interrupt(mod.blkdrv_complete, dev) == MIN_NR
    assert mod.blkdrv_reserve(dev) == MIN_NR
    mod.blkdrv_destroy(dev)


@KASAN
def test_planted_use_after_free_in_the_completion(hwemu_machine, expect_kasan_report):
    mod = driver(defines={"PLANT_UAF": True})
    assert mod.kasan is True
    dev = mod.blkdrv_create(MIN_NR)
    mod.blkdrv_submit_reserved(dev, 7, 512)      # the pool is below min_nr: the free
    assert mod.blkdrv_reserve(dev) == MIN_NR - 1  # puts the request back, poisoned
    with expect_kasan_report("slab-use-after-free") as reports:
        assert hwemu.run_in_interrupt(mod.blkdrv_complete, dev) == 1
    [report] = reports
    text = hwemu_machine.dmesg()
    uaf = line_of("blkdrv: use after free")
    assert re.search(r"BUG: KASAN: slab-use-after-free in blkdrv_(complete|end_request)\+",
                     text), text
    assert "Read of size 4 at addr" in text
    # the C function of the bad read and its file:line, in the IRQ's stack
    assert re.search(rf"blkdrv_end_request\S* \S*blkdrv\.c:{uaf}\b", text), text
    assert re.search(r"<IRQ>\n.*\n?.*blkdrv_end_request", text), text
    assert "which belongs to the cache blkdrv_request of size 96" in text
    # where the request was taken from the reserve and given back to it, in C
    assert re.search(r"Allocated by task \d+:\n(.*\n)*?.*take_reserved\+\S+ \S*respool\.c:\d+",
                     text), text
    assert re.search(r"Freed by task \d+:\n(.*\n)*?.*add_element\+\S+ \S*respool\.c:\d+",
                     text), text
    assert report.bug_type == "slab-use-after-free"
    mod.blkdrv_destroy(dev)


@pytest.mark.parametrize("kasan", [
    pytest.param(True, marks=KASAN),
    pytest.param(False, marks=NO_KASAN)])
def test_bug_on_in_c_is_a_kernel_bug(hwemu_machine, kasan):
    mod, dev = one_request()
    line = line_of("blkdrv: destroyed with requests queued")
    with pytest.raises(hwemu.KernelBug, match=rf"kernel BUG at \S*blkdrv\.c:{line}!"):
        mod.blkdrv_destroy(dev)
    assert re.search(rf"kernel BUG at \S*blkdrv\.c:{line}!", hwemu_machine.dmesg())
    # the driver was left half-torn-down by design: finish the job
    assert hwemu.run_in_interrupt(mod.blkdrv_complete, dev) == 1
    mod.blkdrv_destroy(dev)


@KASAN
def test_bug_on_names_its_function(hwemu_machine):
    mod, dev = one_request()
    with pytest.raises(hwemu.KernelBug):
        mod.blkdrv_destroy(dev)
    try:
        assert re.search(r"RIP: 0010:blkdrv_destroy\+", hwemu_machine.dmesg())
    finally:
        hwemu.run_in_interrupt(mod.blkdrv_complete, dev)
        mod.blkdrv_destroy(dev)


@NO_KASAN
def test_warn_on_in_c(hwemu_machine):
    mod, dev = one_request()
    assert mod.blkdrv_complete(dev) == 1   # not in an interrupt: WARN_ON
    line = line_of("blkdrv: completion outside hard IRQ")
    [warning] = hwemu_machine.warnings
    assert re.search(rf"WARNING: CPU: \d+ PID: \d+ at \S*blkdrv\.c:{line} "
                     r"blkdrv_complete\+0x[0-9a-f]+/0x[0-9a-f]+", warning), warning
    assert mod.blkdrv_completed_in_irq(dev) == 0
    mod.blkdrv_destroy(dev)


# ---------------------------------------------------------------- a race in C

N = 20


def c_counter(machine):
    """Two tasks add N each to a counter in emulated memory with respool.c's racy_inc
    (read, cond_resched(), write): a lost-update race in C."""
    mod = kbuild.load(RESPOOL)
    counter = kmalloc(8, GFP_KERNEL)
    store(counter, 8, 0)

    def add():
        for _ in range(N):
            mod.racy_inc(counter)

    helpers.add_in_two_tasks(machine, add, counter, N)


def test_explorer_finds_the_race_in_c_and_replays_it():
    with pytest.raises(hwemu.ExploreFailure) as info:
        hwemu.explore(c_counter, schedules=100, strategy="pct", seed=0, config=TINY)
    failure = info.value
    assert failure.problems[0].startswith("AssertionError: lost update: counter ")
    module = __name__.rpartition(".")[2]
    assert failure.replay.startswith(f"hwemu.replay({module}.c_counter, strategy='pct', ")
    assert str(failure).splitlines()[-1] == f"replay: {failure.replay}"
    # the printed replay, run as printed: the same lost update
    with pytest.raises(hwemu.ExploreFailure) as again:
        eval(failure.replay, {"hwemu": hwemu, module: sys.modules[__name__]})  # noqa: S307
    assert again.value.problems == failure.problems


def test_the_readmes_c_excerpt_is_blkdrv():
    """README's "Testing your driver's C code" shows C from blkdrv.c (its Python block
    is run by tests/test_readme.py)."""
    readme = (HERE.parent / "README.md").read_text()
    section = readme.split("## Testing your driver's C code\n", 1)[1].split("\n## ", 1)[0]
    [excerpt] = re.findall(r"```c\n(.*?)```\n", section, re.S)
    assert excerpt in BLKDRV.read_text()
    assert f"blkdrv.c:{line_of('blkdrv: use after free')} [inline]" in section
