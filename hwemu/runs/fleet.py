"""Many machine runs at once: jobs, and the executors that run them in other processes.

A job is one run of a config file with overrides and seeds. :func:`run_job` runs it
in the process that calls it (a pool worker or a Dask worker): it boots the machine,
runs the scenario and returns the run's result as plain data, so any executor can ship
it back. Two executors take a list of jobs and yield each job's :class:`Done` as it
completes:

- :class:`LocalPool` (the default): ``concurrent.futures.ProcessPoolExecutor`` on this
  host, one worker process per core unless told otherwise;
- :class:`DaskExecutor`: the same jobs sent to a Dask cluster (``distributed``, an
  optional extra: ``pip install 'hwemu[dask]'``) at a scheduler address, or to a
  ``LocalCluster`` it starts.

Completion order depends on the host; callers put results in the jobs' order before
they use them (a run is a function of its config and seeds, so the order is all that
could differ). A worker that dies (killed, out of memory) costs one job: the job is
run once more and, if its worker dies again, reported as lost, while the rest go on.
A dying worker takes down every job the standard library's pool gave to that pool,
and which one killed it is not known; so each of them runs again alone, in a pool of
its own, where a second death is that job's alone. On Dask the scheduler retries a
job whose worker died (``distributed.scheduler.allowed-failures``: the cluster
decides; a ``LocalCluster`` started here allows one retry) and then reports it.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import ctypes
import dataclasses
import math
import multiprocessing
import os
import signal
import threading
import uuid
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

# The result's bulky parts that no caller of a fleet uses (the resolved config is the
# job's own; the samples are for one run's plots; the log can be long). Dropping them
# keeps what travels back per job small.
BULKY = ("samples", "config", "dmesg")
DASK_EXTRA = "pip install 'hwemu[dask]'"
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


def run_job(config: str, overrides: dict[str, Any], seeds: dict[str, Any]) -> dict:
    """Run ``config`` (a path) with ``overrides`` and then ``seeds`` (config keys such
    as ``run.seed`` or ``machine.sched.seed``) applied on top; return its result.

    The result is :meth:`hwemu.runs.Run.execute`'s (its ``expectations`` and
    ``exit_code`` set) without ``samples``, ``config`` and ``dmesg``, plus ``totals``
    (the values expectations are checked against). Custom workloads are imported from
    the config's directory, as ``hwemu run`` does.
    """
    from ..config import load_config
    from . import Run, report
    cfg = load_config(config, overrides={**overrides, **seeds})
    run = Run(cfg)
    result = run.execute(signals=False)
    result["totals"] = report.totals(result)
    for key in BULKY:
        result.pop(key, None)
    return result


@dataclasses.dataclass(frozen=True)
class Job:
    """One run: :func:`run_job`'s arguments, and its place in the caller's order."""
    index: int
    config: str
    overrides: dict[str, Any]
    seeds: dict[str, Any]


@dataclasses.dataclass
class Done:
    """What became of a job: its ``result``, or the ``error`` that ended it (``lost``:
    its worker died, each time it ran). ``retried``: it ran a second time because a
    worker died under it (or under a job beside it)."""
    job: Job
    result: dict | None = None
    error: str | None = None
    lost: bool = False
    retried: bool = False


def default_jobs() -> int:
    """Every core this process may run on."""
    return len(os.sched_getaffinity(0))


def _worker_init(parent: int | None) -> None:
    """A worker leaves the stop signals to the command that started it, which stops
    the pool (a terminal sends Ctrl-C's SIGINT to the whole process group); a forked
    worker would otherwise run the command's handlers. And it ends with its parent
    (``parent``, the command's pid, when forked from it): the standard library's
    workers would otherwise wait for jobs forever when the command is killed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):   # not Linux: no such call
        return
    if parent is not None and os.getppid() != parent:   # it died before the prctl()
        os._exit(1)


PR_SET_PDEATHSIG = 1   # <linux/prctl.h>


def _context():
    """How workers start. Forked, when this process has one thread: quick, and the
    caller's main script is not run again in each worker (as spawn and forkserver
    do). A process with more threads must not fork (another thread may hold a lock
    the child then never sees released): its workers come from a fork server that
    imported hwemu once."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


class LocalPool:
    """A process pool of ``workers`` processes on this host (a context manager)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_jobs()
        self.cut: float = math.inf   # jobs of a higher index are no longer wanted
        self._pools: list[cf.ProcessPoolExecutor] = []
        self._main: cf.ProcessPoolExecutor | None = None   # kept from run to run

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc) -> None:
        self.stop(now=exc[0] is not None)

    def stop(self, now: bool = True) -> None:
        """Stop every worker; ``now``: without waiting for the jobs in flight."""
        for pool in self._pools:
            _stop(pool, now)
        self._pools.clear()
        self._main = None

    def describe(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers > 1 else ''}"

    def cut_after(self, index: int) -> None:
        """Jobs of a higher index than ``index`` are no longer wanted: they do not
        start, and their results are not yielded."""
        self.cut = min(self.cut, index)

    def start(self) -> cf.ProcessPoolExecutor:
        """Make the pool now (its workers start with the first job): pools made before
        any has run are all made while this process may still fork them."""
        if self._main is None:
            self._main = self._pool(self.workers)
        return self._main

    def _pool(self, workers: int) -> cf.ProcessPoolExecutor:
        ctx = _context()
        parent = os.getpid() if ctx.get_start_method() == "fork" else None
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                      initargs=(parent,))
        self._pools.append(pool)
        return pool

    def _retire(self, pool: cf.ProcessPoolExecutor) -> None:
        _stop(pool, now=True)
        self._pools.remove(pool)

    def run(self, jobs: Iterable[Job],
            on_lost: Callable[[list[Job]], None] | None = None) -> Iterator[Done]:
        """Run ``jobs``; yield each one's :class:`Done` as it completes.
        ``on_lost(jobs)`` is told which jobs a dying worker took down, before they
        run again, each alone."""
        queue = collections.deque(jobs)
        suspects: collections.deque[Job] = collections.deque()
        main = self.start()
        alone: cf.ProcessPoolExecutor | None = None
        running: dict[cf.Future, Job] = {}   # in the main pool
        lonely: dict[cf.Future, Job] = {}    # at most one, in a pool of its own
        # Twice as many jobs in flight as workers: none waits for its next job, and a
        # death takes down few.
        window = 2 * self.workers
        while True:
            while queue and len(running) < window:
                job = queue.popleft()
                if job.index <= self.cut:
                    running[main.submit(run_job, job.config, job.overrides,
                                        job.seeds)] = job
            while suspects and not lonely:
                job = suspects.popleft()
                if job.index <= self.cut:
                    alone = alone or self._pool(1)
                    lonely[alone.submit(run_job, job.config, job.overrides,
                                        job.seeds)] = job
            if not running and not lonely:
                if alone is not None:
                    self._retire(alone)
                return
            finished, _ = cf.wait([*running, *lonely], return_when=cf.FIRST_COMPLETED)
            lost = []
            for future in finished:
                if future in lonely:
                    job = lonely.pop(future)
                    done = _done(job, future, retried=True)
                    if done is None:   # its worker died again, with the job alone in it
                        done = Done(job, error="its worker died twice", lost=True,
                                    retried=True)
                        if alone is not None:
                            self._retire(alone)
                        alone = None
                else:
                    job = running.pop(future)
                    done = _done(job, future, retried=False)
                    if done is None:   # the pool broke under it
                        lost.append(job)
                        continue
                if job.index <= self.cut:
                    yield done
            if lost:
                # A broken pool fails every job it holds: they all run again, alone.
                lost = sorted([*lost, *running.values()], key=lambda j: j.index)
                running.clear()
                self._retire(main)
                main = self._main = self._pool(self.workers)
                suspects.extend(lost)
                if on_lost:
                    on_lost(lost)


def _done(job: Job, future: cf.Future, retried: bool) -> Done | None:
    """The job's :class:`Done`, or None if its worker died."""
    try:
        return Done(job, future.result(), retried=retried)
    except BrokenProcessPool:
        return None
    except Exception as exc:   # what the run raised: that job's error, not the fleet's
        return Done(job, error=f"{type(exc).__name__}: {exc}", retried=retried)


def _stop(pool: cf.ProcessPoolExecutor, now: bool) -> None:
    """Shut ``pool`` down; ``now`` (Ctrl-C, or a broken pool): without waiting for the
    jobs in flight. The standard library waits for them, so its workers are
    terminated here (``_processes`` is its table of them)."""
    if now:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- Dask

class ExecutorError(ValueError):
    """An executor cannot be had as asked (dask missing, an option out of place)."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ExecutorError("--executor dask needs dask and distributed, an optional extra: "
                          f"{DASK_EXTRA}") from None
    return distributed


class DaskExecutor:
    """The jobs on a Dask cluster: the scheduler at ``address`` (else
    ``$DASK_SCHEDULER_ADDRESS``), or a ``LocalCluster`` of ``workers`` processes (one
    thread each) started for the command (a context manager)."""

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.distributed = _distributed()
        self.address = address or os.environ.get(SCHEDULER_ENV) or None
        self.workers = workers or default_jobs()
        self.cluster: Any = None
        self.client: Any = None
        self.cut: float = math.inf

    def __enter__(self) -> "DaskExecutor":
        distributed = self.distributed
        if self.address:
            self.client = distributed.Client(self.address)
        else:
            import dask
            with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
                self.cluster = distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=None)
            self.client = distributed.Client(self.cluster)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, now: bool = True) -> None:
        """Close the client (its jobs are cancelled) and the cluster started here."""
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def describe(self) -> str:
        if self.address:
            return f"the Dask scheduler at {self.address}"
        return f"a Dask LocalCluster of {self.workers} worker process" + \
            ("es" if self.workers > 1 else "")

    def cut_after(self, index: int) -> None:
        """As :meth:`LocalPool.cut_after`; the jobs cut are cancelled."""
        self.cut = min(self.cut, index)

    def run(self, jobs: Iterable[Job],
            on_lost: Callable[[list[Job]], None] | None = None) -> Iterator[Done]:
        """As :meth:`LocalPool.run`. The scheduler retries a job whose worker died;
        ``on_lost`` hears of it only when the job is reported lost."""
        batch = uuid.uuid4().hex[:12]   # keys of their own: never an old run's result
        futures = {self.client.submit(run_job, job.config, job.overrides, job.seeds,
                                      key=f"hwemu-{batch}-{job.index}", pure=False): job
                   for job in jobs if job.index <= self.cut}
        KilledWorker = self.distributed.KilledWorker
        cut = self.cut
        try:
            for future in self.distributed.as_completed(list(futures)):
                job = futures.pop(future, None)
                if job is None or job.index > self.cut:
                    continue
                try:
                    done = Done(job, future.result())
                except KilledWorker:
                    if on_lost:
                        on_lost([job])
                    done = Done(job, error="its worker died twice", lost=True, retried=True)
                except Exception as exc:   # what the run raised
                    done = Done(job, error=f"{type(exc).__name__}: {exc}")
                yield done
                if self.cut < cut:   # the caller cut: cancel what it no longer wants
                    cut = self.cut
                    dropped = [f for f, j in futures.items() if j.index > cut]
                    self.client.cancel(dropped)
                    for f in dropped:
                        del futures[f]
        finally:
            if futures:
                self.client.cancel(list(futures))


def executor(name: str, jobs: int | None = None, scheduler: str | None = None):
    """The executor ``--executor NAME`` asks for (``local`` or ``dask``)."""
    if name == "dask":
        return DaskExecutor(scheduler, jobs)
    if scheduler:
        raise ExecutorError("--scheduler: only with --executor dask")
    return LocalPool(jobs)
