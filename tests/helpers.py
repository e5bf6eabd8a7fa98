"""Small helpers shared by the test modules."""
import hwemu


def wait_until(pred, timeout=5.0):
    """Let the machine's other tasks run until ``pred`` is true (True) or ``timeout``
    seconds of emulated time pass (False); the caller must be a task."""
    deadline = hwemu.ktime_get() + int(timeout * 1e9)
    while not pred():
        if hwemu.ktime_get() > deadline:
            return False
        hwemu.msleep(1)
    return True


def import_fresh_module(name: str, blocked: tuple[str, ...] = ()):
    """A fresh import of module ``name`` with the modules in ``blocked`` unimportable,
    as CPython's ``test.support.import_helper.import_fresh_module`` does; the modules
    already loaded are put back afterwards."""
    import importlib
    import sys
    saved = {n: sys.modules.get(n) for n in (name, *blocked)}
    try:
        del sys.modules[name]
        for n in blocked:
            sys.modules[n] = None   # "import n" now raises ImportError
        return importlib.import_module(name)
    finally:
        for n, module in saved.items():
            if module is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = module


# A ``hwemu run`` workload module (its function ``add``) with a lost-update race:
# ``args.tasks`` tasks each add ``args.n`` to a shared counter; the last one checks it.
RACY_WORKLOAD = '''
from hwemu import cond_resched

COUNTERS = {}


def add(run):
    """Read, a preemption point, write: a lost-update race between the tasks."""
    shared = COUNTERS.setdefault(id(run.machine), {"value": 0, "done": 0})
    for _ in range(run.args["n"]):
        value = shared["value"]
        cond_resched()
        shared["value"] = value + 1
    shared["done"] += 1
    if shared["done"] == run.args["tasks"]:
        expected = run.args["n"] * run.args["tasks"]
        assert shared["value"] == expected, f"lost update: {shared['value']} != {expected}"
'''


def reserve_only():
    """A config's ``fault_injection:`` under which every allocator attempt of
    mempool_alloc() fails, quietly: only a pool's reserve can fill it."""
    return {"fail_mempool_alloc": {"probability": 100, "times": -1, "verbose": 0}}


def add_in_two_tasks(machine, add, counter, n):
    """Run ``add`` in two tasks of ``machine``, then free the 8-byte ``counter`` and
    check that it was added ``n`` to twice (no lost update)."""
    tasks = [machine.spawn(add, name=f"add/{i}") for i in range(2)]
    for task in tasks:
        task.join()
    total = hwemu.load(counter, 8)
    hwemu.kfree(counter)
    assert total == 2 * n, f"lost update: counter {total}, expected {2 * n}"


def line_of(marker: str, path) -> int:
    """The line of C file ``path`` whose comment is ``/* marker */``."""
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if f"/* {marker} */" in text:
            return n
    raise AssertionError(f"{path.name}: no line marked {marker!r}")
