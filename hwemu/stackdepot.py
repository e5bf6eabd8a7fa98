"""Emulation of lib/stackdepot.c: deduplicated storage of stack traces.

A stack is the chain of Python frames of the caller, kept as ``(code, offset)`` pairs
(the code object and the bytecode offset: what a return address is to the kernel),
``depth`` frames at most. Equal stacks share one record; ``stack_depot_save`` returns a
small int handle (0 = no stack). The depot is bounded: once ``max_stacks`` distinct
stacks are stored, new ones get handle 0 ("stack is not available"), as when the
kernel's depot pools run out.
"""
from __future__ import annotations

import os
import sys
import threading
from array import array
from types import CodeType, FrameType
from typing import Any

from .bug import NATIVE_ENTRY, STACK_BOTTOM, STACK_INLINE, code_symbol, source_path


def python_stack_key(skip: int, depth: int) -> bytes:
    """``(id(code), offset, ...)`` of ``depth`` frames from ``skip`` above the caller, as
    native int64s in bytes: cheap to hash and compare (a code object hashes its contents)."""
    frame: FrameType | None = sys._getframe(skip + 1)
    key: list[int] = []
    for _ in range(depth):
        if frame is None:
            break
        key += id(frame.f_code), frame.f_lasti
        frame = frame.f_back
    return array("q", key).tobytes()


try:   # the optional C helper (setup.py): the same key, ~10x faster; HWEMU_PURE=1: not
    from ._speedups import stack_key
except ImportError:
    stack_key = python_stack_key
if os.environ.get("HWEMU_PURE") == "1":
    stack_key = python_stack_key

# Kernel C's frames (set by hwemu.kbuild when it loads): the return addresses of the C
# running below the caller, as bytes (empty when no C runs), and the lines of the
# ``nth`` stretch of C in such bytes.
native_key: Any = None
native_lines: Any = None

STACK_DEPTH = 8
MAX_STACKS = 1 << 16
_STOP = ("threading.py", "_pytest", "pluggy")


class StackDepot:
    """One machine's stack depot."""

    def __init__(self, depth: int = STACK_DEPTH, max_stacks: int = MAX_STACKS):
        self.depth = depth
        self.max_stacks = max_stacks
        self._handles: dict[tuple, int] = {}
        self._stacks: list[tuple] = [()]   # handle 0: no stack; each ends with its C
        self._lock = threading.Lock()

    def save(self, skip: int = 1) -> int:
        """``stack_depot_save()`` of the caller's stack, ``skip`` frames above this one."""
        key = stack_key(skip + 1, self.depth)
        native = native_key() if native_key is not None else b""
        key += native
        handle = self._handles.get(key)
        if handle is not None:
            return handle
        frame: FrameType | None = sys._getframe(skip + 1)
        stack: list = []   # the code objects themselves, kept alive so their ids stay theirs
        while frame is not None and len(stack) < 2 * self.depth:
            stack += frame.f_code, frame.f_lasti
            frame = frame.f_back
        with self._lock:
            handle = self._handles.get(key)
            if handle is None:
                if len(self._stacks) > self.max_stacks:
                    return 0
                handle = len(self._stacks)
                self._stacks.append((*stack, native))
                self._handles[key] = handle
        return handle

    def lines(self, handle: int) -> list[str]:
        """``stack_depot_print()``: one `` func+0xOFF/0xSIZE file:line`` per frame."""
        out = []
        *stack, native = self._stacks[handle] or (b"",)
        nth = 0
        for code, lasti in zip(stack[::2], stack[1::2]):
            path = source_path(code.co_filename)
            if any(stop in path for stop in _STOP) or code in STACK_BOTTOM:
                break
            if code in NATIVE_ENTRY:
                out += native_lines(native, nth)
                nth += 1
            elif code not in STACK_INLINE:
                out.append(f" {code_symbol(code, lasti)} {path}:{_line(code, lasti)}")
        return out

    def __len__(self) -> int:
        return len(self._stacks) - 1


def _line(code: CodeType, lasti: int) -> int:
    """The source line of bytecode offset ``lasti`` (what ``f_lineno`` would have said)."""
    for start, end, line in code.co_lines():
        if start <= lasti < end and line is not None:
            return line
    return code.co_firstlineno

