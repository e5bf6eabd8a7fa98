"""Booting and shutting down machines: layout, boot log, coexistence, tasks, host checks."""
import builtins
import io
import os
import re
import resource
from pathlib import Path

import pytest

import hwemu
from helpers import wait_until
import hwemu.machine
from hwemu import vmem

K, M, G = 1 << 10, 1 << 20, 1 << 30
PAGE = 4096
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CONFIG_NAMES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
REGION_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) (\S{3})p (.+)$")


def parse_maps(text):
    """``[(start, end, perms, label)]`` of the region lines of ``machine.maps()``."""
    regions = []
    for line in text.splitlines():
        m = REGION_RE.match(line)
        assert m, f"unexpected maps line {line!r}"
        regions.append((int(m[1], 16), int(m[2], 16), m[3], m[4]))
    return regions


@pytest.fixture(params=CONFIG_NAMES + [None], ids=CONFIG_NAMES + ["default"])
def any_config(request):
    """(resolved machine config, booted machine) of every configs/*.yaml and the default."""
    name = request.param
    if name is None:
        cfg, m = hwemu.load_config(), hwemu.boot()
    else:
        cfg, m = hwemu.load_config(CONFIGS / f"{name}.yaml"), hwemu.boot(CONFIGS / f"{name}.yaml")
    yield cfg.machine, m
    m.shutdown()


# ---------------------------------------------------------------------------- layout


def test_maps_layout(any_config):
    cfg, m = any_config
    regions = parse_maps(m.maps())
    base, end = m.space.base, m.space.end
    labels = [r[3] for r in regions]
    i386 = cfg.arch == "i386"
    lowmem = min(896 * M, cfg.ram_end) if i386 else cfg.ram_end

    # Inside the reservation, in address order, no overlaps.
    for start, stop, _, label in regions:
        assert base <= start < stop <= end, label
    for (_, prev_end, _, a), (start, _, _, b) in zip(regions, regions[1:]):
        assert prev_end <= start, f"{a} overlaps {b}"

    # One direct map line per node that has lowmem, at page_offset + node start.
    direct = [r for r in regions if r[3].startswith("direct map")]
    expect_nodes = [(nid, s, min(e, lowmem)) for nid, (s, e) in enumerate(cfg.node_ranges)
                    if s < lowmem]
    assert [r[3] for r in direct] == [f"direct map node{nid}" for nid, _, _ in expect_nodes]
    page_offset = hwemu.page_address(hwemu.pfn_to_page(0))
    for (start, stop, perms, _), (_nid, s, e) in zip(direct, expect_nodes):
        assert (start, stop, perms) == (page_offset + s, page_offset + e, "rw-")
    assert sum(stop - start for start, stop, _, _ in direct) == lowmem
    assert lowmem == (896 * M if i386 else cfg.ram_end)

    def one(label):
        found = [r for r in regions if r[3] == label]
        assert len(found) == 1, f"{label}: {found}"
        return found[0]

    start, stop, perms, _ = one("vmalloc")
    assert stop - start == (128 * M if i386 else G) and perms == "---"
    start, stop, perms, _ = one("vmemmap")
    assert stop - start == cfg.ram_end // PAGE * 64 and perms == "rw-"
    assert hwemu.pfn_to_page(0) == start
    if i386:
        start, stop, perms, _ = one("pkmap")
        assert stop - start == (512 if cfg.pae else 1024) * PAGE and perms == "---"
        start, stop, perms, _ = one("fixmap kmap_local")
        assert stop - start == 16 * cfg.cpus * PAGE and perms == "---"
    else:
        assert "pkmap" not in labels and "fixmap kmap_local" not in labels
    kasan = m.config.kasan.enabled
    assert ("kasan shadow" in labels) == kasan
    assert len(regions) == len(direct) + (4 if i386 else 2) + kasan


@pytest.mark.parametrize("name", ["tiny", "i386-highmem"])
def test_kasan_shadow_covers_the_reservation(boot, name):
    m = boot(name, kasan__enabled=True)
    regions = parse_maps(m.maps())
    shadow = [r for r in regions if r[3] == "kasan shadow"]
    assert len(shadow) == 1
    start, stop, perms, _ = shadow[0]
    assert perms == "rw-" and stop == m.space.end
    # kasan_mem_to_shadow() of every byte of the reservation (the shadow included)
    # lands inside the shadow region.
    for addr in (m.space.base, start, m.space.end - 1):
        s = (addr >> 3) + m.KASAN_SHADOW_OFFSET
        assert start <= s < stop
    assert hwemu.load(start, 8) == 0  # mapped and zeroed


# ---------------------------------------------------------------------------- boot log


def zone_range_lines(cfg):
    """The kernel's "Zone ranges:" block, from the x86 zone limits and the RAM end."""
    if cfg.arch == "x86_64":
        limits = [("DMA", 0, 16 * M), ("DMA32", 16 * M, 4 * G), ("Normal", 4 * G, 1 << 64)]
    else:
        limits = [("DMA", 0, 16 * M), ("Normal", 16 * M, 896 * M),
                  ("HighMem", 896 * M, 1 << 64)]
    lines = []
    for name, lo, hi in limits:
        hi = min(hi, cfg.ram_end)
        rng = f"[mem {lo:#018x}-{hi - 1:#018x}]" if lo < hi else "empty"
        lines.append(f"  {name:<8} {rng}")
    return lines


def log_lines(m):
    return [re.sub(r"^\[\s*\d+\.\d{6}\] ", "", line) for line in m.dmesg().splitlines()]


def test_boot_log(any_config):
    cfg, m = any_config
    lines = log_lines(m)
    i = lines.index("Zone ranges:")
    expect = zone_range_lines(cfg)
    assert lines[i + 1:i + 1 + len(expect)] == expect
    j = lines.index("Early memory node ranges")
    nodes = [f"  node {nid:3d}: [mem {s:#018x}-{e - 1:#018x}]"
             for nid, (s, e) in enumerate(cfg.node_ranges)]
    assert lines[j + 1:j + 1 + len(nodes)] == nodes
    if cfg.arch == "i386":
        assert "896MB LOWMEM available." in lines
        assert f"{(cfg.ram_end - 896 * M) >> 20}MB HIGHMEM available." in lines
    else:
        assert not any("LOWMEM" in line or "HIGHMEM" in line for line in lines)
    assert f"smp: Brought up {len(cfg.nodes)} node(s), {cfg.cpus} CPU(s)" in lines


def test_boot_log_highmem_sizes(boot):
    m = boot("i386-highmem")
    assert "1152MB HIGHMEM available." in log_lines(m)
    m = boot("i386-pae-highmem")
    assert "5248MB HIGHMEM available." in log_lines(m)


def test_boot_log_movable_zone_start(boot):
    m = boot({"machine": {"name": "movable", "nodes": [{"mem": "256M"}, {"mem": "256M"}],
                          "movablecore": "128M"}})
    lines = log_lines(m)
    i = lines.index("Movable zone start for each node")
    assert lines[i + 1:i + 3] == ["  Node 0: 0x000000000c000000",
                                  "  Node 1: 0x000000001c000000"]


# ---------------------------------------------------------------------------- lifetime


def direct(m, phys):
    return m.layout["direct map"][0] + phys


@pytest.mark.parametrize("first_down", [0, 1], ids=["older-first", "newer-first"])
def test_two_machines_coexist(boot, first_down):
    machines = [boot("tiny"), boot("i386-highmem")]
    a, b = machines
    assert a.space.end <= b.space.base or b.space.end <= a.space.base
    phys = 5 * M + 24
    hwemu.store(direct(a, phys), 8, 0xAAAA_AAAA)
    hwemu.store(direct(b, phys), 8, 0xBBBB_BBBB)
    assert hwemu.load(direct(a, phys), 8) == 0xAAAA_AAAA
    assert hwemu.load(direct(b, phys), 8) == 0xBBBB_BBBB
    assert os.pread(a.ram.fd, 8, phys) == (0xAAAA_AAAA).to_bytes(8, "little")
    assert os.pread(b.ram.fd, 8, phys) == (0xBBBB_BBBB).to_bytes(8, "little")

    dead, alive = machines[first_down], machines[1 - first_down]
    dead.shutdown()
    with pytest.raises(hwemu.MachineDown):
        hwemu.load(direct(dead, phys), 8)
    # The survivor still works, and is now the current machine of this thread.
    assert hwemu.load(direct(alive, phys), 8) == (0xAAAA_AAAA if alive is a else 0xBBBB_BBBB)
    assert hwemu.pfn_to_page(0) == alive.layout["vmemmap"][0]
    assert hwemu.page_address(hwemu.pfn_to_page(5 * M // PAGE)) == direct(alive, 5 * M)
    alive.shutdown()
    assert dead.down and alive.down

    third = boot("tiny")
    hwemu.store(direct(third, phys), 8, 0x3333)
    assert hwemu.load(direct(third, phys), 8) == 0x3333
    assert hwemu.pfn_to_page(0) == third.layout["vmemmap"][0]


def test_after_shutdown_everything_raises_machine_down(machine):
    page = hwemu.pfn_to_page(100)
    addr = hwemu.page_address(page)
    hwemu.store(addr, 8, 42)
    machine.shutdown()
    assert machine.down
    for fn, args in [(hwemu.load, (addr, 8)), (hwemu.store, (addr, 8, 1)),
                     (hwemu.read_bytes, (addr, 16)), (hwemu.memset, (addr, 0, 8)),
                     (hwemu.load, (page, 8)), (hwemu.page_to_pfn, (page,)),
                     (hwemu.page_address, (page,)), (hwemu.virt_to_phys, (addr,)),
                     (hwemu.kmap_local_page, (page,))]:
        with pytest.raises(hwemu.MachineDown) as info:
            fn(*args)
        msg = str(info.value)
        assert "'tiny'" in msg and "shut down" in msg, msg
    with pytest.raises(hwemu.MachineDown, match="shut down"):
        machine.spawn(lambda: None)
    with pytest.raises(hwemu.MachineDown):
        machine.maps()
    machine.shutdown()   # twice is harmless
    assert machine.dmesg().count("reboot: Power down") == 1


def test_kmap_after_shutdown_raises_machine_down(machine):
    page = hwemu.pfn_to_page(100)
    machine.shutdown()
    with pytest.raises(hwemu.MachineDown, match="shut down"):
        hwemu.kmap(page)


def test_kmap_of_dead_machine_page_while_another_lives(boot):
    dead, alive = boot("tiny"), boot("tiny")
    page = dead.layout["vmemmap"][0] + 100 * 64
    dead.shutdown()
    with pytest.raises(hwemu.MachineDown, match="shut down"):
        hwemu.kmap(page)
    assert hwemu.kmap(hwemu.pfn_to_page(100)) == direct(alive, 100 * PAGE)


def test_context_manager_shuts_down():
    with hwemu.boot(CONFIGS / "tiny.yaml") as m:
        addr = direct(m, 0)
        hwemu.store(addr, 4, 7)
        assert not m.down
    assert m.down
    with pytest.raises(hwemu.MachineDown):
        hwemu.load(addr, 4)
    with pytest.raises(ZeroDivisionError):
        with hwemu.boot(CONFIGS / "tiny.yaml") as m2:
            raise ZeroDivisionError("the block fails")
    assert m2.down


# ---------------------------------------------------------------------------- tasks


def test_spawn_join_returns_value_and_reraises(machine):
    assert machine.spawn(lambda a, b: a * b, 6, 7).join(timeout=10) == 42
    boom = ValueError("boom")

    def fail():
        raise boom
    h = machine.spawn(fail)
    with pytest.raises(ValueError) as info:
        h.join(timeout=10)
    assert info.value is boom
    assert not h.is_alive()


def test_spawned_tasks_get_distinct_cpus_and_pids(machine):
    release = hwemu.completion()
    seen = []
    n = 7   # tiny has 8 CPUs; init runs on CPU 0

    def worker():
        seen.append((hwemu.smp_processor_id(), hwemu.current().pid))
        hwemu.wait_for_completion(release)
        return hwemu.smp_processor_id()

    handles = []
    try:
        for _ in range(n):
            handles.append(machine.spawn(worker))
        assert wait_until(lambda: len(seen) == n)
        cpus = sorted(c for c, _ in seen)
        pids = [p for _, p in seen]
        assert cpus == list(range(1, 8))
        assert len(set(pids)) == n and 1 not in pids
        assert sorted(pids) == sorted(h.pid for h in handles)
        with pytest.raises(hwemu.MachineError, match="CPUs"):
            machine.spawn(worker)
    finally:
        hwemu.complete_all(release)
    assert sorted(h.join(timeout=10) for h in handles) == list(range(1, 8))
    # Their CPUs are free again.
    assert machine.spawn(hwemu.smp_processor_id).join(timeout=10) == 1


def test_spawn_on_a_chosen_cpu(machine):
    release = hwemu.completion()
    h = machine.spawn(lambda: (hwemu.wait_for_completion(release),
                               hwemu.smp_processor_id())[1], cpu=5)
    try:
        with pytest.raises(hwemu.MachineError, match="CPU 5"):
            machine.spawn(lambda: None, cpu=5)
        with pytest.raises(hwemu.MachineError, match="CPU 0"):
            machine.spawn(lambda: None, cpu=0)   # init runs there
        with pytest.raises(hwemu.MachineError):
            machine.spawn(lambda: None, cpu=8)
    finally:
        hwemu.complete_all(release)
    assert h.join(timeout=10) == 5
    assert machine.spawn(hwemu.smp_processor_id, cpu=7).join(timeout=10) == 7


def test_shutdown_wakes_a_sleeping_task(machine):
    def sleeper():
        hwemu.set_current_state(hwemu.TASK_UNINTERRUPTIBLE)
        hwemu.schedule()
        return "woke up normally"

    h = machine.spawn(sleeper)
    assert wait_until(lambda: h.task.state == hwemu.TASK_UNINTERRUPTIBLE)
    machine.shutdown(timeout=5)
    assert machine.down and not h.is_alive()
    with pytest.raises(hwemu.MachineDown, match="shutting down"):
        h.join(timeout=1)


def test_shutdown_wakes_a_task_that_goes_to_sleep_during_shutdown(machine):
    def late_sleeper():
        try:
            hwemu.msleep(10_000)
        except hwemu.MachineDown:   # shutdown() woke every task by now
            pass
        hwemu.set_current_state(hwemu.TASK_UNINTERRUPTIBLE)
        hwemu.schedule()   # a sleep after the stop began must not hold it up

    h = machine.spawn(late_sleeper)
    assert wait_until(lambda: h.task.state == hwemu.TASK_UNINTERRUPTIBLE)
    machine.shutdown(timeout=1)
    with pytest.raises(hwemu.MachineDown):
        h.join(timeout=1)


# ---------------------------------------------------------------------------- selfcheck


def tiny_cfg():
    return hwemu.load_config(CONFIGS / "tiny.yaml").machine


def test_selfcheck_passes_on_this_host():
    assert hwemu.machine.selfcheck(tiny_cfg(), 4 * G) == []


def test_selfcheck_rlimit_as(monkeypatch):
    monkeypatch.setattr(resource, "getrlimit", lambda which: (G, resource.RLIM_INFINITY))
    problems = hwemu.machine.selfcheck(tiny_cfg(), 4 * G)
    assert len(problems) == 1
    assert "RLIMIT_AS is 1G" in problems[0] and "4G" in problems[0]
    assert "ulimit -v unlimited" in problems[0]
    live = vmem.live_spaces()
    with pytest.raises(hwemu.MachineError, match="ulimit -v unlimited") as info:
        hwemu.boot(CONFIGS / "tiny.yaml")
    assert "cannot boot machine 'tiny'" in str(info.value)
    assert vmem.live_spaces() == live   # nothing reserved


def test_selfcheck_max_map_count(monkeypatch):
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/sys/vm/max_map_count":
            return io.StringIO("1000\n")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(hwemu.machine, "open", fake_open, raising=False)
    cfg = hwemu.load_config(CONFIGS / "i386-highmem.yaml").machine
    problems = hwemu.machine.selfcheck(cfg, 4 * G)
    assert len(problems) == 1
    m = re.fullmatch(r"vm\.max_map_count is 1000 but this machine may need (\d+) mappings: "
                     r"run `sysctl -w vm\.max_map_count=(\d+)`", problems[0])
    assert m, problems[0]
    need, suggested = int(m[1]), int(m[2])
    # Every PKMAP and fixmap slot may split the window's mapping.
    assert need > 2 * (1024 + 16 * cfg.cpus)
    assert suggested >= need
    with pytest.raises(hwemu.MachineError, match="sysctl -w vm.max_map_count="):
        hwemu.boot(CONFIGS / "i386-highmem.yaml")


def test_selfcheck_without_procfs(monkeypatch):
    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", path)

    monkeypatch.setattr(hwemu.machine, "open", no_proc, raising=False)
    problems = hwemu.machine.selfcheck(tiny_cfg(), 4 * G)
    assert len(problems) == 1 and "procfs" in problems[0] and "/proc" in problems[0]


# ---------------------------------------------------------------------------- RAM


def test_ram_is_sparse(boot):
    m = boot({"machine": {"name": "big64", "cpus": 2,
                          "nodes": [{"mem": "32G"}, {"mem": "32G"}]}})
    assert m.ram.resident_bytes() < 4 * M
    # Touching struct pages (vmemmap, not RAM) does not populate RAM either.
    last = hwemu.pfn_to_page(64 * G // PAGE - 1)
    assert hwemu.page_to_nid(last) == 1 and hwemu.page_ref_count(last) == 0  # free
    assert m.ram.resident_bytes() < 4 * M

    before = m.ram.resident_bytes()
    spots = [i * (4 * G) + 123 * PAGE for i in range(16)]   # 16 pages over 64G
    for i, phys in enumerate(spots):
        hwemu.store(hwemu.__va(phys), 8, 0x1000 + i)
    grown = m.ram.resident_bytes() - before
    assert grown >= len(spots) * PAGE
    assert grown <= len(spots) * 2 * M     # at most a huge page each
    for i, phys in enumerate(spots):
        assert os.pread(m.ram.fd, 8, phys) == (0x1000 + i).to_bytes(8, "little")


# ---------------------------------------------------------------------------- aliasing


def test_direct_map_aliases_physical_memory(machine):
    phys = 3 * M + 8
    hwemu.store(hwemu.__va(phys), 8, 0x0123_4567_89AB_CDEF)
    assert os.pread(machine.ram.fd, 8, phys) == (0x0123_4567_89AB_CDEF).to_bytes(8, "little")
    os.pwrite(machine.ram.fd, b"physical", phys + 64)
    assert hwemu.read_bytes(hwemu.__va(phys + 64), 8) == b"physical"
    page = hwemu.virt_to_page(hwemu.__va(phys))
    vaddr = hwemu.kmap(page)   # x86_64: no highmem, kmap is page_address
    assert vaddr == hwemu.page_address(page)
    assert hwemu.load(vaddr + 8, 8) == 0x0123_4567_89AB_CDEF
    hwemu.kunmap(page)


def test_highmem_aliases(highmem_machine):
    m = highmem_machine
    low = hwemu.pfn_to_page(100)
    assert hwemu.kmap(low) == hwemu.page_address(low) == hwemu.__va(100 * PAGE)
    hwemu.kunmap(low)

    pfn = (1536 * M) // PAGE
    high = hwemu.pfn_to_page(pfn)
    a = hwemu.kmap(high)
    b = hwemu.kmap_local_page(high)
    try:
        assert a != b
        hwemu.write_bytes(a + 100, b"via kmap")
        assert hwemu.read_bytes(b + 100, 8) == b"via kmap"
        hwemu.store(b + 200, 4, 0xFEEDF00D)
        assert hwemu.load(a + 200, 4) == 0xFEEDF00D
        assert os.pread(m.ram.fd, 8, pfn * PAGE + 100) == b"via kmap"
    finally:
        hwemu.kunmap_local(b)
        hwemu.kunmap(high)


def test_vm_sysctls_set_the_watermarks(boot):
    m = boot("tiny", vm__min_free_kbytes=4096, vm__watermark_scale_factor=100)
    dma, dma32 = (z for z in m.page_alloc.zones if z.managed_pages)
    # 4096 KiB = 1024 pages of min, shared by managed pages (3840 : 12288).
    assert dma.min_wmark_pages() == 1024 * 3840 // 16128
    assert dma32.min_wmark_pages() == 1024 * 12288 // 16128
    # low - min = max(min / 4, managed * 100 / 10000)
    assert dma32.low_wmark_pages() - dma32.min_wmark_pages() == max(780 // 4, 12288 // 100)


def test_static_keys_are_on_while_a_machine_with_the_feature_lives():
    from hwemu.jump_label import KASAN, SLUB_DEBUG
    kasan, slub = KASAN.count, SLUB_DEBUG.count
    with hwemu.boot("configs/tiny.yaml", overrides={"kasan.enabled": True}):
        assert (KASAN.count, SLUB_DEBUG.count) == (kasan + 1, slub) and KASAN.enabled
        with hwemu.boot("configs/tiny.yaml", overrides={"debug.slub_debug_on": True}):
            assert (KASAN.count, SLUB_DEBUG.count) == (kasan + 1, slub + 1)
    assert (KASAN.count, SLUB_DEBUG.count) == (kasan, slub)
    assert KASAN.enabled == (kasan > 0) and SLUB_DEBUG.enabled == (slub > 0)


def test_kasan_of_a_shut_down_machine_raises_instead_of_reading_unmapped_memory():
    m = hwemu.boot("configs/tiny.yaml", overrides={"kasan.enabled": True})
    addr = m.layout["direct map"][0] + 4096
    m.shutdown()
    with pytest.raises(hwemu.MachineDown):   # not a SIGSEGV of the interpreter
        m.kasan.check_access(addr, 8, False)
