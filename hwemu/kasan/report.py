"""Emulation of mm/kasan/report.c and report_generic.c: the text of a KASAN report.

Laid out line by line as the kernel prints it: the ``=`` rulers, ``BUG: KASAN: <type>
in <function>``, the access (or free) line, the stack, the object with its
"Allocated by"/"Freed by" stacks, the vmalloc mapping or physical page, and the
"Memory state around the buggy address" shadow rows with the ``^`` caret. The facts
laid out in it are also returned as data (:func:`build_report`'s ``details``), so that
a consumer needs no parsing of the text.
"""
from __future__ import annotations

from .. import bug
from ..kasan_shadow import (KASAN_GLOBAL_REDZONE, KASAN_GRANULE_SIZE, KASAN_PAGE_FREE,
                            KASAN_PAGE_REDZONE, KASAN_REPORT_ACCESS, KASAN_REPORT_DOUBLE_FREE,
                            KASAN_SHADOW_SCALE_SHIFT, KASAN_SLAB_FREE, KASAN_SLAB_FREE_META,
                            KASAN_SLAB_REDZONE, KASAN_VMALLOC_INVALID)
from ..page_types import PAGE_SIZE
from ..util import locate

RULER = "=" * 66
META_BYTES_PER_ROW = 16
META_ROWS_AROUND_ADDR = 2
META_MEM_BYTES_PER_ROW = META_BYTES_PER_ROW * KASAN_GRANULE_SIZE

_SHADOW_TYPES = {
    KASAN_PAGE_REDZONE: "slab-out-of-bounds", KASAN_SLAB_REDZONE: "slab-out-of-bounds",
    KASAN_GLOBAL_REDZONE: "global-out-of-bounds", KASAN_PAGE_FREE: "use-after-free",
    KASAN_SLAB_FREE: "slab-use-after-free", KASAN_SLAB_FREE_META: "slab-use-after-free",
    KASAN_VMALLOC_INVALID: "vmalloc-out-of-bounds",
    **{v: "stack-out-of-bounds" for v in (0xF1, 0xF2, 0xF3, 0xF4)},
    0xCA: "alloca-out-of-bounds", 0xCB: "alloca-out-of-bounds",
}


def bug_type(k, kind: int, addr: int, size: int, first_bad: int) -> str:
    """``kasan_get_bug_type()`` of generic mode."""
    if kind != KASAN_REPORT_ACCESS:
        return "double-free" if kind == KASAN_REPORT_DOUBLE_FREE else "invalid-free"
    if addr + size > 1 << 64:
        return "out-of-bounds"
    if k.has_metadata(addr):
        shadow = k.shadow(first_bad)
        if 0 < shadow < KASAN_GRANULE_SIZE:  # a partial granule: the redzone after it
            shadow = k.shadow(first_bad + KASAN_GRANULE_SIZE)
        if 0 <= shadow < KASAN_GRANULE_SIZE:
            return "out-of-bounds"
        return _SHADOW_TYPES.get(shadow & 0xFF, "unknown-crash")
    return "null-ptr-deref" if addr < PAGE_SIZE else "wild-memory-access"


def build_report(k, kind: int, addr: int, size: int, write: bool, frame, task):
    """The report for a bad access (``kind`` access) or free: ``(bug_type, text,
    details)``. ``details`` holds what the text says as data: ``function`` (where it
    happened), ``access`` (``read``, ``write`` or ``free``), ``task`` (``comm``,
    ``pid``, ``cpu``; None outside any task), ``stack`` (the access's call trace,
    innermost frame first, one ``func+0xOFF/0xSIZE file:line`` each) and, for a slab
    object, ``object`` (``cache``, ``address``,
    ``size``), ``allocated`` and ``freed`` (``pid`` and ``stack``; None when not
    recorded)."""
    machine = k.machine
    first_bad = addr
    if kind == KASAN_REPORT_ACCESS and k.has_metadata(addr):
        first_bad = k.first_bad_addr(addr, size)
    btype = bug_type(k, kind, addr, size, first_bad)
    who = f"{task.comm}/{task.pid}" if task else "?/0"
    trace = bug.call_trace(frame)
    details: dict = {
        "function": bug.symbol(frame),
        "access": "free" if kind != KASAN_REPORT_ACCESS else "write" if write else "read",
        "task": {"comm": task.comm, "pid": task.pid, "cpu": task.cpu.id} if task else None,
        "stack": [line.strip() for line in trace[1:] if not line.strip().startswith("<")],
    }
    lines = [RULER, f"BUG: KASAN: {btype} in {details['function']}"]
    if kind != KASAN_REPORT_ACCESS:
        lines.append(f"Free of addr {addr:016x} by task {who}")
    else:
        lines.append(f"{'Write' if write else 'Read'} of size {size} at addr {addr:016x} "
                     f"by task {who}")
    lines.append("")
    lines += [*bug.header(machine, task), *trace]
    if k.has_metadata(addr):
        lines.append("")
        lines += describe_address(k, addr, btype, details)
        lines += memory_state(k, first_bad)
    lines.append(RULER)
    return btype, "\n".join(lines), details


def describe_address(k, addr: int, btype: str, details: dict | None = None) -> list[str]:
    """``print_address_description()`` after the stack: object, mapping, page (what
    it says of a slab object also into ``details``)."""
    machine = k.machine
    o = locate(machine, addr)
    out = []
    if o.kind == "slab":
        out += describe_object(k, o.slab, o.start, addr, btype, details)
    if o.kind == "vmalloc" and o.area is not None:
        area = o.area
        out += ["The buggy address belongs to the virtual mapping at",
                f" [{area.addr:016x}, {area.addr + area.size:016x}) created by:",
                f" {area.caller}", ""]
    if o.pfn is not None and o.kind != "struct page":
        head = machine.memmap.compound_head(o.pfn)
        out += ["The buggy address belongs to the physical page:",
                *machine.page_alloc.format_page(head, "kasan: bad access detected")
                .split("\n"), ""]
    return out


def describe_object(k, slab, obj: int, addr: int, btype: str,
                    details: dict | None = None) -> list[str]:
    """``describe_object()``: who allocated and freed it, and where ``addr`` lies
    (the object and its stacks also into ``details``)."""
    cache = slab.cache
    out = []
    alloc = k.alloc_track.get(obj)
    out += _track("Allocated", k, alloc)
    freed = None
    if k.shadow(obj) & 0xFF == KASAN_SLAB_FREE_META and obj in k.free_track:
        freed = k.free_track[obj]
        out += _track("Freed", k, freed)
    alloc_size = get_alloc_size(k, obj, cache.object_size)
    if details is not None:
        details["object"] = {"cache": cache.name, "address": obj, "size": alloc_size}
        details["allocated"] = _track_data(k, alloc)
        details["freed"] = _track_data(k, freed)
    if addr < obj:
        rel, dist = "to the left of", obj - addr
    elif addr >= obj + alloc_size:
        rel, dist = "to the right of", addr - (obj + alloc_size)
    else:
        rel, dist = "inside of", addr - obj
    state = {"slab-out-of-bounds": "allocated ",
             "slab-use-after-free": "freed "}.get(btype, "")
    out += [f"The buggy address belongs to the object at {obj:016x}",
            f" which belongs to the cache {cache.name} of size {cache.object_size}",
            f"The buggy address is located {dist} bytes {rel}",
            f" {state}{alloc_size}-byte region [{obj:016x}, {obj + alloc_size:016x})", ""]
    return out


def _track(what: str, k, track) -> list[str]:
    if track is None:
        return [f"{what} by task 0:", "(stack is not available)", ""]
    pid, handle = track
    stack = k.depot.lines(handle) if handle else ["(stack is not available)"]
    return [f"{what} by task {pid}:", *stack, ""]


def _track_data(k, track) -> dict | None:
    """A stack of :func:`_track` as data: ``pid`` and ``stack`` (frames, stripped)."""
    if track is None:
        return None
    pid, handle = track
    return {"pid": pid, "stack": [line.strip() for line in k.depot.lines(handle)]
            if handle else []}


def get_alloc_size(k, obj: int, object_size: int) -> int:
    """``kasan_get_alloc_size()``: the accessible prefix of the object, or its whole
    size when none of it is (a freed object)."""
    size = 0
    while size < object_size:
        shadow = k.shadow(obj + size)
        if shadow == 0:
            size += KASAN_GRANULE_SIZE
            continue
        if 0 < shadow < KASAN_GRANULE_SIZE:
            size += shadow
        break
    return min(size, object_size) or object_size


def memory_state(k, first_bad: int) -> list[str]:
    """``print_memory_metadata()``: five rows of 16 shadow bytes around the bad granule,
    the middle one marked ``>`` and followed by the ``^`` caret."""
    row0 = (first_bad & -META_MEM_BYTES_PER_ROW) - META_ROWS_AROUND_ADDR * \
        META_MEM_BYTES_PER_ROW
    out = ["Memory state around the buggy address:"]
    for i in range(-META_ROWS_AROUND_ADDR, META_ROWS_AROUND_ADDR + 1):
        row = row0 + (i + META_ROWS_AROUND_ADDR) * META_MEM_BYTES_PER_ROW
        if not k.has_metadata(row):
            continue
        start = (row >> KASAN_SHADOW_SCALE_SHIFT) + k.delta
        shadow = " ".join(f"{b:02x}" for b in k.mv[start:start + META_BYTES_PER_ROW])
        out.append(f"{'>' if i == 0 else ' '}{row:016x}: {shadow}")
        if i == 0:
            width = 3 + 16 + ((first_bad - row) // KASAN_GRANULE_SIZE) * 3 + 1
            out.append(" " * (width - 1) + "^")
    return out
