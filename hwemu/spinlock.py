"""Emulation of kernel/locking/spinlock.c and spinlock_debug.c: ``spinlock_t``.

A ``spinlock_t`` in emulated memory holds the debug magic written by
:func:`spin_lock_init`; the host lock behind it is looked up by address. Misuse
(recursion, unlocking a lock not held, a lock never initialised) is reported as
spinlock_debug.c does and raised as :class:`~hwemu.bug.KernelBug` (the kernel would
hang). Taking a lock disables preemption (and interrupts for the ``_irqsave`` forms),
so sleeping under it gives the might_sleep splat.
"""
from __future__ import annotations

from . import access, bug, vmem
from .current import current
from .printk import KERN_EMERG
from .sched import PREEMPT_OFFSET, Task

SPINLOCK_MAGIC = 0xDEAD4EAD  # kernel/locking/spinlock_debug.c
SPINLOCK_T_SIZE = 4          # sizeof(spinlock_t) without lock debugging


class SpinLock:
    """``spinlock_t`` with ``CONFIG_DEBUG_SPINLOCK``: its owner and the preempt/IRQ
    bookkeeping of the kernel's. Misuse is reported as spinlock_debug.c does and raised
    as :class:`~hwemu.bug.KernelBug` (the kernel would hang).

    One task runs at a time and nothing preempts a lock holder, so a lock is contended
    only when its holder slept with it held (after the "scheduling while atomic"
    splat): the spinning task then yields until the holder releases it. Acquire and
    release are preemption points, before the lock is taken and after it is dropped.
    """

    __slots__ = ("addr", "owner", "spinners")

    def __init__(self, addr: int = 0):
        self.addr = addr
        self.owner: Task | None = None
        self.spinners: list[Task] = []

    def _acquire(self, task: Task) -> None:
        if self.owner is task:
            raise spin_bug(self, "recursion", SPINLOCK_MAGIC)
        sched = task.machine.sched
        sched.point(task)
        while self.owner is not None:   # spin: the holder must run to release it
            self.spinners.append(task)
            task.spinning_on = self
            try:
                sched.block(task)
            finally:
                task.spinning_on = None
                if task in self.spinners:
                    self.spinners.remove(task)
        self.owner = task

    def _release(self, task: Task) -> None:
        if self.owner is not task:
            raise spin_bug(self, "already unlocked" if self.owner is None else
                           "wrong owner", SPINLOCK_MAGIC)
        self.owner = None
        for spinner in self.spinners:
            task.machine.sched.wake(spinner, task.now)

    def lock(self) -> None:
        """``spin_lock()``"""
        task = current()
        self._acquire(task)
        task.preempt_count += PREEMPT_OFFSET

    def unlock(self) -> None:
        """``spin_unlock()``"""
        task = current()
        self._release(task)
        task.preempt_count -= PREEMPT_OFFSET
        task.machine.sched.point(task)

    def lock_irqsave(self) -> bool:
        """``spin_lock_irqsave()``: returns ``flags``."""
        task = current()
        self._acquire(task)
        flags, task.irqs_off = task.irqs_off, True
        task.preempt_count += PREEMPT_OFFSET
        return flags

    def unlock_irqrestore(self, flags: bool) -> None:
        """``spin_unlock_irqrestore()``"""
        task = current()
        self._release(task)
        task.preempt_count -= PREEMPT_OFFSET
        task.irqs_off = flags
        task.machine.sched.point(task)

    def is_locked(self) -> bool:
        return self.owner is not None


def spin_bug(lock: SpinLock | None, msg: str, magic: int, addr: int = 0) -> bug.KernelBug:
    """``spin_dump()``: the report for a misused spinlock; returns the exception."""
    task = current()
    machine = task.machine
    owner = lock.owner if lock else None
    who = f"{owner.comm}/{owner.pid}" if owner else "<none>/-1"
    head = f"BUG: spinlock {msg} on CPU#{task.cpu.id}, {task.comm}/{task.pid}"
    text = (f"{head}\n lock: {addr or (lock.addr if lock else 0):#x}, .magic: {magic:08x}, "
            f".owner: {who}, .owner_cpu: {owner.cpu.id if owner else -1}")
    machine.log.printk(text, KERN_EMERG)
    text += "\n" + bug.dump_stack(machine, task, bug.caller(3), KERN_EMERG)
    return bug.KernelBug(head, text)


def spin_lock_init(lock: int) -> None:
    """``spin_lock_init(spinlock_t *lock)``: write the debug magic, bind a host lock."""
    machine = vmem.space_of(lock).machine
    access.store(lock, 4, SPINLOCK_MAGIC)
    machine.spinlocks[lock] = SpinLock(lock)


def _spinlock(lock: int) -> SpinLock:
    """The host lock behind ``spinlock_t *lock``; ``spin_bug()`` on bad magic."""
    magic = access.load(lock, 4)
    obj = vmem.space_of(lock).machine.spinlocks.get(lock)
    if magic == SPINLOCK_MAGIC and obj is not None:
        return obj
    raise spin_bug(obj, "bad magic", magic, lock)


def spin_lock(lock: int) -> None:
    _spinlock(lock).lock()


def spin_unlock(lock: int) -> None:
    _spinlock(lock).unlock()


def spin_lock_irqsave(lock: int) -> bool:
    return _spinlock(lock).lock_irqsave()


def spin_unlock_irqrestore(lock: int, flags: bool) -> None:
    _spinlock(lock).unlock_irqrestore(flags)
