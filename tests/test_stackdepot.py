"""The stack depot: deduplicated stacks, and the C key helper agreeing with Python's."""
import os
from array import array

import pytest
from helpers import import_fresh_module

from hwemu import stackdepot
from hwemu.stackdepot import StackDepot, python_stack_key


def test_the_c_helper_and_the_python_walk_make_the_same_key():
    speedups = pytest.importorskip("hwemu._speedups")
    # Chosen when built, unless HWEMU_PURE=1 asks for the Python twins everywhere.
    pure = os.environ.get("HWEMU_PURE") == "1"
    assert stackdepot.stack_key is (python_stack_key if pure else speedups.stack_key)

    def inner():
        return speedups.stack_key(0, 5), python_stack_key(0, 5)
    c_key, py_key = (array("q", key) for key in inner())
    # The two calls are on different lines of inner(): all but its offset agree.
    assert len(c_key) == len(py_key) == 10
    assert c_key[0] == py_key[0] == id(inner.__code__)
    assert c_key[2:] == py_key[2:]


def test_without_the_extension_the_python_walk_serves():
    fresh = import_fresh_module("hwemu.stackdepot", blocked=("hwemu._speedups",))
    assert fresh.stack_key is fresh.python_stack_key
    depot = fresh.StackDepot(depth=4)

    def site():
        return depot.save(0)

    handles = {site() for _ in range(3)}
    assert handles == {1} and depot.lines(1)[0].startswith(" site+0x")


def test_equal_stacks_share_a_handle_and_print_as_frames():
    depot = StackDepot(depth=4)

    def site():
        return depot.save(0)

    handles = {site() for _ in range(3)}
    assert len(handles) == 1 and len(depot) == 1
    lines = depot.lines(handles.pop())
    assert lines[0].startswith(" site+0x") and "tests/test_stackdepot.py:" in lines[0]


def test_a_full_depot_gives_no_stack():
    depot = StackDepot(depth=2, max_stacks=1)
    first = [depot.save(0) for _ in range(1)][0]
    second = depot.save(0)   # another line: another stack, and no room for it
    assert first == 1 and second == 0 and depot.lines(0) == []


def test_task_stacks_end_at_the_task_function_and_skip_alloc_hooks(boot):
    """A task's stack ends at its function, as a kthread's at kthread(), and the
    alloc_hooks() wrappers (macros in the kernel) have no frame."""
    import hwemu
    machine = boot("tiny", kasan__enabled=True)

    def driver():
        p = hwemu.kmalloc(16, hwemu.GFP_KERNEL)
        hwemu.kfree(p)
        with hwemu.kasan.expect_report("slab-use-after-free"):
            hwemu.load(p, 1)

    machine.spawn(driver).join(timeout=10)
    text = machine.kasan.reports[-1].text
    alloc = text.split("Allocated by task")[1].split("\n\n")[0].splitlines()[1:]
    trace = text.split(" <TASK>\n")[1].split(" </TASK>")[0].splitlines()
    assert alloc[-1].startswith(" driver+0x") and trace[-1].startswith(" driver+0x")
    assert not any(line.startswith((" hooked+", " call+", " _run+")) for line in alloc + trace)
    assert alloc[0].startswith(" kmalloc+") and " kmalloc_noprof+" in alloc[1]
