"""The exceptions the emulated kernel raises, at the bottom of the import order.

Every module may raise them; :mod:`hwemu.bug` prints the kernel's text for the ones
that come with a report (BUG, oops, panic) and re-exports them.
"""
from __future__ import annotations

__all__ = ["KernelError", "Oops", "KernelBug", "KernelPanic", "AddressError", "MachineDown",
           "Killed", "MachineError", "Deadlock"]


class KernelError(Exception):
    """Base of every error the emulated kernel raises; ``text`` is what it printed."""

    def __init__(self, message: str, text: str = ""):
        super().__init__(message)
        self.text = text


class Oops(KernelError):
    """The kernel oopsed (``die()``): a bad memory access or a BUG. The task is dead."""


class KernelBug(Oops):
    """``BUG()``/``BUG_ON()`` fired: ``kernel BUG at file:line!``."""


class KernelPanic(KernelError):
    """``panic()`` was called; the machine would stop here."""


class AddressError(KernelError, ValueError):
    """A conversion or mapping function got an address it cannot handle."""


class MachineDown(KernelError):
    """The machine (or the machine an address belongs to) has been shut down."""


class Killed(KernelError):
    """The task got a fatal signal (the OOM killer chose it) and must exit."""


class MachineError(KernelError):
    """Booting or using the machine failed for a reason outside the emulated kernel."""


class Deadlock(KernelError):
    """Every task of the machine is blocked and nothing can wake one; ``text`` has the
    blocked tasks and their stacks."""
