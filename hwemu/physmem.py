"""The machine's RAM: one sparse memfd, physical address = offset in it.

memblock's view of physical memory: the file is as long as the highest physical
address; holes between nodes simply never get mapped. Untouched pages cost nothing
(the file is sparse), but *reading* an untouched shmem page allocates it, so nothing
here scans RAM. Freed memory goes back to the host only through
``fallocate(PUNCH_HOLE)`` (:meth:`PhysMem.punch_hole`).
"""
from __future__ import annotations

import ctypes
import os

from .bug import MachineError
from .config.limits import MEMFD_NAME_PREFIX   # validate checks the name fits

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02

_libc = ctypes.PyDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


class PhysMem:
    """Physical memory ``[0, size)`` of one machine."""

    def __init__(self, size: int, name: str):
        try:
            self.fd = os.memfd_create(MEMFD_NAME_PREFIX + name, os.MFD_CLOEXEC)
        except (AttributeError, OSError) as exc:
            raise MachineError(f"memfd_create() is not available ({exc}): hwemu needs "
                               "Linux >= 3.17 with memfd support for its RAM") from exc
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            os.close(self.fd)
            raise MachineError(f"cannot size RAM memfd to {size} bytes: {exc}") from exc
        self.size = size

    def punch_hole(self, phys: int, size: int) -> None:
        """Give ``[phys, phys+size)`` back to the host; it reads as zeroes afterwards."""
        if _fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, phys, size):
            err = ctypes.get_errno()
            raise OSError(err, f"fallocate(PUNCH_HOLE, {phys:#x}, {size:#x}): "
                               f"{os.strerror(err)}")

    def resident_bytes(self) -> int:
        """Host memory the RAM file holds now (its allocated blocks)."""
        return os.fstat(self.fd).st_blocks * 512

    def close(self) -> None:
        os.close(self.fd)
