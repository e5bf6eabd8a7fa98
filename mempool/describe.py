"""``mempool.describe(addr)``: what an address is, the pools' reserves looked at first,
then everything else through :func:`hwemu.util.describe_obj` (the answer mm/util.c's
``mem_dump_obj()`` gives, in more detail)."""
from __future__ import annotations

from hwemu.access import load
from hwemu.current import current
from hwemu.util import describe_obj

from ._mempool import SIZEOF_PTR, _get
from .stats import live_pools


def describe(addr: int) -> str:
    """What ``addr`` is: an element in some pool's reserve, a slab object (allocated,
    free or quarantined), a large kmalloc, a page, or a vmalloc area."""
    for pool in live_pools():
        curr_nr, elements = _get(pool, "curr_nr"), _get(pool, "elements")
        for i in range(curr_nr if elements else 0):
            if load(elements + SIZEOF_PTR * i, SIZEOF_PTR) == addr:
                return (f"{addr:#x}: element in the reserve of pool {pool:#x} "
                        f"(slot {i} of {curr_nr})")
    return f"{addr:#x}: {describe_obj(current().machine, addr)}"
