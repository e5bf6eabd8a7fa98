"""Small helpers shared by the test modules."""
import time


def wait_until(pred, timeout=5.0):
    """Poll ``pred`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
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
