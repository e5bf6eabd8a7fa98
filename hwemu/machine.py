"""Boot: build a machine from a config and own the lifetime of all its parts.

``boot()`` checks the host, reserves the address space, creates RAM, maps the direct
map, lays out the vmemmap, the vmalloc area, the highmem windows and the KASAN shadow,
and makes the calling thread the machine's first task. ``Machine.shutdown()`` undoes
all of it; afterwards the machine and its addresses raise :class:`MachineDown`.
"""
from __future__ import annotations

import functools
import os
import resource

from . import jump_label, sched, timer, wait
from .alloc_tag import AllocTags
from .bug import UTS_RELEASE, BugState, MachineDown, MachineError
from .config import Config, format_size, load_config
from .current import current_on, leave
from .fault_inject import FaultInjection
from .highmem import KM_MAX_IDX, Highmem
from .kasan import KASAN_SHADOW_SCALE_SHIFT, Kasan
from .mmzone import ZONE_MOVABLE, ZONE_NAMES, build_nodes, zone_limits
from .oom_kill import OOMKiller
from .page import STRUCT_PAGE_SIZE, MemMap
from .page_alloc import PageAlloc
from .page_types import PAGE_SHIFT, PAGE_SIZE, PMD_SIZE
from .physmem import PhysMem
from .printk import LogBuf, RateLimit
from .procfs import ProcFS
from .slab import Slab
from .vmalloc import Vmalloc
from .vmem import GUARD, AddressSpace, Region, align_up
from .vmscan import Vmscan
from .vmstat import VmStat

MAP_COUNT_HEADROOM = 1024  # mappings the host process and later vmalloc use need


def plan_layout(cfg) -> dict[str, tuple[int, int]]:
    """Offsets and sizes of every region inside the reservation, in address order.

    Each region starts on a PMD boundary after an unmapped guard. The KASAN shadow
    comes last and covers the whole reservation, itself included.
    """
    parts = [("direct map", align_up(min(cfg.lowmem_limit, cfg.ram_end), PMD_SIZE)),
             ("vmalloc", cfg.vmalloc_size)]
    if cfg.highmem_enabled:
        parts += [("pkmap", cfg.last_pkmap * PAGE_SIZE),
                  ("fixmap", KM_MAX_IDX * cfg.cpus * PAGE_SIZE)]
    parts.append(("vmemmap", (cfg.ram_end >> PAGE_SHIFT) * STRUCT_PAGE_SIZE))
    layout, off = {}, GUARD
    for name, size in parts:
        layout[name] = (off, size)
        off = align_up(off + size, PMD_SIZE) + GUARD
    # The shadow covers itself too: shadow >= (off + shadow) >> SCALE_SHIFT.
    shadow = align_up(-(-off // ((1 << KASAN_SHADOW_SCALE_SHIFT) - 1)), PMD_SIZE)
    layout["kasan shadow"] = (off, shadow)
    return layout


def selfcheck(cfg, reservation: int) -> list[str]:
    """Host problems that would stop this machine from booting, one line each."""
    problems = []
    if not hasattr(os, "memfd_create"):
        problems.append("memfd_create() is missing: hwemu needs Linux >= 3.17 and "
                        "Python built with memfd support")
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps") as f:
            used = sum(1 for _ in f)
        slots = (cfg.last_pkmap + KM_MAX_IDX * cfg.cpus) if cfg.highmem_enabled else 0
        need = used + 2 * (slots + len(cfg.nodes)) + 16 + MAP_COUNT_HEADROOM
        if limit < need:
            problems.append(f"vm.max_map_count is {limit} but this machine may need {need} "
                            f"mappings: run `sysctl -w vm.max_map_count={need * 2}`")
    except OSError as exc:
        problems.append(f"cannot read /proc ({exc}): hwemu needs Linux procfs")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft < reservation + _vm_size():
        problems.append(f"RLIMIT_AS is {format_size(soft)} but the machine reserves "
                        f"{format_size(reservation)} of address space: run `ulimit -v "
                        "unlimited` or boot less RAM")
    return problems


def _vm_size() -> int:
    """Address space this process uses now (``VmSize``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * PAGE_SIZE
    except OSError:
        return 0


class Machine:
    """One emulated machine. Use :func:`boot` to make one; it is a context manager."""

    def __init__(self, config: Config):
        cfg = config.machine
        self.config = config
        self.name = cfg.name
        self.down = False
        self.going_down = False
        # Facts of the machine every subsystem is handed at boot.
        self.BITS_PER_LONG = cfg.bits_per_long
        self.SIZE_MAX = (1 << self.BITS_PER_LONG) - 1
        self.numa_distance = cfg.distances   # the SLIT: node_distance(a, b)
        # CONFIG_SLUB_DEBUG_ON's mempool poisoning, off under KASAN (kasan_enabled()).
        self.slub_debug_on = config.debug.slub_debug_on and not config.kasan.enabled
        self.sched = sched.Scheduler(self, cfg.cpus, len(cfg.nodes), cfg.sched)
        self.clock = timer.Clock(cfg.hz, self.BITS_PER_LONG, self.sched.now_ns)
        self.log = LogBuf(cfg.log_buf_len, self.clock.now_ns, cfg.console)
        # printk_ratelimit(): the machine-wide state, 10 messages per 5 s.
        self.printk_ratelimit = RateLimit(self.log, self.clock, 5 * cfg.hz, 10,
                                          "printk_ratelimit")
        self.bugs = BugState(self)
        self.warnings: list[str] = []
        self.oops_flags = "PREEMPT SMP" + (" KASAN" if config.kasan.enabled else "") + " NOPTI"
        self.lock_spinners: dict[int, list] = {}   # spinlock_t * -> tasks spinning on it
        # register_reboot_notifier(): called at shutdown, before the memory goes.
        self.reboot_notifiers: list = []
        self.waitqueues: dict[int, wait.WaitQueueHead] = {}
        self.nodes = build_nodes(cfg)
        self.highmem: Highmem | None = None
        layout = plan_layout(cfg)
        off, size = layout["kasan shadow"]
        problems = selfcheck(cfg, off + size)
        if problems:
            raise MachineError("cannot boot machine " + repr(self.name) + ":\n  "
                               + "\n  ".join(problems))
        self.space = AddressSpace.reserve(self, off + size)
        try:
            self.ram = PhysMem(cfg.ram_end, self.name)
            try:
                self._map_regions(cfg, layout)
            except BaseException:
                self.ram.close()
                raise
        except BaseException:
            if hasattr(self, "memmap"):   # its numpy array would keep the memory mapped
                self.memmap.close()
            self.space.release()
            raise
        self.layout = {name: (self.space.base + o, s) for name, (o, s) in layout.items()}
        self.kasan = Kasan(self, config.kasan)
        self.kasan_check = self.kasan.check_access if self.kasan.enabled else None
        # The static keys of this machine's features, on until shutdown.
        self.static_keys = [key for key, on in ((jump_label.KASAN, self.kasan.enabled),
                                                (jump_label.SLUB_DEBUG, self.slub_debug_on))
                            if on]
        for key in self.static_keys:
            key.inc()
        self.vmstat = VmStat()
        self.fault = FaultInjection(self, config.fault_injection)
        self.alloc_tags = AllocTags(config.vm.mem_profiling)
        self.page_alloc = PageAlloc(self, config.vm)
        self.slab = Slab(self)
        self.vmalloc = Vmalloc(self, cfg)
        self.vmscan = Vmscan(self)
        self.oom = OOMKiller(self)
        self.procfs = ProcFS(self, cfg)
        self.sched.boot_task()
        self._boot_log(cfg)
        self.vmscan.start()

    # ------------------------------------------------------------ boot steps

    def _map_regions(self, cfg, layout) -> None:
        space, base = self.space, self.space.base
        page_offset = base + layout["direct map"][0]
        lowmem_end = min(cfg.lowmem_limit, cfg.ram_end)
        mapped = 0
        for nid, (start, end) in enumerate(cfg.node_ranges):
            end = min(end, lowmem_end)
            if start >= end:
                continue
            mapped += end - start
            space.map_ram(page_offset + start, end - start, self.ram.fd, start)
            space.add_region(Region(page_offset + start, page_offset + end, "direct map",
                                    "linear", node=nid, phys=start))
        if mapped == lowmem_end:  # no hole anywhere in the direct map
            space.fast_lo, space.fast_hi = page_offset, page_offset + lowmem_end
        off, size = layout["vmalloc"]
        space.add_window(base + off, size >> PAGE_SHIFT, "vmalloc")
        off, size = layout["vmemmap"]
        space.map_anon(base + off, align_up(size, PAGE_SIZE))
        self.memmap = MemMap(self, base + off, self.nodes, page_offset,
                             lowmem_end >> PAGE_SHIFT)
        space.add_region(Region(base + off, base + off + size, "vmemmap", "anon",
                                on_access=self.memmap.on_access))
        if cfg.highmem_enabled:
            self.highmem = Highmem(self, base + layout["pkmap"][0], cfg.last_pkmap,
                                   base + layout["fixmap"][0])
        off, size = layout["kasan shadow"]
        self.KASAN_SHADOW_OFFSET = base + off - (base >> KASAN_SHADOW_SCALE_SHIFT)
        if self.config.kasan.enabled:
            space.map_anon(base + off, size)
            space.add_region(Region(base + off, base + off + size, "kasan shadow", "anon"))

    def _boot_log(self, cfg) -> None:
        lines = [f"Linux version {UTS_RELEASE} (hwemu) #1 SMP PREEMPT",
                 f"Command line: hwemu machine={self.name}",
                 "BIOS-provided physical RAM map:"]
        lines += [f"BIOS-e820: [mem {s:#018x}-{e - 1:#018x}] usable"
                  for s, e in cfg.node_ranges]
        lines.append("Zone ranges:")
        for z in [z for z, _, _ in zone_limits(cfg)]:
            spans = [n.node_zones[z] for n in self.nodes if n.node_zones[z].populated()]
            rng = (f"[mem {spans[0].zone_start_pfn << PAGE_SHIFT:#018x}-"
                   f"{(spans[-1].zone_end_pfn << PAGE_SHIFT) - 1:#018x}]" if spans else "empty")
            lines.append(f"  {ZONE_NAMES[z]:<8} {rng}")
        lines.append("Movable zone start for each node")
        for n in self.nodes:
            mz = n.node_zones[ZONE_MOVABLE]
            if mz.populated():
                lines.append(f"  Node {n.node_id}: {mz.zone_start_pfn << PAGE_SHIFT:#018x}")
        lines.append("Early memory node ranges")
        for n in self.nodes:
            lines.append(f"  node {n.node_id:3d}: [mem {n.node_start_pfn << PAGE_SHIFT:#018x}-"
                         f"{(n.node_end_pfn << PAGE_SHIFT) - 1:#018x}]")
        if self.highmem:
            high = cfg.ram_end - self.memmap.max_low_pfn * PAGE_SIZE
            lines.append(f"{high >> 20}MB HIGHMEM available.")
            lines.append(f"{self.memmap.max_low_pfn * PAGE_SIZE >> 20}MB LOWMEM available.")
        total = sum(n.node_spanned_pages for n in self.nodes) * PAGE_SIZE >> 10
        lines.append(f"Memory: {total}K/{total}K available")
        lines.append(f"smp: Brought up {len(self.nodes)} node(s), {cfg.cpus} CPU(s)")
        self.log.printk("\n".join(lines))

    # ------------------------------------------------------------ the API

    def _alive(self) -> None:
        if self.down:
            raise MachineDown(f"machine {self.name!r} has been shut down")

    @property
    def HZ(self) -> int:
        return self.clock.hz

    @property
    def jiffies(self) -> int:
        return self.clock.jiffies()

    @property
    def tainted(self) -> str:
        return self.bugs.tainted()

    def maps(self) -> str:
        """The region table, ``/proc/self/maps`` style (start-end perms label node)."""
        self._alive()
        with self.space.pgtable_lock:
            return self.space.maps()

    def dmesg(self) -> str:
        """The kernel log, as ``dmesg`` prints it."""
        return self.log.dmesg()

    def drgn(self):
        """A ``drgn.Program`` over this machine (:mod:`hwemu.drgn_program`); needs drgn
        (``pip install 'hwemu[drgn]'``)."""
        from .drgn_program import drgn_program
        return drgn_program(self)

    def spawn(self, fn, *args, name: str | None = None, cpu: int | None = None):
        """Start ``fn(*args)`` as a new task on a free CPU; returns a handle to ``join()``.

        The task runs when the scheduler picks it: at the caller's next scheduling
        point (a sleep, a join, a preemption point)."""
        self._alive()
        return self.sched.spawn(fn, *args, name=name, cpu=cpu)

    def interrupt(self, fn, *args, cpu: int | None = None, softirq: bool = False):
        """Run ``fn(*args)`` in interrupt context on an idle CPU (its ``swapper/N``).

        Returns the task handle; ``join()`` gives ``fn``'s result. To interrupt the
        calling task itself, use :func:`hwemu.run_in_interrupt`.
        """
        self._alive()
        free = cpu if cpu is not None else next(
            (c.id for c in self.sched.cpus if c.task is None), None)
        if free is None:
            raise MachineError(f"interrupt: every CPU of {self.name!r} runs a task")
        handler = functools.partial(sched.run_in_interrupt, fn, *args, softirq=softirq)
        return self.spawn(handler, name=f"swapper/{free}", cpu=free)

    def task_exit_hooks(self, task) -> None:
        """``do_exit()``: drop the task's kmap_local slots and its memory."""
        if self.highmem is not None:
            self.highmem.task_exit(task)
        if self.vmscan.rss(task.pid):
            self.vmscan.release_anon_pages(task)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the machine: stop and join its tasks, then unmap everything.

        Every other task gets :class:`MachineDown` at its next scheduling point. If one
        has not finished after ``timeout`` seconds of emulated time, the machine stays
        up and :class:`MachineError` is raised.
        """
        if self.down:
            return
        me = current_on(self)
        if me is not None and me is not self.sched.boot:
            raise MachineError("shutdown() called from one of the machine's own tasks")
        self.going_down = True
        stuck = self.sched.shutdown(me, timeout) if me is not None else []
        if stuck:
            self.going_down = False
            raise MachineError(f"shutdown of {self.name!r}: task(s) still running after "
                               f"{timeout}s: "
                               f"{', '.join(f'{t.comm}/{t.pid}' for t in stuck)}")
        self.log.printk("reboot: Power down")
        for notifier in self.reboot_notifiers:   # the layers above let go of the machine
            notifier()
        self.down = True
        self.alloc_tags.close()
        for key in self.static_keys:
            key.dec()
        if me is not None:
            leave(me)
        self.memmap.close()    # its numpy array first: a live export keeps memory mapped
        self.space.release()   # every view released: a stale one raises MachineDown
        self.kasan.mv = self.space.mv
        self.ram.close()

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "down" if self.down else f"{len(self.nodes)} node(s), {len(self.sched.cpus)} CPUs"
        return f"<Machine {self.name!r}: {state}>"


def boot(config=None, *, overrides: dict | None = None) -> Machine:
    """Boot a machine.

    :param config: None (the packaged default), a path to a YAML file, the name of a
        packaged config (``"tiny"``; a path that exists wins), a dict in the YAML
        schema, or a :class:`~hwemu.config.Config`.
    :param overrides: dotted keys to values applied on top (``{"machine.cpus": 8}``).
    """
    if not isinstance(config, Config):
        config = load_config(config, overrides=overrides)
    return Machine(config)
