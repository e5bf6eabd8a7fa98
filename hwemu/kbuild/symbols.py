"""Kernel C frames in hwemu's stack traces: ``%pS`` and ``file:line`` of native code.

A report made while kernel C runs (a KASAN report of an access in C, a WARN or BUG it
hit, an oops) walks the Python frames as always; where it meets a frame through which C
called Python (:data:`hwemu.bug.NATIVE_ENTRY`) it shows the C frames below that call in
its place, innermost first, as the kernel's unwinder would: ``func+0xOFF/0xSIZE
file.c:line``, with a line per function inlined there (``[inline]``). The return
addresses come from the running C stack (glibc's ``backtrace()``), the names and lines
from each module's symbol table and DWARF (binutils' ``nm`` and ``addr2line``), once
per address. Frames of hwemu's own glue and headers are not shown.
"""
from __future__ import annotations

import bisect
import contextlib
from array import array
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from .. import bug
from .headers import INCLUDE

_MODULES: list[tuple[int, int, "_Image"]] = []   # (text start, text end, image), sorted
_GLUE = ("hw_x_", "__hw_", "__asan_", "_cffi_", "hw_initcalls")
rt: Any = None   # the runtime (hwemu.kbuild binds it)


class _Image:
    """One loaded module's shared object: where it is, its functions."""

    def __init__(self, path: str, base: int):
        self.path, self.base = path, base
        out = subprocess.run(["nm", "-S", "--defined-only", path], capture_output=True,
                             text=True).stdout
        funcs = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[2] in "tTwW":
                funcs.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
        funcs.sort()
        self.starts = [f[0] for f in funcs]
        self.funcs = funcs
        self._lines: dict[int, list[tuple[str, str]]] = {}

    def function(self, off: int) -> tuple[str, int, int] | None:
        i = bisect.bisect_right(self.starts, off) - 1
        if i >= 0:
            start, size, name = self.funcs[i]
            if off < start + max(size, 1):
                return name, off - start, size
        return None

    def frames(self, off: int, call: bool) -> list[tuple[str, str]]:
        """``(symbol, location)`` of the code at ``off``, the inlined ones first;
        ``call``: ``off`` is a return address (its call is the byte before)."""
        key = off - 1 if call else off
        lines = self._lines.get(key)
        if lines is None:
            lines = self._lines[key] = self._resolve(key, off)
        return lines

    def _resolve(self, key: int, off: int) -> list[tuple[str, str]]:
        # The function of the call, not of the return address (after a noreturn call
        # at a function's end, that is the next function).
        func = self.function(key)
        if func is None or func[0].startswith(_GLUE):
            return []
        out = subprocess.run(["addr2line", "-f", "-i", "-e", self.path, f"{key:#x}"],
                             capture_output=True, text=True).stdout.split("\n")
        pairs = [(out[i], out[i + 1]) for i in range(0, len(out) - 1, 2)]
        name, _, size = func
        offset = off - (key - func[1])   # the return address's offset, as %pS shows it
        result = []
        for i, (fn, loc) in enumerate(pairs):
            loc = loc.split(" (discriminator")[0]
            if loc.startswith(str(INCLUDE)) or fn.startswith(_GLUE):
                continue   # hwemu's headers and glue: not the kernel code's frames
            loc = bug.source_path(loc) if not loc.startswith("??") else "??:0"
            if i == len(pairs) - 1:
                result.append((f"{name}+{offset:#x}/{size:#x}", loc))
            else:
                result.append((fn, f"{loc} [inline]"))
        return result


def add_module(path: str, code: bool = True) -> None:
    """Note a loaded module's memory (kernel C may touch it) and, if ``code``, its text
    (for stack traces), read from ``/proc/self/maps``."""
    real = str(Path(path).resolve())
    if any(image.path == real for _, _, image in _MODULES):
        return
    base, spans = None, []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if int(fields[2], 16) == 0 and base is None:
                    base = lo
                if "x" in fields[1]:
                    spans.append((lo, hi))
                rt.lib.hw_add_host_range(lo, hi)   # the module's own memory
    if base is None or not code:
        return
    image = _Image(real, base)
    for lo, hi in spans:
        bisect.insort(_MODULES, (lo, hi, image), key=lambda m: m[0])


def _image_of(pc: int) -> _Image | None:
    i = bisect.bisect_right(_MODULES, pc, key=lambda m: m[0]) - 1
    if i >= 0 and _MODULES[i][0] <= pc < _MODULES[i][1]:
        return _MODULES[i][2]
    return None


def _pcs() -> list[list[int]]:
    """The return addresses of the running C stack in modules, one list per stretch
    of kernel C between a call from Python and a call back into it, innermost first."""
    buf = rt.ffi.new("uintptr_t[128]")
    n = rt.lib.hw_backtrace(buf, 128)
    segs: list[list[int]] = []
    inside = False
    for i in range(n):
        pc = buf[i]
        if _image_of(pc) is None:
            inside = False
            continue
        if not inside:
            segs.append([])
            inside = True
        segs[-1].append(pc)
    return segs


def _lines(pcs: list[int]) -> list[tuple[str, str]]:
    out = []
    for pc in pcs:
        image = _image_of(pc)
        if image is not None:
            out += image.frames(pc - image.base, call=True)
    return out


def segments() -> list[list[tuple[str, str]]]:
    """The C frames of the running stack, one list per stretch of kernel C."""
    return [_lines(seg) for seg in _pcs()]


def depot_key() -> bytes:
    """The stack depot's part of a stack that C runs in: its return addresses, the
    stretches separated by zeros (nothing when no C runs)."""
    if not rt.lib.hw_in_c():
        return b""
    return array("Q", [pc for seg in _pcs() for pc in (*seg, 0)]).tobytes()


def depot_lines(key: bytes, nth: int) -> list[str]:
    """The lines of the ``nth`` stretch of C in a :func:`depot_key`."""
    pcs = array("Q", key).tolist()
    segs, cur = [], []
    for pc in pcs:
        if pc:
            cur.append(pc)
        else:
            segs.append(cur)
            cur = []
    return [f" {s} {loc}" for s, loc in _lines(segs[nth])] if nth < len(segs) else []


_FAULTED: list[tuple[str, str]] | None = None


@contextlib.contextmanager
def faulted_at(ip: int):
    """While a fault is reported: the C stack is gone (unwound to its call from
    Python), so the innermost C frames are those of the faulting instruction."""
    global _FAULTED
    image = _image_of(ip)
    _FAULTED = image.frames(ip - image.base, call=False) if image else []
    try:
        yield
    finally:
        _FAULTED = None


def native_frames(frame: FrameType) -> list[tuple[str, str]]:
    """The C frames below ``frame`` (a :data:`hwemu.bug.NATIVE_ENTRY` frame)."""
    if _FAULTED is not None:
        return _FAULTED
    nth = 0
    f: FrameType | None = sys._getframe(1)
    while f is not None and f is not frame:
        nth += f.f_code in bug.NATIVE_ENTRY
        f = f.f_back
    segs = segments()
    return segs[nth] if nth < len(segs) else []


def symbol(addr: int) -> str:
    """``%pS`` of a code address: a module's function, else the address."""
    image = _image_of(addr)
    if image is not None:
        func = image.function(addr - image.base)
        if func is not None:
            name, offset, size = func
            return f"{name}+{offset:#x}/{size:#x}"
    return f"{addr:#x}"
