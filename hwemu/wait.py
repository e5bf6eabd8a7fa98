"""Emulation of kernel/sched/wait.c and completion.c: wait queues and completions.

A ``wait_queue_head_t`` lives in emulated memory (initialised by
:func:`init_waitqueue_head`: its spinlock and an empty list head) or is a
:class:`WaitQueueHead` object of the emulator's own. The entries of a head in memory
are host objects; the head's list says whether there are any (``next`` points to
itself when empty, to ``LIST_POISON1`` otherwise), so that ``wq_has_sleeper()`` and a
``wake_up()`` of an empty queue read memory as the kernel does and go no further.
``DEFINE_WAIT`` entries wake and dequeue themselves (``autoremove_wake_function``);
exclusive waiters queue at the tail.
A wake-up wakes its tasks as one step (the kernel holds the queue's lock), then is a
preemption point. A ``struct completion`` (:class:`completion`) is a count and a wait
queue: what tests and drivers use to wait for another task.
"""
from __future__ import annotations

from . import access, bug, vmem
from .current import current
from .printk import KERN_ERR
from .sched import (MAX_SCHEDULE_TIMEOUT, TASK_RUNNING, TASK_UNINTERRUPTIBLE, Task,
                    preempt_point, schedule_timeout, set_current_state, try_to_wake_up)
from .spinlock import MAGIC, SPINLOCK_MAGIC, SPINLOCK_T_SIZE, spin_lock_init

HEAD = SPINLOCK_T_SIZE                       # offsetof(wait_queue_head_t, head)
WAIT_QUEUE_HEAD_T_SIZE = HEAD + 16           # spinlock_t + struct list_head
LIST_POISON1 = 0xDEAD000000000100            # where a non-empty head's list points


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
        self.addr = addr   # the head in emulated memory, or 0

    def _mark(self) -> None:
        """Make the list head in memory say whether entries are queued."""
        if self.addr:
            head = self.addr + HEAD
            to = LIST_POISON1 if self._entries else head
            access.store(head, 16, to | to << 64)

    def add(self, wait: WaitQueueEntry) -> None:
        if not wait.queued:
            wait.queued = True
            # Exclusive waiters queue at the tail, others at the head (as the kernel).
            self._entries.insert(len(self._entries) if wait.exclusive else 0, wait)
            if len(self._entries) == 1:
                self._mark()

    def remove(self, wait: WaitQueueEntry) -> None:
        if wait.queued:
            wait.queued = False
            self._entries.remove(wait)
            if not self._entries:
                self._mark()

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
        if woken and not self._entries:
            self._mark()
        preempt_point()
        return woken

    def active(self) -> bool:
        return bool(self._entries)


def init_waitqueue_head(wq: int) -> None:
    """``init_waitqueue_head(wait_queue_head_t *wq)`` for a head in emulated memory:
    its lock, an empty list."""
    spin_lock_init(wq)
    head = wq + HEAD
    access.store(head, 16, head | head << 64)
    vmem.space_of(wq).machine.waitqueues.pop(wq, None)   # a head used before is new


def _waitqueue(wq) -> WaitQueueHead:
    """The entries of ``wq``: the object itself, or those of a head in memory (made
    when the first entry is queued)."""
    if isinstance(wq, WaitQueueHead):
        return wq
    machine = vmem.space_of(wq).machine
    if access.load(wq + MAGIC, 4) != SPINLOCK_MAGIC:
        task = current()
        machine.log.printk(f"BUG: wait queue head {wq:#x} used before "
                           "init_waitqueue_head()", KERN_ERR)
        raise bug.bug_report(machine, task, bug.caller(3))
    head = machine.waitqueues.get(wq)
    if head is None:
        head = machine.waitqueues[wq] = WaitQueueHead(wq)
    return head


def _empty(wq) -> bool:
    """``list_empty(&wq->head)``: read where the kernel reads it."""
    if type(wq) is not int and isinstance(wq, WaitQueueHead):   # ints (a pool's) first
        return not wq._entries
    return access.load(wq + HEAD, 8) == wq + HEAD


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
    if _empty(wq):   # nothing queued: the wake-up is only its preemption point
        preempt_point()
        return 0
    return _waitqueue(wq).wake_up()


def waitqueue_active(wq) -> bool:
    """``waitqueue_active()``: ``!list_empty(&wq->head)``."""
    return not _empty(wq)


def wq_has_sleeper(wq) -> bool:
    """``wq_has_sleeper()``: the full barrier is implied by one task running at a time."""
    return not _empty(wq)


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
