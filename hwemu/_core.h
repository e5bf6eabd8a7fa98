/* The CPU state kernel C reads directly: the C bases of hwemu.sched.Task (TaskCore)
 * and hwemu.sched.Scheduler (SchedCore), defined in hwemu/_speedups.c and read by
 * hwemu.kbuild's runtime. Every field is a Python object that Python reads and writes
 * as a plain attribute (as a __slots__ one); their twins are __slots__ classes in
 * hwemu/sched.py. The kernel keeps the same state per CPU: preempt_count, whether
 * interrupts are off, current, and here the scheduler's count of preemption points
 * before it looks again. */
#ifndef HWEMU_CORE_H
#define HWEMU_CORE_H

#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *preempt_count;   /* int: task.preempt_count */
    PyObject *irqs_off;        /* bool */
    PyObject *pid;             /* int */
    PyObject *cpu_id;          /* int: its CPU, for life */
    PyObject *sched;           /* its machine's Scheduler (a SchedCore) */
} hw_TaskCore;

typedef struct {
    PyObject_HEAD
    PyObject *countdown;       /* int: preemption points until the scheduler looks */
    PyObject *curr;            /* the task running now, or None */
} hw_SchedCore;

#endif
