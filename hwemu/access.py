"""Instrumented memory accessors: how Python code reads and writes emulated memory.

They stand for the compiler-instrumented loads and stores of a KASAN kernel and for
the kernel's ``memset``/``memcpy``: every access is checked against the machine's
region table first (a host access to an unmapped page would kill the interpreter),
then against KASAN when the machine has it (``machine.kasan_check``), then done.
An access to an address with no mapping is a page fault: the kernel's oops text goes
to the machine's log and :class:`~hwemu.bug.Oops` is raised.

Accesses of the direct map take a lock-free fast path; every other region is checked
and accessed under ``pgtable_lock`` so that no mapping can change in between.

Each accessor here is the Python twin (``py_load``, ...) of a C fast path in the
optional extension ``hwemu._speedups``: when it imports and ``HWEMU_PURE`` is not
``"1"``, ``load`` and the others are the C functions (:data:`ACCELERATED` says so). C
does a direct-map access with a clean (or no) KASAN shadow and hands every other case,
with its arguments unchanged, to the twin here, which is the reference.
"""
from __future__ import annotations

import os
from typing import Callable, TypeVar

from . import bug, vmem
from .current import _current_space as _current_space_var
from .current import current_on, current_or_none, refuse_access

try:   # the optional C fast paths (setup.py); this module's functions are their twins
    from ._speedups import bind as _bind
except ImportError:
    _bind = None

#: True when the accessors are the C fast paths, False when they are the Python twins.
ACCELERATED = (_bind is not None and vmem._speedups is not None and
               os.environ.get("HWEMU_PURE") != "1")

_SIZES = (1, 2, 4, 8, 16)
_U64 = 1 << 64
_MASK64 = _U64 - 1
_FILL_CHUNK = 1 << 16   # memset writes at most this much fill at a time
_current_space = _current_space_var.get   # the space current's machine owns, or None


# Modules that make accesses on behalf of their callers: an oops names the caller
# (hwemu.kbuild adds the calls of kernel C).
INTERNAL: set[str] = set()


def _oops(addr: int, write: bool, why: str, machine) -> bug.Oops:
    """The page-fault oops for ``addr``, printed on ``machine`` (or the caller's)."""
    task = current_on(machine) if machine else current_or_none()
    if task is None or task.machine.down:
        return bug.Oops(f"unable to handle page fault for address: {addr:#x} ({why})")
    frame = bug.caller(1)
    while (frame.f_globals is globals() or frame.f_globals.get("__name__") in INTERNAL) \
            and frame.f_back:  # attribute it to our caller
        frame = frame.f_back
    return bug.page_fault_report(task.machine, task, addr, write, frame, why)


def page_fault(addr: int, write: bool, why: str) -> bug.Oops:
    """The oops of a kernel access faulting at ``addr``, printed on current's machine:
    for code that emulates an access it does not make through the accessors (reading
    the ``struct page`` that ``virt_to_page()`` of a bad pointer names)."""
    return _oops(addr & _MASK64, write, why, None)


def _pointer(addr) -> int:
    """``addr`` as the ``void *`` it stands for: a negative int is the same pointer as
    its two's complement (``ERR_PTR(-12)`` is ``0xfffffffffffffff4``); raises for
    anything that is no 64-bit pointer."""
    if addr.__class__ is not int:
        if not isinstance(addr, int) or isinstance(addr, bool):
            raise TypeError(f"address must be an int, not {type(addr).__name__}")
        addr = int(addr)
    if 0 <= addr < _U64:
        return addr
    if -_U64 <= addr < 0:
        return addr & _MASK64
    raise bug.AddressError(f"address {addr:#x} is not a 64-bit pointer")


def _length(n) -> int:
    """``n`` as a ``size_t``; a negative length is refused rather than wrapped."""
    if n.__class__ is not int:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"length must be an int, not {type(n).__name__}")
        n = int(n)
    if n < 0:
        raise ValueError(f"negative length {n}")
    if n > _MASK64:
        raise ValueError(f"length {n:#x} does not fit in a 64-bit size_t")
    return n


def _space(addr: int, n: int, write: bool) -> vmem.AddressSpace:
    """The address space for an access the caller's context may make, or raise: the
    oops for a wild address, MachineDown for a shut-down machine's, MachineError when
    the context is no task of the address's machine."""
    try:
        space = vmem.space_of(addr)
    except bug.AddressError:
        task = current_or_none()
        if task is None:
            raise refuse_access(None, addr) from None
        if task.machine.kasan.enabled:
            task.machine.kasan.check_wild(addr, n, write)
        raise _oops(addr, write, "outside every machine's memory", None) from None
    # Current's machine, or another one this context is a task of (a thread that
    # booted two machines touches both; the fast paths take only the first case).
    if space is not _current_space() and current_on(space.machine) is None:
        raise refuse_access(space, addr)
    return space


def _run(space: vmem.AddressSpace, op, off: int):
    """``op(space, off)``; a view released by a shutdown in between is MachineDown."""
    try:
        return op(space, off)
    except ValueError:
        if space.machine.down:
            raise space.down_error() from None
        raise


def _access(addr, n, write: bool, op):
    """Check ``[addr, addr+n)`` and run ``op(space, offset)`` on it.

    Everything about the arguments is checked before any work: the types, the
    address as a pointer, the length as a ``size_t``, then where the range ends up
    unmapped (a range that wraps past the top of the address space faults where its
    mapping ends, as a kernel ``memset`` would). KASAN's check (made first, as the
    instrumentation is) reads the shadow only up to the first unmapped byte.
    """
    addr, n = _pointer(addr), _length(n)
    if n == 0:  # touches nothing, like the kernel's memset(p, c, 0)
        return b""
    space = _space(addr, n, write)
    kasan = space.machine.kasan_check
    if space.fast_lo <= addr and addr + n <= space.fast_hi:
        if kasan is not None:
            kasan(addr, n, write)
        return _run(space, op, addr - space.base)
    if kasan is not None:  # the instrumentation runs before the access can fault
        fault = None
        if n > _FILL_CHUNK:   # a long scan stops where the range stops being mapped
            with space.pgtable_lock:
                fault = space.first_fault(addr, n)
        if fault is None:
            kasan(addr, n, write)
        else:
            kasan(addr, n, write, fault.addr - addr + 1)
    with space.pgtable_lock:
        try:
            space.check(addr, n)
        except vmem.Fault as fault:
            raise _oops(fault.addr, write, fault.reason, space.machine) from None
        return _run(space, op, addr - space.base)


def _fast(addr, size: int):
    """The address space when ``[addr, addr+size)`` is in the last-used machine's direct
    map and that machine is current's (no lock, no region walk needed), else None."""
    sp = vmem._last
    if sp is not None and addr.__class__ is int and sp.fast_lo <= addr and \
            addr + size <= sp.fast_hi and sp is _current_space():
        return sp
    return None


def load(addr: int, size: int) -> int:
    """Read a ``size``-byte unsigned little-endian integer at ``addr`` (``*(u64 *)addr``)."""
    if size.__class__ is not int or size not in _SIZES:
        raise ValueError(f"load size must be one of {_SIZES}, not {size}")
    sp = _fast(addr, size)
    if sp is not None:
        if sp.machine.kasan_check is not None:
            sp.machine.kasan_check(addr, size, False)
        off = addr - sp.base
        try:
            return int.from_bytes(sp.mv[off:off + size], "little")
        except ValueError:   # released by a shutdown since _fast()
            raise sp.down_error() from None
    return _access(addr, size, False,
                   lambda sp, off: int.from_bytes(sp.mv[off:off + size], "little"))


def store(addr: int, size: int, value: int) -> None:
    """Write ``value`` as a ``size``-byte little-endian integer at ``addr``.

    Negative values are stored in two's complement; values that do not fit raise.
    """
    if size.__class__ is not int or size not in _SIZES:
        raise ValueError(f"store size must be one of {_SIZES}, not {size}")
    bits = size * 8
    if not -(1 << (bits - 1)) <= value < 1 << bits:
        raise ValueError(f"value {value:#x} does not fit in {size} bytes")
    data = (value & ((1 << bits) - 1)).to_bytes(size, "little")
    sp = _fast(addr, size)
    if sp is not None:
        if sp.machine.kasan_check is not None:
            sp.machine.kasan_check(addr, size, True)
        off = addr - sp.base
        try:
            sp.mv[off:off + size] = data
        except ValueError:   # released by a shutdown since _fast()
            raise sp.down_error() from None
        return

    def op(sp, off):
        sp.mv[off:off + size] = data
    _access(addr, size, True, op)


def read_bytes(addr: int, n: int) -> bytes:
    """Copy ``n`` bytes out of emulated memory."""
    sp = _fast(addr, n) if n.__class__ is int and n > 0 else None
    if sp is not None:
        if sp.machine.kasan_check is not None:
            sp.machine.kasan_check(addr, n, False)
        off = addr - sp.base
        try:
            return sp.mv[off:off + n].tobytes()
        except ValueError:   # released by a shutdown since _fast()
            raise sp.down_error() from None
    return _access(addr, n, False, lambda sp, off: sp.mv[off:off + n].tobytes())


def write_bytes(addr: int, data) -> None:
    """Copy ``data`` (bytes-like) into emulated memory at ``addr``."""
    data = memoryview(data).cast("B")
    n = len(data)

    def op(sp, off):
        sp.mv[off:off + n] = data
    _access(addr, n, True, op)


def memset(addr: int, c: int, n: int) -> int:
    """``memset(addr, c, n)``; returns ``addr``. The fill is made a bounded chunk at a
    time, after the range was checked."""
    byte = c & 0xFF

    def op(sp, off):
        mv, end = sp.mv, off + n
        if n <= _FILL_CHUNK:
            mv[off:end] = bytes((byte,)) * n
            return
        chunk = memoryview(bytes((byte,)) * _FILL_CHUNK)
        while off < end:
            step = min(_FILL_CHUNK, end - off)
            mv[off:off + step] = chunk[:step]
            off += step
    _access(addr, n, True, op)
    return addr


def memcpy(dst: int, src: int, n: int) -> int:
    """``memcpy(dst, src, n)`` (overlap is tolerated, as ``memmove``); returns ``dst``."""
    py_write_bytes(dst, py_read_bytes(src, n))
    return dst


# The twins keep their names; the public ones become the C fast paths when accelerated.
py_load, py_store, py_read_bytes, py_write_bytes, py_memset, py_memcpy = (
    load, store, read_bytes, write_bytes, memset, memcpy)

F = TypeVar("F", bound=Callable)


def accelerate(twin: F) -> F:
    """The C fast path of ``twin`` (a function of this module), handing it every case the
    fast path does not take."""
    assert _bind is not None
    return _bind(twin.__name__, twin)


if ACCELERATED:
    load, store, read_bytes, write_bytes, memset, memcpy = (
        accelerate(load), accelerate(store), accelerate(read_bytes),
        accelerate(write_bytes), accelerate(memset), accelerate(memcpy))
