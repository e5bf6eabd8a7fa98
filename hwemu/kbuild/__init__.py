"""Kernel C on the emulated machine: compile a driver, or a tree's ``mm/mempool.c``.

:func:`load` compiles C files against hwemu's own kernel headers (``hwemu/include``)
into a Python extension (cffi, API mode) and returns a :class:`Module` whose
attributes are the functions the sources define (every non-static one), taking and
returning ints: pointers are raw addresses, as everywhere in hwemu. The C calls hwemu's
allocators, locks, wait queues, printk and KASAN through the table of
:mod:`hwemu.kbuild.calls`, in the calling task, with the GIL held: its spin locks,
sleeps and ``cond_resched()`` are scheduling points of the deterministic machine.

With KASAN (the machine's, unless ``kasan=`` says otherwise), the sources are built
with gcc's ``-fsanitize=kernel-address`` in outline mode and every access is checked
against the machine's shadow: a bad one gives the same kernel-format report as one
from Python, with the C functions in its stack. An access to an unmapped address, in
instrumented code or not, is an oops and a Python exception, never a crash: every call
from Python into the module is guarded, and the C unwinds to it.

Builds are cached (see :mod:`hwemu.kbuild.build`); :func:`use_mempool` binds the
``mempool`` package to a compiled ``mm/mempool.c``. Only 64-bit (x86_64) machines run
kernel C: the module is compiled for the host.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Iterable

from .. import bug, stackdepot
from ..current import _current_space, current_or_none
from ..errors import MachineError
from .build import CompileError, build, import_module, runtime
from .calls import calls

__all__ = ["CompileError", "Module", "load", "prebuild", "use_mempool"]


class _Runtime:
    """The loaded runtime: its ffi and lib, the guarded ``call(fn, arg)``."""

    def __init__(self):
        from . import native, symbols
        mod = runtime()
        self.ffi, self.lib = mod.ffi, mod.lib
        native.rt = symbols.rt = self
        self.symbols = symbols
        self._held: list[BaseException] = []
        for c in calls():
            self.ffi.def_extern(name=f"hw_py_{c.name}", onerror=self._onerror)(
                _entry(c.impl))
        self.ffi.def_extern(name="hw_py_bind_machine", onerror=self._onerror)(
            _entry(self._bind_machine))
        from .. import sched
        from ..current import _current
        core = sched.TaskCore if sched.TaskCore is not sched.PyTaskCore else None
        self.lib.hw_init(id(_current_space), id(_current), id(core) if core else 0)
        self.call = _pyobject(self.lib.hw_builtins())["call"]
        self.address = self.lib.hw_rt_address()
        symbols.add_module(mod.__file__, code=False)   # its table: C reads it
        self.guard_faults()

    def guard_faults(self) -> None:
        """Make SIGSEGV/SIGBUS come to the runtime first (again, if another handler,
        such as faulthandler's, was installed since): C's faults unwind to its guard,
        others go on to that handler."""
        if self.lib.hw_install_fault_handler():
            raise MachineError("hwemu.kbuild: cannot install the SIGSEGV handler")

    def _onerror(self, exc_type, exc, tb) -> None:
        """A call from C raised: keep the exception for the guard C unwinds to."""
        if exc is None:
            exc = exc_type()
        self._held[:] = [exc]
        self.lib.hw_set_exception(id(exc))

    def _bind_machine(self) -> None:
        """The running context's machine changed: tell C its direct map and shadow."""
        task = current_or_none()
        if task is None:
            self.lib.hw_forget_machine()
            return
        m = task.machine
        space = m.space
        shadow = m.KASAN_SHADOW_OFFSET if m.kasan.enabled else 0
        self.lib.hw_set_machine(space.fast_lo, space.fast_hi, shadow, m.alloc_tags.enabled)


def _entry(impl):
    """The Python function cffi calls for C: ``impl`` in a frame reports know as the
    place where C called Python (:data:`hwemu.bug.NATIVE_ENTRY`)."""
    def c_call(*args):
        return impl(*args)
    return c_call


bug.NATIVE_ENTRY.add(_entry(None).__code__)


def _pyobject(addr: int) -> Any:
    """The Python object at ``addr`` (a new reference C handed over)."""
    return ctypes.cast(addr, ctypes.py_object).value


_RT: _Runtime | None = None


def _rt() -> _Runtime:
    global _RT
    if _RT is None:
        from . import symbols
        _RT = _Runtime()
        bug.native_frames = symbols.native_frames
        stackdepot.native_key, stackdepot.native_lines = symbols.depot_key, symbols.depot_lines
    return _RT


class Module:
    """A compiled module: its exported functions as attributes.

    :ivar path: the extension's shared object
    :ivar sources: the C files it was built from
    :ivar exports: the names of its functions callable from Python
    """

    def __init__(self, path: Path, meta: dict, rt: _Runtime):
        mod = import_module(path, meta)
        self.path, self.sources = path, [Path(s) for s in meta["sources"]]
        self.ffi, self.lib = mod.ffi, mod.lib
        self.kasan = meta["kasan"]
        self.lib.hw_bind_rt(rt.address)
        self._functions: dict[str, Any] = _pyobject(self.lib.hw_exports())
        self.exports = [e["name"] for e in meta["exports"]]
        self.warnings: str = meta.get("warnings", "")   # gcc's, when it was built
        self.bulk_params = ""   # set by use_mempool(): the form of mempool_alloc_bulk
        self._dll = ctypes.CDLL(str(path))
        from .native import STOCK, STOCK_FNS
        from .symbols import add_module
        add_module(str(path))
        for name in STOCK:   # its stock pool callbacks, by address (the glue's or its own)
            STOCK_FNS[self.addressof(name)] = name

    def __getattr__(self, name: str):
        try:
            return self._functions[name]
        except KeyError:
            raise AttributeError(f"{self.path.name}: no exported function {name!r} "
                                 f"(exports: {', '.join(self.exports)})") from None

    def addressof(self, name: str) -> int:
        """The address of C function (or variable) ``name``, static ones included
        only if the linker kept their symbol: for function pointers."""
        try:
            return ctypes.cast(getattr(self._dll, name), ctypes.c_void_p).value or 0
        except AttributeError:
            raise AttributeError(f"{self.path.name}: no symbol {name!r}") from None

    def initcalls(self) -> int:
        """Run the sources' ``late_initcall()``/``module_init()`` functions; the first
        error they return, or 0."""
        return self._functions["__initcalls__"]()

    def __repr__(self) -> str:
        return f"<hwemu.kbuild module {', '.join(s.name for s in self.sources)}>"


def _defines(config, kasan: bool) -> dict[str, object]:
    """The configuration a module is compiled for: its machine's (``config``, a
    :class:`hwemu.Config`; None: no machine)."""
    if config is None:
        return {"HZ": 1000, "CONFIG_KASAN": kasan}
    m = config.machine
    if m.arch != "x86_64":
        raise MachineError(f"hwemu.kbuild: machine {m.name!r} is {m.arch}; kernel C "
                           "runs on 64-bit (x86_64) machines only")
    # slub_debug poisoning is off under KASAN (Machine.slub_debug_on says the same).
    slub_debug_on = config.debug.slub_debug_on and not config.kasan.enabled
    return {"HZ": m.hz, "CONFIG_KASAN": kasan, "CONFIG_SLUB_DEBUG_ON": slub_debug_on,
            "NR_CPUS": m.cpus}


def _paths(sources) -> list[Path]:
    paths = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(s) for s in sources]
    if not paths:
        raise ValueError("load(): no sources")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such C file")
    return [p.resolve() for p in paths]


def prebuild(sources, config) -> None:
    """Compile ``sources`` for a machine of ``config`` (into the cache), so that a
    :func:`load` on that machine finds them built: a run's C is compiled before the
    run starts. Raises :class:`CompileError`."""
    paths = _paths(sources)
    kasan = config.kasan.enabled
    _rt()
    build(paths, paths[0].stem, kasan, _defines(config, kasan), ())


def load(sources: str | Path | Iterable[str | Path], *, kasan: bool | None = None,
         cflags: Iterable[str] = (), name: str | None = None,
         defines: dict[str, object] | None = None) -> Module:
    """Compile ``sources`` (C files) against hwemu's headers and load them.

    :param kasan: instrument for KASAN; None: as the current machine has it
    :param cflags: extra gcc flags
    :param name: the module's name (default: the first source's stem)
    :param defines: extra ``-D`` macros (True: defined, a value: ``=value``)
    :raises CompileError: gcc's diagnostics, as it printed them
    """
    paths = _paths(sources)
    task = current_or_none()
    machine = task.machine if task is not None else None
    if kasan is None:
        kasan = bool(machine is not None and machine.kasan.enabled)
    macros = {**_defines(machine.config if machine else None, kasan), **(defines or {})}
    rt = _rt()
    rt.guard_faults()
    path, meta = build(paths, name or paths[0].stem, kasan, macros, tuple(cflags))
    module = Module(path, meta, rt)
    if task is not None:
        err = module.initcalls()
        if err:
            raise MachineError(f"{module}: an initcall returned {err}")
    return module


def use_mempool(path: str | Path | None, **kwargs) -> Module | None:
    """Compile a tree's ``mm/mempool.c`` and make the ``mempool`` package call it."""
    from .mempool_c import use_mempool as _use
    return _use(path, load, **kwargs)
