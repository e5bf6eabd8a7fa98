"""Emulation of lib/alloc_tag.c: memory allocation profiling (``/proc/allocinfo``).

Each public allocation function is :func:`alloc_hooks` around its ``_noprof`` twin: it
makes the line that called it the task's current tag for the duration of the call, as
the kernel's ``alloc_hooks()`` macro does (the innermost hook wins). Allocators charge
every object and page they hand out to the current tag, and uncharge it when it is
freed. Off unless ``vm.mem_profiling`` is set; then a hook costs nothing but a check.
Not emulated: ``CONFIG_MEM_ALLOC_PROFILING_DEBUG`` warnings, compressed tags, modules.
"""
from __future__ import annotations

import functools
import sys
import threading

from . import bug
from .bug import source_path
from .current import current
from .jump_label import MEM_PROFILING


class AllocTag:
    """``struct alloc_tag``: one call site and what is charged to it now."""

    __slots__ = ("file", "line", "function", "bytes", "calls")

    def __init__(self, file: str, line: int, function: str):
        self.file, self.line, self.function = file, line, function
        self.bytes = self.calls = 0


class AllocTags:
    """The tags of one machine (``machine.alloc_tags``)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._tags: dict[tuple, AllocTag] = {}
        self._charged: dict[object, tuple[AllocTag, int]] = {}   # what -> (tag, bytes)
        self._lock = threading.Lock()
        if enabled:
            MEM_PROFILING.inc()   # while no machine profiles, a hook tests one global

    def close(self) -> None:
        """The machine is down: its hooks no longer count."""
        if self.enabled:
            self.enabled = False
            MEM_PROFILING.dec()

    def tag_at(self, frame) -> AllocTag:
        """The tag of the line ``frame`` is executing (created on first use)."""
        key = (frame.f_code, frame.f_lineno)
        tag = self._tags.get(key)
        if tag is None:
            tag = self.tag_of(source_path(frame.f_code.co_filename), frame.f_lineno,
                              frame.f_code.co_name, key)
        return tag

    def tag_of(self, file: str, line: int, function: str, key=None) -> AllocTag:
        """The tag of a call site given by name (kernel C's ``alloc_hooks()``)."""
        key = key or (file, line)
        tag = self._tags.get(key)
        if tag is None:
            with self._lock:
                tag = self._tags.setdefault(key, AllocTag(file, line, function))
        return tag

    def call(self, task, frame, fn, *args, **kwargs):
        """Run ``fn`` with the tag of ``frame``'s line as ``task``'s current tag."""
        saved, task.alloc_tag = task.alloc_tag, self.tag_at(frame)
        try:
            return fn(*args, **kwargs)
        finally:
            task.alloc_tag = saved

    def charge(self, what, size: int, tag: AllocTag | None) -> None:
        """``alloc_tag_add()``: ``size`` bytes of ``what`` (an object or a pfn) to ``tag``."""
        if tag is None:   # allocated outside every hook: not accounted
            return
        with self._lock:
            tag.bytes += size
            tag.calls += 1
            self._charged[what] = (tag, size)

    def uncharge(self, what) -> None:
        """``alloc_tag_sub()`` when ``what`` is freed."""
        with self._lock:
            entry = self._charged.pop(what, None)
            if entry is not None:
                tag, size = entry
                tag.bytes -= size
                tag.calls -= 1

    def allocinfo(self) -> str:
        """``/proc/allocinfo``: bytes and calls outstanding per call site."""
        with self._lock:
            tags = sorted(self._tags.values(), key=lambda t: (t.file, t.line))
            rows = [f"{t.bytes:12d} {t.calls:8d} {t.file}:{t.line} func:{t.function} \n"
                    for t in tags]
        return "allocinfo - version: 2.0\n#     <size>  <calls> <tag info>\n" + "".join(rows)


def return_address(depth: int):
    """The frame ``depth`` levels above the caller, ``alloc_hooks()`` wrappers not
    counted: what ``__builtin_return_address(0)`` names behind the kernel's macros."""
    frame = sys._getframe(depth + 1)
    while frame.f_globals.get("__name__") == __name__ and frame.f_back is not None:
        frame = frame.f_back
    return frame


def alloc_hooks(noprof):
    """``alloc_hooks()``: the profiled public function around ``noprof``."""
    @functools.wraps(noprof)
    def hooked(*args, **kwargs):
        if not MEM_PROFILING.enabled:
            return noprof(*args, **kwargs)
        task = current()
        tags = task.machine.alloc_tags
        if not tags.enabled:
            return noprof(*args, **kwargs)
        return tags.call(task, sys._getframe(1), noprof, *args, **kwargs)
    hooked.__name__ = hooked.__qualname__ = noprof.__name__.removesuffix("_noprof")
    # A macro in the kernel: neither it nor AllocTags.call has a frame of its own.
    bug.STACK_INLINE.update((hooked.__code__, AllocTags.call.__code__))
    return hooked
