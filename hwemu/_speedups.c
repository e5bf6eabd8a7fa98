/* The optional C helpers of hwemu: each is the fast path of a Python twin that stays the
 * reference (DESIGN.md, "C under the hardware, with a twin"). Without this extension, or
 * with HWEMU_PURE=1, the twins run alone.
 *
 * stack_key(skip, depth) -> bytes: the stack depot's key. Walking Python frames costs
 * ~100 ns a frame in Python. Native int64 pairs (id(code), lasti) for up to `depth`
 * frames, starting `skip` frames above the Python caller. Bytes, not a tuple of ints: no
 * int objects to make, and one memcmp-able buffer to hash. hwemu/stackdepot.py walks the
 * frames itself when it is missing.
 *
 * bind(name, twin[, base]) -> the C fast path `name` of the hardware primitives (checked
 * typed access, memset/memcpy, KASAN's shadow check and poisoning), bound to its twin;
 * space_register/space_update/space_unregister: hwemu/vmem.py's registry, mirrored;
 * set_current_space_var: which of its spaces the running context may access.
 *
 * TaskCore, SchedCore: the C bases of hwemu.sched.Task and Scheduler (hwemu/_core.h),
 * whose fields kernel C reads directly (hwemu.kbuild).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#include "_core.h"
#include "_hw.h"

#define MAX_DEPTH 64

static PyObject *stack_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "stack_key(skip, depth)");
        return NULL;
    }
    long skip = PyLong_AsLong(args[0]);
    long depth = PyLong_AsLong(args[1]);
    if ((skip == -1 || depth == -1) && PyErr_Occurred())
        return NULL;
    PyFrameObject *frame = PyEval_GetFrame();   /* borrowed: the caller's frame */
    Py_XINCREF(frame);
    while (frame != NULL && skip-- > 0) {
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    if (depth < 0 || depth > MAX_DEPTH) {
        Py_XDECREF(frame);
        PyErr_SetString(PyExc_ValueError, "stack_key: depth out of range");
        return NULL;
    }
    int64_t key[2 * MAX_DEPTH];
    Py_ssize_t n = 0;
    while (frame != NULL && n < 2 * depth) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        key[n++] = (int64_t)(intptr_t)code;
        key[n++] = PyFrame_GetLasti(frame);
        Py_DECREF(code);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    return PyBytes_FromStringAndSize((const char *)key, n * (Py_ssize_t)sizeof(int64_t));
}

/* ------------------------------------------------------------------------------------
 * The hardware primitives: checked typed access, memset/memcpy and KASAN's shadow.
 *
 * Each C function here is the fast path of a Python twin (hwemu/access.py, the Kasan
 * methods of hwemu/kasan/__init__.py) and is bound to it by bind(): the function's
 * `self` holds the twin, and everything the fast path does not cover -- an address
 * outside every registered always-mapped span, a poisoned shadow byte, a bad argument,
 * a keyword argument -- is handed to the twin unchanged, which does what it always
 * does (oops text, KASAN report, exception). So the two agree on every slow path by
 * construction; on the fast path they do the same bytes.
 *
 * Memory is touched only where hwemu/vmem.py said it is mapped: the registry below is
 * its mirror (space_register when a machine reserves its range, space_update whenever
 * the direct-map span or the KASAN shadow changes, space_unregister before munmap).
 * All of it runs with the GIL held and calls no Python code between looking a span
 * up and touching it, so no mapping can change in between.
 * ------------------------------------------------------------------------------------ */


typedef struct {
    uintptr_t base, end;    /* the reservation [base, end) */
    uintptr_t lo, hi;       /* the always-mapped span (the direct map); lo == hi: none */
    uintptr_t shadow;       /* KASAN_SHADOW_OFFSET, 0: no KASAN on this machine */
    PyObject *owner;        /* its hwemu.vmem.AddressSpace (a strong reference), or NULL */
} Space;

static Space *spaces;           /* sorted by base */
static Py_ssize_t nspaces, cap_spaces;
static Py_ssize_t last_space;   /* where the last fast access was found */
/* hwemu.current._current_space: the AddressSpace whose memory the running context may
 * access (its current task's machine's). A fast path takes only accesses to it; any
 * other (no task, another machine's task) goes to the twin, which refuses it. A
 * context variable read is a cache hit while the context does not change. */
static PyObject *current_space_var;

/* The space whose fast span holds all of [addr, addr+n), n > 0, or NULL. */
static inline Space *fast_space(uintptr_t addr, uintptr_t n)
{
    if (last_space < nspaces) {
        Space *s = &spaces[last_space];
        if (s->lo <= addr && addr < s->hi && n <= s->hi - addr)
            return s;
    }
    for (Py_ssize_t i = 0; i < nspaces; i++) {
        Space *s = &spaces[i];
        if (s->lo <= addr && addr < s->hi && n <= s->hi - addr) {
            last_space = i;
            return s;
        }
    }
    return NULL;
}

/* The registered space reserved at `base`, with KASAN, holding all of [addr, addr+n)
 * (n may be 0: then addr itself must be inside), or NULL. `hint`: where to look first. */
static inline Space *kasan_space(uintptr_t base, Py_ssize_t *hint, uintptr_t addr,
                                 uintptr_t n)
{
    Space *s = NULL;
    if (*hint < nspaces && spaces[*hint].base == base) {
        s = &spaces[*hint];
    } else {
        for (Py_ssize_t i = 0; i < nspaces; i++) {
            if (spaces[i].base == base) {
                s = &spaces[i];
                *hint = i;
                break;
            }
        }
    }
    if (s == NULL || s->shadow == 0 || addr < s->base || addr >= s->end ||
            n > s->end - addr)
        return NULL;
    return s;
}

/* Whether the running context may access the memory of `s` (its current's machine). */
static inline int may_access(Space *s)
{
    PyObject *space;
    if (s->owner == NULL || current_space_var == NULL ||
            PyContextVar_Get(current_space_var, NULL, &space) < 0) {
        PyErr_Clear();
        return 0;
    }
    int ok = space == s->owner;
    Py_XDECREF(space);
    return ok;
}

/* The fast span holding [addr, addr+n), current's to access, with its shadow clean, or
 * NULL. */
static inline Space *checked(uintptr_t addr, uintptr_t n)
{
    Space *s = fast_space(addr, n);
    if (s != NULL && !may_access(s))
        return NULL;
    if (s != NULL && s->shadow != 0 && !shadow_clean(s->shadow, addr, n))
        return NULL;
    return s;
}

/* An exact int (not bool, not a subclass) in [0, 2**64), or 0 (no error left set). */
static inline int get_u64(PyObject *o, uint64_t *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return 1;
}

/* An exact int in [1, PY_SSIZE_T_MAX], or 0. */
static inline int get_len(PyObject *o, Py_ssize_t *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    Py_ssize_t v = PyLong_AsSsize_t(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (v <= 0)
        return 0;
    *out = v;
    return 1;
}

static inline int access_size(Py_ssize_t n)
{
    return n == 1 || n == 2 || n == 4 || n == 8 || n == 16;
}

static inline uint64_t get_le(const uint8_t *p, Py_ssize_t n)
{
    uint64_t v = 0;
    while (n--)
        v = v << 8 | p[n];
    return v;
}

static inline void put_le(uint8_t *p, uint64_t v, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* ------------------------------------------------------------------ the twin binding */

typedef struct {
    PyObject_HEAD
    PyObject *twin;         /* the Python function doing everything but the fast path */
    uintptr_t base;         /* Kasan methods: the machine's reservation */
    Py_ssize_t hint;        /* its index in spaces, last time */
} TwinObject;

static int twin_traverse(TwinObject *t, visitproc visit, void *arg)
{
    Py_VISIT(t->twin);
    return 0;
}

static int twin_clear(TwinObject *t)
{
    Py_CLEAR(t->twin);
    return 0;
}

static void twin_dealloc(TwinObject *t)
{
    PyObject_GC_UnTrack(t);
    twin_clear(t);
    PyObject_GC_Del(t);
}

static PyTypeObject TwinType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwemu._speedups.Twin",
    .tp_basicsize = sizeof(TwinObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The Python twin a C fast path hands its slow paths to.",
    .tp_traverse = (traverseproc)twin_traverse,
    .tp_clear = (inquiry)twin_clear,
    .tp_dealloc = (destructor)twin_dealloc,
};

/* Everything the fast path does not cover: the twin, with the very same arguments. */
static PyObject *slow(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    PyObject *twin = ((TwinObject *)self)->twin;
    if (twin == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "hwemu._speedups: twin cleared");
        return NULL;
    }
    return PyObject_Vectorcall(twin, args, nargs, kwnames);
}

#define FAST_ARGS PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames
#define SLOW() slow(self, args, nargs, kwnames)

/* ------------------------------------------------------------------ hwemu.access */

static PyObject *c_load(FAST_ARGS)
{
    uint64_t addr;
    Py_ssize_t size;
    if (kwnames == NULL && nargs == 2 && get_len(args[1], &size) && access_size(size) &&
            get_u64(args[0], &addr) && checked(addr, size) != NULL) {
        const uint8_t *p = (const uint8_t *)(uintptr_t)addr;
        if (size == 16)
            return _PyLong_FromByteArray(p, 16, 1, 0);
        return PyLong_FromUnsignedLongLong(get_le(p, size));
    }
    return SLOW();
}

/* `value` as `size` little-endian bytes if -2**(8*size-1) <= value < 2**(8*size). */
static int value_bytes(PyObject *value, Py_ssize_t size, uint8_t *out)
{
    if (!PyLong_CheckExact(value))
        return 0;
    if (size == 16) {
        int ok = 0;
        for (int is_signed = 0; is_signed < 2 && !ok; is_signed++) {
#if PY_VERSION_HEX >= 0x030D0000
            ok = _PyLong_AsByteArray((PyLongObject *)value, out, 16, 1, is_signed, 1) == 0;
#else
            ok = _PyLong_AsByteArray((PyLongObject *)value, out, 16, 1, is_signed) == 0;
#endif
            if (!ok)
                PyErr_Clear();
        }
        return ok;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    uint64_t u;
    if (overflow == 0) {
        if (size < 8) {
            long long half = 1LL << (8 * size - 1);
            if (v < -half || v >= 2 * half)
                return 0;
        }
        u = (uint64_t)v;
    } else if (overflow > 0 && size == 8) {
        u = PyLong_AsUnsignedLongLong(value);
        if (u == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
    } else {
        return 0;
    }
    put_le(out, u, size);
    return 1;
}

static PyObject *c_store(FAST_ARGS)
{
    uint64_t addr;
    Py_ssize_t size;
    uint8_t data[16];
    if (kwnames == NULL && nargs == 3 && get_len(args[1], &size) && access_size(size) &&
            value_bytes(args[2], size, data) && get_u64(args[0], &addr) &&
            checked(addr, size) != NULL) {
        memcpy((void *)(uintptr_t)addr, data, size);
        Py_RETURN_NONE;
    }
    return SLOW();
}

static PyObject *c_read_bytes(FAST_ARGS)
{
    uint64_t addr;
    Py_ssize_t n;
    if (kwnames == NULL && nargs == 2 && get_len(args[1], &n) && get_u64(args[0], &addr) &&
            checked(addr, n) != NULL)
        return PyBytes_FromStringAndSize((const char *)(uintptr_t)addr, n);
    return SLOW();
}

static PyObject *c_write_bytes(FAST_ARGS)
{
    uint64_t addr;
    Py_buffer view;
    if (kwnames != NULL || nargs != 2 || !get_u64(args[0], &addr))
        return SLOW();
    /* The buffer first: getting it may run Python code, looking up the span may not. */
    if (PyObject_GetBuffer(args[1], &view, PyBUF_FULL_RO) < 0) {
        PyErr_Clear();
        return SLOW();
    }
    int done = 0;
    if (view.len > 0 && PyBuffer_IsContiguous(&view, 'C') && checked(addr, view.len)) {
        memmove((void *)(uintptr_t)addr, view.buf, view.len);
        done = 1;
    }
    PyBuffer_Release(&view);
    if (done)
        Py_RETURN_NONE;
    return SLOW();
}

static PyObject *c_memset(FAST_ARGS)
{
    uint64_t addr;
    Py_ssize_t n;
    if (kwnames == NULL && nargs == 3 && PyLong_CheckExact(args[1]) &&
            get_len(args[2], &n) && get_u64(args[0], &addr)) {
        int overflow;
        long long c = PyLong_AsLongLongAndOverflow(args[1], &overflow);
        if (c == -1 && PyErr_Occurred())
            PyErr_Clear();
        else if (overflow == 0 && checked(addr, n) != NULL) {
            memset((void *)(uintptr_t)addr, (int)((uint64_t)c & 0xFF), n);
            return Py_NewRef(args[0]);
        }
    }
    return SLOW();
}

static PyObject *c_memcpy(FAST_ARGS)
{
    uint64_t dst, src;
    Py_ssize_t n;
    if (kwnames == NULL && nargs == 3 && get_len(args[2], &n) && get_u64(args[0], &dst) &&
            get_u64(args[1], &src) && checked(src, n) != NULL && checked(dst, n) != NULL) {
        memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
        return Py_NewRef(args[0]);
    }
    return SLOW();
}

/* ------------------------------------------------------------------ Kasan methods */

static PyObject *c_check_access(FAST_ARGS)
{
    TwinObject *t = (TwinObject *)self;
    uint64_t addr;
    Py_ssize_t size;
    Space *s;
    if (kwnames == NULL && nargs == 3 && get_u64(args[0], &addr) && get_len(args[1], &size) &&
            (s = kasan_space(t->base, &t->hint, addr, size)) != NULL &&
            shadow_clean(s->shadow, addr, size))
        Py_RETURN_TRUE;
    return SLOW();
}

static PyObject *c_poison(FAST_ARGS)
{
    TwinObject *t = (TwinObject *)self;
    uint64_t addr, size, value;
    Space *s;
    if (kwnames == NULL && nargs == 3 && get_u64(args[0], &addr) && get_u64(args[1], &size) &&
            get_u64(args[2], &value) && value <= 0xFF && ((addr | size) & GRANULE_MASK) == 0 &&
            (s = kasan_space(t->base, &t->hint, addr, size)) != NULL) {
        memset((void *)(s->shadow + (addr >> GRANULE_SHIFT)), (int)value,
               size >> GRANULE_SHIFT);
        Py_RETURN_NONE;
    }
    return SLOW();
}

static PyObject *c_unpoison(FAST_ARGS)
{
    TwinObject *t = (TwinObject *)self;
    uint64_t addr, size;
    Space *s;
    if (kwnames == NULL && nargs == 2 && get_u64(args[0], &addr) && get_u64(args[1], &size) &&
            (addr & GRANULE_MASK) == 0 && size <= PY_SSIZE_T_MAX &&
            (s = kasan_space(t->base, &t->hint, addr, size)) != NULL) {
        uint8_t *p = (uint8_t *)(s->shadow + (addr >> GRANULE_SHIFT));
        memset(p, 0, size >> GRANULE_SHIFT);
        if (size & GRANULE_MASK)
            p[size >> GRANULE_SHIFT] = (uint8_t)(size & GRANULE_MASK);
        Py_RETURN_NONE;
    }
    return SLOW();
}

/* ------------------------------------------------------------------ hwemu.spinlock */

/* The word operations themselves are in _hw.h (kernel C's runtime does them too).
 * (lock, cpu, owner) as exact ints with the lock wholly in a clean fast span. */
static int spin_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                     uint8_t **lock, uint64_t *cpu, uint64_t *owner)
{
    uint64_t addr;
    if (kwnames != NULL || nargs != 3 || !get_u64(args[0], &addr) ||
            !get_u64(args[1], cpu) || !get_u64(args[2], owner) ||
            checked(addr, SPINLOCK_T_SIZE) == NULL)
        return 0;
    *lock = (uint8_t *)(uintptr_t)addr;
    return 1;
}

static PyObject *c_spin_trylock_word(FAST_ARGS)
{
    uint8_t *lock;
    uint64_t cpu, owner;
    if (!spin_args(args, nargs, kwnames, &lock, &cpu, &owner))
        return SLOW();
    return PyLong_FromLong(spin_trylock_word(lock, cpu, owner));
}

static PyObject *c_spin_unlock_word(FAST_ARGS)
{
    uint8_t *lock;
    uint64_t cpu, owner;
    if (!spin_args(args, nargs, kwnames, &lock, &cpu, &owner))
        return SLOW();
    return PyLong_FromLong(spin_unlock_word(lock, cpu, owner));
}

/* ------------------------------------------------------------------ bind() */

typedef struct {
    const char *name, *signature;
    PyCFunctionWithKeywords fn;     /* a _PyCFunctionFastWithKeywords, really */
    int kasan;                      /* a Kasan method: bound to a machine's base */
    PyMethodDef def;                /* made at the first bind(), the twin's doc copied */
} Impl;

#define IMPL(name, sig, kasan) {#name, sig, (PyCFunctionWithKeywords)(void (*)(void))c_##name, kasan}
static Impl impls[] = {
    IMPL(load, "(addr, size)", 0),
    IMPL(store, "(addr, size, value)", 0),
    IMPL(read_bytes, "(addr, n)", 0),
    IMPL(write_bytes, "(addr, data)", 0),
    IMPL(memset, "(addr, c, n)", 0),
    IMPL(memcpy, "(dst, src, n)", 0),
    IMPL(check_access, "(addr, size, write)", 1),
    IMPL(poison, "(addr, size, value)", 1),
    IMPL(unpoison, "(addr, size)", 1),
    IMPL(spin_trylock_word, "(lock, cpu, owner)", 0),
    IMPL(spin_unlock_word, "(lock, cpu, owner)", 0),
};

static PyObject *bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t base = 0;
    if (nargs < 2 || nargs > 3 || !PyUnicode_Check(args[0]) || !PyCallable_Check(args[1]) ||
            (nargs == 3 && !get_u64(args[2], &base))) {
        PyErr_SetString(PyExc_TypeError, "bind(name: str, twin: callable, base: int = 0)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(args[0]);
    if (name == NULL)
        return NULL;
    Impl *impl = NULL;
    for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
        if (strcmp(impls[i].name, name) == 0)
            impl = &impls[i];
    }
    if (impl == NULL) {
        PyErr_Format(PyExc_ValueError, "bind(): no C fast path named %R", args[0]);
        return NULL;
    }
    if (impl->kasan != (nargs == 3)) {
        PyErr_Format(PyExc_TypeError, "bind(%R): %s", args[0],
                     impl->kasan ? "a Kasan method needs the machine's base"
                                 : "an accessor takes no base");
        return NULL;
    }
    if (impl->def.ml_name == NULL) {   /* once per name: "name(sig)\n--\n\n" + twin doc */
        static PyObject *empty;
        if (empty == NULL && (empty = PyUnicode_FromString("")) == NULL)
            return NULL;
        PyObject *doc = PyObject_GetAttrString(args[1], "__doc__");
        if (doc == NULL)
            PyErr_Clear();
        PyObject *text = PyUnicode_FromFormat("%s%s\n--\n\n%U", impl->name, impl->signature,
                                              doc && PyUnicode_Check(doc) ? doc : empty);
        Py_XDECREF(doc);
        if (text == NULL)
            return NULL;
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
        char *copy = utf8 ? PyMem_RawMalloc(len + 1) : NULL;   /* kept for good */
        if (copy == NULL) {
            Py_DECREF(text);
            return utf8 ? PyErr_NoMemory() : NULL;
        }
        memcpy(copy, utf8, len + 1);
        Py_DECREF(text);
        impl->def.ml_meth = (PyCFunction)(void (*)(void))impl->fn;
        impl->def.ml_flags = METH_FASTCALL | METH_KEYWORDS;
        impl->def.ml_doc = copy;
        impl->def.ml_name = impl->name;
    }
    TwinObject *t = PyObject_GC_New(TwinObject, &TwinType);
    if (t == NULL)
        return NULL;
    t->twin = Py_NewRef(args[1]);
    t->base = (uintptr_t)base;
    t->hint = 0;
    PyObject_GC_Track(t);
    PyObject *modname = PyObject_GetAttrString(args[1], "__module__");
    if (modname == NULL)
        PyErr_Clear();
    PyObject *fn = PyCFunction_NewEx(&impl->def, (PyObject *)t, modname);
    Py_XDECREF(modname);
    Py_DECREF(t);
    return fn;
}

/* ------------------------------------------------------------------ the registry */

static Space *find_base(uintptr_t base)
{
    for (Py_ssize_t i = 0; i < nspaces; i++) {
        if (spaces[i].base == base)
            return &spaces[i];
    }
    PyErr_Format(PyExc_KeyError, "no address space registered at %#llx",
                 (unsigned long long)base);
    return NULL;
}

static int get_args_u64(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want,
                        uint64_t *out, const char *usage)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s", usage);
        return 0;
    }
    for (Py_ssize_t i = 0; i < want; i++) {
        if (!PyLong_Check(args[i]) || PyBool_Check(args[i])) {
            PyErr_Format(PyExc_TypeError, "%s: arguments are ints", usage);
            return 0;
        }
        out[i] = PyLong_AsUnsignedLongLong(args[i]);
        if (out[i] == (uint64_t)-1 && PyErr_Occurred())
            return 0;
    }
    return 1;
}

static PyObject *space_register(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t a[2];
    PyObject *owner = NULL;
    if (nargs == 3) {   /* the owner: anything; only its identity is compared */
        owner = args[2];
        nargs = 2;
    }
    if (!get_args_u64(args, nargs, 2, a, "space_register(base, end[, owner])"))
        return NULL;
    uintptr_t base = a[0], end = a[1];
    if (base == 0 || end <= base) {
        PyErr_Format(PyExc_ValueError, "space_register: bad range %#llx-%#llx",
                     (unsigned long long)base, (unsigned long long)end);
        return NULL;
    }
    Py_ssize_t i = 0;
    while (i < nspaces && spaces[i].base < base)
        i++;
    if ((i < nspaces && spaces[i].base < end) || (i > 0 && spaces[i - 1].end > base)) {
        PyErr_Format(PyExc_ValueError, "space_register: %#llx-%#llx overlaps a registered "
                     "space", (unsigned long long)base, (unsigned long long)end);
        return NULL;
    }
    if (nspaces == cap_spaces) {
        Py_ssize_t cap = cap_spaces ? 2 * cap_spaces : 8;
        Space *grown = PyMem_Realloc(spaces, cap * sizeof(Space));
        if (grown == NULL)
            return PyErr_NoMemory();
        spaces = grown;
        cap_spaces = cap;
    }
    memmove(&spaces[i + 1], &spaces[i], (nspaces - i) * sizeof(Space));
    spaces[i] = (Space){base, end, 0, 0, 0, Py_XNewRef(owner)};
    nspaces++;
    Py_RETURN_NONE;
}

static PyObject *space_update(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t a[4];
    if (!get_args_u64(args, nargs, 4, a, "space_update(base, fast_lo, fast_hi, shadow)"))
        return NULL;
    Space *s = find_base(a[0]);
    if (s == NULL)
        return NULL;
    uintptr_t lo = a[1], hi = a[2], shadow = a[3];
    if (lo < hi && (lo < s->base || hi > s->end)) {
        PyErr_Format(PyExc_ValueError, "space_update: fast span %#llx-%#llx is outside the "
                     "space", (unsigned long long)lo, (unsigned long long)hi);
        return NULL;
    }
    /* The shadow of every byte of the space must lie inside the space. */
    if (shadow != 0 && (shadow + (s->base >> GRANULE_SHIFT) < s->base ||
                        shadow + ((s->end - 1) >> GRANULE_SHIFT) >= s->end)) {
        PyErr_Format(PyExc_ValueError, "space_update: shadow offset %#llx puts the shadow "
                     "outside the space", (unsigned long long)shadow);
        return NULL;
    }
    if (lo >= hi)
        lo = hi = 0;
    s->lo = lo;
    s->hi = hi;
    s->shadow = shadow;
    Py_RETURN_NONE;
}

static PyObject *space_unregister(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t a[1];
    if (!get_args_u64(args, nargs, 1, a, "space_unregister(base)"))
        return NULL;
    Space *s = find_base(a[0]);
    if (s == NULL)
        return NULL;
    Py_ssize_t i = s - spaces;
    PyObject *owner = s->owner;
    memmove(&spaces[i], &spaces[i + 1], (nspaces - i - 1) * sizeof(Space));
    nspaces--;
    last_space = 0;
    Py_XDECREF(owner);   /* last: its finaliser may run Python code */
    Py_RETURN_NONE;
}

static PyObject *set_current_space_var(PyObject *module, PyObject *var)
{
    if (!PyContextVar_CheckExact(var)) {
        PyErr_SetString(PyExc_TypeError, "set_current_space_var(var: ContextVar)");
        return NULL;
    }
    Py_XSETREF(current_space_var, Py_NewRef(var));
    Py_RETURN_NONE;
}

static PyObject *registered(PyObject *module, PyObject *unused)
{
    PyObject *list = PyList_New(nspaces);
    for (Py_ssize_t i = 0; list != NULL && i < nspaces; i++) {
        Space *s = &spaces[i];
        PyObject *item = Py_BuildValue("(KKKKK)", (unsigned long long)s->base,
                                       (unsigned long long)s->end, (unsigned long long)s->lo,
                                       (unsigned long long)s->hi,
                                       (unsigned long long)s->shadow);
        if (item == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyMethodDef methods[] = {
    {"stack_key", (PyCFunction)(void (*)(void))stack_key, METH_FASTCALL,
     "stack_key(skip, depth) -> bytes of int64 (id(code), lasti) pairs"},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL,
     "bind(name, twin[, base]) -> the C fast path `name`, handing every other case to twin"},
    {"space_register", (PyCFunction)(void (*)(void))space_register, METH_FASTCALL,
     "space_register(base, end): a machine reserved [base, end)"},
    {"space_update", (PyCFunction)(void (*)(void))space_update, METH_FASTCALL,
     "space_update(base, fast_lo, fast_hi, shadow): its always-mapped span and its "
     "KASAN_SHADOW_OFFSET (0: no KASAN)"},
    {"space_unregister", (PyCFunction)(void (*)(void))space_unregister, METH_FASTCALL,
     "space_unregister(base): the machine's range is about to be unmapped"},
    {"set_current_space_var", set_current_space_var, METH_O,
     "set_current_space_var(var): the ContextVar holding the AddressSpace the running "
     "context may access (hwemu.current._current_space)"},
    {"registered", registered, METH_NOARGS,
     "registered() -> [(base, end, fast_lo, fast_hi, shadow)]: the mirror, for tests"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hwemu._speedups", NULL, -1, methods,
};

/* ------------------------------------------------------------ CPU state */

#define CORE_TYPE(Name, T, FIELDS, DOC)                                                  \
static int Name##_traverse(T *o, visitproc visit, void *arg)                             \
{ FIELDS(Py_VISIT) return 0; }                                                           \
static int Name##_clear(T *o)                                                            \
{ FIELDS(Py_CLEAR) return 0; }                                                           \
static void Name##_dealloc(T *o)                                                         \
{                                                                                       \
    PyTypeObject *tp = Py_TYPE(o);                                                      \
    PyObject_GC_UnTrack(o);                                                             \
    Name##_clear(o);                                                                    \
    tp->tp_free((PyObject *)o);   /* a subclass's dealloc drops its type */          \
}                                                                                       \
static PyTypeObject Name##Type = {                                                      \
    PyVarObject_HEAD_INIT(NULL, 0)                                                      \
    .tp_name = "hwemu._speedups." #Name,                                                \
    .tp_basicsize = sizeof(T),                                                          \
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,          \
    .tp_doc = DOC,                                                                      \
    .tp_traverse = (traverseproc)Name##_traverse,                                       \
    .tp_clear = (inquiry)Name##_clear,                                                  \
    .tp_dealloc = (destructor)Name##_dealloc,                                           \
    .tp_members = Name##_members,                                                       \
    .tp_new = PyType_GenericNew,                                                        \
};

#define MEMBER(T, f) {#f, T_OBJECT_EX, offsetof(T, f), 0, NULL}
#define TASK_FIELDS(X) X(o->preempt_count); X(o->irqs_off); X(o->pid); X(o->cpu_id); X(o->sched);
#define SCHED_FIELDS(X) X(o->countdown); X(o->curr);

static PyMemberDef TaskCore_members[] = {
    MEMBER(hw_TaskCore, preempt_count), MEMBER(hw_TaskCore, irqs_off),
    MEMBER(hw_TaskCore, pid), MEMBER(hw_TaskCore, cpu_id), MEMBER(hw_TaskCore, sched),
    {NULL, 0, 0, 0, NULL},
};
static PyMemberDef SchedCore_members[] = {
    MEMBER(hw_SchedCore, countdown), MEMBER(hw_SchedCore, curr),
    {NULL, 0, 0, 0, NULL},
};

CORE_TYPE(TaskCore, hw_TaskCore, TASK_FIELDS,
          "The CPU state of a task kernel C reads (hwemu/_core.h).")
CORE_TYPE(SchedCore, hw_SchedCore, SCHED_FIELDS,
          "The scheduler state kernel C reads (hwemu/_core.h).")

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (PyType_Ready(&TwinType) < 0 || PyType_Ready(&TaskCoreType) < 0 ||
            PyType_Ready(&SchedCoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TaskCoreType);
    Py_INCREF(&SchedCoreType);
    if (PyModule_AddObject(m, "TaskCore", (PyObject *)&TaskCoreType) < 0 ||
            PyModule_AddObject(m, "SchedCore", (PyObject *)&SchedCoreType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
