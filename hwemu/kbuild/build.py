"""Compiling kernel C for hwemu: the runtime, the modules, their cache.

A module is built in two steps. Each source is compiled alone with gcc, as the kernel
compiles it: ``-nostdinc`` against hwemu's headers (``hwemu/include``), the machine's
configuration as ``-D`` flags, and with KASAN gcc's ``-fsanitize=kernel-address`` in
outline mode. That first pass is also where gcc's own diagnostics reach the user
(:class:`CompileError`), and where ``-aux-info`` lists the functions each source
defines: every one that is not static is exported. Then cffi (API mode) builds the
Python extension: a generated glue file (a guarded ``METH_FASTCALL`` wrapper per
exported function, the ``__asan_*`` entry points, the initcalls) linked with the
objects of the first pass.

The shared runtime (``runtime.c`` and the calls of :mod:`.calls`) is built the same
way, once. Everything built is kept in a cache directory keyed by what went into it
(sources, headers, flags, the runtime, the Python version), so a second load of the
same sources only imports the extension.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType

from ..errors import MachineError
from .headers import INCLUDE

HERE = Path(__file__).resolve().parent
GENERATED = INCLUDE / "generated"
FORMAT = 1   # bump when what a build makes changes without its inputs changing

CFLAGS = ("-std=gnu11", "-O2", "-g", "-fPIC", "-fno-strict-aliasing", "-fno-common",
          "-fno-omit-frame-pointer", "-fno-delete-null-pointer-checks",
          "-Wall", "-Wno-unused-function", "-D__KERNEL__", "-DCONFIG_DEBUG_VM",
          "-DCONFIG_NUMA")
KASAN_CFLAGS = ("-fsanitize=kernel-address",
                "--param", "asan-instrumentation-with-call-threshold=0",
                "--param", "asan-stack=0", "--param", "asan-globals=0")


class CompileError(MachineError):
    """gcc refused a source: ``str()`` is gcc's own ``file:line: error:`` lines."""


def cache_dir() -> Path:
    """Where built modules are kept: ``$HWEMU_KBUILD_CACHE``, or the user's cache."""
    env = os.environ.get("HWEMU_KBUILD_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or
                                      Path.home() / ".cache") / "hwemu" / "kbuild"
    base.mkdir(parents=True, exist_ok=True)
    return base


@cache
def _gcc_include() -> str:
    return subprocess.run(["gcc", "-print-file-name=include"], capture_output=True,
                          text=True, check=True).stdout.strip()


@cache
def _headers_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(INCLUDE.rglob("*.h")):
        h.update(str(path.relative_to(INCLUDE)).encode() + b"\0" + path.read_bytes())
    for path in (HERE / "runtime.c", HERE / "build.py", HERE / "calls.py",
                 HERE.parent / "_core.h", HERE.parent / "_hw.h"):
        h.update(path.read_bytes())
    h.update(f"{FORMAT} {sys.version} {sys.platform}".encode())
    return h.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([_headers_digest(), *parts]).encode()).hexdigest()[:24]


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cffi_build(name: str, glue: str, cdef: str, workdir: Path, **kwargs) -> Path:
    """Build extension ``name`` from ``glue`` with cffi in ``workdir``; its path."""
    import cffi
    from cffi import recompiler
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    # hwemu's headers only for "hwemu/...": on the <...> path, its linux/ would stand
    # in for the system's in the C library's headers.
    ffi.set_source(name, glue, py_limited_api=False, **kwargs,
                   extra_compile_args=["-O2", "-g", "-iquote", str(GENERATED),
                                       "-iquote", str(INCLUDE),
                                       "-iquote", str(HERE.parent.parent)])
    # The glue uses METH_FASTCALL and context variables: the full C API, not the
    # limited one cffi writes for by default (its one switch is this global).
    saved, recompiler.USE_LIMITED_API = recompiler.USE_LIMITED_API, False
    try:
        return Path(ffi.compile(tmpdir=str(workdir), verbose=False))
    except Exception as exc:   # distutils' CompileError/LinkError: our glue's fault
        raise MachineError(f"hwemu.kbuild: building {name} failed: {exc}") from None
    finally:
        recompiler.USE_LIMITED_API = saved


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished build into place; another process may have been first."""
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the runtime

_STATIC_CDEF = """
int hw_word_trylock(uintptr_t lock, unsigned int cpu, uint64_t owner);
int hw_word_unlock(uintptr_t lock, unsigned int cpu, uint64_t owner);
void hw_word_init(uintptr_t lock);
int hw_backtrace(uintptr_t *pcs, int max);
void hw_set_machine(uintptr_t lo, uintptr_t hi, uintptr_t shadow, int profiling);
void hw_add_host_range(uintptr_t lo, uintptr_t hi);
int hw_in_c(void);
void hw_forget_machine(void);
void hw_set_exception(uintptr_t exc);
void hw_init(uintptr_t space_var, uintptr_t current_var, uintptr_t taskcore);
int hw_install_fault_handler(void);
uintptr_t hw_rt_address(void);
uintptr_t hw_builtins(void);
extern "Python" void hw_py_bind_machine(void);
"""

_RUNTIME_TAIL = r"""
static void hw_guard_push_v(void *g) { hw_guard_push(g); }
static void hw_guard_pop_v(void *g) { hw_guard_pop(g); }
static void *hw_guard_raise_v(void *g, int how) { return hw_guard_raise(g, how); }

static const struct hw_rt hw_rt_table = {
    hw_guard_push_v, hw_guard_pop_v, hw_guard_raise_v, hw_asan_check, hw_kasan_enabled,
    hw_mem_profiling, hw_vprintk,
    %(table)s
};

static uintptr_t hw_rt_address(void) { return (uintptr_t)&hw_rt_table; }

/* call(fn, *args): the C function at address fn with up to 3 integer or pointer
 * arguments (the others 0), guarded; its result as an unsigned int. */
static PyObject *hw_call_fn(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uintptr_t a[4] = {0, 0, 0, 0};
    if (nargs < 1 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "call(fn, *args): at most 3 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        a[i] = PyLong_AsUnsignedLongLongMask(args[i]);
    if (PyErr_Occurred())
        return NULL;
    struct hw_guard g;
    hw_guard_push(&g);
    int how = setjmp(g.env);
    if (how)
        return hw_guard_raise(&g, how);
    uintptr_t r = ((uintptr_t (*)(uintptr_t, uintptr_t, uintptr_t))a[0])(a[1], a[2], a[3]);
    hw_guard_pop(&g);
    return PyLong_FromUnsignedLongLong(r);
}

static PyMethodDef hw_builtin_defs[] = {
    {"call", (PyCFunction)(void (*)(void))hw_call_fn, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static uintptr_t hw_builtins(void)
{
    PyObject *d = PyDict_New();
    for (PyMethodDef *m = hw_builtin_defs; d && m->ml_name; m++) {
        PyObject *f = PyCFunction_New(m, NULL);
        if (f == NULL || PyDict_SetItemString(d, m->ml_name, f) < 0)
            Py_CLEAR(d);
        Py_XDECREF(f);
    }
    return (uintptr_t)d;
}
"""


def _arg_names(params: str) -> list[str]:
    return [re.findall(r"\w+", p)[-1] for p in params.split(",")] if params else []


# The calls the runtime does in C when it can (runtime.c's hw_fast_<name>), the
# Python call being their slow path.
FAST = ("spin_lock", "spin_unlock", "preempt", "kasan_mempool_poison_object",
        "kasan_mempool_unpoison_object", "kasan_mempool_poison_pages",
        "kasan_mempool_unpoison_pages")


def _runtime_source() -> tuple[str, str]:
    """The runtime's cdef and C source, the calls' parts generated from the table."""
    from .calls import calls
    cdef = [_STATIC_CDEF]
    decls, wrappers, table = [], [], []
    for c in calls():
        py, params = f"hw_py_{c.name}", c.params or "void"
        cdef.append(f'extern "Python" {c.ret} {py}({params});')
        decls.append(f"static {c.ret} {py}({params});")
        args = ", ".join(_arg_names(c.params))
        body = (f"{py}({args}); hw_cb_leave(&cb_);" if c.ret == "void" else
                f"{c.ret} r_ = {py}({args}); hw_cb_leave(&cb_); return r_;")
        wrappers.append(f"static {c.ret} rt_{c.name}({params})\n"
                        f"{{ struct hw_cb cb_; hw_cb_enter(&cb_); {body} }}")
        table.append(f"hw_fast_{c.name}," if c.name in FAST else f"rt_{c.name},")
    head = "\n".join([
        "#undef Py_BEGIN_ALLOW_THREADS", "#undef Py_END_ALLOW_THREADS",
        "#define Py_BEGIN_ALLOW_THREADS {", "#define Py_END_ALLOW_THREADS }",
        "#include <stdint.h>", '#include "hwemu/rt.h"',
        "static void hw_py_bind_machine(void);",
        *decls,
        # the runtime calls some of the calls itself (rt_printk, rt_check_access...)
        *[f"static {c.ret} rt_{c.name}({c.params or 'void'});" for c in calls()]])
    fast = [f"static {c.ret} hw_fast_{c.name}({c.params or 'void'});"
            for c in calls() if c.name in FAST]
    source = "\n".join([head, *fast, (HERE / "runtime.c").read_text(), *wrappers,
                        _RUNTIME_TAIL % {"table": "\n    ".join(table)}])
    return "\n".join(cdef), source


@cache
def runtime() -> ModuleType:
    """The runtime extension (built on first use, then from the cache)."""
    cdef, source = _runtime_source()
    key = _key("runtime", cdef, source)
    name = f"_hwemu_kbuild_rt_{key}"
    final = cache_dir() / name
    path = next(final.glob(f"{name}*.so"), None) if final.is_dir() else None
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix=name + ".", dir=cache_dir()))
        try:
            built = _cffi_build(name, source, cdef, tmp, libraries=["gcc_s"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _publish(tmp, final)
        path = final / built.relative_to(tmp) if final.exists() else built
    return _import(name, path)


# ---------------------------------------------------------------- modules

_AUX = re.compile(r"^/\* (?P<file>.+):(?P<line>\d+):(?P<kind>\w+) \*/ (?P<proto>.*?);"
                  r"(?: /\* .*\*/)?$")
_PROTO = re.compile(r"^(?P<storage>extern |static )?(?P<ret>.*?)(?P<name>\w+) \((?P<params>.*)\)$")


class Export:
    """A function a module exports: ``name(params)`` with ``ret``."""

    def __init__(self, name: str, ret: str, params: list[str]):
        self.name, self.ret, self.params = name, ret.strip(), params

    @property
    def pointer_ret(self) -> bool:
        return "*" in self.ret or "(" in self.ret

    def as_dict(self) -> dict:
        return {"name": self.name, "ret": self.ret, "params": self.params}


def _split_params(params: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in params:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip() and cur.strip() != "void":
        out.append(cur.strip())
    return out


def _is_pointer(param: str) -> bool:
    return "*" in param or "[" in param or "(" in param


def exports_of(aux: str) -> tuple[list[Export], list[str]]:
    """The non-static functions a unit defines (in its source or a ``.c`` it
    includes; not hwemu's headers), from gcc's ``-aux-info`` text; and the names of
    those that cannot be called from Python (a struct by value, varargs), which stay
    callable from C only."""
    exports, skipped = [], []
    for line in aux.splitlines():
        m = _AUX.match(line)
        if not m or "F" not in m["kind"] or m["file"].startswith(str(INCLUDE)):
            continue
        p = _PROTO.match(m["proto"])
        if not p or p["storage"] == "static ":
            continue
        params = _split_params(p["params"])
        by_value = any(("struct " in x or "union " in x) and not _is_pointer(x)
                       for x in [*params, p["ret"]])
        if by_value or "..." in params or "__builtin_va_list" in p["params"]:
            skipped.append(p["name"])
            continue
        exports.append(Export(p["name"], p["ret"], params))
    return exports, skipped


def _shims(exports: list[Export]) -> str:
    """C appended to the source that defines them: each export called with 64-bit
    arguments, its result as 64 bits (sign-extended), and whether it is signed."""
    out = ['#line 1 "<hwemu.kbuild shims>"']
    for e in exports:
        args = ", ".join(f"(void *)(__UINTPTR_TYPE__)a[{i}]" if _is_pointer(p) else f"a[{i}]"
                         for i, p in enumerate(e.params))
        dummy = ", ".join("(void *)0" if _is_pointer(p) else "0" for p in e.params)
        if e.ret == "void":
            call, signed = f"{e.name}({args}); return 0;", "0"
        elif e.pointer_ret:
            call, signed = f"return (unsigned long long)(__UINTPTR_TYPE__){e.name}({args});", "0"
        else:
            call = f"return (unsigned long long)(long long){e.name}({args});"
            signed = f"((__typeof__({e.name}({dummy})))-1 < 0)"
        out.append(f"unsigned long long __hw_call_{e.name}(const unsigned long long *a)"
                   f" {{ (void)a; {call} }}")
        out.append(f"const int __hw_signed_{e.name} = {signed};")
    return "\n".join(out) + "\n"


_GLUE_HEAD = r"""
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
#include <stdint.h>
#include "hwemu/guard.h"
#include "hwemu/rt.h"

const struct hw_rt *__hw_rt;
static void hw_bind_rt(uintptr_t rt) { __hw_rt = (const struct hw_rt *)rt; }

static int hw_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want,
                   const char *name, unsigned long long *a)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd argument%s (%zd given)", name,
                     want, want == 1 ? "" : "s", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyLong_Check(args[i])) {
            PyErr_Format(PyExc_TypeError, "%s(): argument %zd must be int, not %s", name,
                         i + 1, Py_TYPE(args[i])->tp_name);
            return -1;
        }
        a[i] = PyLong_AsUnsignedLongLongMask(args[i]);
    }
    return 0;
}

#define HW_ASAN(size)                                                               \
void __asan_load##size##_noabort(unsigned long a)                                   \
{ __hw_rt->asan_check(a, size, 0, (uintptr_t)__builtin_return_address(0)); }        \
void __asan_store##size##_noabort(unsigned long a)                                  \
{ __hw_rt->asan_check(a, size, 1, (uintptr_t)__builtin_return_address(0)); }        \
void __asan_load##size(unsigned long a)                                             \
{ __hw_rt->asan_check(a, size, 0, (uintptr_t)__builtin_return_address(0)); }        \
void __asan_store##size(unsigned long a)                                            \
{ __hw_rt->asan_check(a, size, 1, (uintptr_t)__builtin_return_address(0)); }
HW_ASAN(1) HW_ASAN(2) HW_ASAN(4) HW_ASAN(8) HW_ASAN(16)
void __asan_loadN_noabort(unsigned long a, size_t n)
{ __hw_rt->asan_check(a, n, 0, (uintptr_t)__builtin_return_address(0)); }
void __asan_storeN_noabort(unsigned long a, size_t n)
{ __hw_rt->asan_check(a, n, 1, (uintptr_t)__builtin_return_address(0)); }
void __asan_loadN(unsigned long a, size_t n)
{ __hw_rt->asan_check(a, n, 0, (uintptr_t)__builtin_return_address(0)); }
void __asan_storeN(unsigned long a, size_t n)
{ __hw_rt->asan_check(a, n, 1, (uintptr_t)__builtin_return_address(0)); }
void __asan_handle_no_return(void) {}

/* The mempool API for a module that does not define it (weak: a tree's mm/mempool.c
 * among the sources defines it): the mempool package's, through the table. */
#define HW_P (uintptr_t)
__attribute__((weak)) void *mempool_create_node_noprof(int min_nr, void *alloc_fn,
        void *free_fn, void *pool_data, unsigned int gfp, int node)
{ return (void *)__hw_rt->mempool_create(min_nr, HW_P alloc_fn, HW_P free_fn,
                                         HW_P pool_data, gfp, node); }
__attribute__((weak)) void *mempool_create(int min_nr, void *alloc_fn, void *free_fn,
        void *pool_data)
{ return mempool_create_node_noprof(min_nr, alloc_fn, free_fn, pool_data, 0xcc0, -1); }
__attribute__((weak)) int mempool_init_node(void *pool, int min_nr, void *alloc_fn,
        void *free_fn, void *pool_data, unsigned int gfp, int node)
{ return __hw_rt->mempool_init(HW_P pool, min_nr, HW_P alloc_fn, HW_P free_fn,
                               HW_P pool_data, gfp, node); }
__attribute__((weak)) int mempool_init_noprof(void *pool, int min_nr, void *alloc_fn,
        void *free_fn, void *pool_data)
{ return mempool_init_node(pool, min_nr, alloc_fn, free_fn, pool_data, 0xcc0, -1); }
__attribute__((weak)) void mempool_exit(void *pool) { __hw_rt->mempool_exit(HW_P pool); }
__attribute__((weak)) void mempool_destroy(void *pool)
{ __hw_rt->mempool_destroy(HW_P pool); }
__attribute__((weak)) int mempool_resize(void *pool, int new_min_nr)
{ return __hw_rt->mempool_resize(HW_P pool, new_min_nr); }
__attribute__((weak)) void *mempool_alloc_noprof(void *pool, unsigned int gfp)
{ return (void *)__hw_rt->mempool_alloc(HW_P pool, gfp); }
__attribute__((weak)) void *mempool_alloc_preallocated(void *pool)
{ return (void *)__hw_rt->mempool_alloc_preallocated(HW_P pool); }
__attribute__((weak)) void mempool_free(void *element, void *pool)
{ __hw_rt->mempool_free(HW_P element, HW_P pool); }
__attribute__((weak)) int mempool_alloc_bulk_noprof(void *pool, void **elems,
        unsigned int count)
{ return __hw_rt->mempool_alloc_bulk(HW_P pool, HW_P elems, count); }
__attribute__((weak)) unsigned int mempool_free_bulk(void *pool, void **elems,
        unsigned int count)
{ return __hw_rt->mempool_free_bulk(HW_P pool, HW_P elems, count); }
#define HW_STOCK(i, name, ret)                                                      \
__attribute__((weak)) ret name(uintptr_t a, void *b)                                \
{ return (ret)__hw_rt->mempool_stock(i, a, HW_P b); }
HW_STOCK(0, mempool_alloc_slab, void *)
HW_STOCK(2, mempool_kmalloc, void *)
HW_STOCK(4, mempool_alloc_pages, void *)
#define HW_STOCK_FREE(i, name)                                                      \
__attribute__((weak)) void name(void *a, void *b)                                   \
{ __hw_rt->mempool_stock(i, HW_P a, HW_P b); }
HW_STOCK_FREE(1, mempool_free_slab)
HW_STOCK_FREE(3, mempool_kfree)
HW_STOCK_FREE(5, mempool_free_pages)

typedef int (*hw_initcall_t)(void);
typedef void (*hw_exitcall_t)(void);
extern hw_initcall_t __start_hw_initcalls[] __attribute__((weak));
extern hw_initcall_t __stop_hw_initcalls[] __attribute__((weak));
extern hw_exitcall_t __start_hw_exitcalls[] __attribute__((weak));
extern hw_exitcall_t __stop_hw_exitcalls[] __attribute__((weak));

unsigned long long __hw_call___initcalls__(const unsigned long long *a)
{
    for (hw_initcall_t *p = __start_hw_initcalls; p && p < __stop_hw_initcalls; p++) {
        int r = (*p)();
        if (r)
            return (unsigned long long)(long long)r;
    }
    return 0;
}
static const int __hw_signed___initcalls__ = 1;

unsigned long long __hw_call___exitcalls__(const unsigned long long *a)
{
    for (hw_exitcall_t *p = __start_hw_exitcalls; p && p < __stop_hw_exitcalls; p++)
        (*p)();
    return 0;
}
static const int __hw_signed___exitcalls__ = 0;
"""


def _wrapper(e: Export | str, kind: str) -> str:
    name = e if isinstance(e, str) else e.name
    n = 0 if isinstance(e, str) else len(e.params)
    result = {"void": "Py_RETURN_NONE;",
              "int": (f"return __hw_signed_{name} ? PyLong_FromLongLong((long long)r)"
                      " : PyLong_FromUnsignedLongLong(r);")}[kind]
    return f"""
static PyObject *hw_x_{name}(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{{
    unsigned long long a[{max(n, 1)}];
    if (hw_args(args, nargs, {n}, "{name}", a))
        return NULL;
    struct hw_guard g;
    __hw_rt->guard_push(&g);
    int how = setjmp(g.env);
    if (how)
        return (PyObject *)__hw_rt->guard_raise(&g, how);
    unsigned long long r = __hw_call_{name}(a);
    __hw_rt->guard_pop(&g);
    (void)r;
    {result}
}}"""


def _glue(exports: list[Export]) -> str:
    parts = [_GLUE_HEAD]
    defs = []
    for e in exports:
        parts.append(f"extern unsigned long long __hw_call_{e.name}(const unsigned long long *);")
        parts.append(f"extern const int __hw_signed_{e.name};")
        parts.append(_wrapper(e, "void" if e.ret == "void" else "int"))
        defs.append(e.name)
    for special in ("__initcalls__", "__exitcalls__"):
        parts.append(_wrapper(special, "int"))
        defs.append(special)
    table = "\n".join(f'    {{"{n}", (PyCFunction)(void (*)(void))hw_x_{n}, METH_FASTCALL, NULL}},'
                      for n in defs)
    parts.append(f"""
static PyMethodDef hw_export_defs[] = {{
{table}
    {{NULL, NULL, 0, NULL}},
}};

static uintptr_t hw_exports(void)
{{
    PyObject *d = PyDict_New();
    for (PyMethodDef *m = hw_export_defs; d && m->ml_name; m++) {{
        PyObject *f = PyCFunction_New(m, NULL);
        if (f == NULL || PyDict_SetItemString(d, m->ml_name, f) < 0)
            Py_CLEAR(d);
        Py_XDECREF(f);
    }}
    return (uintptr_t)d;
}}
""")
    return "\n".join(parts)


def _source_flags(source: Path, copy: Path) -> list[str]:
    """How a source is compiled from its copy in the build directory: its
    ``#include "..."`` found beside the original (hwemu's mm-internal headers first for
    a source of a tree's ``mm/``: its ``"slab.h"`` is mm/slab.h, which hwemu stands in
    for), and its own path in ``__FILE__`` and the debug info."""
    dirs = [str(source.parent)]
    if source.parent.name == "mm":
        dirs.insert(0, str(INCLUDE / "mm"))
    return [*(arg for d in dirs for arg in ("-iquote", d)),
            f"-ffile-prefix-map={copy.parent}={source.parent}"]


def compile_flags(kasan: bool, defines: dict[str, object], cflags: tuple[str, ...]) -> list[str]:
    flags = [*CFLAGS, "-nostdinc", "-isystem", _gcc_include(),
             "-I", str(INCLUDE), "-I", str(GENERATED)]
    flags += [f"-D{k}" if v is True else f"-D{k}={v}" for k, v in sorted(defines.items())
              if v is not False and v is not None]
    if kasan:
        flags += KASAN_CFLAGS
    return flags + list(cflags)


_QUOTE_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def local_headers(source: Path, text: str) -> dict[str, str]:
    """The ``#include "..."`` files a source reads from its own tree (recursively),
    path -> text: part of what a build depends on. hwemu's mm-internal headers stand
    in for a tree's ``mm/`` ones, which are not read."""
    found: dict[str, str] = {}
    todo = [(source.parent, text)]
    while todo:
        where, body = todo.pop()
        for name in _QUOTE_INCLUDE.findall(body):
            if source.parent.name == "mm" and (INCLUDE / "mm" / name).exists():
                continue
            for d in (where, source.parent):
                path = (d / name).resolve()
                if path.is_file() and str(path) not in found:
                    found[str(path)] = path.read_text(errors="replace")
                    todo.append((path.parent, found[str(path)]))
                    break
    return found


def build(sources: list[Path], name: str, kasan: bool, defines: dict[str, object],
          cflags: tuple[str, ...]) -> tuple[Path, dict]:
    """Build (or find in the cache) the module of ``sources``; its path and metadata."""
    texts = [s.read_text() for s in sources]
    flags = compile_flags(kasan, defines, cflags)
    headers = [local_headers(s, t) for s, t in zip(sources, texts)]
    key = _key("module", [str(s) for s in sources], texts, headers, flags, name)
    modname = f"_hwemu_kb_{re.sub(r'[^0-9A-Za-z_]', '_', name)}_{key}"
    final = cache_dir() / modname
    meta_path = final / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return final / meta["so"], meta
    tmp = Path(tempfile.mkdtemp(prefix=modname + ".", dir=cache_dir()))
    try:
        objects, exports, skipped, warnings = [], [], [], []
        for i, (src, text) in enumerate(zip(sources, texts)):
            # A copy, so that the shims can follow the source in its unit.
            unit = tmp / f"src{i}" / src.name
            unit.parent.mkdir()
            unit.write_text(text)
            own = _source_flags(src, unit)
            aux = tmp / f"unit{i}.aux"
            _gcc([*flags, *own, "-fsyntax-only", "-aux-info", str(aux), str(unit)],
                 {f"{unit.parent}/": f"{src.parent}/"})
            mine, cannot = exports_of(aux.read_text(errors="replace"))
            exports += mine
            skipped += cannot
            unit.write_text(text + "\n" + _shims(mine))
            obj = tmp / f"unit{i}.o"
            warnings.append(_gcc([*flags, *own, "-c", "-o", str(obj), str(unit)],
                                 {f"{unit.parent}/": f"{src.parent}/"}))
            objects.append(str(obj))
        cdef = "uintptr_t hw_exports(void);\nvoid hw_bind_rt(uintptr_t rt);"
        built = _cffi_build(modname, _glue(exports), cdef, tmp, extra_objects=objects)
        meta = {"module": modname, "so": str(built.relative_to(tmp)),
                "exports": [e.as_dict() for e in exports], "skipped": skipped,
                "sources": [str(s) for s in sources], "kasan": kasan,
                "warnings": "\n".join(w for w in warnings if w)}
        if meta["warnings"]:   # as a kernel build shows them, once
            print(meta["warnings"], file=sys.stderr)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    base = final if final.exists() else tmp
    return base / meta["so"], meta


def _gcc(args: list[str], paths: dict[str, str]) -> str:
    """Run gcc; its diagnostics, with the copies' paths put back, are the error, or
    (the warnings) what it returns."""
    proc = subprocess.run(["gcc", *args], capture_output=True, text=True)
    text = proc.stderr.rstrip()
    for copy, original in paths.items():
        text = text.replace(copy, original)
    if proc.returncode:
        raise CompileError(text or f"gcc exited with {proc.returncode}")
    return text


def import_module(path: Path, meta: dict) -> ModuleType:
    return _import(meta["module"], path)
