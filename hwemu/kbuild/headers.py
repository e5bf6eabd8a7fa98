"""The generated part of hwemu's kernel headers (``hwemu/include``).

The headers under ``hwemu/include/linux`` are written by hand, in the kernel's names,
for the API kernel memory code and simple drivers use. Where a fact lives in Python
(the call table into hwemu, GFP bits, page size, poison values, struct layouts), the
header that states it is generated from there, into ``hwemu/include/generated``, and
kept in the tree so that it can be read; a test fails when one is out of step
(``python -m hwemu.kbuild.headers`` writes them again).
"""
from __future__ import annotations

import sys
from pathlib import Path

INCLUDE = Path(__file__).resolve().parent.parent / "include"
GENERATED = INCLUDE / "generated"

_BANNER = ("/* SPDX-License-Identifier: GPL-2.0 */\n"
           "/* Generated from {src} by hwemu.kbuild.headers: do not edit. */\n")

# The entries of struct hw_rt that the runtime does in C (before the calls into Python).
RUNTIME_C = (
    ("void", "guard_push", "void *guard"),
    ("void", "guard_pop", "void *guard"),
    ("void *", "guard_raise", "void *guard, int how"),
    ("void", "asan_check", "uintptr_t addr, size_t size, int write, uintptr_t ip"),
    ("int", "kasan_enabled", ""),
    ("int", "mem_profiling", ""),
    ("void", "vprintk", "int level, const char *fmt, __builtin_va_list ap"),
)


def _kernel_types(params: str) -> str:
    """Parameters in types every header has (``hwemu/rt.h`` includes nothing)."""
    return params.replace("uintptr_t", "__UINTPTR_TYPE__").replace("size_t", "__SIZE_TYPE__")


def rt_h() -> str:
    """``hwemu/rt.h``: ``struct hw_rt``, the table kernel C calls hwemu through."""
    from .calls import calls
    fields = [f"\t{ret} (*{name})({_kernel_types(params) or 'void'});"
              for ret, name, params in RUNTIME_C]
    fields.append("\t/* calls into hwemu (Python), hwemu/kbuild/calls.py */")
    fields += [f"\t{_kernel_types(c.ret)} (*{c.name})({_kernel_types(c.params) or 'void'});"
               for c in calls()]
    return _header("hwemu/kbuild/calls.py", "_HWEMU_RT_H", [
        "/* What kernel C reaches hwemu through; set when hwemu.kbuild loads a module. */",
        "struct hw_rt {",
        *fields,
        "};",
        "",
        "extern const struct hw_rt *__hw_rt;"])


def _header(src: str, guard: str, body: list[str]) -> str:
    """A generated header: the banner naming ``src``, the include guard, ``body``."""
    return "\n".join([_BANNER.format(src=src).rstrip("\n"), f"#ifndef {guard}",
                      f"#define {guard}", "", *body, "", "#endif", ""])


def _c_int(value: int, suffix: str = "", hex_: bool = False) -> str:
    """A C literal for ``value``: hex for masks and large values, else decimal."""
    if value < 0:
        return f"({value}{suffix.replace('U', '')})"
    return (f"{value:#x}" if hex_ or value >= 4096 else f"{value}") + suffix


def _layout(name: str, struct, rename: dict[str, str] | None = None) -> list[str]:
    """``HW_<NAME>_SIZE`` and ``HW_<NAME>_LAYOUT(F)``, ``F(field, offset)`` for each field
    of a ctypes Structure, for ``_Static_assert``s next to the C definition."""
    import ctypes
    fields = " ".join(f"F({(rename or {}).get(f[0], f[0])}, {getattr(struct, f[0]).offset})"
                      for f in struct._fields_)
    return [f"#define HW_{name}_SIZE {ctypes.sizeof(struct)}",
            f"#define HW_{name}_LAYOUT(F) {fields}"]


def facts_h() -> str:
    """``hwemu/facts.h``: the constants and struct layouts whose home is hwemu's Python.

    Constants the kernel defines as plain values keep their kernel names (``__GFP_IO``,
    ``PAGE_SIZE``, ``SLAB_PANIC``); values the hand-written headers build on and the
    layouts of the structs hwemu shares with C are ``HW_*``.
    """
    from mempool import _mempool
    from .. import fault_inject, gfp, mmzone, page, page_types, sched, slab, spinlock, wait

    def define(name: str, value: str) -> str:
        return f"#define {name} {value}"

    out = ["/* include/linux/gfp_types.h (hwemu/gfp.py) */"]
    out += [define(n, f"((gfp_t){_c_int(v, 'u', True)})") for n, v in gfp.GFP_TABLE]
    out += [define("__GFP_BITS_SHIFT", _c_int(gfp.__GFP_BITS_SHIFT)),
            define("__GFP_BITS_MASK", f"((gfp_t){_c_int(gfp.__GFP_BITS_MASK, 'u', True)})"),
            define("GFP_ZONEMASK", f"((gfp_t){_c_int(gfp.GFP_ZONEMASK, 'u', True)})")]
    out += ["", "/* asm/page_types.h (hwemu/page_types.py) */",
            define("PAGE_SHIFT", _c_int(page_types.PAGE_SHIFT)),
            define("PAGE_SIZE", _c_int(page_types.PAGE_SIZE, "UL")),
            define("PAGE_MASK", _c_int(page_types.PAGE_MASK & (1 << 64) - 1, "UL"))]
    out += ["", "/* include/linux/numa.h, mmzone.h, mm.h (hwemu/mmzone.py, hwemu/page.py) */"]
    out += [define(n, _c_int(getattr(mmzone, n)))
            for n in ("NUMA_NO_NODE", "NODES_SHIFT", "MAX_NUMNODES", "MAX_PAGE_ORDER")]
    out += [define(n, _c_int(getattr(page, n)))
            for n in ("NODES_PGSHIFT", "ZONES_PGSHIFT", "NODES_MASK", "ZONES_MASK")]
    out += ["", "/* include/linux/slab.h (hwemu/slab.py) */"]
    out += [define(n, f"((slab_flags_t){_c_int(getattr(slab, n), 'U', True)})")
            for n in sorted(dir(slab)) if n.startswith("SLAB_")]
    out += [define(n, _c_int(getattr(slab, n), "UL" if n.endswith("MAX_SIZE")
                             or n.endswith("CACHE_SIZE") else ""))
            for n in slab.__all__ if n.startswith(("KMALLOC_", "ARCH_"))]
    out += [define("ZERO_SIZE_PTR", f"((void *){_c_int(slab.ZERO_SIZE_PTR)})"),
            define("L1_CACHE_BYTES", _c_int(slab.L1_CACHE_BYTES))]
    out += ["", "/* include/linux/poison.h (mempool/_mempool.py, hwemu/wait.py) */"]
    out += [define(n, f"{getattr(_mempool, n):#x}")
            for n in ("POISON_INUSE", "POISON_FREE", "POISON_END")]
    out += [define("HW_LIST_POISON1", _c_int(wait.LIST_POISON1, "UL"))]
    out += ["", "/* include/linux/sched.h, preempt.h (hwemu/sched.py) */"]
    out += [define(n, _c_int(getattr(sched, n)))
            for n in ("TASK_RUNNING", "TASK_INTERRUPTIBLE", "TASK_UNINTERRUPTIBLE",
                      "TASK_WAKEKILL", "TASK_KILLABLE", "TASK_COMM_LEN", "PREEMPT_OFFSET",
                      "SOFTIRQ_OFFSET", "HARDIRQ_OFFSET", "NMI_OFFSET", "PREEMPT_MASK",
                      "SOFTIRQ_MASK", "HARDIRQ_MASK", "NMI_MASK")]
    out += [define("MAX_SCHEDULE_TIMEOUT", _c_int(sched.MAX_SCHEDULE_TIMEOUT, "L"))]
    out += ["", "/* include/linux/fault-inject.h (hwemu/fault_inject.py) */",
            define("HW_FAULT_NOWARN", _c_int(fault_inject.FAULT_NOWARN))]
    out += ["", "/* spinlock_t with CONFIG_DEBUG_SPINLOCK (hwemu/spinlock.py) */",
            define("SPINLOCK_MAGIC", _c_int(spinlock.SPINLOCK_MAGIC, "U")),
            define("HW_SPINLOCK_OWNER_CPU_INIT", _c_int(spinlock.OWNER_CPU_INIT, "U")),
            define("HW_SPINLOCK_OWNER_INIT", _c_int(spinlock.OWNER_INIT, "UL")),
            define("HW_SPINLOCK_T_SIZE", _c_int(spinlock.SPINLOCK_T_SIZE)),
            define("HW_SPINLOCK_T_LAYOUT(F)",
                   f"F(raw, {spinlock.RAW_LOCK}) F(magic, {spinlock.MAGIC}) "
                   f"F(owner_cpu, {spinlock.OWNER_CPU}) F(owner, {spinlock.OWNER})")]
    out += ["", "/* wait_queue_head_t (hwemu/wait.py) */",
            define("HW_WAIT_QUEUE_HEAD_T_SIZE", _c_int(wait.WAIT_QUEUE_HEAD_T_SIZE)),
            define("HW_WAIT_QUEUE_HEAD_T_LAYOUT(F)", f"F(lock, 0) F(head, {wait.HEAD})")]
    out += ["", "/* struct page (hwemu/page.py) */",
            *_layout("STRUCT_PAGE", page.struct_page,
                     {"lru_next": "lru.next", "lru_prev": "lru.prev"})]
    out += ["", "/* struct kmem_cache, mm/slab.h (hwemu/slab.py) */",
            *_layout("STRUCT_KMEM_CACHE", slab.struct_kmem_cache)]
    out += ["", "/* struct mempool (mempool/_mempool.py) */",
            *_layout("STRUCT_MEMPOOL", _mempool.struct_mempool)]
    return _header("hwemu's Python (each section names its module)", "_HWEMU_FACTS_H", out)


def generated() -> dict[Path, str]:
    """Every generated header: path -> text."""
    return {GENERATED / "hwemu" / "rt.h": rt_h(),
            GENERATED / "hwemu" / "facts.h": facts_h()}


def write() -> list[Path]:
    """Write the generated headers that changed; returns them."""
    changed = []
    for path, text in generated().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


if __name__ == "__main__":
    for p in write():
        print(f"wrote {p.relative_to(INCLUDE.parent.parent)}", file=sys.stderr)
