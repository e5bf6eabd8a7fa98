"""``current``: the task this thread runs for (arch/x86/include/asm/current.h).

The scheduler (:mod:`hwemu.sched`) sets it when a task starts on a thread and clears
it when the task exits; everything else only reads it. It sits below every module
that reports or checks, so that BUG/WARN text (:mod:`hwemu.bug`) and the checked
accessors (:mod:`hwemu.access`) can name the task without importing the scheduler.
"""
from __future__ import annotations

import threading
from typing import Any

from .errors import MachineDown, MachineError

_tls = threading.local()


def current() -> Any:
    """``current``: this thread's task (``struct task_struct *``) on the machine it
    last booted or ran on."""
    task = getattr(_tls, "current", None)
    if task is None:
        raise MachineError(
            f"thread {threading.current_thread().name!r} is not a task of any machine: "
            "call hwemu.boot() in it or start it with machine.spawn()")
    if task.machine.down:
        raise MachineDown(f"machine {task.machine.name!r} has been shut down")
    return task


def current_or_none() -> Any:
    """This thread's task, or None (no task, or its machine is down)."""
    task = getattr(_tls, "current", None)
    return None if task is None or task.machine.down else task


def _thread_tasks() -> dict:
    try:
        return _tls.tasks
    except AttributeError:
        _tls.tasks = {}
        return _tls.tasks


def current_on(machine) -> Any:
    """This thread's task on ``machine``, or None."""
    return _thread_tasks().get(machine)


def enter(task: Any) -> None:
    """``task`` now runs on this thread: it becomes ``current``."""
    _thread_tasks()[task.machine] = task
    _tls.current = task


def leave(task: Any) -> None:
    """``task`` has exited on this thread: ``current`` goes back to the thread's task
    on its newest other machine."""
    tasks = _thread_tasks()
    tasks.pop(task.machine, None)
    # A thread whose machine was shut down keeps pointing at it, so that current()
    # says MachineDown rather than "not a task".
    fallback = task if task.machine.down else None
    if getattr(_tls, "current", None) is task:
        others = list(tasks.values())
        _tls.current = others[-1] if others else fallback


def swap(task: Any) -> Any:
    """Make ``task`` (or None) ``current`` for a while; returns the one it replaced.

    For code that runs on behalf of a machine from outside its tasks (the pytest
    plugin's checks after a test)."""
    saved = getattr(_tls, "current", None)
    _tls.current = task
    return saved
