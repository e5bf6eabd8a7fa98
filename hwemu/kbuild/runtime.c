/*
 * The runtime every module compiled by hwemu.kbuild reaches hwemu through: one shared
 * object per process, built by cffi like the modules (see hwemu/kbuild/build.py).
 *
 * - struct hw_rt (hwemu/include/hwemu/rt.h): the table of calls into hwemu. Its calls
 *   into Python (the generated rt_<name> functions below) keep the GIL held, as the
 *   whole machine does, and run with no guard active.
 * - Guards: every call from Python into a module goes through a generated wrapper that
 *   pushes a guard (a jmp_buf on its stack). A Python call that raised, or a fault in C
 *   (SIGSEGV/SIGBUS while a guard is active), unwinds to the innermost guard, whose
 *   wrapper raises the Python exception to its caller: an oops in C never kills the
 *   process. The innermost guard is per thread, saved and restored around each call
 *   into Python, because a task switch there runs another task's C.
 * - KASAN: the check of an instrumented access (__asan_* in each module call
 *   rt_asan_check): an access of the always-mapped direct map whose shadow is clean is
 *   done in C; anything else goes to hwemu's own check (the region table, then KASAN),
 *   which reports or oopses. What the machine is (its direct map, its shadow) is read
 *   once per machine, when the running context's machine changes.
 * - The spinlock word (kernel/locking/spinlock_debug.c's checks on spinlock_t), done in
 *   C on any memory: a module's lock may be in its own data.
 * - Fast paths: a lock taken or dropped with nobody waiting, a preemption point the
 *   scheduler need not look at, a KASAN hook with KASAN off, are done here on the
 *   task's and scheduler's state (hwemu/_core.h); everything else is the Python call,
 *   their twin (hwemu/kbuild/native.py), which HWEMU_PURE=1 takes always.
 */
#include <unwind.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include "hwemu/guard.h"
#include "hwemu/_core.h"
#include "hwemu/_hw.h"

static __thread struct hw_guard *hw_top;
/* While C calls Python: the guards of that C (its stack, down to its call from
 * Python) and the task running it. A task switch in Python runs other tasks, which
 * may call C and Python in turn; each call from C restores these on its way back. */
static __thread struct hw_guard *hw_chain;
static __thread PyObject *hw_chain_task;

/* The Python exception a call into Python raised, held until a wrapper raises it. */
static PyObject *hw_exc;

/* ------------------------------------------------------------ the machine */

struct hw_machine {
    PyObject *space;          /* the hwemu.vmem.AddressSpace this was read from (held:
                               * a new space must not pass for it at its address) */
    uintptr_t lo, hi;         /* the direct map: always mapped while the machine is up */
    uintptr_t shadow;         /* KASAN_SHADOW_OFFSET; 0: no KASAN */
    int profiling;            /* memory allocation profiling (alloc_hooks()) is on */
};

static PyObject *hw_space_var;          /* hwemu.current._current_space */
static PyObject *hw_current_var;        /* hwemu.current._current */
static struct hw_machine hw_mach;
static void hw_bind_machine(void);

/* What the running context's machine is: re-read (from Python) when it changed. */
static inline struct hw_machine *hw_machine_now(void)
{
    PyObject *space = NULL;
    if (hw_space_var != NULL && PyContextVar_Get(hw_space_var, NULL, &space) == 0) {
        Py_XDECREF(space);   /* the context holds it; only its identity is compared */
        if (space != hw_mach.space && space != NULL) {
            hw_bind_machine();
            Py_INCREF(space);
            Py_XSETREF(hw_mach.space, space);
        }
    } else {
        PyErr_Clear();
    }
    return &hw_mach;
}

static void hw_set_machine(uintptr_t lo, uintptr_t hi, uintptr_t shadow, int profiling)
{
    hw_mach.lo = lo;
    hw_mach.hi = hi;
    hw_mach.shadow = shadow;
    hw_mach.profiling = profiling;
}

static void hw_forget_machine(void)
{
    Py_CLEAR(hw_mach.space);
    hw_set_machine(0, 0, 0, 0);
}

static PyTypeObject *hw_taskcore;       /* hwemu._speedups.TaskCore; NULL: no fast paths */

static void hw_init(uintptr_t space_var, uintptr_t current_var, uintptr_t taskcore)
{
    hw_space_var = (PyObject *)space_var;
    Py_INCREF(hw_space_var);
    hw_current_var = (PyObject *)current_var;
    Py_INCREF(hw_current_var);   /* read by every call from C into Python */
    hw_taskcore = (PyTypeObject *)taskcore;
    Py_XINCREF(hw_taskcore);
}

/* ------------------------------------------------------------ guards */

static void hw_guard_push(struct hw_guard *g)
{
    g->prev = hw_top;
    hw_top = g;
}

static void hw_guard_pop(struct hw_guard *g)
{
    hw_top = g->prev;
}

/* current (borrowed: the context holds it), or NULL. */
static inline PyObject *hw_current_task(void)
{
    PyObject *t = NULL;
    if (hw_current_var == NULL || PyContextVar_Get(hw_current_var, NULL, &t) < 0) {
        PyErr_Clear();
        return NULL;
    }
    Py_XDECREF(t);
    return t;
}

/* Whether the running task called Python from C: C frames lie below. */
static int hw_in_c(void)
{
    return hw_chain != NULL && hw_chain_task == hw_current_task();
}

/* The wrapper of guard `g` came back through its jmp_buf (`how`: 1 raised, 2 fault):
 * pop it, and set the Python exception; returns NULL for the wrapper to return. */
static PyObject *hw_guard_raise(struct hw_guard *g, int how)
{
    hw_top = g->prev;
    if (how == 2)
        hw_py_fault(g->addr, g->write, g->ip);   /* makes the oops and sets hw_exc */
    if (hw_exc == NULL) {
        PyErr_SetString(PyExc_SystemError, "hwemu.kbuild: C unwound with no exception");
        return NULL;
    }
    PyObject *exc = hw_exc;
    hw_exc = NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* Python raised `exc_addr` (a PyObject *) in a call from C: keep it for the wrapper. */
static void hw_set_exception(uintptr_t exc_addr)
{
    PyObject *exc = (PyObject *)exc_addr;
    Py_INCREF(exc);
    Py_XSETREF(hw_exc, exc);
}

/* What a call from C into Python saves and restores. */
struct hw_cb { struct hw_guard *top, *chain; PyObject *task; };

static inline void hw_cb_enter(struct hw_cb *cb)
{
    cb->top = hw_top;
    cb->chain = hw_chain;
    cb->task = hw_chain_task;
    hw_chain = hw_top;
    hw_chain_task = hw_current_task();
    hw_top = NULL;   /* a fault in Python is no fault of the module's */
}

static inline void hw_cb_restore(struct hw_cb *cb)
{
    hw_top = cb->top;
    hw_chain = cb->chain;
    hw_chain_task = cb->task;
}

static inline void hw_cb_leave(struct hw_cb *cb)
{
    hw_cb_restore(cb);
    if (hw_exc != NULL && cb->top != NULL)
        longjmp(cb->top->env, 1);
}

/* Tell C what the running context's machine is (hwemu.kbuild's _bind_machine()). */
static void hw_bind_machine(void)
{
    struct hw_cb cb;
    hw_cb_enter(&cb);
    hw_py_bind_machine();
    hw_cb_leave(&cb);
}

/* ------------------------------------------------------------ faults */

static struct sigaction hw_old_segv, hw_old_bus;

static void hw_on_fault(int sig, siginfo_t *info, void *uctx)
{
    struct hw_guard *g = hw_top;
    if (g != NULL) {
        g->addr = (uintptr_t)info->si_addr;
#if defined(__x86_64__)
        g->write = (((ucontext_t *)uctx)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
        if (info->si_code == SI_KERNEL)
            g->write |= 4;   /* #GP, not #PF: a non-canonical address */
        g->ip = ((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP];
#else
        g->write = 0;
        g->ip = 0;
#endif
        longjmp(g->env, 2);   /* SA_NODEFER: the signal is not left blocked */
    }
    /* Not ours: give it to whoever had it (Python's faulthandler, or the default). */
    struct sigaction *old = sig == SIGSEGV ? &hw_old_segv : &hw_old_bus;
    if (old->sa_flags & SA_SIGINFO && old->sa_sigaction != NULL) {
        old->sa_sigaction(sig, info, uctx);
        return;
    }
    if (old->sa_handler != SIG_IGN && old->sa_handler != SIG_DFL) {
        old->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);   /* the faulting instruction runs again and kills us */
}

static int hw_install_fault_handler(void)
{
    struct sigaction sa, cur;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = hw_on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && cur.sa_sigaction == hw_on_fault)
        return 0;   /* still ours */
    if (sigaction(SIGSEGV, &sa, &hw_old_segv) || sigaction(SIGBUS, &sa, &hw_old_bus))
        return -1;
    return 0;
}

/* ------------------------------------------------------------ KASAN */

/* The host memory kernel C may touch besides the machine's: the modules' own (their
 * data, their string constants, this runtime's table) and the running thread's stack
 * (every task's: tasks are greenlets, which run on their thread's stack). */
static struct { uintptr_t lo, hi; } hw_host[256];
static int hw_nhost;
static __thread uintptr_t hw_stack_lo, hw_stack_hi;

static void hw_add_host_range(uintptr_t lo, uintptr_t hi)
{
    if (hw_nhost < (int)(sizeof(hw_host) / sizeof(hw_host[0]))) {
        hw_host[hw_nhost].lo = lo;
        hw_host[hw_nhost].hi = hi;
        hw_nhost++;
    }
}

static int hw_host_memory(uintptr_t addr, size_t size)
{
    if (hw_stack_hi == 0) {
        pthread_attr_t attr;
        void *base;
        size_t len;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &base, &len) == 0) {
                hw_stack_lo = (uintptr_t)base;
                hw_stack_hi = (uintptr_t)base + len;
            }
            pthread_attr_destroy(&attr);
        }
    }
    if (addr >= hw_stack_lo && addr < hw_stack_hi && size <= hw_stack_hi - addr)
        return 1;
    for (int i = 0; i < hw_nhost; i++)
        if (addr >= hw_host[i].lo && addr < hw_host[i].hi && size <= hw_host[i].hi - addr)
            return 1;
    return 0;
}

/* check_region_inline() for kernel C: done here when the access is in the direct map
 * and its shadow is clean, or in the C code's own memory; else by hwemu (which
 * reports, or oopses and unwinds). */
static void hw_asan_check(uintptr_t addr, size_t size, int write, uintptr_t ip)
{
    struct hw_machine *m = hw_machine_now();
    if (size == 0)
        return;
    if (addr >= m->lo && addr < m->hi && size <= m->hi - addr) {
        if (m->shadow == 0 || shadow_clean(m->shadow, addr, size))
            return;
    } else if (hw_host_memory(addr, size)) {
        return;
    }
    rt_check_access(addr, size, write, ip);
}

static int hw_kasan_enabled(void)
{
    return hw_machine_now()->shadow != 0;
}

/* Whether alloc_hooks() has anything to do: the machine profiles allocations. */
static int hw_mem_profiling(void)
{
    return hw_machine_now()->profiling;
}

/* ------------------------------------------------------------ spinlock_t */

/* The word operations of hwemu/_hw.h (the accelerator's too), on any memory: a
 * module's lock may be in its own data. */
static int hw_word_trylock(uintptr_t lock, unsigned int cpu, uint64_t owner)
{
    return spin_trylock_word((uint8_t *)lock, cpu, owner);
}

static int hw_word_unlock(uintptr_t lock, unsigned int cpu, uint64_t owner)
{
    return spin_unlock_word((uint8_t *)lock, cpu, owner);
}

static void hw_word_init(uintptr_t lock)
{
    spin_init_word((uint8_t *)lock);
}

/* ------------------------------------------------------------ printk, stacks */

/* vprintk() with the kernel's %p extensions hwemu knows: %pS/%ps/%pB name a symbol,
 * every other %p<x> prints the pointer; the text goes to the machine's log. */
static void hw_vprintk(int level, const char *fmt, va_list ap)
{
    char out[1024], spec[32], sym[256];
    size_t n = 0;
    const char *p = fmt;
    va_list aq;
    va_copy(aq, ap);
    while (*p && n < sizeof(out) - 1) {
        if (*p != '%') {
            out[n++] = *p++;
            continue;
        }
        /* one conversion: copy its spec, format it alone */
        size_t k = 0;
        spec[k++] = *p++;
        while (*p && strchr("-+ #0123456789.*hlLqjzt", *p) && k < sizeof(spec) - 2)
            spec[k++] = *p++;
        char conv = *p ? *p++ : 0;
        spec[k++] = conv;
        spec[k] = 0;
        int w = 0;
        size_t room = sizeof(out) - n;
        if (conv == '%') {
            w = snprintf(out + n, room, "%%");
        } else if (conv == 'p') {
            void *ptr = va_arg(aq, void *);
            if (*p == 'S' || *p == 's' || *p == 'B') {
                int with_offset = *p != 's';
                p++;
                rt_symbolize((uintptr_t)ptr, sym, sizeof(sym));
                if (!with_offset) {
                    char *plus = strchr(sym, '+');
                    if (plus)
                        *plus = 0;
                }
                w = snprintf(out + n, room, "%s", sym);
            } else {
                while (*p && strchr("xKRrhbMmIiEUdDgGNOoCFfVaA", *p))
                    p++;   /* %px, %pK, ...: the address itself */
                w = snprintf(out + n, room, "%016lx", (unsigned long)(uintptr_t)ptr);
            }
        } else if (strchr("diouxXc", conv)) {
            int longs = 0, sizet = 0;
            for (size_t i = 1; i < k - 1; i++) {
                longs += spec[i] == 'l' || spec[i] == 'q' || spec[i] == 'L';
                sizet |= spec[i] == 'z' || spec[i] == 't' || spec[i] == 'j';
            }
            if (longs || sizet)
                w = snprintf(out + n, room, spec, va_arg(aq, long long));
            else
                w = snprintf(out + n, room, spec, va_arg(aq, int));
        } else if (conv == 's') {
            w = snprintf(out + n, room, spec, va_arg(aq, const char *));
        } else {
            w = snprintf(out + n, room, "%s", spec);
        }
        if (w > 0)
            n += (size_t)w < room ? (size_t)w : room - 1;
    }
    va_end(aq);
    out[n] = 0;
    rt_printk(level, out);
}

/* The return addresses of the running task's C, innermost first, from the call from C
 * into Python running now down to the first call from Python into C: no further (the
 * stack beyond belongs to Python, and with greenlets to other tasks' saved stacks). */
struct hw_bt { uintptr_t *pcs; int n, max; uintptr_t limit; };

static _Unwind_Reason_Code hw_bt_step(struct _Unwind_Context *ctx, void *arg)
{
    struct hw_bt *bt = arg;
    if (_Unwind_GetCFA(ctx) > bt->limit || bt->n >= bt->max)
        return _URC_END_OF_STACK;
    bt->pcs[bt->n++] = _Unwind_GetIP(ctx);
    return _URC_NO_REASON;
}

static int hw_backtrace(uintptr_t *pcs, int max)
{
    if (!hw_in_c())
        return 0;
    struct hw_guard *g = hw_chain;
    while (g->prev != NULL)
        g = g->prev;
    struct hw_bt bt = {pcs, 0, max, (uintptr_t)g};
    _Unwind_Backtrace(hw_bt_step, &bt);
    return bt.n;
}

/* ------------------------------------------------------------ fast paths */

enum { HW_PLAIN, HW_IRQ, HW_IRQSAVE, HW_BH, HW_HOW = 3 };
#define HW_POINT_DONE 0x10      /* spin_lock(): the preemption point was passed */
#define HW_WORD_DONE 0x20       /* spin_unlock(): the word was released; status << 8 */

/* current, when it is the running task of its machine and its state is one C may
 * touch (the C bases, not their twins). */
static inline hw_TaskCore *hw_task_now(void)
{
    PyObject *t = hw_taskcore != NULL ? hw_current_task() : NULL;
    if (t == NULL || !PyObject_TypeCheck(t, hw_taskcore))
        return NULL;
    hw_SchedCore *s = (hw_SchedCore *)((hw_TaskCore *)t)->sched;
    if (s == NULL || s->curr != t || s->countdown == NULL)
        return NULL;
    return (hw_TaskCore *)t;
}

static inline int hw_set_long(PyObject **field, long v)
{
    PyObject *o = PyLong_FromLong(v);
    if (o == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_XSETREF(*field, o);
    return 0;
}

static inline void hw_set_bool(PyObject **field, int v)
{
    PyObject *o = v ? Py_True : Py_False;
    Py_INCREF(o);
    Py_XSETREF(*field, o);
}

/* Python raised while C called it directly: keep the exception and unwind C to the
 * guard of its call from Python, as a call through the table does. */
static void hw_unwind(struct hw_cb *cb)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    Py_XSETREF(hw_exc, value);
    hw_cb_restore(cb);
    longjmp(cb->top->env, 1);
}

/* Scheduler.point(t) for the running task t: one step counted; when the count runs
 * out, the scheduler looks (Scheduler._consult(), in Python: it may switch tasks). */
static void hw_sched_point(hw_TaskCore *t)
{
    static PyObject *consult;
    hw_SchedCore *s = (hw_SchedCore *)t->sched;
    long cd = PyLong_AsLong(s->countdown) - 1;
    hw_set_long(&s->countdown, cd);
    if (cd > 0)
        return;
    if (consult == NULL && (consult = PyUnicode_InternFromString("_consult")) == NULL)
        PyErr_Clear();
    struct hw_cb cb;
    hw_cb_enter(&cb);
    PyObject *r = consult ? PyObject_CallMethodOneArg((PyObject *)s, consult, (PyObject *)t)
                          : NULL;
    if (r == NULL)
        hw_unwind(&cb);
    Py_DECREF(r);
    hw_cb_leave(&cb);
}

static unsigned long hw_fast_spin_lock(uintptr_t lock, int how)
{
    hw_TaskCore *t = how != HW_BH ? hw_task_now() : NULL;
    if (t == NULL)
        return rt_spin_lock(lock, how);
    hw_sched_point(t);
    if (hw_word_trylock(lock, (unsigned int)PyLong_AsUnsignedLong(t->cpu_id),
                        PyLong_AsUnsignedLongLong(t->pid)) != 0)
        return rt_spin_lock(lock, how | HW_POINT_DONE);   /* held: spin in Python */
    unsigned long flags = PyObject_IsTrue(t->irqs_off) > 0;
    if (how != HW_PLAIN)
        hw_set_bool(&t->irqs_off, 1);
    hw_set_long(&t->preempt_count, PyLong_AsLong(t->preempt_count) + 1);
    return flags;
}

static void hw_fast_spin_unlock(uintptr_t lock, int how, unsigned long flags)
{
    hw_TaskCore *t = how != HW_BH ? hw_task_now() : NULL;
    if (t == NULL) {
        rt_spin_unlock(lock, how, flags);
        return;
    }
    int status = hw_word_unlock(lock, (unsigned int)PyLong_AsUnsignedLong(t->cpu_id),
                                PyLong_AsUnsignedLongLong(t->pid));
    if (status != 0) {   /* spinners to wake, or a bug to report: Python */
        rt_spin_unlock(lock, how | HW_WORD_DONE | status << 8, flags);
        return;
    }
    hw_set_long(&t->preempt_count, PyLong_AsLong(t->preempt_count) - 1);
    if (how == HW_IRQ)
        hw_set_bool(&t->irqs_off, 0);
    else if (how == HW_IRQSAVE)
        hw_set_bool(&t->irqs_off, flags != 0);
    hw_sched_point(t);
}

static void hw_fast_preempt(int how)
{
    hw_TaskCore *t = how == 0 ? hw_task_now() : NULL;
    if (t != NULL)
        hw_sched_point(t);   /* cond_resched() */
    else
        rt_preempt(how);
}

static int hw_fast_kasan_mempool_poison_object(uintptr_t ptr)
{
    return hw_kasan_enabled() ? rt_kasan_mempool_poison_object(ptr) : 1;
}

static void hw_fast_kasan_mempool_unpoison_object(uintptr_t ptr, size_t size)
{
    if (hw_kasan_enabled())
        rt_kasan_mempool_unpoison_object(ptr, size);
}

static int hw_fast_kasan_mempool_poison_pages(uintptr_t page, unsigned int order)
{
    return hw_kasan_enabled() ? rt_kasan_mempool_poison_pages(page, order) : 1;
}

static void hw_fast_kasan_mempool_unpoison_pages(uintptr_t page, unsigned int order)
{
    if (hw_kasan_enabled())
        rt_kasan_mempool_unpoison_pages(page, order);
}
