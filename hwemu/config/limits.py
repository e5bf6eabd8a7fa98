"""What a machine needs of its host process, so that ``hwemu validate`` can check it.

A config that validates must boot. Two host limits are not kernel facts, so the
schema would not know them otherwise:

- **Address space.** A machine lives in one ``PROT_NONE`` reservation (hwemu/vmem.py)
  searched for from ``RESERVE_HINT`` upwards. On x86_64 Linux a position-independent
  executable — the Python interpreter, as a rule — is loaded at ``ELF_ET_DYN_BASE``, two
  thirds of the 47-bit user space, and address-space randomisation moves it only up;
  shared libraries and ``mmap`` grow down from the stack. So
  ``[RESERVE_HINT, ELF_ET_DYN_BASE)`` is free in a new process, and a machine whose
  reservation (:func:`address_space`) is larger may find no room: a 64T machine needs
  74.3T, more than those 69.3T.
- **Name.** Machine RAM is a memfd named ``MEMFD_NAME_PREFIX + name``, and Linux
  refuses memfd names longer than ``MFD_NAME_MAX_LEN`` (249) bytes.
"""

from __future__ import annotations

from typing import Protocol

from ..kasan_shadow import KASAN_GRANULE_SIZE
from ..page_types import PAGE_SHIFT

# The reservation search window of hwemu/vmem.py.
RESERVE_HINT = 0x1000_0000_0000   # 16 TiB: first placement tried, for stable addresses
RESERVE_LIMIT = 0x7000_0000_0000
# x86_64 ELF_ET_DYN_BASE: (DEFAULT_MAP_WINDOW / 3 * 2) rounded as the kernel does.
ELF_ET_DYN_BASE = 0x5555_5555_4000
# The largest reservation every process has room for.
MAX_ADDRESS_SPACE = ELF_ET_DYN_BASE - RESERVE_HINT

# The layout's proportions (hwemu/machine.py plan_layout(), tested against it):
# sizeof(struct page) in the vmemmap, and one KASAN shadow byte per granule, the
# shadow reserved whether KASAN is on or not.
STRUCT_PAGE_BYTES = 64
KASAN_SHADOW_SCALE = KASAN_GRANULE_SIZE
# Guards between regions, their alignment and the highmem windows (i386 only, at most
# 1024 PKMAP pages + 16 fixmap slots for each of 256 CPUs, 20M) all fit in this.
LAYOUT_SLACK = 64 << 20   # 64M (base's M would load pydantic into every machine)

# include/uapi/linux/memfd.h: MFD_NAME_MAX_LEN = NAME_MAX - strlen("memfd:").
MFD_NAME_MAX_LEN = 255 - len("memfd:")
MEMFD_NAME_PREFIX = "hwemu-ram:"   # hwemu/physmem.py names the RAM memfd so
MAX_NAME_LEN = MFD_NAME_MAX_LEN - len(MEMFD_NAME_PREFIX)


class _Machine(Protocol):
    """The resolved values of a MachineConfig that the reservation depends on."""

    @property
    def ram_end(self) -> int: ...
    @property
    def lowmem_limit(self) -> int: ...
    @property
    def vmalloc_size(self) -> int: ...


def address_space(machine: _Machine) -> int:
    """An upper bound, within ``LAYOUT_SLACK``, of the reservation a machine boots with:
    its direct map, vmalloc area, vmemmap and a KASAN shadow of all of it."""
    direct_map = min(machine.lowmem_limit, machine.ram_end)
    vmemmap = (machine.ram_end >> PAGE_SHIFT) * STRUCT_PAGE_BYTES
    body = direct_map + machine.vmalloc_size + vmemmap + LAYOUT_SLACK
    # The shadow covers itself too: shadow = (body + shadow) / 8.
    return body + -(-body // (KASAN_SHADOW_SCALE - 1))


def max_ram(vmalloc_size: int) -> int:
    """The most RAM (in whole GiB) an x86_64 machine with this vmalloc area can have
    within ``MAX_ADDRESS_SPACE``; the inverse of :func:`address_space`."""
    body = MAX_ADDRESS_SPACE * (KASAN_SHADOW_SCALE - 1) // KASAN_SHADOW_SCALE
    per_byte = 1 + STRUCT_PAGE_BYTES / (1 << PAGE_SHIFT)
    ram = int((body - vmalloc_size - LAYOUT_SLACK) / per_byte)
    return max(0, ram >> 30 << 30)
