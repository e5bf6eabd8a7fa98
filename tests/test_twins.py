"""The C fast paths of the hardware primitives against their Python twins.

``hwemu._speedups`` has a C fast path for each checked accessor (load, store, read_bytes,
write_bytes, memset, memcpy) and for KASAN's shadow check and (un)poisoning; each is
bound to its Python twin, which it hands every case it does not take. Here both get the
same inputs, each on a fresh machine set up the same way (same addresses, same state),
and must leave the same trace: the same return value or the same exception (type and
message), the same memory and shadow bytes, the same KASAN reports and the same log.
The C side is skipped when the extension is not built.
"""
from __future__ import annotations

import array
import os
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import import_fresh_module

import hwemu
from hwemu import access, spinlock, vmem
from hwemu.errors import MachineDown
from hwemu.kasan import Kasan
from hwemu.page_types import PAGE_SIZE

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml"
SIZES = (1, 2, 4, 8, 16)
KASAN_METHODS = ("check_access", "poison", "unpoison")
SPIN_WORDS = ("spin_trylock_word", "spin_unlock_word")

speedups = vmem._speedups
needs_c = pytest.mark.skipif(speedups is None or access._bind is None,
                             reason="hwemu._speedups is not built")


class Addr(int):
    """An int subclass: not taken by either fast path, but a valid address."""


def twin_of(m, name):
    """The Python twin of ``name`` for machine ``m``."""
    if name in KASAN_METHODS:
        return getattr(Kasan, name).__get__(m.kasan)
    if name in SPIN_WORDS:
        return getattr(spinlock, "py_" + name)
    return getattr(access, "py_" + name)


def c_of(m, name):
    """The C fast path of ``name`` bound to its twin, whichever mode the suite runs in."""
    if name in KASAN_METHODS:
        return speedups.bind(name, twin_of(m, name), m.space.base)
    return speedups.bind(name, twin_of(m, name))


# ---------------------------------------------------------------- the same machine twice

def boot(kasan: bool):
    return hwemu.boot(CONFIG, overrides={"kasan.enabled": kasan, "kasan.multi_shot": True})


def prepare(m) -> SimpleNamespace:
    """The same allocations on every fresh machine; the addresses the cases use."""
    ns = SimpleNamespace()
    ns.buf = hwemu.kmalloc(256, hwemu.GFP_KERNEL)   # clean, with a pattern
    access.py_write_bytes(ns.buf, bytes(range(256)))
    ns.obj = hwemu.kmalloc(20, hwemu.GFP_KERNEL)    # 20 bytes usable: a redzone after
    access.py_write_bytes(ns.obj, b"o" * 20)
    ns.freed = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
    hwemu.kfree(ns.freed)                           # in the quarantine under KASAN
    ns.vm = hwemu.vmalloc(PAGE_SIZE)                # its guard page follows
    access.py_memset(ns.vm, 0x76, PAGE_SIZE)
    ns.lo, ns.hi = m.space.fast_lo, m.space.fast_hi
    ns.end = m.space.end
    with boot(False) as gone:                       # an address of a shut-down machine
        ns.dead = gone.layout["direct map"][0] + 64
    # spinlock_t words: free, held by pid 7 on CPU 3, spun on, never initialised.
    ns.lock, ns.held, ns.busy, ns.raw = (ns.buf + 64 + 24 * i for i in range(4))
    for lock in (ns.lock, ns.held, ns.busy):
        spinlock.spin_lock_init(lock)
    spinlock.py_spin_trylock_word(ns.held, 3, 7)
    spinlock.py_spin_trylock_word(ns.busy, 3, 7)
    spinlock.py_spin_trylock_word(ns.busy, 4, 8)
    access.py_write_bytes(ns.raw, bytes(24))
    return ns


def snapshot(m, ns) -> list[bytes]:
    """The bytes (and shadow bytes) of every place a case may write."""
    sp = m.space
    pages = {a & -PAGE_SIZE for a in (ns.buf, ns.obj, ns.freed, ns.hi - PAGE_SIZE)}
    out = [bytes(sp.mv[p - sp.base:p - sp.base + PAGE_SIZE]) for p in sorted(pages)]
    out.append(bytes(sp.mv[ns.vm - sp.base:ns.vm - sp.base + PAGE_SIZE]))
    if m.kasan.enabled:
        for p in sorted(pages) + [ns.vm]:
            s = m.kasan.kasan_mem_to_shadow(p) - sp.base
            out.append(bytes(sp.mv[s:s + PAGE_SIZE // 8 * 2]))
    return out


def log_since(m, mark: int) -> list[str]:
    return [re.sub(r"^\[\s*\d+\.\d+\] ", "", line)
            for line in m.dmesg()[mark:].splitlines()]


def call(fn, args, kwargs):
    """One place both sides call from: the frames a report or an oops names agree."""
    return fn(*args, **kwargs)


def trace(impl_of, name: str, case, kasan: bool) -> dict:
    """Everything a call of ``impl_of(m, name)`` with ``case``'s arguments leaves."""
    with boot(kasan) as m:
        ns = prepare(m)
        args, kwargs = case(ns)
        fn = impl_of(m, name)
        mark, nreports = len(m.dmesg()), len(m.kasan.reports)
        try:
            result: tuple = ("returned", call(fn, args, kwargs))
        except Exception as exc:   # noqa: BLE001 - the exception is what is compared
            result = ("raised", type(exc), str(exc))
        return {"result": result, "memory": snapshot(m, ns),
                "reports": [r.text for r in m.kasan.reports[nreports:]],
                "log": log_since(m, mark), "tainted": m.tainted}


def assert_twins_agree(name: str, case, kasan: bool) -> dict:
    c_side, py_side = (trace(impl_of, name, case, kasan) for impl_of in (c_of, twin_of))
    for what in ("result", "reports", "log", "tainted", "memory"):
        assert c_side[what] == py_side[what], f"{name}: the {what} differs"
    return py_side


# ---------------------------------------------------------------- the cases

def emulated(ns, off: int, n: int):
    """A view of emulated memory itself (``buf + off``, ``n`` bytes): overlapping copies."""
    sp = vmem.space_of(ns.buf)
    return sp.mv[ns.buf - sp.base + off:][:n]


NAMES = {"P": PAGE_SIZE, "np": np, "array": array, "Addr": Addr, "emulated": emulated}


KASAN_OFF_ON = pytest.mark.parametrize("kasan", [False, True], ids=["kasan-off", "kasan-on"])


def over(cases):
    """Parametrize a test's ``name, case`` over the rows of ``table()`` lists, each
    named after its accessor and label."""
    return pytest.mark.parametrize("name,case", [(n, f) for n, _, f in cases],
                                   ids=[f"{n}-{label}" for n, label, _ in cases])


def table(name: str, text: str) -> list:
    """``(name, label, case)`` from lines of ``label  arguments``: the arguments are a
    Python expression over ``ns`` (what :func:`prepare` made), ``P``, ``np``, ``array``,
    ``Addr`` and ``emulated``; ``kw=`` marks keyword arguments (``key=value, ...``)."""
    cases = []
    for line in text.strip().splitlines():
        label, expr = line.split(None, 1)

        def case(ns, expr=expr):
            if expr.startswith("kw="):
                pos, _, kw = expr[3:].partition(";")
                return (eval(f"({pos},)" if pos.strip() else "()", NAMES, {"ns": ns}),
                        eval(f"dict({kw})", NAMES, {"ns": ns}))
            return eval(f"({expr},)", NAMES, {"ns": ns}), {}
        cases.append((name, label, case))
    return cases


LOAD = "\n".join(f"buf-{s}  ns.buf, {s}\nbuf+3-{s}  ns.buf + 3, {s}\n"
                 f"span-last-{s}  ns.hi - {s}, {s}" for s in SIZES) + """
redzone             ns.obj + 20, 4
partial-ok          ns.obj + 16, 4
partial-over        ns.obj + 16, 8
last-usable         ns.obj + 19, 1
into-partial        ns.obj + 12, 16
use-after-free      ns.freed, 8
vmalloc             ns.vm + 8, 8
vmalloc-guard       ns.vm + P, 8
into-guard          ns.vm + P - 4, 8
over-span-end       ns.hi - 4, 8
past-span-end       ns.hi, 8
before-span         ns.lo - 4, 8
shut-down           ns.dead, 8
null                0, 8
low                 16, 8
wild                1 << 63, 8
negative            -8, 8
top                 (1 << 64) - 8, 8
over-top            (1 << 64) - 4, 8
2**64               1 << 64, 8
huge                1 << 100, 8
end-of-machine      ns.end - 8, 8
bool-addr           True, 8
float-addr          float(ns.buf), 8
str-addr            "0x1000", 8
none-addr           None, 8
int-subclass        Addr(ns.buf), 8
numpy-addr          np.int64(ns.buf), 8
size-0              ns.buf, 0
size-3              ns.buf, 3
size-32             ns.buf, 32
size--1             ns.buf, -1
size-float          ns.buf, 8.0
size-bool           ns.buf, True
size-str            ns.buf, "8"
size-none           ns.buf, None
size-2**70          ns.buf, 1 << 70
keywords            kw=; addr=ns.buf, size=8
size-keyword        kw=ns.buf; size=4
bad-keyword         kw=ns.buf, 8; nope=1
one-arg             ns.buf
three-args          ns.buf, 8, 9
"""

STORE = "\n".join(
    f"{s}-{v:#x}  ns.buf + 1, {s}, {v}" for s in SIZES
    for v in (0, 1, (1 << 8 * s) - 1, -1, -(1 << (8 * s - 1)), 0x0123456789ABCDEF % (1 << 8 * s),
              1 << 8 * s, -(1 << (8 * s - 1)) - 1, 1 << 200, -(1 << 200))) + """
value-float         ns.buf, 8, 1.5
value-bool          ns.buf, 8, True
value-none          ns.buf, 8, None
value-str           ns.buf, 8, "x"
value-int-subclass  ns.buf, 8, Addr(5)
value-numpy         ns.buf, 8, np.int64(-5)
redzone             ns.obj + 20, 4, 1
partial-over        ns.obj + 16, 8, 1
use-after-free      ns.freed, 8, 7
vmalloc             ns.vm, 8, 7
vmalloc-guard       ns.vm + P, 8, 1
over-span-end       ns.hi - 4, 8, 1
shut-down           ns.dead, 8, 1
null                0, 8, 0
bad-size            ns.buf, 3, 0
bool-addr           True, 8, 0
int-subclass-addr   Addr(ns.buf), 2, 0xBEEF
bad-size-and-value  ns.buf, 7, 1 << 80
keywords            kw=ns.buf, 8; value=5
two-args            ns.buf, 8
"""

READ_BYTES = """
1                   ns.buf, 1
7                   ns.buf + 1, 7
256                 ns.buf, 256
whole-obj           ns.obj, 20
obj-and-redzone     ns.obj, 21
obj+4-32            ns.obj + 4, 32
use-after-free      ns.freed, 1
vmalloc-page        ns.vm, P
into-guard          ns.vm + P - 100, 200
span-end            ns.hi - 16, 16
over-span-end       ns.hi - 16, 32
before-span         ns.lo - 1, 2
shut-down           ns.dead, 8
null                0, 1
zero                ns.buf, 0
zero-null           0, 0
negative            ns.buf, -1
float-n             ns.buf, 1.0
bool-n              ns.buf, True
bool-addr           True, 1
negative-addr       -1, 1
last-byte           (1 << 64) - 1, 1
over-top            (1 << 64) - 1, 2
huge-n              ns.buf, 1 << 62
n-2**40             ns.buf, 1 << 40
n-2**64-1           ns.buf, (1 << 64) - 1
n-2**64             ns.buf, 1 << 64
wraps               (1 << 64) - 8, 16
err-ptr             -12, 8
vmalloc-huge        ns.vm, 1 << 40
"""

WRITE_BYTES = """
bytes               ns.buf, b"hello"
bytearray           ns.buf + 1, bytearray(100)
strided             ns.buf, memoryview(bytes(range(64)))[::2]
str                 ns.buf, "str"
int                 ns.buf, 5
empty               ns.buf, b""
empty-null          0, b""
array               ns.buf, array.array("i", [1, 2, 3])
ndarray-2d          ns.buf, np.arange(6, dtype=np.int16).reshape(2, 3)
ndarray-0d          ns.buf, np.array(1.5)
ndarray-strided     ns.buf, np.arange(8, dtype=np.int8)[::2]
overlap-forward     ns.buf + 4, emulated(ns, 0, 64)
overlap-backward    ns.buf, emulated(ns, 4, 64)
whole-obj           ns.obj, bytes(20)
obj-and-redzone     ns.obj, bytes(21)
use-after-free      ns.freed, b"x"
into-guard          ns.vm + P - 6, bytes(10)
over-span-end       ns.hi - 4, bytes(8)
shut-down           ns.dead, b"x"
null                0, b"x"
bool-addr           True, b"x"
keywords            kw=; addr=ns.buf, data=b"kw"
"""

MEMSET = """
256                 ns.buf, 0x5A, 256
negative-c          ns.buf + 3, -1, 10
c-0x1ff             ns.buf, 0x1FF, 8
c-2**70             ns.buf, (1 << 70) + 7, 8
c--2**70            ns.buf, -(1 << 70) - 3, 8
bool-c              ns.buf, True, 8
float-c             ns.buf, 1.5, 8
zero                ns.buf, 0, 0
negative-n          ns.buf, 0, -1
float-n             ns.buf, 0, 1.0
whole-obj           ns.obj, 0, 20
obj-and-redzone     ns.obj, 0, 21
use-after-free      ns.freed, 0, 8
into-guard          ns.vm + P - 100, 0, 200
over-span-end       ns.hi - 8, 0, 16
shut-down           ns.dead, 0, 1
null                0, 0, 1
bool-addr           True, 0, 1
huge-n              ns.buf, 0, 1 << 62
n-2**40             ns.buf, 0, 1 << 40
n-2**64-1           ns.buf, 0, (1 << 64) - 1
n-2**64             ns.buf, 0, 1 << 64
n--2**70            ns.buf, 0, -(1 << 70)
wraps               (1 << 64) - 8, 0, 16
err-ptr             -12, 0, 8
vmalloc-huge        ns.vm, 0, 1 << 40
int-subclass-addr   Addr(ns.buf), 1, 4
keywords            kw=ns.buf; c=1, n=4
"""

MEMCPY = """
disjoint            ns.buf + 64, ns.buf, 64
overlap-forward     ns.buf + 8, ns.buf, 64
overlap-backward    ns.buf, ns.buf + 8, 64
same                ns.buf, ns.buf, 16
src-redzone         ns.buf, ns.obj, 21
dst-redzone         ns.obj, ns.buf, 21
src-freed           ns.buf, ns.freed, 8
dst-vmalloc         ns.vm, ns.buf, 64
src-vmalloc         ns.buf, ns.vm, 64
src-guard           ns.buf, ns.vm + P - 8, 16
dst-guard           ns.vm + P - 8, ns.buf, 16
src-shut-down       ns.buf, ns.dead, 8
dst-shut-down       ns.dead, ns.buf, 8
src-null            ns.buf, 0, 8
dst-null            0, ns.buf, 8
zero                ns.buf, ns.buf + 64, 0
negative-n          ns.buf, ns.buf + 64, -1
bool-dst            True, ns.buf, 8
bool-src            ns.buf, True, 8
dst-over-span-end   ns.hi - 8, ns.buf, 16
src-over-span-end   ns.buf, ns.hi - 8, 16
huge-n              ns.buf + 64, ns.buf, 1 << 40
src-wraps           ns.buf, (1 << 64) - 8, 16
"""

CASES = (table("load", LOAD) + table("store", STORE) + table("read_bytes", READ_BYTES) +
         table("write_bytes", WRITE_BYTES) + table("memset", MEMSET) +
         table("memcpy", MEMCPY))


@needs_c
@KASAN_OFF_ON
@over(CASES)
def test_accessor_twins_agree(name, case, kasan):
    assert_twins_agree(name, case, kasan)


CHECK_ACCESS = "\n".join(f"clean-{s}  ns.buf, {s}, False"
                         for s in (1, 2, 7, 8, 9, 16, 17, 64, 256)) + """
whole-obj           ns.obj, 20, False
obj-and-redzone     ns.obj, 21, False
partial-ok          ns.obj + 16, 4, True
partial-over        ns.obj + 16, 5, True
last-usable         ns.obj + 19, 1, False
redzone             ns.obj + 20, 1, False
use-after-free      ns.freed, 1, False
use-after-free-64   ns.freed, 64, True
vmalloc-guard       ns.vm + P, 8, False
zero                ns.obj, 0, False
negative            ns.obj, -1, False
str-write           ns.obj + 20, 1, "yes"
megabyte            ns.buf, 1 << 20, False
float-size          ns.buf, 8.0, False
end-of-machine      ns.end - 8, 16, False
keywords            kw=ns.buf; size=8, write=True
"""

POISON = """
16                  ns.buf, 16, 0xFC
64                  ns.buf + 16, 64, 0xFB
zero                ns.buf, 0, 0xFF
unaligned-addr      ns.buf + 4, 8, 0xFC
unaligned-size      ns.buf, 12, 0xFC
value-256           ns.buf, 16, 256
value--1            ns.buf, 16, -1
negative-size       ns.buf, -8, 0xFC
vmalloc             ns.vm, P, 0xF8
past-end            ns.end - 8, 16, 0
bool-value          ns.buf, 16, True
float-size          ns.buf, 16.0, 0xFC
"""

UNPOISON = """
16                  ns.obj, 16
13                  ns.obj, 13
1                   ns.obj + 16, 1
zero                ns.obj, 0
freed               ns.freed, 64
unaligned-addr      ns.obj + 4, 8
negative            ns.obj, -1
float-size          ns.obj, 13.0
past-end            ns.end - 8, 16
"""

KASAN_CASES = (table("check_access", CHECK_ACCESS) + table("poison", POISON) +
               table("unpoison", UNPOISON))

SPIN = """
free                ns.lock, 1, 9
held-by-another     ns.held, 1, 9
held-by-me          ns.held, 1, 7
held-on-my-cpu      ns.held, 3, 9
contended           ns.busy, 1, 9
never-initialised   ns.raw, 1, 9
in-a-redzone        ns.obj + 8, 1, 9
freed               ns.freed, 1, 9
vmalloc-guard       ns.vm + P - 8, 1, 9
shut-down           ns.dead, 1, 9
null                0, 1, 9
bool-cpu            ns.lock, True, 9
negative-owner      ns.lock, 1, -1
float-lock          float(ns.lock), 1, 9
keywords            kw=ns.lock; cpu=1, owner=9
"""
UNLOCK = SPIN + """mine                ns.held, 3, 7
mine-contended      ns.busy, 3, 7
wrong-cpu           ns.held, 4, 7
"""
SPIN_CASES = table("spin_trylock_word", SPIN) + table("spin_unlock_word", UNLOCK)


@needs_c
@KASAN_OFF_ON
@over(SPIN_CASES)
def test_spinlock_word_twins_agree(name, case, kasan):
    assert_twins_agree(name, case, kasan)


@needs_c
@over(KASAN_CASES)
def test_kasan_twins_agree(name, case):
    assert_twins_agree(name, case, kasan=True)


# ---------------------------------------------------------------- a few outcomes, checked

@needs_c
def test_the_cases_do_reach_the_slow_paths():
    """The comparisons above are not vacuous: a redzone access reports, a guard page
    oopses, a shut-down machine raises MachineDown, in both modes alike."""
    def case_of(name, label):
        return next(f for n, lab, f in CASES if n == name and lab == label)
    side = assert_twins_agree("load", case_of("load", "redzone"), kasan=True)
    assert side["reports"] and "slab-out-of-bounds" in side["reports"][0]
    side = assert_twins_agree("load", case_of("load", "vmalloc-guard"), kasan=False)
    assert side["result"][1] is hwemu.Oops and any("#PF" in line for line in side["log"])
    side = assert_twins_agree("store", case_of("store", "shut-down"), kasan=False)
    assert side["result"][1] is MachineDown
    side = assert_twins_agree("store", case_of("store", "8-0x1"), kasan=True)
    assert side["result"] == ("returned", None) and not side["reports"]


@needs_c
def test_every_offset_around_an_object_agrees():
    """Loads and stores of every size at every offset around a kmalloc object and its
    redzone: the same values and the same reports, C then twin on one machine."""
    with boot(True) as m:
        obj = hwemu.kmalloc(40, hwemu.GFP_KERNEL)
        c_load, py_load = c_of(m, "load"), access.py_load
        c_store, py_store = c_of(m, "store"), access.py_store
        access.py_load(obj + 40, 1)   # a first report: the taint in later ones is steady
        for off in range(-16, 72):
            for size in SIZES:
                got = []
                for fn in (c_load, py_load):
                    n = len(m.kasan.reports)
                    got.append((call(fn, (obj + off, size), {}),
                                [r.text for r in m.kasan.reports[n:]]))
                assert got[0] == got[1], (off, size)
                value = (off * 0x0101010101010101 + size) & ((1 << (8 * size)) - 1)
                for fn in (c_store, py_store):
                    access.py_write_bytes(obj, bytes(40))
                    n = len(m.kasan.reports)
                    call(fn, (obj + off, size, value), {})
                    got.append((m.space.mv[obj - m.space.base - 16:][:88].tobytes(),
                                [r.text for r in m.kasan.reports[n:]]))
                assert got[2] == got[3], (off, size)
        hwemu.kfree(obj)


class Sentinel:
    """A twin that only records that the C function handed it a call."""

    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return "twin"


@needs_c
@KASAN_OFF_ON
def test_the_fast_paths_need_no_twin(kasan):
    """C alone does a clean direct-map access (the comparisons above would pass with a C
    function that always handed over) and hands over the rest, arguments unchanged."""
    with boot(kasan) as m:
        ns = prepare(m)
        fast = {"load": (ns.buf, 8), "store": (ns.buf, 16, -1), "read_bytes": (ns.buf, 256),
                "write_bytes": (ns.buf, bytearray(b"xyz")), "memset": (ns.buf, 1, 256),
                "memcpy": (ns.buf + 128, ns.buf, 64)}
        slow = {"load": (ns.vm, 8), "store": (ns.buf, 3, 0), "read_bytes": (ns.buf, 0),
                "write_bytes": (ns.dead, b"x"), "memset": (True, 0, 1),
                "memcpy": (ns.buf, ns.hi - 8, 16)}
        if kasan:
            slow["load"] = (ns.obj + 20, 1)
            fast.update(check_access=(ns.buf, 256, True), poison=(ns.buf, 256, 0xFC),
                        unpoison=(ns.buf, 256))
            slow.update(check_access=(ns.obj, 21, False), poison=(ns.buf + 4, 8, 0xFC),
                        unpoison=(ns.buf + 4, 8))
        for name, args in fast.items():
            twin = Sentinel()
            base = (m.space.base,) if name in KASAN_METHODS else ()
            assert speedups.bind(name, twin, *base)(*args) != "twin", name
            assert not twin.calls, name
        for name, args in slow.items():
            twin = Sentinel()
            base = (m.space.base,) if name in KASAN_METHODS else ()
            assert speedups.bind(name, twin, *base)(*args) == "twin", name
            assert twin.calls == [(args, {})], name
        assert access.py_read_bytes(ns.buf + 128, 64) == bytes([1]) * 64


@needs_c
def test_a_direct_call_names_the_same_offset():
    """A caller's offset names its call instruction whichever the callee is."""
    texts = []
    for name in ("c", "py"):
        with boot(True) as m:   # a machine each: the first report taints
            fn = c_of(m, "load") if name == "c" else access.py_load
            obj = hwemu.kmalloc(20, hwemu.GFP_KERNEL)
            fn(obj + 20, 4)
            texts.append(m.kasan.reports[-1].text)
            hwemu.kfree(obj)
    assert texts[0] == texts[1]


# ---------------------------------------------------------------- the mirror of vmem

@needs_c
def test_the_mirror_follows_boot_and_shutdown():
    with boot(True) as m:
        sp = m.space
        mine = [e for e in speedups.registered() if e[0] == sp.base]
        assert mine == [(sp.base, sp.end, sp.fast_lo, sp.fast_hi, m.KASAN_SHADOW_OFFSET)]
        base = sp.base
    assert all(e[0] != base for e in speedups.registered())
    with boot(False) as m:
        mine = [e for e in speedups.registered() if e[0] == m.space.base]
        assert mine[0][4] == 0   # no KASAN: no shadow to read


@needs_c
def test_an_old_address_is_machine_down_in_both_modes():
    with boot(True) as m:
        p = hwemu.kmalloc(8, hwemu.GFP_KERNEL)
        c_load = c_of(m, "load")
        assert c_load(p, 8) == access.py_load(p, 8)
    for fn in (c_load, access.py_load, hwemu.load):
        with pytest.raises(MachineDown, match="has been shut down"):
            fn(p, 8)


@needs_c
def test_the_mirror_refuses_spans_that_are_not_mapped():
    with boot(False) as m:
        sp = m.space
        lo, hi = sp.fast_lo, sp.fast_hi
        with pytest.raises(ValueError, match="not in a linear region"):
            sp.fast_hi = hi + PAGE_SIZE   # the guard after the direct map
        sp.fast_hi = hi
        with pytest.raises(ValueError, match="outside the space"):
            speedups.space_update(sp.base, sp.base - PAGE_SIZE, hi, 0)
        with pytest.raises(ValueError, match="shadow"):
            speedups.space_update(sp.base, lo, hi, 1)
        with pytest.raises(KeyError):
            speedups.space_update(sp.end, 0, 0, 0)
        with pytest.raises(ValueError, match="overlaps"):
            speedups.space_register(sp.base + PAGE_SIZE, sp.base + 2 * PAGE_SIZE)
        assert [e for e in speedups.registered() if e[0] == sp.base] == \
            [(sp.base, sp.end, lo, hi, 0)]
        assert access.py_load(lo, 8) == c_of(m, "load")(lo, 8)


@needs_c
@pytest.mark.parametrize("name", ["load", "read_bytes", "memset"])
def test_both_refuse_a_thread_that_is_no_task(name):
    """The C fast path takes only accesses of current's machine: a plain thread's goes
    to the twin, which refuses it as current() would."""
    args = {"load": (8,), "read_bytes": (8,), "memset": (0, 8)}[name]
    with boot(False) as m:
        p = hwemu.kmalloc(64, hwemu.GFP_KERNEL)
        got = []

        def plain():
            for fn in (c_of(m, name), twin_of(m, name)):
                try:
                    fn(p, *args)
                except Exception as exc:   # noqa: BLE001 - compared below
                    got.append((type(exc), str(exc)))
        t = threading.Thread(target=plain, name="plain")
        t.start()
        t.join()
        assert len(got) == 2 and got[0] == got[1] and "not a task" in got[0][1]


@needs_c
def test_bind_rejects_what_it_cannot_bind():
    with pytest.raises(ValueError, match="no C fast path"):
        speedups.bind("kmalloc", access.py_load)
    with pytest.raises(TypeError):
        speedups.bind("load", access.py_load, 1 << 44)
    with pytest.raises(TypeError):
        speedups.bind("poison", access.py_load)
    with pytest.raises(TypeError):
        speedups.bind("load", None)


# ---------------------------------------------------------------- which one is chosen

def test_the_mode_follows_the_build_and_the_environment():
    built = speedups is not None and access._bind is not None
    expected = built and os.environ.get("HWEMU_PURE") != "1"
    assert access.ACCELERATED is expected
    assert hwemu.kasan.ACCELERATED is expected
    assert (hwemu.load is access.py_load) is not expected
    with boot(True) as m:
        assert (type(m.kasan.check_access) is type(len)) is expected
        assert m.kasan_check == m.kasan.check_access


def test_without_the_extension_the_twins_serve(monkeypatch):
    monkeypatch.setattr(hwemu, "access", access)   # the import rebinds the attribute
    fresh = import_fresh_module("hwemu.access", blocked=("hwemu._speedups",))
    assert fresh.ACCELERATED is False
    assert fresh.load is fresh.py_load and fresh.memcpy is fresh.py_memcpy
    with boot(False):
        p = hwemu.kmalloc(16, hwemu.GFP_KERNEL)
        fresh.store(p, 8, -2)
        assert fresh.load(p, 8) == (1 << 64) - 2
        hwemu.kfree(p)


def test_hwemu_pure_forces_the_twins(monkeypatch):
    monkeypatch.setenv("HWEMU_PURE", "1")
    monkeypatch.setattr(hwemu, "access", access)   # the imports rebind the attributes
    monkeypatch.setattr(hwemu, "kasan", hwemu.kasan)
    fresh = import_fresh_module("hwemu.access")
    assert fresh.ACCELERATED is False and fresh.load is fresh.py_load
    fresh_kasan = import_fresh_module("hwemu.kasan")
    assert fresh_kasan.ACCELERATED is False


@pytest.mark.parametrize("pair", [("TaskCore", "PyTaskCore"), ("SchedCore", "PySchedCore")])
def test_cpu_state_bases_behave_as_their_twins(pair):
    """The C bases of Task and Scheduler (whose fields kernel C reads) against their
    __slots__ twins: the same fields, read and written as attributes, unset ones
    raising AttributeError, and a subclass keeping a __dict__ of its own."""
    from hwemu import sched
    c_name, py_name = pair
    twin = getattr(sched, py_name)
    try:
        from hwemu import _speedups
    except ImportError:
        pytest.skip("the C extension is not built")
    cls = getattr(_speedups, c_name)
    fields = twin.__slots__
    assert sorted(m for m in dir(cls) if not m.startswith("_")) == sorted(fields)
    for base in (cls, twin):
        sub = type("Sub", (base,), {})
        obj = sub()
        with pytest.raises(AttributeError):
            getattr(obj, fields[0])
        for i, name in enumerate(fields):
            setattr(obj, name, i)
        obj.extra = "dict"
        assert [getattr(obj, name) for name in fields] == list(range(len(fields)))
        assert obj.extra == "dict"
        obj.__dict__.clear()
        del obj
