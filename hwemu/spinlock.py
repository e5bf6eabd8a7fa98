"""Emulation of kernel/locking/spinlock.c and spinlock_debug.c: ``spinlock_t``.

A ``spinlock_t`` in emulated memory is the kernel's with ``CONFIG_DEBUG_SPINLOCK``: the
lock word, the debug magic written by :func:`spin_lock_init`, the owner's CPU and the
owner, all read and written there (the word operations are hardware primitives: the
C accelerator may do them). The emulator's own locks are :class:`SpinLock` objects.
Misuse (recursion, unlocking a lock not held, a lock never initialised) is reported as
spinlock_debug.c does and raised as :class:`~hwemu.bug.KernelBug` (the kernel would
hang). Taking a lock disables preemption (and interrupts for the ``_irqsave`` forms),
so sleeping under it gives the might_sleep splat.
"""
from __future__ import annotations

import struct

from . import access, bug
from .current import current
from .printk import KERN_EMERG
from .sched import PREEMPT_OFFSET, Task

SPINLOCK_MAGIC = 0xDEAD4EAD  # kernel/locking/spinlock_debug.c


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
        sched = task.machine.sched
        for spinner in self.spinners:
            sched.wake(spinner, sched.now_ns())

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


def spin_bug(lock: SpinLock | None, msg: str, magic: int, addr: int = 0,
             owner: Task | None = None, owner_cpu: int = -1) -> bug.KernelBug:
    """``spin_dump()``: the report for a misused spinlock; returns the exception."""
    task = current()
    machine = task.machine
    if lock is not None:
        owner, owner_cpu = lock.owner, lock.owner.cpu.id if lock.owner else -1
    who = f"{owner.comm}/{owner.pid}" if owner else "<none>/-1"
    head = f"BUG: spinlock {msg} on CPU#{task.cpu.id}, {task.comm}/{task.pid}"
    text = (f"{head}\n lock: {addr or (lock.addr if lock else 0):#x}, .magic: {magic:08x}, "
            f".owner: {who}, .owner_cpu: {owner_cpu}")
    machine.log.printk(text, KERN_EMERG)
    text += "\n" + bug.dump_stack(machine, task, bug.caller(3), KERN_EMERG)
    return bug.KernelBug(head, text)


# ---------------------------------------------------------------- spinlock_t in memory
#
# struct raw_spinlock with CONFIG_DEBUG_SPINLOCK, 64-bit: the lock word
# (arch_spinlock_t), magic, owner_cpu and owner. The owner is a task; tasks have no
# address in emulated memory, so the word holds its pid. The emulator's own extra: a
# lock word of RAW_CONTENDED says a task spins on it (its tasks wait in
# machine.lock_spinners), so that the release finds them with no lookup otherwise.
RAW_LOCK, MAGIC, OWNER_CPU, OWNER = 0, 4, 8, 16   # field offsets
RAW_UNLOCKED, RAW_LOCKED, RAW_CONTENDED = 0, 1, 2
OWNER_CPU_INIT, OWNER_INIT = 0xFFFF_FFFF, (1 << 64) - 1   # -1, SPINLOCK_OWNER_INIT
SPINLOCK_T_SIZE = 24                                 # sizeof(spinlock_t)
# What the word operations below say (0: done).
BUSY, WAITERS = 1, 2
BAD_MAGIC, RECURSION, CPU_RECURSION, ALREADY_UNLOCKED, WRONG_OWNER, WRONG_CPU = range(3, 9)
_BUGS = {BAD_MAGIC: "bad magic", RECURSION: "recursion", CPU_RECURSION: "cpu recursion",
         ALREADY_UNLOCKED: "already unlocked", WRONG_OWNER: "wrong owner",
         WRONG_CPU: "wrong CPU"}


_WORD = struct.Struct("<IIIxxxxQ")   # raw_lock, magic, owner_cpu, (padding), owner


def spin_trylock_word(lock: int, cpu: int, owner: int) -> int:
    """``debug_spin_lock_before()``, ``arch_spin_trylock()`` and
    ``debug_spin_lock_after()`` on the word at ``lock``: 0 when taken, :data:`BUSY`
    when another owner holds it (the word is then marked contended), or the bug."""
    raw, magic, held_cpu, held = _WORD.unpack(access.read_bytes(lock, SPINLOCK_T_SIZE))
    if magic != SPINLOCK_MAGIC:
        return BAD_MAGIC
    if held == owner:
        return RECURSION
    if held_cpu == cpu:
        return CPU_RECURSION
    if raw:
        access.store(lock, 4, RAW_CONTENDED)
        return BUSY
    access.write_bytes(lock, _WORD.pack(RAW_LOCKED, magic, cpu, owner))
    return 0


def spin_unlock_word(lock: int, cpu: int, owner: int) -> int:
    """``debug_spin_unlock()`` and ``arch_spin_unlock()`` on the word at ``lock``: 0,
    :data:`WAITERS` when tasks spin on it, or the bug (the word is then unchanged)."""
    raw, magic, held_cpu, held = _WORD.unpack(access.read_bytes(lock, SPINLOCK_T_SIZE))
    if magic != SPINLOCK_MAGIC:
        return BAD_MAGIC
    if not raw:
        return ALREADY_UNLOCKED
    if held != owner:
        return WRONG_OWNER
    if held_cpu != cpu:
        return WRONG_CPU
    access.write_bytes(lock, _UNLOCKED)
    return WAITERS if raw == RAW_CONTENDED else 0


_UNLOCKED = _WORD.pack(RAW_UNLOCKED, SPINLOCK_MAGIC, OWNER_CPU_INIT, OWNER_INIT)


py_spin_trylock_word, py_spin_unlock_word = spin_trylock_word, spin_unlock_word
if access.ACCELERATED:   # the word operations are hardware: the C fast paths
    spin_trylock_word = access.accelerate(spin_trylock_word)
    spin_unlock_word = access.accelerate(spin_unlock_word)


def spin_lock_init(lock: int) -> None:
    """``spin_lock_init(spinlock_t *lock)``: unlocked, the debug magic, no owner."""
    access.write_bytes(lock, _UNLOCKED)


def _lock_bug(lock: int, status: int) -> bug.KernelBug:
    """The spin_dump() of a failed word operation, read from the word."""
    task = current()
    magic = access.load(lock + MAGIC, 4)
    held = access.load(lock + OWNER_CPU, 16)
    owner = task.machine.sched.tasks.get(held >> 64) if held >> 64 != OWNER_INIT else None
    cpu = held & 0xFFFF_FFFF
    return spin_bug(None, _BUGS[status], magic, lock, owner,
                    -1 if cpu == OWNER_CPU_INIT else cpu)


def _acquire(lock: int, task: Task) -> None:
    """Take ``spinlock_t *lock`` for ``task``: a preemption point, then the word."""
    task.machine.sched.point(task)
    status = spin_trylock_word(lock, task.cpu.id, task.pid)
    if status:
        _spin(lock, task, status)


def _spin(lock: int, task: Task, status: int, trylock=None, lock_bug=None) -> None:
    """The word was not free (``status``): spin (yield) while another task holds it,
    or report the bug the word shows. ``trylock`` and ``lock_bug`` do the word's part
    (kernel C's runtime does it on locks in any memory)."""
    trylock = trylock or spin_trylock_word
    while status:
        if status != BUSY:
            raise (lock_bug or _lock_bug)(lock, status)
        # The holder slept with the lock held; it must run to release it.
        task.machine.lock_spinners.setdefault(lock, []).append(task)
        task.spinning_on = lock
        try:
            task.machine.sched.block(task)
        finally:
            task.spinning_on = None
        status = trylock(lock, task.cpu.id, task.pid)


def _release(lock: int, task: Task) -> None:
    status = spin_unlock_word(lock, task.cpu.id, task.pid)
    if status:
        _unlocked_slow(lock, task, status)


def _unlocked_slow(lock: int, task: Task, status: int, lock_bug=None) -> None:
    """The unlock found spinners to wake, or a bug to report."""
    if status != WAITERS:
        raise (lock_bug or _lock_bug)(lock, status)
    sched = task.machine.sched
    for spinner in task.machine.lock_spinners.pop(lock, ()):
        sched.wake(spinner, sched.now_ns())


def spin_lock(lock: int) -> None:
    task = current()
    _acquire(lock, task)
    task.preempt_count += PREEMPT_OFFSET


def spin_unlock(lock: int) -> None:
    task = current()
    _release(lock, task)
    task.preempt_count -= PREEMPT_OFFSET
    task.machine.sched.point(task)


def spin_lock_irqsave(lock: int) -> bool:
    """``spin_lock_irqsave()``: returns ``flags``."""
    return task_lock_irqsave(lock, current())


def spin_unlock_irqrestore(lock: int, flags: bool) -> None:
    task_unlock_irqrestore(lock, flags, current())


def task_lock_irqsave(lock: int, task: Task) -> bool:
    """:func:`spin_lock_irqsave` for code that has ``current`` at hand already
    (:func:`_acquire` written out: the pools' hot path)."""
    task.machine.sched.point(task)
    status = spin_trylock_word(lock, task.cpu.id, task.pid)
    if status:
        _spin(lock, task, status)
    flags, task.irqs_off = task.irqs_off, True
    task.preempt_count += PREEMPT_OFFSET
    return flags


def task_unlock_irqrestore(lock: int, flags: bool, task: Task) -> None:
    """:func:`spin_unlock_irqrestore` for code that has ``current`` at hand already
    (:func:`_release` written out)."""
    status = spin_unlock_word(lock, task.cpu.id, task.pid)
    if status:
        _unlocked_slow(lock, task, status)
    task.preempt_count -= PREEMPT_OFFSET
    task.irqs_off = flags
    task.machine.sched.point(task)
