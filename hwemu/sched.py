"""Emulation of kernel/sched: tasks, CPUs, the scheduler, atomic context and sleeping.

The machine is deterministic. Every task is pinned to an emulated CPU of its own for its
whole life (a machine with N CPUs runs at most N tasks), and tasks run one at a time:
each is a greenlet in the thread that booted the machine, and only the task the
scheduler picked runs. It picks at *scheduling points*: when the running task sleeps,
waits or exits, and at the *preemption points* where the machine's strategy
(:mod:`hwemu.strategy`, chosen from ``machine.sched`` with its seed) may switch:
spin lock acquire and release, the entry of the page, slab and mempool allocators and
frees, wake-ups and ``cond_resched()``, never while the task is atomic (preemption or
interrupts disabled). A run is therefore a function of its config and seed on any host.

Time: every CPU has its own clock (:mod:`hwemu.timer`). Each scheduling point costs the
running CPU ``machine.sched.step_cost`` of emulated time; a wake-up, a spawn or a join
carries the clock of the task that caused it. Timers fire when the running CPU's clock
passes them; when no task can run, the clocks jump to the next timer. When nothing can
run and no timer that could wake a task is pending (an *observer*'s timeout, a join's
or a watcher's, wakes only itself), while a task waits in D state or on a spinlock, or
no timer at all is pending, the machine is deadlocked: it says so at once with the
stacks of every blocked task (sysrq-w's format) and raises :class:`~hwemu.Deadlock` in
the machine's first task. khungtaskd reports a task that stays in D state without
being woken for ``hung_task_timeout_secs``.

Interrupts run on top of the interrupted task, as in the kernel
(:func:`run_in_interrupt`). Spinlocks are in :mod:`hwemu.spinlock`, wait queues in
:mod:`hwemu.wait`. Not emulated: priorities and load balancing, RCU, lockdep; code
that loops without ever reaching a scheduling point holds its CPU, and the machine,
for ever (a soft lockup).
"""
from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Any, Callable

import greenlet

from . import bug, timer
from .current import current, enter, leave
from .errors import Deadlock, Killed, MachineDown, MachineError
from .printk import KERN_ERR
from .strategy import make_strategy

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

HUNG_TASK_WARNINGS = 10   # sysctl_hung_task_warnings: reports before khungtaskd stops
FNV_PRIME, MASK64 = 0x100000001B3, (1 << 64) - 1   # the interleaving's fingerprint


class CPU:
    """One emulated CPU; runs at most one task (``cpu.task``)."""

    def __init__(self, cpu_id: int, node: int):
        self.id = cpu_id
        self.node = node
        self.task: Task | None = None


class PyTaskCore:
    """The CPU state of a task that kernel C reads directly (see hwemu/_core.h): the
    twin of the C base ``hwemu._speedups.TaskCore``."""
    __slots__ = ("preempt_count", "irqs_off", "pid", "cpu_id", "sched")


class PySchedCore:
    """The scheduler state kernel C reads directly: the twin of ``SchedCore``."""
    __slots__ = ("countdown", "curr")


try:   # the C bases, whose fields kernel C (hwemu.kbuild) reads; HWEMU_PURE=1: not
    from ._speedups import SchedCore, TaskCore
except ImportError:
    TaskCore, SchedCore = PyTaskCore, PySchedCore
if os.environ.get("HWEMU_PURE") == "1":
    TaskCore, SchedCore = PyTaskCore, PySchedCore


class Task(TaskCore):
    """``struct task_struct``: the parts the memory code and the scheduler look at.

    ``now`` is the clock of the task's CPU (ns since boot); ``kmap_idx`` is
    ``current->kmap_ctrl.idx`` (see highmem.py); ``nvcsw`` counts the times it
    switched out (khungtaskd's test of progress).
    """

    def __init__(self, machine, pid: int, comm: str, cpu: CPU, now: int):
        self.machine = machine
        self.pid = pid
        self.comm = comm[:TASK_COMM_LEN - 1]
        self.cpu = cpu
        self.cpu_id = cpu.id
        self.sched = machine.sched
        self.now = now
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
        self.c_waits: dict | None = None   # kernel C's wait entries (hwemu.kbuild)
        self.c_tags: list | None = None    # and its alloc_hooks() tags, saved
        self.c_run: Any = None             # the run's CustomTask of a C workload
        self.glet: Any = None      # its greenlet.greenlet
        self.timer: tuple | None = None     # the live entry of the machine's timers
        self.observer = False      # only watches (joins, samples): its timeouts wake no one
        self.spinning_on: Any = None   # the lock it spins on (spinlock_t * or SpinLock)
        self.nvcsw = 0
        self.hung_nvcsw = -1       # nvcsw when khungtaskd last looked
        self.blocked_since = 0
        self.prio = 0.0            # the pct strategy's priority
        self.exited = False
        self.exit_waiters: list[Task] = []
        self.should_stop = False   # KTHREAD_SHOULD_STOP: told to stop (see msleep())

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
        return not self.task.exited

    def join(self, timeout: float | None = None) -> Any:
        """Wait for the task; re-raise what it raised. ``timeout`` is in seconds of
        emulated time; :class:`TimeoutError` if the task still runs then."""
        self.task.machine.sched.join(self.task, timeout)
        if self.exception is not None:
            raise self.exception
        return self.result


# ---------------------------------------------------------------- the scheduler

# The strategy's count while no other task can run: it is asked again when one can.
IDLE = 1 << 62


class Scheduler(SchedCore):
    """The CPUs, tasks, run queue and timers of one machine.

    :param cfg: the ``machine.sched`` section of the config
    """

    def __init__(self, machine, nr_cpus: int, nr_nodes: int, cfg):
        self.machine = machine
        self.cpus = [CPU(i, i * nr_nodes // nr_cpus) for i in range(nr_cpus)]
        self.kthread_cpus: list[CPU] = []
        self.tasks: dict[int, Task] = {}
        self._next_pid = 1
        self.curr: Task | None = None      # the task running now
        self.runnable: list[Task] = []     # the others that could run, in wake order
        self.timers = timer.TimerQueue()
        self.step_cost = cfg.step_cost
        self._steps = 0                    # scheduling points credited so far
        self.switches = 0                  # context switches so far
        self.interleaving = 0              # fingerprint of each switch: step, next task
        self.died: list[tuple[Task, BaseException]] = []   # tasks killed by an exception
        self.strategy = make_strategy(cfg)
        # Preemption points are counted, not timed, on the way (see point()): the
        # running task's clock and the step count are credited when the scheduler looks.
        self._left = self.strategy.countdown()   # points until the strategy is asked
        self.countdown = self._armed = self._left   # points until the scheduler looks
        self.boot: Task | None = None      # the machine's first task (the booting thread)
        self.thread = threading.get_ident()
        self.stopper: Task | None = None   # the task shutting the machine down
        self.latest = 0                    # the latest any clock has reached
        self.hung_timeout = cfg.hung_task_timeout_secs * timer.NSEC_PER_SEC
        self.hung_check = self.hung_timeout or timer.NEVER
        self.hung_warnings = HUNG_TASK_WARNINGS
        self._prev_might_resched = None

    # ------------------------------------------------------------ time

    def now_ns(self) -> int:
        """The running CPU's clock (the latest clock before the first task runs)."""
        t = self.curr
        if t is None:
            return self.latest
        self._credit()
        return t.now

    def advance(self, task: "Task", ns: int) -> None:
        """Move ``task``'s clock on ``ns`` (a busy-wait: nothing else runs)."""
        if task is self.curr:
            self._credit()
            task.now += ns
            self._arm(task)
        else:
            task.now += ns

    @property
    def steps(self) -> int:
        """The scheduling points so far."""
        self._credit()
        return self._steps

    def _credit(self) -> None:
        """Charge the running task the preemption points it passed since the scheduler
        last looked: a step of its CPU's time each."""
        done = self._armed - self.countdown
        if done:
            self._armed = self.countdown
            self._steps += done
            self._left -= done
            self.curr.now += done * self.step_cost   # type: ignore[union-attr]

    def _arm(self, task: "Task") -> None:
        """Set the count of points after which the scheduler looks again, ``task``
        running: when the strategy is due, or at the point whose step reaches the next
        timer's expiry, whichever comes first."""
        expiry = self.timers.next_expiry
        if self._left > IDLE // 2:   # nothing else can run: khungtaskd's check is due too
            expiry = min(expiry, self.hung_check)
        if expiry == timer.NEVER:   # no timer: the strategy's count (no big-int math)
            self.countdown = self._armed = self._left
            return
        gap = expiry - task.now
        horizon = -(-gap // self.step_cost) if gap > 0 else 1
        self.countdown = self._armed = min(self._left, horizon)

    # ------------------------------------------------------------ tasks

    def _new_task(self, comm: str, cpu: int | None, kthread_node: int | None = None) -> Task:
        if self.machine.going_down:
            raise MachineDown(f"machine {self.machine.name!r} is shutting down")
        if kthread_node is not None:
            # Kernel threads (kswapd...) get a housekeeping CPU of their own, so they
            # never take one of the `cpus` that workloads are given.
            chosen = CPU(len(self.cpus) + len(self.kthread_cpus), kthread_node)
            self.kthread_cpus.append(chosen)
        elif cpu is None:
            free = next((c for c in self.cpus if c.task is None), None)
            if free is None:
                raise MachineError(
                    f"spawn: all {len(self.cpus)} CPUs of machine {self.machine.name!r} "
                    "run a task; raise machine.cpus in the config")
            chosen = free
        else:
            if not 0 <= cpu < len(self.cpus):
                raise MachineError(f"spawn: no CPU {cpu} (machine has {len(self.cpus)})")
            chosen = self.cpus[cpu]
            if chosen.task is not None:
                raise MachineError(f"spawn: CPU {cpu} already runs {chosen.task}")
        task = Task(self.machine, self._next_pid, comm, chosen, self.now_ns())
        self._next_pid += 1
        chosen.task = task
        self.tasks[task.pid] = task
        self.strategy.on_new_task(task)
        return task

    def boot_task(self, comm: str = "init") -> Task:
        """Make the calling thread the machine's first task, on CPU 0."""
        task = self._new_task(comm, 0)
        task.glet = greenlet.getcurrent()
        self.boot = self.curr = task
        enter(task)
        return task

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self.thread:
            raise MachineError(f"{what}: machine {self.machine.name!r} runs in the thread "
                               "that booted it; call this from one of its tasks")

    def spawn(self, fn: Callable, *args, name: str | None = None,
              cpu: int | None = None, kthread_node: int | None = None) -> TaskHandle:
        """Start ``fn(*args)`` as a new task on a free CPU; it is runnable at once.

        With ``kthread_node`` it is a kernel thread on a housekeeping CPU of that node.
        """
        self._check_thread("spawn")
        task = self._new_task(name or getattr(fn, "__name__", None) or "task", cpu,
                              kthread_node)
        handle = TaskHandle(task)
        task.glet = greenlet.greenlet(functools.partial(self._task_main, handle, fn, args),
                                      parent=self.boot.glet if self.boot else None)
        self._runnable(task)
        return handle

    def _task_main(self, handle: TaskHandle, fn: Callable, args: tuple, *_) -> None:
        """The body of a task's greenlet: run ``fn``, exit, hand the CPU on."""
        task = handle.task
        enter(task)
        self._arm(task)
        fatal: BaseException | None = None
        try:
            self._resumed(task)   # a task that starts while the machine goes down
            handle.result = fn(*args)
        except (KeyboardInterrupt, SystemExit) as exc:   # for the machine's user
            handle.exception = fatal = exc
        except BaseException as exc:  # the task dies; join() re-raises
            handle.exception = exc
            if not isinstance(exc, (MachineDown, greenlet.GreenletExit)):
                self.died.append((task, exc))
            if not isinstance(exc, (bug.KernelError, greenlet.GreenletExit)):
                self.machine.log.printk(f"{task.comm}/{task.pid} died: "
                                        f"{type(exc).__name__}: {exc}", KERN_ERR)
        finally:
            self.exit_task(task)
        if fatal is not None:   # the first task gets it, where it waits
            self._resume_boot()
            raise fatal
        self.curr = None
        nxt = self._pick(task, exiting=True)
        self.curr = nxt
        task.glet.parent = nxt.glet   # returning switches there

    bug.STACK_BOTTOM.add(_task_main.__code__)

    def exit_task(self, task: Task) -> None:
        """``do_exit()``: note leaked atomic state, free the CPU, wake joiners."""
        if task is self.curr:
            self._credit()
        log = self.machine.log
        if task.preempt_count:
            log.printk(f"note: {task.comm}[{task.pid}] exited with preempt_count "
                       f"{task.preempt_count}", KERN_ERR)
        if task.irqs_off:
            log.printk(f"note: {task.comm}[{task.pid}] exited with irqs disabled", KERN_ERR)
        try:
            self.machine.task_exit_hooks(task)
        finally:
            task.cpu.task = None
            self.tasks.pop(task.pid, None)
            task.exited = True
            task.state = TASK_RUNNING
            self.latest = max(self.latest, task.now)
            for waiter in task.exit_waiters:
                self.wake(waiter, task.now)
            leave(task)

    # ------------------------------------------------------------ scheduling points

    def point(self, task: Task) -> None:
        """A preemption point of ``task`` (the running one): it costs one step of its
        CPU's time, fires the timers that time passed, and lets the strategy switch
        if the task is preemptible.

        Only counted here: :meth:`_arm` chose the count after which the strategy is
        due or the clock reaches the next timer, and :meth:`_consult` credits the
        steps then (anything that reads the clock credits them first)."""
        if task is self.curr:   # not another machine's task, nor boot code
            self.countdown -= 1
            if self.countdown <= 0:
                self._consult(task)

    def _consult(self, task: Task) -> None:
        self._credit()
        now = task.now
        if now >= self.timers.next_expiry:
            self._fire(now)
        elif self._left > 0 and now < self.hung_check:
            self._arm(task)   # the timer it was armed for went away
            return
        if now >= self.hung_check:
            self.latest = max(self.latest, now)
            self._khungtaskd()
        if self._left <= 0:
            # Nothing to switch to: the strategy is asked when something can run.
            self._left = self.strategy.countdown() if self.runnable else IDLE
            if self.runnable and not (task.preempt_count or task.irqs_off):
                nxt = self.strategy.choose(self.runnable + [task], task, self._steps)
                if nxt is not task:
                    self.runnable.remove(nxt)
                    self.runnable.append(task)
                    self._switch(task, nxt)
        self._arm(task)

    def _fire(self, now: int) -> None:
        """Wake the tasks whose timers expired by ``now``."""
        if now >= self.timers.next_expiry:
            for expires, _, task in self.timers.pop_due(now):
                self.wake(task, expires)

    def wake(self, task: Task, at: int) -> bool:
        """Make ``task`` runnable, its clock at least ``at``; False if it was not
        sleeping (``try_to_wake_up()``)."""
        if task.exited or task is self.curr or task in self.runnable:
            return False
        task.timer = None
        if task.now < at:
            task.now = at
        self._runnable(task)
        return True

    def _runnable(self, task: Task) -> None:
        """``task`` can run: queued; if it is the first beside the running task, the
        strategy is due again (asked from now on: its choices are as likely as ever)."""
        self.runnable.append(task)
        if self._left > IDLE // 2:
            curr = self.curr
            if curr is not None:
                self._credit()
            self._left = self.strategy.countdown()
            if curr is not None:
                self._arm(curr)

    def block(self, task: Task, expires: int | None = None) -> None:
        """``__schedule()`` for a task that stops running: it sleeps (or spins on a lock)
        until :meth:`wake` puts it back, or ``expires`` (ns) if given."""
        self._check_thread("schedule")
        self._credit()
        task.now += self.step_cost
        self._steps += 1
        task.blocked_since = task.now
        self._fire(task.now)
        if expires is not None:
            if expires <= task.now:   # the timeout passed while getting here
                return
            self.timers.arm(task, expires)
        self.curr = None   # nothing runs until the next task is picked
        self._switch(task, self._pick(task))

    def _pick(self, prev: Task, exiting: bool = False) -> Task:
        """The next task to run, ``prev`` having stopped; jumps the clocks to the next
        timer while nothing can run. Raises :class:`Deadlock` when a task is stuck for
        good: blocked in D state (or spinning) with only observers' timeouts pending
        (a join or a watcher waking up cannot help it), or blocked with no timer at
        all pending."""
        while not self.runnable:
            if not self.timers.any_live(_wakes_someone) and (
                    self._stuck() or not self.timers.any_live(_any)):
                return self._deadlock(prev, exiting)
            expires, _, task = self.timers.pop_earliest()
            self.latest = max(self.latest, expires)
            self._khungtaskd()
            self.wake(task, expires)
        nxt = self.strategy.choose(self.runnable, prev, self._steps)
        self.runnable.remove(nxt)
        return nxt

    def _stuck(self) -> bool:
        """Whether a task that is not an observer waits in D state or spins."""
        return any((t.state & TASK_UNINTERRUPTIBLE or t.spinning_on is not None)
                   and not t.observer and self._waiting(t) for t in self.tasks.values())

    def _waiting(self, task: Task) -> bool:
        """Whether ``task`` is blocked: neither running nor runnable (nor exited)."""
        return task is not self.curr and task not in self.runnable

    def _switch(self, prev: Task, nxt: Task) -> None:
        """Run ``nxt`` instead of ``prev`` (whose points are credited); returns when
        ``prev`` runs again."""
        if nxt is prev:
            self.curr = prev
            self._arm(prev)
            return
        prev.nvcsw += 1
        self.switches += 1
        # Who ran next and at which point: the interleaving, folded FNV-1 style.
        h = (self.interleaving ^ self._steps) * FNV_PRIME
        self.interleaving = (h ^ nxt.pid) * FNV_PRIME & MASK64
        self.latest = max(self.latest, prev.now)
        self.curr = nxt
        assert nxt.glet is not None
        nxt.glet.switch()
        self._arm(prev)
        self._resumed(prev)

    def _resumed(self, task: Task) -> None:
        if self.machine.going_down and task is not self.stopper and not task.exited:
            raise MachineDown(f"machine {self.machine.name!r} is shutting down")

    def _resume_boot(self) -> None:
        """Make the first task the running one (it is about to get an exception)."""
        boot = self.boot
        assert boot is not None
        if boot in self.runnable:
            self.runnable.remove(boot)
        boot.timer = None
        boot.state = TASK_RUNNING
        self.curr = boot
        self._arm(boot)

    # ------------------------------------------------------------ join

    def join(self, task: Task, timeout: float | None) -> None:
        """Block the running task until ``task`` has exited, at most ``timeout``
        emulated seconds."""
        if task.exited:
            return
        me = current()
        if me.machine is not self.machine:
            raise MachineError(f"join: {task} is a task of machine {self.machine.name!r}, "
                               f"the caller runs on {me.machine.name!r}")
        if me is task:
            raise MachineError(f"join: {task} cannot wait for itself")
        self._credit()
        expires = None if timeout is None else me.now + int(timeout * timer.NSEC_PER_SEC)
        task.exit_waiters.append(me)
        observer, me.observer = me.observer, True
        try:
            while not task.exited:
                if expires is not None and me.now >= expires:
                    raise TimeoutError(f"task {task.comm}/{task.pid} still running after "
                                       f"{timeout}s (emulated)")
                me.state = TASK_KILLABLE   # as kthread_stop() waits: D, never "hung"
                self.block(me, expires)
        finally:
            me.state = TASK_RUNNING
            me.observer = observer
            task.exit_waiters.remove(me)

    # ------------------------------------------------------------ reports

    def blocked_report(self, header: str) -> str:
        """Every task that waits, with its stack, as sysrq-w prints them."""
        lines = [header, "sysrq: Show Blocked State"]
        for task in sorted(self.tasks.values(), key=lambda t: t.pid):
            if self._waiting(task):
                lines += sched_show_task(task)
        return "\n".join(lines)

    def _deadlock(self, prev: Task, exiting: bool) -> Task:
        """Nothing can run and nothing can wake the stuck: report, then raise in the first
        task (the one that drives the machine). ``prev`` (the task that stopped) stays
        blocked; if it is woken later, it goes on from here: it is returned."""
        text = self.blocked_report(
            f"hwemu: deadlock on machine {self.machine.name!r}: no task can run and no "
            "timer that could wake one is pending; the blocked tasks:")
        self.machine.log.printk(text, KERN_ERR)
        self.machine.bugs.deadlock = self.machine.bugs.deadlock or text
        exc = Deadlock(f"deadlock on machine {self.machine.name!r}: every task is "
                       "blocked and nothing can wake them", text)
        self._resume_boot()
        if prev is self.boot and not exiting:
            raise exc
        assert self.boot is not None and self.boot.glet is not None
        if exiting:          # the exiting greenlet's exception goes to its parent
            greenlet.getcurrent().parent = self.boot.glet
            raise exc
        self.boot.glet.throw(exc)
        return prev

    def _khungtaskd(self) -> None:
        """``check_hung_uninterruptible_tasks()``, run as the latest clock passes each
        ``hung_task_timeout_secs``: a task in D state not woken since the last check,
        blocked for longer than the timeout, is reported (``hung_task_warnings`` at
        most)."""
        if not self.hung_timeout or self.latest < self.hung_check:
            return
        self.hung_check = self.latest + self.hung_timeout
        for task in sorted(self.tasks.values(), key=lambda t: t.pid):
            # A killable sleep is not a hung one (check_hung_task()).
            if task.state & TASK_KILLABLE != TASK_UNINTERRUPTIBLE or not self._waiting(task):
                continue
            if task.hung_nvcsw == task.nvcsw and self.hung_warnings and \
                    self.latest - task.blocked_since > self.hung_timeout:
                self.hung_warnings -= 1
                self._hung_report(task)
            task.hung_nvcsw = task.nvcsw

    def _hung_report(self, task: Task) -> None:
        machine = self.machine
        secs = self.hung_timeout // timer.NSEC_PER_SEC
        text = "\n".join([
            f"INFO: task {task.comm}:{task.pid} blocked for more than {secs} seconds.",
            f"      {machine.bugs.tainted()} {bug.UTS_RELEASE} #1",
            '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
            *sched_show_task(task)])
        machine.log.printk(text, KERN_ERR)
        machine.bugs.hung_tasks.append(text)

    def shutdown(self, me: Task, timeout: float) -> list[Task]:
        """Stop every other task (each gets :class:`MachineDown` at its next scheduling
        point) and wait for them, ``timeout`` emulated seconds at most; returns the
        tasks still alive."""
        self.stopper = me
        self._credit()
        for task in list(self.tasks.values()):
            if task is not me:
                task.state = TASK_RUNNING
                self.wake(task, me.now)
        for task in [t for t in self.tasks.values() if t is not me]:
            try:
                self.join(task, timeout)
            except (TimeoutError, Deadlock):
                pass
        return [t for t in self.tasks.values() if t is not me]


# The scheduler's own frames: a stack shows where the task called into it.
bug.STACK_INLINE.update(fn.__code__ for fn in (
    Scheduler.block, Scheduler._switch, Scheduler.point, Scheduler._consult,
    Scheduler._pick, Scheduler.blocked_report, Scheduler._deadlock))


def _wakes_someone(task: Task) -> bool:
    return not task.observer


def _any(task: Task) -> bool:
    return True


def sched_show_task(task: Task) -> list[str]:
    """``sched_show_task()``: the task's line and its stack (Python frames)."""
    state = "D" if task.state & TASK_UNINTERRUPTIBLE else \
        "S" if task.state & TASK_INTERRUPTIBLE else "R"
    frame: Any = None
    if task.glet is greenlet.getcurrent():   # the task that found the deadlock
        frame = sys._getframe(1)
    elif task.glet is not None:
        frame = task.glet.gr_frame
    return [f"task:{task.comm:<15.15} state:{state} stack:0     pid:{task.pid:<5} "
            f"tgid:{task.pid:<5} ppid:{0 if task.pid == 1 else 1:<6} task_flags:0x0000 "
            "flags:0x00000000",
            *bug.call_trace(frame)]


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
    runs on top of the interrupted task, using the next kmap_local slots; nothing
    preempts it.
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


bug.IRQ_ENTRY.add(run_in_interrupt.__code__)


# ---------------------------------------------------------------- sleeping

def might_sleep() -> None:
    """``might_sleep()``: splat if the caller is atomic (rate-limited to once per HZ);
    otherwise a preemption point (``might_resched()``, as with
    ``CONFIG_PREEMPT_VOLUNTARY``)."""
    task = current()
    if task.preempt_count == 0 and not task.irqs_off:
        task.machine.sched.point(task)
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
    current().state = state


__set_current_state = set_current_state


def try_to_wake_up(task: Task) -> bool:
    """``try_to_wake_up()``: make a sleeping ``task`` runnable, its clock at least the
    waker's; True if it was sleeping."""
    was_sleeping = task.state != TASK_RUNNING
    task.state = TASK_RUNNING
    sched = task.machine.sched
    sched.wake(task, sched.now_ns())
    return was_sleeping


def wake_up_process(task: Task) -> bool:
    """``wake_up_process()``: True if the task was sleeping. A preemption point."""
    was_sleeping = try_to_wake_up(task)
    waker = task.machine.sched.curr
    if waker is not None:
        task.machine.sched.point(waker)
    return was_sleeping


def preempt_point() -> None:
    """A place where a preemptible kernel may switch tasks (the end of a section with
    preemption disabled, the entry and exit of an allocator): it costs the running CPU
    a step, and the strategy may switch if the task is preemptible here."""
    task = current()
    task.machine.sched.point(task)


cond_resched = preempt_point   # cond_resched(): the same, asked for explicitly


def _sleep(task: Task, expires: int | None) -> None:
    """Sleep in the state set by :func:`set_current_state` until woken or
    ``expires`` (ns); the common part of every ``schedule*()``."""
    machine = task.machine
    if task.preempt_count:
        _splat(machine, task, f"BUG: scheduling while atomic: {task.comm}/{task.pid}/"
                              f"{task.preempt_count:#010x}", bug.caller(3))
    state = task.state
    sched = machine.sched
    if machine.going_down and task is not sched.stopper:
        task.state = TASK_RUNNING
        sched.point(task)   # a task that ignores this still lets the stopper run
        raise MachineDown(f"machine {machine.name!r} is shutting down")
    if state != TASK_RUNNING:   # a wake-up that came first is not lost
        sched.block(task, expires)
    task.state = TASK_RUNNING
    if task.oom_victim and state & (TASK_INTERRUPTIBLE | TASK_WAKEKILL):
        # A fatal signal ends an interruptible or killable sleep: the task dies.
        raise Killed(f"{task.comm}/{task.pid} was killed by the OOM killer")


def schedule_timeout(timeout: int) -> int:
    """Sleep until woken or ``timeout`` jiffies pass; returns the jiffies left.

    Sleeps only if the state set by :func:`set_current_state` is not yet
    ``TASK_RUNNING`` again (a wake-up that came first is not lost).
    """
    task = current()
    clock = task.machine.clock
    if timeout >= MAX_SCHEDULE_TIMEOUT:
        _sleep(task, None)
        return timeout
    expires = clock.tick_after(clock.now_ns(), timeout)
    _sleep(task, expires)
    return max(0, -(-(expires - clock.now_ns()) * clock.hz // timer.NSEC_PER_SEC))


def schedule() -> None:
    schedule_timeout(MAX_SCHEDULE_TIMEOUT)


def schedule_hrtimeout(ns: int) -> int:
    """``schedule_hrtimeout()``: sleep until woken or ``ns`` nanoseconds pass (an
    hrtimer: no tick rounding); returns the nanoseconds left."""
    task = current()
    clock = task.machine.clock
    expires = clock.now_ns() + ns
    _sleep(task, expires)
    return max(0, expires - clock.now_ns())


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
    """Sleep ``msecs`` emulated milliseconds (uninterruptibly). A wake-up does not end
    it early, but for a task told to stop (``task.should_stop``, as ``kthread_stop()``
    sets it): the wake-up of the stop ends it, so stopping never waits out a sleep."""
    task = current()
    timeout = -(-msecs * task.machine.clock.hz // 1000)
    while timeout:
        timeout = schedule_timeout_uninterruptible(timeout)
        if task.should_stop:
            return


def usleep_range(min_us: int, max_us: int) -> None:
    """``usleep_range()``: an hrtimer sleep of ``min_us`` microseconds (the slack up to
    ``max_us`` is the kernel's to use; the emulator wakes at the earliest)."""
    sleep_until(current().machine.clock.now_ns() + min_us * timer.NSEC_PER_USEC)


def sleep_until(end: int) -> None:
    """Sleep uninterruptibly until the running CPU's clock reaches ``end`` (ns since
    boot): an absolute hrtimer (``HRTIMER_MODE_ABS``); wake-ups do not end it early,
    but the one that stops the task (see :func:`msleep`)."""
    task = current()
    clock = task.machine.clock
    while clock.now_ns() < end:
        set_current_state(TASK_UNINTERRUPTIBLE)
        schedule_hrtimeout(end - clock.now_ns())
        if task.should_stop:
            return


def ndelay(nsecs: int) -> None:
    """``ndelay()``: busy-wait: the CPU's clock moves on ``nsecs``, nothing else runs."""
    task = current()
    task.machine.sched.advance(task, nsecs)


def udelay(usecs: int) -> None:
    ndelay(usecs * timer.NSEC_PER_USEC)


def mdelay(msecs: int) -> None:
    ndelay(msecs * timer.NSEC_PER_MSEC)
