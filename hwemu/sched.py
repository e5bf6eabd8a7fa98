"""Emulation of kernel/sched: tasks, CPUs, atomic context and sleeping.

Every thread that runs machine code is a *task* (``current``) pinned to one emulated CPU
for its whole life: a machine with N CPUs runs at most N tasks at once, and two tasks
never share a CPU. That keeps everything per-CPU (kmap_local slots, later per-CPU
caches) owned by exactly one running task, as it is between context switches in the
kernel. Interrupts run on top of the interrupted task, as in the kernel
(:func:`run_in_interrupt`).

Time is :mod:`hwemu.timer`'s; spinlocks and wait queues are in :mod:`hwemu.spinlock`
and :mod:`hwemu.wait`.

Not emulated: real preemption (tasks are host threads and run in parallel), priorities,
RCU, lockdep.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable

from . import bug, timer
from .current import current, enter, leave
from .printk import KERN_ERR

TASK_RUNNING, TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE = 0x0, 0x1, 0x2
TASK_WAKEKILL = 0x100
TASK_KILLABLE = TASK_WAKEKILL | TASK_UNINTERRUPTIBLE
TASK_COMM_LEN = 16
MAX_SCHEDULE_TIMEOUT = (1 << 63) - 1  # LONG_MAX

# include/linux/preempt.h
PREEMPT_OFFSET = 1 << 0
SOFTIRQ_OFFSET = 1 << 8
HARDIRQ_OFFSET = 1 << 16
NMI_OFFSET = 1 << 20
PREEMPT_MASK, SOFTIRQ_MASK, HARDIRQ_MASK, NMI_MASK = 0xFF, 0xFF00, 0xF0000, 0xF00000
IRQ_COUNT_MASK = NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK   # irq_count(): in_interrupt()


class CPU:
    """One emulated CPU; runs at most one task (``cpu.task``)."""

    def __init__(self, cpu_id: int, node: int):
        self.id = cpu_id
        self.node = node
        self.task: Task | None = None


class Task:
    """``struct task_struct``: the parts the memory code looks at.

    ``kmap_idx`` is ``current->kmap_ctrl.idx`` (see highmem.py).
    """

    def __init__(self, machine, pid: int, comm: str, cpu: CPU, thread: threading.Thread):
        self.machine = machine
        self.pid = pid
        self.comm = comm[:TASK_COMM_LEN - 1]
        self.cpu = cpu
        self.thread = thread
        self.state = TASK_RUNNING
        self.preempt_count = 0
        self.irqs_off = False
        self.pagefault_disabled = 0
        self.migration_disabled = 0
        self.in_iowait = False
        self.kmap_idx = 0
        self.fail_nth = 0          # /proc/<pid>/fail-nth
        self.make_it_fail = False  # /proc/<pid>/make-it-fail
        self.oom_victim = False    # tsk_is_oom_victim(): SIGKILLed by the OOM killer
        self.alloc_tag = None      # current->alloc_tag (memory allocation profiling)
        self._wake = threading.Event()

    def __repr__(self) -> str:
        return f"<task {self.comm}/{self.pid} on CPU {self.cpu.id}>"


class TaskHandle:
    """What :meth:`Scheduler.spawn` returns: ``join()`` gives the function's result."""

    def __init__(self, task: Task):
        self.task = task
        self.result: Any = None
        self.exception: BaseException | None = None

    @property
    def pid(self) -> int:
        return self.task.pid

    def is_alive(self) -> bool:
        return self.task.thread.is_alive()

    def join(self, timeout: float | None = None) -> Any:
        """Wait for the task; re-raise what it raised; ``TimeoutError`` if still running."""
        self.task.thread.join(timeout)
        if self.task.thread.is_alive():
            raise TimeoutError(f"task {self.task.comm}/{self.task.pid} still running "
                               f"after {timeout}s")
        if self.exception is not None:
            raise self.exception
        return self.result

# ---------------------------------------------------------------- the scheduler

class Scheduler:
    """The CPUs and tasks of one machine."""

    def __init__(self, machine, nr_cpus: int, nr_nodes: int, clock: timer.Clock):
        self.machine = machine
        self.clock = clock
        self.cpus = [CPU(i, i * nr_nodes // nr_cpus) for i in range(nr_cpus)]
        self.kthread_cpus: list[CPU] = []
        self.tasks: dict[int, Task] = {}
        self.handles: list[TaskHandle] = []
        self._next_pid = 1
        self._lock = threading.Lock()
        self._prev_might_resched = None

    def _new_task(self, comm: str, cpu: int | None, thread: threading.Thread,
                  kthread_node: int | None = None) -> Task:
        with self._lock:
            free = [c for c in self.cpus if c.task is None]
            if kthread_node is not None:
                # Kernel threads (kswapd...) get a housekeeping CPU of their own, so
                # they never take one of the `cpus` that workloads are given.
                chosen = CPU(len(self.cpus) + len(self.kthread_cpus), kthread_node)
                self.kthread_cpus.append(chosen)
            elif cpu is None:
                if not free:
                    raise bug.MachineError(
                        f"spawn: all {len(self.cpus)} CPUs of machine {self.machine.name!r} "
                        "run a task; raise machine.cpus in the config")
                chosen = free[0]
            else:
                if not 0 <= cpu < len(self.cpus):
                    raise bug.MachineError(f"spawn: no CPU {cpu} (machine has "
                                           f"{len(self.cpus)})")
                chosen = self.cpus[cpu]
                if chosen.task is not None:
                    raise bug.MachineError(f"spawn: CPU {cpu} already runs {chosen.task}")
            task = Task(self.machine, self._next_pid, comm, chosen, thread)
            self._next_pid += 1
            chosen.task = task
            self.tasks[task.pid] = task
            return task

    def boot_task(self, comm: str = "init") -> Task:
        """Make the calling thread the machine's first task, on CPU 0."""
        task = self._new_task(comm, 0, threading.current_thread())
        enter(task)
        return task

    def spawn(self, fn: Callable, *args, name: str | None = None,
              cpu: int | None = None, kthread_node: int | None = None) -> TaskHandle:
        """Run ``fn(*args)`` as a new task in its own thread on a free CPU.

        With ``kthread_node`` it is a kernel thread on a housekeeping CPU of that node.
        """
        thread = threading.Thread(daemon=True)
        task = self._new_task(name or getattr(fn, "__name__", None) or "task", cpu, thread,
                              kthread_node)
        handle = TaskHandle(task)
        thread.name = f"{self.machine.name}:{task.comm}/{task.pid}"
        thread.run = functools.partial(self._run, handle, fn, args)  # type: ignore[method-assign]
        with self._lock:  # only live tasks need joining at shutdown
            self.handles = [h for h in self.handles if h.is_alive()] + [handle]
        thread.start()
        return handle

    def _run(self, handle: TaskHandle, fn: Callable, args: tuple) -> None:
        enter(handle.task)
        try:
            handle.result = fn(*args)
        except BaseException as exc:  # the task dies; join() re-raises
            handle.exception = exc
            if not isinstance(exc, bug.KernelError):  # those printed their own report
                self.machine.log.printk(f"{handle.task.comm}/{handle.pid} died: "
                                        f"{type(exc).__name__}: {exc}", KERN_ERR)
        finally:
            self.exit_task(handle.task)

    bug.STACK_BOTTOM.add(_run.__code__)

    def exit_task(self, task: Task) -> None:
        """``do_exit()``: note leaked atomic state, free the CPU."""
        log = self.machine.log
        if task.preempt_count:
            log.printk(f"note: {task.comm}[{task.pid}] exited with preempt_count "
                       f"{task.preempt_count}", KERN_ERR)
        if task.irqs_off:
            log.printk(f"note: {task.comm}[{task.pid}] exited with irqs disabled", KERN_ERR)
        try:
            self.machine.task_exit_hooks(task)
        finally:
            with self._lock:
                task.cpu.task = None
                self.tasks.pop(task.pid, None)
            leave(task)

    def wake_all(self) -> None:
        """Wake every sleeping task (used by shutdown so sleepers notice it)."""
        for task in list(self.tasks.values()):
            task._wake.set()


# ---------------------------------------------------------------- atomic context

def preempt_count() -> int:
    return current().preempt_count


def preempt_disable() -> None:
    current().preempt_count += PREEMPT_OFFSET


def preempt_enable() -> None:
    task = current()
    if bug.WARN_ON_ONCE(task.preempt_count & PREEMPT_MASK == 0):
        return
    task.preempt_count -= PREEMPT_OFFSET


def local_irq_save() -> bool:
    """``local_irq_save(flags)``: returns the flags (were IRQs off)."""
    task = current()
    flags, task.irqs_off = task.irqs_off, True
    return flags


def local_irq_restore(flags: bool) -> None:
    current().irqs_off = flags


def local_irq_disable() -> None:
    current().irqs_off = True


def local_irq_enable() -> None:
    current().irqs_off = False


def irqs_disabled() -> bool:
    return current().irqs_off


def in_atomic() -> bool:
    return current().preempt_count != 0


def in_hardirq() -> bool:
    return bool(current().preempt_count & HARDIRQ_MASK)


def in_softirq() -> bool:
    return bool(current().preempt_count & SOFTIRQ_MASK)


def in_interrupt() -> bool:
    return bool(current().preempt_count & IRQ_COUNT_MASK)


def in_task() -> bool:
    return not in_interrupt()


def pagefault_disable() -> None:
    current().pagefault_disabled += 1


def pagefault_enable() -> None:
    current().pagefault_disabled -= 1


def pagefault_disabled() -> bool:
    return current().pagefault_disabled > 0


def migrate_disable() -> None:
    current().migration_disabled += 1


def migrate_enable() -> None:
    current().migration_disabled -= 1


def smp_processor_id() -> int:
    return current().cpu.id


def numa_node_id() -> int:
    return current().cpu.node


def run_in_interrupt(fn: Callable, *args, softirq: bool = False) -> Any:
    """Run ``fn(*args)`` as an interrupt on the calling task's CPU.

    Hard interrupts run with IRQs disabled and ``HARDIRQ_OFFSET`` in the preempt count
    (``irq_enter()``); softirqs with ``SOFTIRQ_OFFSET`` and IRQs enabled. The handler
    runs on top of the interrupted task, using the next kmap_local slots.
    """
    task = current()
    saved = (task.preempt_count, task.irqs_off, task.kmap_idx)
    task.preempt_count += SOFTIRQ_OFFSET if softirq else HARDIRQ_OFFSET
    task.irqs_off = not softirq or task.irqs_off
    try:
        return fn(*args)
    finally:
        bug.WARN(task.kmap_idx != saved[2],
                 f"interrupt handler {getattr(fn, '__name__', fn)} left "
                 f"{task.kmap_idx - saved[2]} kmap_local mapping(s) behind")
        task.preempt_count, task.irqs_off, _ = saved


# ---------------------------------------------------------------- sleeping

def might_sleep() -> None:
    """``might_sleep()``: splat if the caller is atomic (rate-limited to once per HZ)."""
    task = current()
    if task.preempt_count == 0 and not task.irqs_off:
        return
    machine = task.machine
    sched, now = machine.sched, machine.clock.jiffies()
    prev = sched._prev_might_resched
    if prev is not None and (now - prev) & machine.clock.mask < machine.clock.hz:
        return
    sched._prev_might_resched = now
    frame = bug.caller()
    text = "\n".join([
        f"BUG: sleeping function called from invalid context at {bug.location(frame)}",
        f"in_atomic(): {int(task.preempt_count != 0)}, irqs_disabled(): "
        f"{int(task.irqs_off)}, non_block: 0, pid: {task.pid}, name: {task.comm}",
        f"preempt_count: {task.preempt_count:x}, expected: 0",
        "RCU nest depth: 0, expected: 0"])
    _splat(machine, task, text, frame)


def _splat(machine, task: Task, text: str, frame) -> None:
    """Print a "BUG:" line block and the stack; the kernel taints W for these."""
    machine.log.printk(text, KERN_ERR)
    text += "\n" + bug.dump_stack(machine, task, frame)
    machine.bugs.add_taint("WARN")
    machine.warnings.append(text)


def set_current_state(state: int) -> None:
    task = current()
    task._wake.clear()
    task.state = state


__set_current_state = set_current_state


def wake_up_process(task: Task) -> bool:
    """``wake_up_process()``: True if the task was sleeping."""
    was_sleeping = task.state != TASK_RUNNING
    task.state = TASK_RUNNING
    task._wake.set()
    return was_sleeping


def schedule_timeout(timeout: int) -> int:
    """Sleep until woken or ``timeout`` jiffies pass; returns the jiffies left.

    Sleeps only if the state set by :func:`set_current_state` is not yet
    ``TASK_RUNNING`` again (a wake-up that came first is not lost).
    """
    task = current()
    machine = task.machine
    if task.preempt_count:
        _splat(machine, task, f"BUG: scheduling while atomic: {task.comm}/{task.pid}/"
                              f"{task.preempt_count:#010x}", bug.caller())
    clock = machine.clock
    start = clock.jiffies()
    state = task.state
    # Checked after set_current_state() cleared the wake event and before sleeping:
    # shutdown sets going_down before it wakes everyone, so no sleeper is missed.
    if task.state != TASK_RUNNING and not machine.going_down:
        forever = timeout >= MAX_SCHEDULE_TIMEOUT
        task._wake.wait(None if forever else clock.seconds(timeout))
    task.state = TASK_RUNNING
    if machine.going_down:
        raise bug.MachineDown(f"machine {machine.name!r} is shutting down")
    if task.oom_victim and state & (TASK_INTERRUPTIBLE | TASK_WAKEKILL):
        # A fatal signal ends an interruptible or killable sleep: the task dies.
        raise bug.Killed(f"{task.comm}/{task.pid} was killed by the OOM killer")
    if timeout >= MAX_SCHEDULE_TIMEOUT:
        return timeout
    return max(0, timeout - ((clock.jiffies() - start) & clock.mask))


def schedule() -> None:
    schedule_timeout(MAX_SCHEDULE_TIMEOUT)


def io_schedule_timeout(timeout: int) -> int:
    """:func:`schedule_timeout` accounted as IO wait (D state)."""
    task = current()
    task.in_iowait = True
    try:
        return schedule_timeout(timeout)
    finally:
        task.in_iowait = False


def schedule_timeout_uninterruptible(timeout: int) -> int:
    """Sleep ``timeout`` jiffies in ``TASK_UNINTERRUPTIBLE``; returns the jiffies left."""
    set_current_state(TASK_UNINTERRUPTIBLE)
    return schedule_timeout(timeout)


def msleep(msecs: int) -> None:
    """Sleep ``msecs`` emulated milliseconds (uninterruptibly)."""
    timeout = -(-msecs * current().machine.clock.hz // 1000)
    while timeout:  # a wake-up does not end it early
        timeout = schedule_timeout_uninterruptible(timeout)
