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
