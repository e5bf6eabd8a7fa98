"""The mempool implementation as a choice: a tree's own ``mm/mempool.c``, compiled.

:func:`use_mempool` compiles the file (6.19's or 7.0's: the form of
``mempool_alloc_bulk_noprof()`` is read from it) against hwemu's headers and binds the
``mempool`` package's functions to it, so runs, the pytest plugin and users' tests call
the kernel's C. The pool is the same ``struct mempool`` in the machine's memory, so
:func:`mempool.describe` works as before; :func:`mempool.mempool_stats` counts what the
calls show from outside (elements taken from or returned to the reserve, seen in
``curr_nr``); the C has no counters of its own, so ``waits`` stay 0.
``use_mempool(None)`` goes back to the Python port.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mempool
from mempool import _mempool, stats

from ..access import load as _load
from ..alloc_tag import alloc_hooks
from . import native

_CURR = _mempool.struct_mempool.curr_nr.offset
_PY: dict[str, Any] = {}     # the Python port's functions, while C replaces them
_STOCK = {"MEMPOOL_ALLOC_SLAB": "mempool_alloc_slab", "MEMPOOL_FREE_SLAB": "mempool_free_slab",
          "MEMPOOL_KMALLOC": "mempool_kmalloc", "MEMPOOL_KFREE": "mempool_kfree",
          "MEMPOOL_ALLOC_PAGES": "mempool_alloc_pages",
          "MEMPOOL_FREE_PAGES": "mempool_free_pages"}
_CALLBACKS: list = []        # cffi callbacks for Python alloc_fn/free_fn, kept alive


def bulk_has_allocated(text: str) -> bool:
    """6.19's ``mempool_alloc_bulk_noprof(pool, elems, count, allocated)``, not 7.0's."""
    m = re.search(r"int\s+mempool_alloc_bulk_noprof\s*\(([^)]*)\)", text)
    return bool(m and "allocated" in m.group(1))


class CMempool:
    """The ``mempool`` package's functions, calling a compiled ``mm/mempool.c``."""

    def __init__(self, module):
        self.c = module
        # The stock callbacks, as the port's function pointers or functions: C's own.
        self.fn: dict[Any, int] = {}
        for const, name in _STOCK.items():
            addr = module.addressof(name)
            self.fn[getattr(_mempool, const)] = self.fn[getattr(_mempool, name)] = addr

    def _fnptr(self, fn, kind: str) -> int:
        """A function pointer C can call: a stock callback's C twin, or a callback."""
        if isinstance(fn, int) and fn not in self.fn:
            fn = _mempool.fn_of(fn) if fn else None
        if fn is None:
            return 0
        if fn in self.fn:
            return self.fn[fn]
        rt = native.rt
        sig = ("uintptr_t(unsigned int, uintptr_t)" if kind == "alloc" else
               "void(uintptr_t, uintptr_t)")
        cb = rt.ffi.callback(sig, fn)
        _CALLBACKS.append(cb)
        return int(rt.ffi.cast("uintptr_t", cb))

    # ------------------------------------------------------------ the API

    def mempool_init_node(self, pool: int, min_nr: int, alloc_fn, free_fn, pool_data: int,
                          gfp_mask: int, node_id: int) -> int:
        err = self.c.mempool_init_node(pool, min_nr, self._fnptr(alloc_fn, "alloc"),
                                       self._fnptr(free_fn, "free"), pool_data, gfp_mask,
                                       node_id)
        if not err:
            stats.start(pool).preallocated = _load(pool + _CURR, 4)
        return err

    def mempool_init_noprof(self, pool: int, min_nr: int, alloc_fn, free_fn,
                            pool_data: int) -> int:
        from ..gfp import GFP_KERNEL
        return self.mempool_init_node(pool, min_nr, alloc_fn, free_fn, pool_data,
                                      GFP_KERNEL, -1)

    def mempool_create_node_noprof(self, min_nr: int, alloc_fn, free_fn, pool_data: int,
                                   gfp_mask: int, node_id: int) -> int:
        pool = self.c.mempool_create_node_noprof(min_nr, self._fnptr(alloc_fn, "alloc"),
                                                 self._fnptr(free_fn, "free"), pool_data,
                                                 gfp_mask, node_id)
        if pool:
            stats.start(pool).preallocated = _load(pool + _CURR, 4)
        return pool

    def mempool_create_noprof(self, min_nr: int, alloc_fn, free_fn, pool_data: int) -> int:
        from ..gfp import GFP_KERNEL
        return self.mempool_create_node_noprof(min_nr, alloc_fn, free_fn, pool_data,
                                               GFP_KERNEL, -1)

    def mempool_exit(self, pool: int) -> None:
        self.c.mempool_exit(pool)
        stats.forget(pool)

    def mempool_destroy(self, pool: int) -> None:
        if pool:
            stats.forget(pool)
        self.c.mempool_destroy(pool)

    def mempool_resize(self, pool: int, new_min_nr: int) -> int:
        return self.c.mempool_resize(pool, new_min_nr)

    def mempool_alloc_noprof(self, pool: int, gfp_mask: int) -> int:
        before = _load(pool + _CURR, 4)
        element = self.c.mempool_alloc_noprof(pool, gfp_mask)
        s = stats.stats_of(pool)
        if not element:
            s.alloc_null += 1
        elif (curr := _load(pool + _CURR, 4)) < before:
            s.alloc_reserve += 1
            s.reserve_left(curr)
        else:
            s.alloc_allocator += 1
        return element

    def mempool_alloc_preallocated(self, pool: int) -> int:
        element = self.c.mempool_alloc_preallocated(pool)
        s = stats.stats_of(pool)
        if element:
            s.alloc_reserve += 1
            s.reserve_left(_load(pool + _CURR, 4))
        else:
            s.alloc_null += 1
        return element

    def mempool_free(self, element: int, pool: int) -> None:
        before = _load(pool + _CURR, 4)
        self.c.mempool_free(element, pool)
        s = stats.stats_of(pool)
        if element:
            if _load(pool + _CURR, 4) > before:
                s.free_reserve += 1
            else:
                s.free_allocator += 1

    def mempool_free_bulk(self, pool: int, elems: list, count: int) -> int:
        rt = native.rt
        buf = rt.ffi.new("uintptr_t[]", list(elems[:count]) or [0])
        return self.c.mempool_free_bulk(pool, int(rt.ffi.cast("uintptr_t", buf)), count)

    def mempool_alloc_bulk_noprof(self, pool: int, elems: list, count: int,
                                  allocated: int | None = None) -> int:
        rt = native.rt
        buf = rt.ffi.new("uintptr_t[]", [*elems[:count], *[0] * (count - len(elems))] or [0])
        addr = int(rt.ffi.cast("uintptr_t", buf))
        args = [pool, addr, count]
        if "allocated" in self.c.bulk_params:
            args.append(sum(1 for e in elems[:count] if e) if allocated is None else allocated)
        ret = self.c.mempool_alloc_bulk_noprof(*args)
        elems[:count] = list(buf)[:count]
        return ret


# The names bound, and how the package's macros derive from them.
_BOUND = ("mempool_init_node", "mempool_init_noprof", "mempool_create_node_noprof",
          "mempool_create_noprof", "mempool_exit", "mempool_destroy", "mempool_resize",
          "mempool_alloc_noprof", "mempool_alloc_preallocated", "mempool_free",
          "mempool_free_bulk", "mempool_alloc_bulk_noprof")
_HOOKED = {"mempool_init": "mempool_init_noprof",
           "mempool_create_node": "mempool_create_node_noprof",
           "mempool_create": "mempool_create_noprof", "mempool_alloc": "mempool_alloc_noprof",
           "mempool_alloc_bulk": "mempool_alloc_bulk_noprof"}


def _bind(impl: dict[str, Any]) -> None:
    for name, fn in impl.items():
        setattr(mempool, name, fn)   # the package's pool-type helpers call these too


def use_mempool(path: str | Path | None, load=None, **load_kwargs):
    """Compile ``path`` (a tree's ``mm/mempool.c``) with ``load`` (hwemu.kbuild.load)
    and bind the ``mempool`` package to it; None binds the Python port again. Returns
    the module (or None)."""
    if path is None:
        if _PY:
            _bind(_PY)
            _PY.clear()
        return None
    text = Path(path).read_text()
    defines = {"HWEMU_MEMPOOL_BULK_ALLOCATED": int(bulk_has_allocated(text)),
               **load_kwargs.pop("defines", {})}
    module = load(path, defines=defines, **load_kwargs)
    module.bulk_params = "allocated" if defines["HWEMU_MEMPOOL_BULK_ALLOCATED"] else ""
    impl = CMempool(module)
    bound = {name: getattr(impl, name) for name in _BOUND}
    bound.update({macro: alloc_hooks(bound[noprof]) for macro, noprof in _HOOKED.items()})
    if not _PY:
        _PY.update({name: getattr(mempool, name) for name in bound})
    _bind(bound)
    return module
