"""The stack depot: deduplicated stacks, and the C key helper agreeing with Python's."""
from array import array

from hwemu import stackdepot
from hwemu.stackdepot import StackDepot, python_stack_key


def test_the_c_helper_and_the_python_walk_make_the_same_key():
    def inner():
        return stackdepot.stack_key(0, 5), python_stack_key(0, 5)
    c_key, py_key = (array("q", key) for key in inner())
    # The two calls are on different lines of inner(): all but its offset agree.
    assert len(c_key) == len(py_key) == 10
    assert c_key[0] == py_key[0] == id(inner.__code__)
    assert c_key[2:] == py_key[2:]


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
