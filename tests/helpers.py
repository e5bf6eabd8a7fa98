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


def line_of(marker: str, path) -> int:
    """The line of C file ``path`` whose comment is ``/* marker */``."""
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if f"/* {marker} */" in text:
            return n
    raise AssertionError(f"{path.name}: no line marked {marker!r}")
