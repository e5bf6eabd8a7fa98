"""The workloads of a machine run, each a function run as a task on its own CPU.

They use the machine as kernel code would: mempool_alloc()/mempool_free() with the
GFP mask and in the context the kernel subsystem they imitate uses (block layer:
GFP_NOIO submitters, completions in hard interrupt context; network receive:
GFP_ATOMIC in softirq context), and fill their elements through kmap_local_page()
when the pool hands out pages. Each task counts what it did in its own ``Counters``
(summed by the run), so no counter is shared between threads.
"""
from __future__ import annotations

import collections
import heapq
import importlib
import itertools
from pathlib import Path

import mempool

from .. import bug, sched
from ..access import load, store
from ..current import current
from ..gfp import GFP_ATOMIC, parse_gfp
from ..highmem import kmap_local_page, kunmap_local
from ..page import nth_page
from ..page_types import PAGE_SIZE
from ..vmscan import add_anon_pages, add_to_page_cache
from ..wait import DEFINE_WAIT, WaitQueueHead, finish_wait, prepare_to_wait

MASK64 = (1 << 64) - 1


class Counters(collections.Counter):
    """What one task did: ``counters["completed"] += 1``."""


def _jiffies(run, ns: int) -> int:
    """``ns`` of emulated time in jiffies, rounded up as ``msecs_to_jiffies()`` does."""
    return -(-ns * run.machine.HZ // 1_000_000_000)


def nap(run, timeout: int) -> None:
    """Sleep ``timeout`` jiffies uninterruptibly unless the run is stopping, as a
    kthread does: the state is set before the check, so the stop's wake-up
    (:meth:`Run._stop_tasks`) cannot come between the check and the sleep and be lost;
    it ends the sleep early."""
    sched.set_current_state(sched.TASK_UNINTERRUPTIBLE)
    if run.stopping():
        sched.__set_current_state(sched.TASK_RUNNING)
        return
    sched.schedule_timeout(timeout)


# ---------------------------------------------------------------- elements

def fill(pool, element: int, tag: int) -> None:
    """Write ``tag`` at the start and its complement at the end of ``element``."""
    for addr, end, unmap in _spans(pool, element):
        store(addr, 8, tag)
        store(end - 8, 8, ~tag & MASK64)
        unmap()


def intact(pool, element: int, tag: int) -> bool:
    """Whether ``element`` still holds what :func:`fill` wrote."""
    ok = True
    for addr, end, unmap in _spans(pool, element):
        ok = ok and load(addr, 8) == tag and load(end - 8, 8) == ~tag & MASK64
        unmap()
    return ok


def _spans(pool, element: int):
    """``(start, end, unmap)`` of the memory to touch: the object itself, or the first
    and last page of a page element, each mapped on its own (a kmap_local window is
    one page)."""
    if pool.type != "page":
        yield element, element + pool.size, lambda: None
        return
    last = (1 << pool.order) - 1
    for page in {element, nth_page(element, last)}:
        addr = kmap_local_page(page)
        yield addr, addr + PAGE_SIZE, lambda addr=addr: kunmap_local(addr)


# ---------------------------------------------------------------- bio

class Disk:
    """A block device: requests complete ``latency`` after submission, in hard
    interrupt context on the disk's CPU (the CPU the device's IRQ is routed to).

    The device's CPU sleeps (an hrtimer) until the earliest request is due, or until a
    submission or the last submitter's exit wakes it; what it does on completion runs
    through :func:`hwemu.run_in_interrupt`.
    """

    def __init__(self, run, cfg):
        self.run, self.cfg = run, cfg
        self.pool = run.pools[cfg.pool]
        self.queue: list = []            # heap of (due_ns, seq, submitter, rq, tag)
        self.idle = WaitQueueHead()      # where the disk's CPU waits
        self.seq = itertools.count()
        self.submitters_left = cfg.submitters
        self.counters = Counters()

    def submit(self, submitter, rq: int, tag: int, latency_ns: int) -> None:
        due = self.run.clock.now_ns() + latency_ns
        seq = next(self.seq)
        heapq.heappush(self.queue, (due, seq, submitter, rq, tag))
        if self.queue[0][1] == seq:   # the earliest now: the disk sleeps too long
            self.idle.wake_up()

    def submitter_done(self) -> None:
        self.submitters_left -= 1
        self.idle.wake_up()

    def run_disk(self) -> None:
        """The disk's task: deliver due completions until every submitter is done
        and nothing is in flight."""
        clock = self.run.clock
        while self.queue or self.submitters_left:
            wait = DEFINE_WAIT()
            prepare_to_wait(self.idle, wait, sched.TASK_INTERRUPTIBLE)
            if not self.queue:
                sched.schedule()
            elif self.queue[0][0] > clock.now_ns():
                sched.schedule_hrtimeout(self.queue[0][0] - clock.now_ns())
            finish_wait(self.idle, wait)
            now, due = clock.now_ns(), []
            while self.queue and self.queue[0][0] <= now:
                due.append(heapq.heappop(self.queue))
            if due:
                sched.run_in_interrupt(self.complete, due)

    def complete(self, due: list) -> None:
        """The disk's interrupt handler: check each request's data, free it back to
        the pool (``bio_endio()`` → ``mempool_free()``), wake its submitter."""
        for _, _, submitter, rq, tag in due:
            if not intact(self.pool, rq, tag):
                self.counters["io_errors"] += 1
            mempool.mempool_free(rq, self.pool.addr)
            self.counters["completed"] += 1
            submitter.completed()


class Submitter:
    """One task submitting requests: ``mempool_alloc(pool, GFP_NOIO)``, fill, submit;
    at most ``queue_depth`` in flight (it sleeps for a completion, as on a tag).

    With an ``interval``, it submits in bursts, as periodic writeback does: at every
    multiple of ``interval`` since the run's start (the same instants for every
    submitter) it submits back to back until its queue is full, then sleeps until the
    next one, however many of its requests complete meanwhile.
    """

    def __init__(self, run, disk: Disk, index: int):
        self.run, self.disk, self.cfg = run, disk, disk.cfg
        self.rng = run.rng(f"bio{index}")
        self.counters = Counters()
        self.inflight = 0
        self.wait = WaitQueueHead()

    def completed(self) -> None:
        """From the disk's interrupt: one request of ours is done."""
        self.inflight -= 1
        self.wait.wake_up()

    def __call__(self) -> None:
        cfg, pool, counters = self.cfg, self.disk.pool, self.counters
        gfp = parse_gfp(cfg.gfp)
        spread = cfg.latency.mean - cfg.latency.min
        try:
            while not self.run.stopping() and (not cfg.requests
                                               or counters["submitted"] < cfg.requests):
                if not (self._next_burst() if cfg.interval else self._wait_for_tag()):
                    break
                rq = mempool.mempool_alloc(pool.addr, gfp)
                if not rq:
                    counters["null_returns"] += 1
                    continue
                tag = self.rng.getrandbits(64)
                fill(pool, rq, tag)
                self.inflight += 1
                latency = cfg.latency.min + round(self.rng.expovariate(1 / spread)
                                                  if spread else 0)
                self.disk.submit(self, rq, tag, latency)
                counters["submitted"] += 1
        finally:
            self.disk.submitter_done()

    def _next_burst(self) -> bool:
        """With a full queue, sleep until the next multiple of ``interval``; False if
        the run stopped first."""
        if self.inflight < self.cfg.queue_depth:
            return True
        run, interval = self.run, self.cfg.interval
        now = run.clock.now_ns()
        burst = now + interval - (now - run.start_ns) % interval
        while run.clock.now_ns() < burst:
            sched.set_current_state(sched.TASK_INTERRUPTIBLE)   # idle, not in D state
            if run.stopping():   # (a method cannot name __set_current_state)
                sched.set_current_state(sched.TASK_RUNNING)
                return False
            sched.schedule_hrtimeout(burst - run.clock.now_ns())
        return not run.stopping()

    def _wait_for_tag(self) -> bool:
        """Sleep until fewer than ``queue_depth`` requests are in flight; False if the
        run stopped first."""
        while self.inflight >= self.cfg.queue_depth:
            wait = DEFINE_WAIT()
            prepare_to_wait(self.wait, wait, sched.TASK_UNINTERRUPTIBLE)
            busy = self.inflight >= self.cfg.queue_depth
            if busy and not self.run.stopping():
                sched.io_schedule_timeout(current().machine.HZ)
            finish_wait(self.wait, wait)
            if busy and self.run.stopping():
                return False
        return True


# ---------------------------------------------------------------- net_rx

def net_rx(run, cfg, counters: Counters) -> None:
    """A NIC and its reader: each poll is a softirq on this CPU allocating ``batch``
    buffers with GFP_ATOMIC (a NULL drops the packet); the reader then frees what
    the socket holds beyond ``backlog``, in process context."""
    pool, rng = run.pools[cfg.pool], run.rng("net_rx")
    socket: collections.deque = collections.deque()
    interval = _jiffies(run, cfg.interval)

    def napi_poll(budget: int) -> None:
        for _ in range(budget):
            skb = mempool.mempool_alloc(pool.addr, GFP_ATOMIC)
            if not skb:
                counters["drops"] += 1
                continue
            tag = rng.getrandbits(64)
            fill(pool, skb, tag)
            socket.append((skb, tag))
            counters["received"] += 1

    def recvmsg(keep: int) -> None:
        while len(socket) > keep:
            skb, tag = socket.popleft()
            if not intact(pool, skb, tag):
                counters["io_errors"] += 1
            mempool.mempool_free(skb, pool.addr)

    left = cfg.packets or float("inf")
    try:
        while not run.stopping() and left > 0:
            budget = min(cfg.batch, left)
            left -= budget
            sched.run_in_interrupt(napi_poll, budget, softirq=True)
            counters["polls"] += 1
            recvmsg(cfg.backlog)
            if interval:
                nap(run, interval)
    finally:
        recvmsg(0)


# ---------------------------------------------------------------- memory_hog

def memory_hog(run, cfg, counters: Counters) -> None:
    """Keep ``fill`` percent of the machine's memory in page cache (reclaim takes it
    back, the hog reads more) or in anonymous memory (held until the OOM killer
    kills the hog). Reading takes time: the hog adds at most ``rate`` bytes per
    emulated second, waiting for its reads (in D state, as in IO wait) between
    chunks."""
    machine = run.machine
    managed = sum(z.managed_pages for z in machine.page_alloc.zones)
    target = managed * cfg.fill // 100
    counters["target_pages"] = target
    vmstat = machine.vmstat
    task = current()
    read_ns = PAGE_SIZE * 1_000_000_000 // cfg.rate if cfg.rate else 0   # per page
    reads_done = run.clock.now_ns()   # when the reads issued so far complete
    try:
        while not run.stopping():
            have = vmstat["nr_file_pages"] if cfg.reclaimable else machine.vmscan.rss(
                task.pid)
            counters["peak_pages"] = max(counters["peak_pages"], have)
            want = min(cfg.chunk, target - have)
            got = 0
            if want > 0:
                reads_done = max(reads_done, run.clock.now_ns()) + want * read_ns
                if not _io_wait_until(run, task, reads_done):
                    break   # stopped while reading: what was read is dropped
                got = (add_to_page_cache(want, dirty=cfg.dirty) if cfg.reclaimable
                       else add_anon_pages(want))
                counters["pages_added"] += got
            if got < want or want <= 0:   # full, or memory ran out: let reclaim work
                nap(run, 1)
    except bug.Killed:
        counters["oom_killed"] += 1


def _io_wait_until(run, task, end: int) -> bool:
    """Sleep in IO wait until ``task``'s clock reaches ``end`` (ns); False if the run
    stopped first (an absolute hrtimer sleep, ended by the stop as :func:`nap` is)."""
    clock = run.clock
    task.in_iowait = True
    try:
        while clock.now_ns() < end:
            sched.set_current_state(sched.TASK_UNINTERRUPTIBLE)
            if run.stopping():
                sched.__set_current_state(sched.TASK_RUNNING)
                return False
            sched.schedule_hrtimeout(end - clock.now_ns())
        return True
    finally:
        task.in_iowait = False


# ---------------------------------------------------------------- resize

def resize(run, cfg, counters: Counters) -> None:
    """``mempool_resize()`` through ``sizes`` every ``interval``."""
    pool = run.pools[cfg.pool]
    interval = max(1, _jiffies(run, cfg.interval))
    for size in itertools.cycle(cfg.sizes):
        nap(run, interval)
        if run.stopping():
            return
        if mempool.mempool_resize(pool.addr, size):
            counters["resize_failures"] += 1
        else:
            counters["resizes"] += 1


# ---------------------------------------------------------------- custom

def import_function(name: str, search: list[str]):
    """``module:function`` → the callable; ``search`` directories come first on
    sys.path while the module is imported. Raises ImportError with the reason."""
    import sys
    module_name, _, attr = name.partition(":")
    if module_name.endswith(".c"):
        return CFunction(module_name, attr, search)
    saved = list(sys.path)
    sys.path[:0] = [d for d in search if d not in sys.path]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:   # the user's module may raise anything on import
        raise ImportError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") \
            from None
    finally:
        sys.path[:] = saved
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ImportError(f"{module_name} has no function {attr}")
    return fn


class CFunction:
    """A custom workload in kernel C (``file.c:function``): the file is found in the
    search directories now, compiled (hwemu.kbuild, for the run's machine) when its
    first task starts, and ``int function(void)`` runs as the task; it reaches its
    :class:`CustomTask` through ``hwemu/workload.h``."""

    def __init__(self, file: str, function: str, search: list[str]):
        found = [Path(d) / file for d in search if (Path(d) / file).is_file()]
        if not found:
            raise ImportError(f"{file}: no such C file in {', '.join(search)}")
        self.path, self.function = found[0].resolve(), function
        self.__name__ = function

    def build(self, config) -> None:
        """Compile the file for the run's machine now; gcc's errors as ImportError."""
        from ..kbuild import CompileError, prebuild
        try:
            prebuild(self.path, config)
        except CompileError as exc:
            raise ImportError(str(exc)) from None

    def __call__(self, task: "CustomTask") -> None:
        from ..kbuild import load
        module = load(self.path)
        fn = getattr(module, self.function)
        me = current()
        me.c_run = task
        try:
            err = fn()
        finally:
            me.c_run = None
        if err:
            raise RuntimeError(f"{self.path.name}:{self.function}() returned {err}")


class CustomTask:
    """What a custom workload function receives as ``run``, one per task:

    - ``machine``: the booted :class:`hwemu.Machine`; the function runs as one of its
      tasks, so hwemu's kernel functions act on it;
    - ``pools``: the run's pools by name, each a ``struct mempool *``;
    - ``rng``: a ``random.Random`` of its own, seeded by the run's seed and the task;
    - ``args``: the config's ``args`` (a copy);
    - ``stopping()``: True once the duration has passed or the run was stopped;
    - ``count(name, n=1)``: the workload's counters, summed over its tasks; those named
      ``completed``, ``io_errors`` and ``drops`` add to those expectations, and
      ``expect:`` can name any other (:func:`hwemu.runs.report.expectations`).
    """

    def __init__(self, run, cfg, name: str, counters: Counters):
        self.machine = run.machine
        self.pools = {pool_name: pool.addr for pool_name, pool in run.pools.items()}
        self.rng = run.rng(name)
        self.args = dict(cfg.args)
        self.stopping = run.stopping
        self.counters = counters

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to this workload's counter ``name`` (shown in the summary)."""
        self.counters[name] += n
