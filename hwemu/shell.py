"""``hwemu shell``: a booted machine in a Python REPL, for looking at memory the way
drgn users look at a kernel.

The REPL (IPython when installed, else the standard one) runs in the machine's first
task, with hwemu's kernel functions, ``mempool``, the ``machine`` and these helpers:

- :func:`describe` — what an address (or a task) is, pretty-printed: a ``struct
  page`` with its flags by name, a slab object with its cache and state, a ``struct
  mempool`` with its fields and callbacks by name, a task with its state and stack.
  It starts from :func:`hwemu.util.locate`, the one answer to "what is at this
  address".
- :func:`stack_trace` (drgn's name), :func:`find_task`, :func:`for_each_task`.
- ``prog``: a ``drgn.Program`` over the machine (:mod:`hwemu.drgn_program`), when
  drgn is installed, so that drgn's own helpers work on it.
"""
from __future__ import annotations

import code
import sys
import traceback
import types
from types import FrameType
from typing import Any

import greenlet

import mempool
from mempool._mempool import SIZEOF_PTR, _fields, fn_of
from mempool.stats import live_pools, mempool_stats

from . import bug, sched
from .access import load
from .config import format_size
from .current import current
from .errors import KernelError
from .mmzone import ZONE_NAMES
from .page import PAGE_TYPE_NAMES, PGTY_buddy, compound_head, format_page_flags, page_address
from .page_types import PAGE_SHIFT
from .util import describe_obj, locate

SHOWN_ELEMENTS = 8   # reserve elements listed by describe(pool); "..." for the rest
STATE_NAMES = {"R": "running", "S": "sleeping", "D": "uninterruptible sleep"}


class Text(str):
    """What :func:`describe` and :func:`stack_trace` return: a ``str`` that a REPL
    shows as the text it is (no quotes, real newlines)."""

    def __repr__(self) -> str:
        return str(self)


# ---------------------------------------------------------------- tasks

def find_task(pid: int) -> sched.Task | None:
    """``find_task(pid)``: the task of the current machine with ``pid``, or None."""
    return current().machine.sched.tasks.get(pid)


def for_each_task() -> list[sched.Task]:
    """``for_each_task()``: every live task of the current machine, by pid."""
    return sorted(current().machine.sched.tasks.values(), key=lambda t: t.pid)


def _task(task) -> sched.Task:
    """A task from a ``Task``, the handle ``spawn()`` returns, or a pid."""
    if isinstance(task, sched.TaskHandle):
        return task.task
    if isinstance(task, int) and not isinstance(task, bool):
        found = find_task(task)
        if found is None:
            raise LookupError(f"no task with pid {task} on machine "
                              f"{current().machine.name!r}")
        return found
    if isinstance(task, sched.Task):
        return task
    raise TypeError(f"expected a task, its handle or its pid, not {type(task).__name__}")


def stack_trace(task) -> Text:
    """drgn's ``stack_trace(task)``: the task's frames, innermost first, numbered
    ``#0``, ``#1``... as ``func+0xOFF/0xSIZE file:line`` (the kernel's ``%pS``).

    :param task: ``struct task_struct *`` (a :class:`~hwemu.sched.Task`), the handle
        ``machine.spawn()`` returned, or a pid
    """
    task = _task(task)
    if task.exited:
        return Text(f"{task.comm}/{task.pid} has exited: no stack")
    frame: FrameType | None
    if task.glet is greenlet.getcurrent():   # the task asking: from the shell's caller
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") == __name__:
            frame = frame.f_back
    else:
        frame = task.glet.gr_frame if task.glet is not None else None
    # An interrupt's frames come first, then those of the task it interrupted.
    lines = [line for stack in bug.stack_lines(frame, depth=64) for line in stack]
    if not lines:
        return Text(f"{task.comm}/{task.pid} has not run yet: no stack")
    return Text("\n".join(f"#{i:<2} {line.strip()}" for i, line in enumerate(lines)))


def _task_state(task: sched.Task) -> str:
    state = "D" if task.state & sched.TASK_UNINTERRUPTIBLE else \
        "S" if task.state & sched.TASK_INTERRUPTIBLE else "R"
    return f"{state} ({STATE_NAMES[state]})"


def describe_task(task) -> Text:
    """A task: its name, CPU, state, atomic context and stack."""
    task = _task(task)
    context = [f"preempt_count {task.preempt_count:#x}",
               "irqs off" if task.irqs_off else "irqs on"]
    if task.kmap_idx:
        context.append(f"{task.kmap_idx} kmap_local slot(s)")
    lines = [f"task {task.comm}/{task.pid} on CPU {task.cpu.id}: {_task_state(task)}, "
             + ", ".join(context), "stack:",
             *("  " + line for line in stack_trace(task).splitlines())]
    return Text("\n".join(lines))


# ---------------------------------------------------------------- struct page

def _page_state(machine, pfn: int) -> str:
    """What the page is used for, from its struct page and the allocators."""
    memmap = machine.memmap
    head = memmap.compound_head(pfn)
    pgty = memmap.page_type(head)
    if pgty == PGTY_buddy:
        return f"free: first page of a buddy block of order {memmap.page.private[pfn]}"
    if pgty is not None and PAGE_TYPE_NAMES.get(pgty) == "slab":
        slab = machine.slab.slab_of(memmap.lowmem_virt(head))
        if slab is not None:
            return (f"slab of cache {slab.cache.name}: {slab.inuse}/{slab.objects} objects "
                    f"in use (order {slab.order})")
    if pgty is not None:
        return f"page type {PAGE_TYPE_NAMES.get(pgty, hex(pgty))}"
    if head != pfn:
        return f"tail of the compound page at pfn {head:#x}"
    if memmap.page._refcount[pfn]:
        order = memmap.compound_order(pfn)
        return f"allocated (refcount {memmap.page._refcount[pfn]}" + \
            (f", compound order {order})" if order else ")")
    return "refcount 0: free, or a tail page of a higher-order block"


def describe_page(machine, pfn: int) -> list[str]:
    """The fields of the ``struct page`` of ``pfn``, by name, and what it is used for."""
    memmap = machine.memmap
    memmap.ensure(pfn, pfn + 1)
    f = memmap.page
    page = memmap.page_of(pfn)
    node, zone = memmap.nid(pfn), ZONE_NAMES[memmap.zonenum(pfn)]
    virt = page_address(page)
    mapcount = f._mapcount[pfn]
    pgty = memmap.page_type(pfn)
    head = compound_head(page)
    return [
        f"struct page {page:#x}: pfn {pfn:#x} (phys {pfn << PAGE_SHIFT:#x}), node {node}, "
        f"zone {zone}",
        f"  flags      {format_page_flags(f.flags[pfn])}",
        f"  _refcount  {f._refcount[pfn]}",
        f"  _mapcount  {mapcount}" + (f" (page_type {PAGE_TYPE_NAMES.get(pgty, hex(pgty))})"
                                      if pgty is not None else ""),
        f"  lru        next {f.lru_next[pfn]:#x}, prev {f.lru_prev[pfn]:#x}" if head == page
        else f"  compound_head {f.lru_next[pfn]:#x} (tail of struct page {head:#x})",
        f"  mapping    {f.mapping[pfn]:#x}",
        f"  index      {f.index[pfn]:#x}",
        f"  private    {f.private[pfn]:#x}",
        f"  virtual    {virt:#x}" if virt else "  virtual    none (highmem, not kmapped)",
        f"  state      {_page_state(machine, pfn)}",
    ]


# ---------------------------------------------------------------- struct mempool

def _callback(ptr: int) -> str:
    """A function pointer by the name of the function behind it."""
    try:
        return getattr(fn_of(ptr), "__qualname__", repr(fn_of(ptr)))
    except bug.AddressError:
        return f"{ptr:#x} (unknown function)" if ptr else "NULL"


def describe_pool(pool: int) -> list[str]:
    """The fields of ``struct mempool *pool`` by name, its reserve and its counters."""
    min_nr, curr_nr, elements, pool_data, alloc, free = _fields(pool)
    shown = [load(elements + SIZEOF_PTR * i, SIZEOF_PTR)
             for i in range(min(curr_nr, SHOWN_ELEMENTS) if elements else 0)]
    listing = ", ".join(f"{e:#x}" for e in shown) + (", ..." if curr_nr > len(shown) else "")
    stats = mempool_stats(pool)
    return [
        f"struct mempool {pool:#x} (mempool_t)",
        f"  min_nr     {min_nr}",
        f"  curr_nr    {curr_nr}" + ("  (saturated)" if curr_nr >= min_nr else ""),
        f"  elements   {elements:#x}: [{listing}]",
        f"  pool_data  {pool_data:#x}",
        f"  alloc      {_callback(alloc)}",
        f"  free       {_callback(free)}",
        f"  counters   {stats['alloc_allocator']} from alloc, {stats['alloc_reserve']} from "
        f"the reserve, {stats['alloc_null']} NULL, {stats['waits']} wait(s)",
    ]


# ---------------------------------------------------------------- describe()

def _slab_lines(machine, o, pools: list[int]) -> list[str]:
    cache, slab = o.cache, o.slab
    lines = [f"  cache      {cache.name} (struct kmem_cache {cache.addr:#x}): object_size "
             f"{cache.object_size}, size {cache.size}",
             f"  object     {o.start:#x}" + (f", {o.addr - o.start} bytes into it"
                                            if o.addr != o.start else ""),
             f"  slab       struct page {slab.page:#x} (pfn {slab.pfn:#x}), "
             f"{slab.inuse}/{slab.objects} in use"]
    if o.start in pools:
        lines += ["  it holds:", *("  " + line for line in describe_pool(o.start))]
    return lines


def _elsewhere(machine, addr: int) -> list[str]:
    """An address no allocator owns: a slot of a kmap window (and the page mapped
    there), another region of the machine, a hole, or no address of the machine."""
    space = machine.space
    region = space.region_at(addr)
    if region is None:
        where = space.describe(addr) if space.base <= addr < space.end else \
            f"outside machine {machine.name!r}"
        return [f"{addr:#x}: {describe_obj(machine, addr)} ({where})"]
    if region.kind != "window":
        return [f"{addr:#x}: in the {region.label} (no allocator's memory)"]
    slot = (addr - region.start) >> PAGE_SHIFT
    pfn = int(region.ptes[slot])
    if pfn < 0:
        return [f"{addr:#x}: {region.label} slot {slot}: not mapped"]
    return [f"{addr:#x}: {region.label} slot {slot}: maps pfn {pfn:#x}", "  in:",
            *("  " + line for line in describe_page(machine, pfn))]


def describe(obj, machine=None) -> Text:
    """What ``obj`` is, pretty-printed: an address (``struct page *``, slab object,
    ``struct mempool *``, an element of a pool's reserve, a page of the direct map, a
    vmalloc address, a wild one) or a task (its handle or the ``Task``).

    :param obj: ``void *`` (an int) or a task
    :param machine: the machine the address belongs to (default: the current one)
    """
    if isinstance(obj, (sched.Task, sched.TaskHandle)):
        return describe_task(obj)
    if not isinstance(obj, int) or isinstance(obj, bool):
        raise TypeError(f"describe() takes an address (int) or a task, not "
                        f"{type(obj).__name__}")
    machine = machine or current().machine
    pools = live_pools()
    if obj in pools:
        return Text("\n".join(describe_pool(obj)))
    o = locate(machine, obj)
    if o.kind == "struct page" and o.pfn is not None:
        into = obj - machine.memmap.page_of(o.pfn)
        head = [f"{obj:#x}: {into} bytes into a struct page"] if into else []
        return Text("\n".join(head + describe_page(machine, o.pfn)))
    if o.kind is None:
        return Text("\n".join(_elsewhere(machine, obj)))
    lines = [mempool.describe(obj)]   # names a pool's reserve element, else describe_obj
    if o.kind == "slab":
        lines += _slab_lines(machine, o, pools)
    if o.pfn is not None and o.kind in ("page", "large_kmalloc", "vmalloc"):
        lines += ["  in:", *("  " + line for line in describe_page(machine, o.pfn))]
    return Text("\n".join(lines))


# ---------------------------------------------------------------- the REPL

def namespace(machine) -> dict[str, Any]:
    """What the shell has in scope: hwemu's kernel functions and constants, mempool's,
    the machine, the helpers above and, with drgn, ``prog``."""
    import hwemu
    ns: dict[str, Any] = {}
    for module in (hwemu, mempool):
        ns.update((name, getattr(module, name)) for name in dir(module)
                  if not (name.startswith("_") and not name.startswith("__"))
                  and not name.endswith("__"))
    for name, value in list(ns.items()):   # hwemu.vmalloc is a module: vmalloc() wins
        if isinstance(value, types.ModuleType) and callable(getattr(value, name, None)):
            ns[name] = getattr(value, name)
    ns.update(hwemu=hwemu, mempool=mempool, machine=machine, describe=describe,
              stack_trace=stack_trace, find_task=find_task, for_each_task=for_each_task)
    try:
        ns["prog"] = machine.drgn()
    except ImportError:
        pass
    return ns


def banner(machine, ns: dict) -> str:
    """What the shell says first: what is booted, and what is in scope."""
    cfg = machine.config
    me = current()
    drgn = ("prog (a drgn.Program over the machine: pfn_to_page(prog, pfn), ...)"
            if "prog" in ns else "no prog: pip install 'hwemu[drgn]' for drgn")
    return (f"hwemu shell: machine {machine.name!r}: {len(machine.nodes)} node(s), "
            f"{len(machine.sched.cpus)} CPU(s), {format_size(cfg.machine.ram_end)} RAM, "
            f"KASAN {'on' if machine.kasan.enabled else 'off'}; you are task "
            f"{me.comm}/{me.pid} on CPU {me.cpu.id}.\n"
            "In scope: machine, hwemu, mempool and their kernel functions (kmalloc, "
            "alloc_pages, mempool_create, ...);\n"
            "describe(addr or task), stack_trace(task), find_task(pid), for_each_task(); "
            f"{drgn}.")


def interact(machine, command: str | None = None) -> int:
    """Run ``command`` in the shell's namespace (``hwemu shell -c``), or the REPL.

    :return: the exit code: 1 if ``command`` raised, else 0
    """
    ns = namespace(machine)
    drgn = sys.modules.get("drgn") if "prog" in ns else None
    if drgn is not None:   # drgn's helpers need no prog argument, as in drgn's CLI
        drgn.set_default_prog(ns["prog"])
    try:
        return _run(machine, ns, command)
    finally:
        if drgn is not None:   # the program of a machine about to go down
            drgn.set_default_prog(None)


def _run(machine, ns: dict, command: str | None) -> int:
    if command is not None:
        try:
            exec(compile(command, "<hwemu shell -c>", "exec"), ns)
        except (Exception, KernelError):
            traceback.print_exc()
            return 1
        return 0
    text = banner(machine, ns)
    try:
        from IPython import start_ipython
    except ImportError:
        start_ipython = None
    # Outside the except: an error typed at the prompt is not chained to this one.
    if start_ipython is None:
        code.interact(banner=text, local=ns, exitmsg="")
    else:
        print(text)
        start_ipython(argv=["--no-banner"], user_ns=ns)
    return 0
