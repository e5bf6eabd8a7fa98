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
from .current import current_on, current_or_none

try:   # the optional C fast paths (setup.py); this module's functions are their twins
    from ._speedups import bind as _bind
except ImportError:
    _bind = None

#: True when the accessors are the C fast paths, False when they are the Python twins.
ACCELERATED = (_bind is not None and vmem._speedups is not None and
               os.environ.get("HWEMU_PURE") != "1")

_SIZES = (1, 2, 4, 8, 16)
_U64 = 1 << 64


def _oops(addr: int, write: bool, why: str, machine) -> bug.Oops:
    """The page-fault oops for ``addr``, printed on ``machine`` (or the caller's)."""
    task = current_on(machine) if machine else current_or_none()
    if task is None or task.machine.down:
        return bug.Oops(f"unable to handle page fault for address: {addr:#x} ({why})")
    frame = bug.caller(1)
    while frame.f_globals is globals() and frame.f_back:  # attribute it to our caller
        frame = frame.f_back
    return bug.page_fault_report(task.machine, task, addr, write, frame, why)


def _validate(addr, n: int) -> None:
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise TypeError(f"address must be an int, not {type(addr).__name__}")
    if n < 0:
        raise ValueError(f"negative length {n}")
    if not 0 <= addr <= _U64 - max(n, 1):
        raise bug.AddressError(f"address {addr:#x} (+{n}) is not a 64-bit pointer")


def _space(addr: int, n: int, write: bool) -> vmem.AddressSpace:
    """The address space for an access, or raise the oops for a wild address."""
    _validate(addr, n)
    try:
        return vmem.space_of(addr)
    except bug.AddressError:
        task = current_or_none()
        if task is not None and task.machine.kasan.enabled:
            task.machine.kasan.check_wild(addr, n, write)
        raise _oops(addr, write, "outside every machine's memory", None) from None


def _access(addr: int, n: int, write: bool, op):
    """Check ``[addr, addr+n)`` and run ``op(space, offset)`` on it."""
    if n == 0:  # touches nothing, like the kernel's memset(p, c, 0)
        _validate(addr, 0)
        return b""
    space = _space(addr, n, write)
    kasan = space.machine.kasan_check
    if space.fast_lo <= addr and addr + n <= space.fast_hi:
        if kasan is not None:
            kasan(addr, n, write)
        return op(space, addr - space.base)
    if kasan is not None:  # the instrumentation runs before the access can fault
        kasan(addr, n, write)
    with space.pgtable_lock:
        try:
            space.check(addr, n)
        except vmem.Fault as fault:
            raise _oops(fault.addr, write, fault.reason, space.machine) from None
        return op(space, addr - space.base)


def _fast(addr, size: int):
    """The address space when ``[addr, addr+size)`` is in the last-used machine's direct
    map (no lock, no region walk needed), else None."""
    sp = vmem._last
    if sp is not None and addr.__class__ is int and sp.fast_lo <= addr and \
            addr + size <= sp.fast_hi:
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
        return int.from_bytes(sp.mv[off:off + size], "little")
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
        sp.mv[off:off + size] = data
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
        return sp.mv[off:off + n].tobytes()
    return _access(addr, n, False, lambda sp, off: sp.mv[off:off + n].tobytes())


def write_bytes(addr: int, data) -> None:
    """Copy ``data`` (bytes-like) into emulated memory at ``addr``."""
    data = memoryview(data).cast("B")
    n = len(data)

    def op(sp, off):
        sp.mv[off:off + n] = data
    _access(addr, n, True, op)


def memset(addr: int, c: int, n: int) -> int:
    """``memset(addr, c, n)``; returns ``addr``."""
    fill = bytes([c & 0xFF]) * n

    def op(sp, off):
        sp.mv[off:off + n] = fill
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
