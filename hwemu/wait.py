"""Emulation of kernel/sched/wait.c and completion.c: wait queues and completions.

A ``wait_queue_head_t`` lives in emulated memory (initialised by
:func:`init_waitqueue_head`, which writes its spinlock's debug magic) or is a
:class:`WaitQueueHead` object of the emulator's own. ``DEFINE_WAIT`` entries wake and
dequeue themselves (``autoremove_wake_function``); exclusive waiters queue at the tail.
A wake-up wakes its tasks as one step (the kernel holds the queue's lock), then is a
preemption point. A ``struct completion`` (:class:`completion`) is a count and a wait
queue: what tests and drivers use to wait for another task.
"""
from __future__ import annotations

from . import access, bug, vmem
from .current import current
from .printk import KERN_ERR
from .sched import (MAX_SCHEDULE_TIMEOUT, TASK_RUNNING, TASK_UNINTERRUPTIBLE, Task,
                    schedule_timeout, set_current_state, try_to_wake_up)
from .spinlock import SPINLOCK_MAGIC

WAIT_QUEUE_HEAD_T_SIZE = 24  # spinlock_t + padding + struct list_head


class WaitQueueEntry:
    """``struct wait_queue_entry`` made by ``DEFINE_WAIT``: wakes and dequeues itself."""

    __slots__ = ("task", "exclusive", "queued")

    def __init__(self, task: Task | None = None, exclusive: bool = False):
        self.task = task or current()
        self.exclusive = exclusive
        self.queued = False


DEFINE_WAIT = WaitQueueEntry


class WaitQueueHead:
    """``wait_queue_head_t``: a lock and a list of waiting entries."""

    __slots__ = ("_entries", "addr")

    def __init__(self, addr: int = 0):
        self._entries: list[WaitQueueEntry] = []
        self.addr = addr

    def add(self, wait: WaitQueueEntry) -> None:
        if not wait.queued:
            wait.queued = True
            # Exclusive waiters queue at the tail, others at the head (as the kernel).
            self._entries.insert(len(self._entries) if wait.exclusive else 0, wait)

    def remove(self, wait: WaitQueueEntry) -> None:
        if wait.queued:
            wait.queued = False
            self._entries.remove(wait)

    def wake_up(self, nr_exclusive: int = 1) -> int:
        """``__wake_up()``: wake every non-exclusive waiter and ``nr_exclusive`` others,
        then a preemption point of the waker."""
        woken = 0
        for wait in list(self._entries):
            wait.queued = False  # autoremove_wake_function
            self._entries.remove(wait)
            try_to_wake_up(wait.task)
            woken += 1
            if wait.exclusive:
                nr_exclusive -= 1
                if nr_exclusive == 0:
                    break
        waker = current()
        waker.machine.sched.point(waker)
        return woken

    def active(self) -> bool:
        return bool(self._entries)


def init_waitqueue_head(wq: int) -> None:
    """``init_waitqueue_head(wait_queue_head_t *wq)`` for a head in emulated memory."""
    machine = vmem.space_of(wq).machine
    access.store(wq, 4, SPINLOCK_MAGIC)
    machine.waitqueues[wq] = WaitQueueHead(wq)


def _waitqueue(wq) -> WaitQueueHead:
    if isinstance(wq, WaitQueueHead):
        return wq
    machine = vmem.space_of(wq).machine
    head = machine.waitqueues.get(wq)
    if head is None or access.load(wq, 4) != SPINLOCK_MAGIC:
        task = current()
        machine.log.printk(f"BUG: wait queue head {wq:#x} used before "
                           "init_waitqueue_head()", KERN_ERR)
        raise bug.bug_report(machine, task, bug.caller(3))
    return head


def prepare_to_wait(wq, wait: WaitQueueEntry, state: int) -> None:
    """Queue ``wait`` (if not queued) and set the task state, so no wake-up is lost."""
    _waitqueue(wq).add(wait)
    set_current_state(state)


def finish_wait(wq, wait: WaitQueueEntry) -> None:
    """Set ``TASK_RUNNING`` and dequeue ``wait`` if a wake-up did not already."""
    current().state = TASK_RUNNING
    _waitqueue(wq).remove(wait)


def add_wait_queue(wq, wait: WaitQueueEntry) -> None:
    _waitqueue(wq).add(wait)


def remove_wait_queue(wq, wait: WaitQueueEntry) -> None:
    _waitqueue(wq).remove(wait)


def wake_up(wq) -> int:
    """``wake_up(wq)``: returns how many tasks were woken."""
    return _waitqueue(wq).wake_up()


def waitqueue_active(wq) -> bool:
    return _waitqueue(wq).active()


def wq_has_sleeper(wq) -> bool:
    """``wq_has_sleeper()``: the full barrier is implied by the host lock/GIL."""
    return _waitqueue(wq).active()


# ---------------------------------------------------------------- completions

class completion:
    """``struct completion``: ``done`` and the tasks waiting for it
    (``init_completion()`` is the constructor)."""

    __slots__ = ("done", "wait")

    def __init__(self):
        self.done = 0
        self.wait = WaitQueueHead()

    def __repr__(self) -> str:
        return f"<completion done={self.done}>"


init_completion = completion
DECLARE_COMPLETION = completion


def reinit_completion(x: completion) -> None:
    x.done = 0


def complete(x: completion) -> None:
    """``complete()``: one waiter (the oldest) may go on."""
    x.done += 1
    x.wait.wake_up(1)


def complete_all(x: completion) -> None:
    """``complete_all()``: every waiter, and every later one, may go on."""
    x.done = 1 << 62   # UINT_MAX: done for ever
    x.wait.wake_up(0)


def wait_for_completion_timeout(x: completion, timeout: int) -> int:
    """``wait_for_completion_timeout()``: wait uninterruptibly at most ``timeout``
    jiffies; 0 if it timed out, else the jiffies left (at least 1)."""
    while not x.done:
        wait = WaitQueueEntry(exclusive=True)
        prepare_to_wait(x.wait, wait, TASK_UNINTERRUPTIBLE)
        if not x.done:
            timeout = schedule_timeout(timeout)
        finish_wait(x.wait, wait)
        if not timeout and not x.done:
            return 0
    x.done -= 1 if x.done < 1 << 62 else 0
    return max(timeout, 1)


def wait_for_completion(x: completion) -> None:
    """``wait_for_completion()``: wait uninterruptibly until :func:`complete`."""
    wait_for_completion_timeout(x, MAX_SCHEDULE_TIMEOUT)


def completion_done(x: completion) -> bool:
    return x.done > 0
