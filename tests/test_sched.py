"""Tests for hwemu.sched: tasks, atomic context, interrupts, time, sleeping, wait
queues and spinlocks, checked against the kernel's behaviour."""
import inspect
import threading
import time

import pytest
from helpers import wait_until

import hwemu
from hwemu import (DEFINE_WAIT, MAX_SCHEDULE_TIMEOUT, TASK_RUNNING, TASK_UNINTERRUPTIBLE, current,
                   finish_wait, in_atomic, in_hardirq, in_interrupt, in_softirq, in_task,
                   irqs_disabled, jiffies, local_irq_disable, local_irq_enable, local_irq_restore,
                   local_irq_save, might_sleep, preempt_count, preempt_disable, preempt_enable,
                   prepare_to_wait, run_in_interrupt, schedule_timeout, set_current_state,
                   time_after, time_before, wake_up, wake_up_process, wq_has_sleeper)
from hwemu.sched import HARDIRQ_OFFSET, SOFTIRQ_OFFSET
from hwemu.spinlock import SpinLock
from hwemu.wait import WaitQueueEntry, WaitQueueHead

U64 = 2**64


def log_lines(m):
    """dmesg text without the timestamps."""
    return [line.split("] ", 1)[1] for line in m.dmesg().splitlines()]


def direct_map(pfn):
    return hwemu.page_address(hwemu.pfn_to_page(pfn))


def next_line():
    return inspect.currentframe().f_back.f_lineno + 1


# ---------------------------------------------------------------- current


def test_current_is_init_on_cpu0(machine):
    t = current()
    assert (t.pid, t.comm, t.cpu.id) == (1, "init", 0)
    assert t.machine is machine
    assert hwemu.smp_processor_id() == 0
    assert t.state == TASK_RUNNING
    assert machine.sched.cpus[0].task is t


def test_spawned_tasks_have_their_own_identity(machine):
    both = hwemu.completion()

    def who():
        t = current()
        hwemu.complete(both)
        hwemu.wait_for_completion(both)  # both tasks are alive at once: two CPUs
        return t.pid, t.comm, t.cpu.id, hwemu.smp_processor_id(), preempt_count()

    preempt_disable()  # per-task state: the spawned tasks do not inherit it
    h1 = machine.spawn(who)
    h2 = machine.spawn(who, name="a_very_long_task_name")
    preempt_enable()
    r1, r2 = h1.join(timeout=10), h2.join(timeout=10)
    assert r1 == (2, "who", 1, 1, 0)
    assert r2 == (3, "a_very_long_tas", 2, 2, 0)  # comm is TASK_COMM_LEN - 1 chars
    assert current().pid == 1
    with pytest.raises(hwemu.MachineError):
        machine.spawn(who, cpu=0)  # CPU 0 runs init


def test_plain_thread_is_not_a_task(machine):
    result = {}

    def run():
        for name, fn in (("current", hwemu.current), ("preempt", hwemu.preempt_disable)):
            try:
                fn()
                result[name] = "no error"
            except hwemu.MachineError as exc:
                result[name] = exc
            except BaseException as exc:  # pragma: no cover - reported below
                result[name] = f"wrong exception {exc!r}"

    t = threading.Thread(target=run, name="plain")
    t.start()
    t.join(timeout=10)
    assert not t.is_alive()
    for name in ("current", "preempt"):
        err = result[name]
        assert isinstance(err, hwemu.MachineError), err
        assert "'plain' is not a task" in str(err)
        assert "spawn()" in str(err)
    assert current().pid == 1  # the booting thread is unaffected


# ---------------------------------------------------------------- atomic context


def test_preempt_count_nesting(machine):
    assert preempt_count() == 0 and not in_atomic() and in_task()
    preempt_disable()
    preempt_disable()
    assert preempt_count() == 2 and in_atomic()
    assert not in_interrupt() and in_task()
    preempt_enable()
    assert preempt_count() == 1 and in_atomic()
    preempt_enable()
    assert preempt_count() == 0 and not in_atomic()
    assert machine.warnings == []


def test_preempt_enable_underflow_warns(machine):
    preempt_enable()
    assert preempt_count() == 0
    assert "WARNING: CPU: 0 PID: 1 at hwemu/sched.py:" in machine.dmesg()
    assert "W" in machine.tainted


def test_local_irq_save_restore_nesting(machine):
    assert not irqs_disabled()
    f1 = local_irq_save()
    assert f1 is False and irqs_disabled()
    f2 = local_irq_save()
    assert f2 is True and irqs_disabled()
    local_irq_restore(f2)
    assert irqs_disabled()
    local_irq_restore(f1)
    assert not irqs_disabled()
    # IRQs off is not preempt_count: in_atomic() stays false.
    local_irq_disable()
    assert irqs_disabled() and not in_atomic() and preempt_count() == 0
    local_irq_enable()
    assert not irqs_disabled()


def test_hardirq_context(machine):
    preempt_disable()

    def handler(x):
        return (x, in_hardirq(), in_interrupt(), in_softirq(), irqs_disabled(),
                in_atomic(), in_task(), preempt_count(), current().pid)

    r = run_in_interrupt(handler, 7)
    assert r == (7, True, True, False, True, True, False, HARDIRQ_OFFSET + 1, 1)
    assert not in_hardirq() and not in_interrupt() and not irqs_disabled()
    assert preempt_count() == 1
    preempt_enable()


def test_softirq_context_and_nesting(machine):
    def hard():
        return in_hardirq(), in_softirq(), irqs_disabled(), preempt_count()

    def soft():
        outer = (in_hardirq(), in_softirq(), in_interrupt(), irqs_disabled(),
                 preempt_count())
        inner = run_in_interrupt(hard)
        return outer, inner, preempt_count(), irqs_disabled()

    outer, inner, after, irqs = run_in_interrupt(soft, softirq=True)
    assert outer == (False, True, True, False, SOFTIRQ_OFFSET)
    assert inner == (True, True, True, SOFTIRQ_OFFSET + HARDIRQ_OFFSET)
    assert (after, irqs) == (SOFTIRQ_OFFSET, False)
    assert preempt_count() == 0 and not in_interrupt() and not in_softirq()


def test_interrupt_state_restored_when_handler_raises(machine):
    def handler():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_in_interrupt(handler)
    assert preempt_count() == 0 and not irqs_disabled() and not in_interrupt()


# ---------------------------------------------------------------- might_sleep


def test_might_sleep_in_atomic_prints_the_kernel_splat(boot):
    m = boot("tiny")   # time stands still between scheduling points: one window
    lock = direct_map(50)
    hwemu.spin_lock_init(lock)
    flags = hwemu.spin_lock_irqsave(lock)
    line = next_line()
    might_sleep()
    might_sleep()  # within HZ jiffies: rate-limited
    hwemu.spin_unlock_irqrestore(lock, flags)
    lines = log_lines(m)
    i = lines.index("BUG: sleeping function called from invalid context at "
                    f"tests/test_sched.py:{line}")
    assert lines[i + 1] == "in_atomic(): 1, irqs_disabled(): 1, non_block: 0, pid: 1, name: init"
    assert lines[i + 2] == "preempt_count: 1, expected: 0"
    assert lines[i + 3] == "RCU nest depth: 0, expected: 0"
    assert lines[i + 4].startswith("CPU: 0 UID: 0 PID: 1 Comm: init ")
    trace = lines.index("Call Trace:", i)
    assert trace <= i + 6
    assert any(" test_might_sleep_in_atomic_prints_the_kernel_splat+" in s
               for s in lines[trace:trace + 6])
    assert m.dmesg().count("BUG: sleeping function called from invalid context") == 1
    assert "W" in m.tainted


def test_might_sleep_prints_again_after_hz_jiffies(machine):
    preempt_disable()
    might_sleep()
    might_sleep()   # within HZ jiffies: rate-limited
    preempt_enable()
    hwemu.msleep(1000 + 10)   # HZ jiffies later
    preempt_disable()
    might_sleep()
    preempt_enable()
    assert machine.dmesg().count("BUG: sleeping function called from invalid context") == 2


def test_might_sleep_with_only_irqs_disabled(machine):
    local_irq_disable()
    might_sleep()
    local_irq_enable()
    lines = log_lines(machine)
    assert "in_atomic(): 0, irqs_disabled(): 1, non_block: 0, pid: 1, name: init" in lines
    assert "preempt_count: 0, expected: 0" in lines


def test_might_sleep_outside_atomic_is_silent(machine):
    before = machine.dmesg()
    might_sleep()
    assert machine.dmesg() == before
    assert machine.tainted == "Not tainted"


def test_schedule_while_atomic(machine):
    preempt_disable()
    left = schedule_timeout(10)  # TASK_RUNNING: returns at once
    preempt_enable()
    assert 0 < left <= 10
    lines = log_lines(machine)
    i = lines.index("BUG: scheduling while atomic: init/1/0x00000001")
    assert "Call Trace:" in lines[i:]
    assert "W" in machine.tainted


# ---------------------------------------------------------------- time


@pytest.mark.parametrize("hz, initial", [(1000, 4294667296), (250, 4294892296)])
def test_jiffies_start_at_initial_jiffies(boot, hz, initial):
    assert (-300 * hz) % 2**32 == initial
    m = boot("tiny", machine__hz=hz)
    assert m.HZ == hz
    assert jiffies() == m.jiffies == initial   # boot takes no time: nothing ticked


def test_jiffies_follow_emulated_time_not_the_host(machine):
    j0 = jiffies()
    time.sleep(0.02)   # the host's time: the machine's stands still
    assert jiffies() == j0
    hwemu.msleep(2000)
    assert jiffies() - j0 == 2000
    assert time_after(jiffies(), j0)


def test_time_after_and_time_before_are_wrap_safe(machine):
    j = jiffies()
    assert time_after(j + 1, j) and not time_after(j, j) and not time_after(j, j + 1)
    assert time_before(j, j + 1) and not time_before(j, j)
    # Across the wrap of unsigned long: 5 comes after 2**64 - 5.
    assert time_after(5, U64 - 5) and time_before(U64 - 5, 5)
    assert not time_after(U64 - 5, 5)


def test_schedule_timeout_uninterruptible_sleeps_emulated_time(machine):
    hz = machine.HZ
    set_current_state(TASK_UNINTERRUPTIBLE)
    j0 = jiffies()
    left = schedule_timeout(5 * hz)  # nothing else runs: the clock jumps 5 s
    assert left == 0
    assert jiffies() - j0 == 5 * hz
    assert current().state == TASK_RUNNING


def test_schedule_timeout_while_running_returns_at_once(machine):
    hz = machine.HZ
    j0 = jiffies()
    assert schedule_timeout(5 * hz) == 5 * hz
    assert jiffies() == j0


def test_wake_up_process_ends_schedule_timeout_early(machine):
    hz = machine.HZ

    def sleeper():
        set_current_state(TASK_UNINTERRUPTIBLE)
        t0 = hwemu.ktime_get()
        left = schedule_timeout(1000 * hz)  # 1000 s if nobody wakes us
        return left, hwemu.ktime_get() - t0, current().state

    h = machine.spawn(sleeper)
    assert wait_until(lambda: h.task.state == TASK_UNINTERRUPTIBLE)
    hwemu.msleep(10)
    assert h.is_alive()
    assert wake_up_process(h.task) is True
    left, dt, state = h.join(timeout=10)
    assert 0 < left < 1000 * hz
    assert left > 900 * hz
    assert dt < 1_000_000_000   # woken, not timed out
    assert state == TASK_RUNNING
    assert wake_up_process(current()) is False  # already running


def test_io_schedule_timeout(machine):
    hz = machine.HZ
    set_current_state(TASK_UNINTERRUPTIBLE)
    assert hwemu.io_schedule_timeout(hz // 10) == 0
    assert not current().in_iowait

    def io_sleeper():
        set_current_state(TASK_UNINTERRUPTIBLE)
        return hwemu.io_schedule_timeout(1000 * hz), current().in_iowait

    h = machine.spawn(io_sleeper)
    assert wait_until(lambda: h.task.in_iowait)
    assert h.task.state == TASK_UNINTERRUPTIBLE
    wake_up_process(h.task)
    left, iowait_after = h.join(timeout=10)
    assert left > 0 and iowait_after is False


def test_msleep_sleeps_at_least_the_time(machine):
    j0 = jiffies()
    hwemu.msleep(300)  # HZ 1000: 300 jiffies, 3 ms
    assert jiffies() - j0 >= 300
    assert current().state == TASK_RUNNING


def test_msleep_is_not_cut_short_by_wake_up_process(machine):
    def sleeper():
        j0 = jiffies()
        hwemu.msleep(10_000)  # 10000 jiffies = 100 ms wall
        return jiffies() - j0

    h = machine.spawn(sleeper)
    assert wait_until(lambda: h.task.state == TASK_UNINTERRUPTIBLE)
    hwemu.msleep(2)
    wake_up_process(h.task)
    assert h.join(timeout=20) >= 10_000


def test_i386_jiffies_are_32_bit_and_wrap_five_minutes_after_boot(boot):
    boot("i386-highmem")
    hwemu.msleep(400_000)   # past 5 minutes: no wall time, the clock jumps
    j = jiffies()
    assert j < 2**32
    assert j < hwemu.timer.initial_jiffies(250)  # it wrapped through 0


# ---------------------------------------------------------------- wait queues


@pytest.mark.parametrize("via_waitqueue", [True, False])
def test_no_lost_wakeup_between_condition_check_and_schedule(boot, via_waitqueue):
    # round_robin switches at every preemption point: at complete(checked), the waiter
    # (between its check and schedule()) hands the CPU to init, which wakes it there.
    machine = boot("tiny", machine__sched__strategy="round_robin")
    hz = machine.HZ
    wq = WaitQueueHead()
    cond = {"done": False}
    checked = hwemu.completion()

    def waiter():
        wait = DEFINE_WAIT()
        if via_waitqueue:
            prepare_to_wait(wq, wait, TASK_UNINTERRUPTIBLE)
        else:
            set_current_state(TASK_UNINTERRUPTIBLE)
        left = None
        if not cond["done"]:
            hwemu.complete(checked)   # the wake-up lands here, before schedule
            assert cond["done"]
            left = schedule_timeout(10_000 * hz)  # 10000 s if the wake-up were lost
        if via_waitqueue:
            finish_wait(wq, wait)
        return left, current().state

    h = machine.spawn(waiter)
    hwemu.wait_for_completion(checked)
    cond["done"] = True
    if via_waitqueue:
        assert wake_up(wq) == 1
    else:
        assert wake_up_process(h.task) is True
    left, state = h.join(timeout=10)
    assert left == 10_000 * hz   # it did not sleep at all
    assert state == TASK_RUNNING
    assert not wq_has_sleeper(wq)


def test_wake_up_wakes_all_waiters_on_emulated_waitqueue(machine):
    wq = direct_map(200) + 128
    hwemu.init_waitqueue_head(wq)
    # wait_queue_head_t: its spinlock_t (24 bytes with lock debugging), then the list
    # head, empty: next and prev point to itself.
    assert hwemu.load(wq + 4, 4) == 0xDEAD4EAD
    assert hwemu.load(wq + 24, 16) == (wq + 24) | (wq + 24) << 64
    assert not wq_has_sleeper(wq) and not hwemu.waitqueue_active(wq)
    flag = {"go": False}

    def waiter():
        wait = DEFINE_WAIT()
        sleeps = 0
        while True:
            prepare_to_wait(wq, wait, TASK_UNINTERRUPTIBLE)
            if flag["go"]:
                break
            sleeps += 1
            schedule_timeout(MAX_SCHEDULE_TIMEOUT)
        finish_wait(wq, wait)
        return sleeps, current().state

    hs = [machine.spawn(waiter) for _ in range(3)]
    assert wait_until(lambda: all(h.task.state == TASK_UNINTERRUPTIBLE for h in hs))
    hwemu.msleep(20)
    assert all(h.is_alive() for h in hs)
    assert wq_has_sleeper(wq) and hwemu.waitqueue_active(wq)
    assert hwemu.load(wq + 24, 8) != wq + 24   # the list is not empty
    flag["go"] = True
    assert wake_up(wq) == 3
    results = [h.join(timeout=10) for h in hs]
    assert all(sleeps >= 1 and state == TASK_RUNNING for sleeps, state in results)
    assert not wq_has_sleeper(wq)
    assert wake_up(wq) == 0


def test_wake_up_wakes_one_exclusive_waiter(machine):
    wq = WaitQueueHead()
    me = current()
    entries = [WaitQueueEntry(me), WaitQueueEntry(me, exclusive=True),
               WaitQueueEntry(me, exclusive=True), WaitQueueEntry(me)]
    for e in entries:
        hwemu.wait.add_wait_queue(wq, e)
    assert wake_up(wq) == 3  # both non-exclusive ones and the first exclusive one
    assert [e.queued for e in entries] == [False, False, True, False]
    assert wq_has_sleeper(wq)
    assert wake_up(wq) == 1
    assert not wq_has_sleeper(wq)


def test_waitqueue_used_before_init_is_a_bug(machine):
    wq = direct_map(210)
    with pytest.raises(hwemu.KernelBug):
        wake_up(wq)
    assert "used before init_waitqueue_head()" in machine.dmesg()


# ---------------------------------------------------------------- spinlocks


def test_spinlock_on_emulated_memory(machine):
    lock = direct_map(300) + 64
    assert hwemu.load(lock, 4) == 0
    hwemu.spin_lock_init(lock)
    # raw_spinlock with CONFIG_DEBUG_SPINLOCK: raw_lock, magic, owner_cpu, owner.
    unlocked = (0, 0xDEAD4EAD, 0xFFFFFFFF, (1 << 64) - 1)
    fields = lambda: (hwemu.load(lock, 4), hwemu.load(lock + 4, 4),  # noqa: E731
                      hwemu.load(lock + 8, 4), hwemu.load(lock + 16, 8))
    assert fields() == unlocked
    flags = hwemu.spin_lock_irqsave(lock)
    assert flags is False
    assert fields() == (1, 0xDEAD4EAD, 0, 1)   # held by init/1 on CPU 0 (pid for owner)
    assert irqs_disabled() and preempt_count() == 1 and in_atomic()
    hwemu.spin_unlock_irqrestore(lock, flags)
    assert fields() == unlocked
    assert not irqs_disabled() and preempt_count() == 0
    # With IRQs already off, the saved flags keep them off after the unlock.
    local_irq_disable()
    flags = hwemu.spin_lock_irqsave(lock)
    assert flags is True
    hwemu.spin_unlock_irqrestore(lock, flags)
    assert irqs_disabled() and preempt_count() == 0
    local_irq_enable()
    hwemu.spin_lock(lock)
    assert preempt_count() == 1 and not irqs_disabled()
    hwemu.spin_unlock(lock)
    assert preempt_count() == 0
    assert machine.warnings == []


def test_spinlock_object_accounting(machine):
    lock = SpinLock()
    assert not lock.is_locked()
    lock.lock()
    assert lock.is_locked() and preempt_count() == 1 and not irqs_disabled()
    lock.unlock()
    assert not lock.is_locked() and preempt_count() == 0
    flags = lock.lock_irqsave()
    assert flags is False and irqs_disabled() and preempt_count() == 1
    assert lock.is_locked()
    lock.unlock_irqrestore(flags)
    assert not lock.is_locked() and not irqs_disabled() and preempt_count() == 0


def test_spinlock_holder_that_sleeps_makes_the_contender_spin(machine):
    lock = direct_map(310)
    hwemu.spin_lock_init(lock)
    got = []

    def contender():
        flags = hwemu.spin_lock_irqsave(lock)
        got.append(hwemu.jiffies())
        hwemu.spin_unlock_irqrestore(lock, flags)
        return preempt_count(), irqs_disabled()

    hwemu.spin_lock(lock)
    h = machine.spawn(contender)
    hwemu.msleep(50)   # sleeping with a spinlock held: a bug, splatted
    assert not got and h.task.spinning_on is not None
    released = hwemu.jiffies()
    hwemu.spin_unlock(lock)
    assert h.join(timeout=10) == (0, False)
    assert got[0] >= released   # it took the lock after the release, never before
    assert "BUG: scheduling while atomic: init/1/0x00000001" in machine.dmesg()


def test_spinlock_mutual_exclusion_stress(machine):
    base = direct_map(400)
    lock, counter = base, base + 64
    hwemu.spin_lock_init(lock)
    hwemu.store(counter, 8, 0)

    def worker(n):
        for _ in range(n):
            flags = hwemu.spin_lock_irqsave(lock)
            v = hwemu.load(counter, 8)
            hwemu.store(counter, 8, v + 1)
            hwemu.spin_unlock_irqrestore(lock, flags)
            hwemu.cond_resched()   # give the other tasks a chance to race us
        return preempt_count(), irqs_disabled()

    hs = [machine.spawn(worker, 2000) for _ in range(4)]
    results = [h.join(timeout=30) for h in hs]
    assert hwemu.load(counter, 8) == 8000
    assert results == [(0, False)] * 4
    assert "note:" not in machine.dmesg()


def test_spinlock_used_before_init_is_bad_magic(machine):
    lock = direct_map(500) + 8
    assert hwemu.load(lock, 4) == 0
    line = next_line()
    with pytest.raises(hwemu.KernelBug) as exc:
        hwemu.spin_lock_irqsave(lock)
    lines = log_lines(machine)
    assert "BUG: spinlock bad magic on CPU#0, init/1" in lines
    # spin_dump() prints owner_cpu as it is in memory: 0 in zeroed memory.
    assert f" lock: {lock:#x}, .magic: 00000000, .owner: <none>/-1, .owner_cpu: 0" in lines
    # spin_dump(): the report and the stack of the bad call, not a BUG() oops.
    assert " spin_lock_irqsave+" in exc.value.text
    assert f"tests/test_sched.py:{line + 1}\n" in exc.value.text
    assert preempt_count() == 0 and not irqs_disabled()

    def other():
        hwemu.spin_lock(lock)

    with pytest.raises(hwemu.KernelBug):
        machine.spawn(other, cpu=5).join(timeout=10)
    assert "BUG: spinlock bad magic on CPU#5, other/2" in machine.dmesg()
    # Initialised, the same memory is a working lock.
    hwemu.spin_lock_init(lock)
    hwemu.spin_unlock_irqrestore(lock, hwemu.spin_lock_irqsave(lock))


def test_spin_unlock_of_unlocked_lock_is_reported(machine):
    lock = direct_map(520)
    hwemu.spin_lock_init(lock)
    try:
        hwemu.spin_unlock(lock)
    except hwemu.KernelBug:
        pass
    assert "BUG: spinlock already unlocked on CPU#0, init/1" in machine.dmesg()


def test_spinlock_recursion_is_reported(machine):
    lock = direct_map(530)
    hwemu.spin_lock_init(lock)

    def selflock():
        hwemu.spin_lock(lock)
        try:
            hwemu.spin_lock(lock)  # the kernel reports, then spins forever
        finally:
            hwemu.spin_unlock(lock)

    h = machine.spawn(selflock, cpu=1)
    with pytest.raises(hwemu.KernelBug):   # the kernel would spin for ever
        h.join(timeout=10)
    assert "BUG: spinlock recursion on CPU#1, selflock/2" in machine.dmesg()


# ---------------------------------------------------------------- task exit


def test_task_exit_with_atomic_state_is_noted_and_frees_the_cpu(machine):
    def leaky_preempt():
        preempt_disable()

    def leaky_irqs():
        local_irq_disable()

    def clean():
        return preempt_count(), irqs_disabled(), hwemu.smp_processor_id(), current().pid

    machine.spawn(leaky_preempt, cpu=1).join(timeout=10)
    assert "note: leaky_preempt[2] exited with preempt_count 1" in log_lines(machine)
    assert machine.sched.cpus[1].task is None
    machine.spawn(leaky_irqs, cpu=1).join(timeout=10)
    assert "note: leaky_irqs[3] exited with irqs disabled" in log_lines(machine)
    assert machine.spawn(clean, cpu=1).join(timeout=10) == (0, False, 1, 4)
    assert "note: clean" not in machine.dmesg()
    assert 4 not in machine.sched.tasks


def test_task_exception_is_reraised_by_join(machine):
    def fails():
        raise RuntimeError("task died")

    h = machine.spawn(fails, cpu=2)
    with pytest.raises(RuntimeError, match="task died"):
        h.join(timeout=10)
    assert machine.sched.cpus[2].task is None
