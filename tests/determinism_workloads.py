"""Custom workloads for tests/test_determinism.py (``determinism_workloads:NAME`` in a
run's ``custom:`` list; importable because the tests run ``hwemu`` with tests/ as the
working directory, or in process with tests/ on sys.path)."""
import weakref

import mempool
from hwemu import GFP_NOIO, complete, init_completion, wait_for_completion

# The completions the two ABBA tasks share, per machine.
_COMPLETIONS = weakref.WeakKeyDictionary()


def _completions(machine):
    if machine not in _COMPLETIONS:
        _COMPLETIONS[machine] = (init_completion(), init_completion())
    return _COMPLETIONS[machine]


def abba_first(task):
    """Waits for the second task, then would let it go on: never."""
    first_done, second_done = _completions(task.machine)
    task.count("waits")
    wait_for_completion(second_done)
    complete(first_done)


def abba_second(task):
    """Waits for the first task, then would let it go on: never."""
    first_done, second_done = _completions(task.machine)
    task.count("waits")
    wait_for_completion(first_done)
    complete(second_done)


def hoard_pages(task):
    """Allocates from pool ``p`` with GFP_NOIO and never frees, until the run stops."""
    pool = task.pools["p"]
    while not task.stopping():
        mempool.mempool_alloc(pool, GFP_NOIO)
        task.count("allocs")

