"""``current``: the task the running code belongs to (arch/x86/include/asm/current.h).

Each task runs in a greenlet of its own (see :mod:`hwemu.sched`), and ``current`` is a
context variable: every greenlet and every thread has its own value, so a switch of
task needs no bookkeeping here. The scheduler sets it when a task starts (and the
booting thread when it boots a machine); everything else only reads it. It sits below
every module that reports or checks, so that BUG/WARN text (:mod:`hwemu.bug`) and the
checked accessors (:mod:`hwemu.access`) can name the task without importing the
scheduler.
"""
from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

from .errors import MachineDown, MachineError

_current: ContextVar[Any] = ContextVar("hwemu_current", default=None)
# The tasks this context is, one per machine (a thread that booted several machines is
# the first task of each).
_tasks: ContextVar[dict | None] = ContextVar("hwemu_tasks", default=None)
# The address space (hwemu.vmem.AddressSpace) of current's machine, or None: the one
# space whose memory the checked accessors touch for this context. Kept beside
# ``_current`` so that an access pays one lookup (the C fast paths read it too).
_current_space: ContextVar[Any] = ContextVar("hwemu_current_space", default=None)


def _set(task: Any) -> None:
    """``task`` (or None) becomes ``current``, its machine's memory the accessible one."""
    _current.set(task)
    _current_space.set(task.machine.space if task is not None else None)


def current() -> Any:
    """``current``: the running task (``struct task_struct *``); for a thread that
    booted several machines, its task on the newest one."""
    task = _current.get()
    if task is None:
        raise MachineError(
            f"thread {threading.current_thread().name!r} is not a task of any machine: "
            "call hwemu.boot() in it or start it with machine.spawn()")
    if task.machine.down:
        raise MachineDown(f"machine {task.machine.name!r} has been shut down")
    return task


def current_or_none() -> Any:
    """The running task, or None (no task, or its machine is down)."""
    task = _current.get()
    return None if task is None or task.machine.down else task


def current_on(machine) -> Any:
    """The running context's task on ``machine``, or None."""
    tasks = _tasks.get()
    return tasks.get(machine) if tasks else None


def enter(task: Any) -> None:
    """``task`` starts in this context: it becomes ``current``."""
    tasks = _tasks.get()
    if tasks is None:
        tasks = {}
        _tasks.set(tasks)
    tasks[task.machine] = task
    _set(task)


def leave(task: Any) -> None:
    """``task`` has exited in this context: ``current`` goes back to the context's task
    on its newest other machine."""
    tasks = _tasks.get() or {}
    tasks.pop(task.machine, None)
    # A thread whose machine was shut down keeps pointing at it, so that current()
    # says MachineDown rather than "not a task".
    fallback = task if task.machine.down else None
    if _current.get() is task:
        others = list(tasks.values())
        _set(others[-1] if others else fallback)


def swap(task: Any) -> Any:
    """Make ``task`` (or None) ``current`` for a while; returns the one it replaced.

    For code that runs on behalf of a machine from outside its tasks (the pytest
    plugin's checks after a test)."""
    saved = _current.get()
    _set(task)
    return saved


def refuse_access(space: Any, addr: int) -> Exception:
    """The error for an access to ``addr`` in ``space`` (None: no machine's) from a
    context that is no task of that machine: a thread that is no task at all (as
    :func:`current` says), or only a task of other machines."""
    task = _current.get()
    if task is None:
        where = f" of machine {space.machine.name!r}" if space is not None else ""
        return MachineError(
            f"thread {threading.current_thread().name!r} is not a task of any machine: "
            f"it may not touch memory ({addr:#x}{where}); call hwemu.boot() in it or "
            "start it with machine.spawn()")
    if task.machine.down:
        return MachineDown(f"machine {task.machine.name!r} has been shut down")
    return MachineError(
        f"address {addr:#x} is memory of machine {space.machine.name!r}, but this thread "
        f"is no task of it (current is {task.comm}/{task.pid} of machine "
        f"{task.machine.name!r}): a task touches only its own machines' memory")
