"""Static keys (include/linux/jump_label.h): what a disabled feature costs on a hot path.

The kernel patches a ``static_branch_unlikely()`` into a no-op while its key is off, so
KASAN, slub_debug poisoning or allocation profiling cost nothing on a kernel booted
without them. Here a key is on while any live machine has the feature: a hot path tests
one attribute of a module global (``if KASAN.enabled:``) and looks further (at the
machine it runs on) only then. Machines switch their keys on at boot and off at
shutdown (``static_branch_inc()``/``static_branch_dec()``).
"""
from __future__ import annotations


class StaticKey:
    """``struct static_key``: ``enabled`` while its count is above zero."""

    __slots__ = ("name", "count", "enabled")

    def __init__(self, name: str):
        self.name = name
        self.count = 0
        self.enabled = False

    def inc(self) -> None:
        """``static_branch_inc()``"""
        self.count += 1
        self.enabled = True

    def dec(self) -> None:
        """``static_branch_dec()``"""
        self.count -= 1
        self.enabled = self.count > 0

    def __repr__(self) -> str:
        return f"<static key {self.name}: {self.count}>"


KASAN = StaticKey("kasan_flag_enabled")
SLUB_DEBUG = StaticKey("slub_debug_enabled")
MEM_PROFILING = StaticKey("mem_alloc_profiling_key")
