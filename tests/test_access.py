"""The instrumented accessors: load/store/read_bytes/write_bytes/memset/memcpy.

Valid accesses must reach the machine's RAM (checked against the RAM file itself with
``os.pread``); invalid ones must become a kernel page-fault oops and never a host
SIGSEGV, which would kill the interpreter.
"""
import bisect
import os
import random
import re
import subprocess
import sys
import textwrap

import pytest

import hwemu
from hwemu import vmem

K, M, G = 1 << 10, 1 << 20, 1 << 30
PAGE = 4096
SIZES = (1, 2, 4, 8, 16)


def page_offset(m):
    return m.layout["direct map"][0]


def log_lines(m):
    return [re.sub(r"^\[\s*\d+\.\d{6}\] ", "", line) for line in m.dmesg().splitlines()]


def fault_line(addr):
    if addr < 4096:
        return f"BUG: kernel NULL pointer dereference, address: {addr:016x}"
    return f"BUG: unable to handle page fault for address: {addr:016x}"


# ---------------------------------------------------------------------------- load/store


@pytest.mark.parametrize("size", SIZES)
def test_load_store_round_trip(machine, size):
    bits = 8 * size
    phys = 7 * M + 3   # unaligned: x86 allows it
    addr = hwemu.__va(phys)
    rng = random.Random(size)
    for value in (0, 1, (1 << bits) - 1, 1 << (bits - 1), rng.getrandbits(bits)):
        hwemu.store(addr, size, value)
        assert hwemu.load(addr, size) == value
        assert os.pread(machine.ram.fd, size, phys) == value.to_bytes(size, "little")
    # Neighbouring bytes are untouched.
    hwemu.memset(addr - 1, 0x5A, size + 2)
    hwemu.store(addr, size, 0)
    assert hwemu.read_bytes(addr - 1, size + 2) == b"\x5a" + bytes(size) + b"\x5a"


@pytest.mark.parametrize("size", SIZES)
def test_store_signed_values_as_twos_complement(machine, size):
    bits = 8 * size
    addr = hwemu.__va(PAGE)
    for value in (-1, -2, -(1 << (bits - 1)), -(1 << (bits - 1)) + 1):
        hwemu.store(addr, size, value)
        assert hwemu.load(addr, size) == value & ((1 << bits) - 1)
    hwemu.store(addr, size, -1)
    assert hwemu.read_bytes(addr, size) == b"\xff" * size


@pytest.mark.parametrize("size", SIZES)
def test_store_rejects_values_that_do_not_fit(machine, size):
    bits = 8 * size
    addr = hwemu.__va(PAGE)
    hwemu.store(addr, size, 0x11)
    for value in (1 << bits, (1 << bits) + 1, -(1 << (bits - 1)) - 1, 1 << 200):
        with pytest.raises(ValueError):
            hwemu.store(addr, size, value)
    assert hwemu.load(addr, size) == 0x11   # nothing was written


@pytest.mark.parametrize("size", [0, 3, 5, 6, 7, 9, 32, -1])
def test_bad_sizes_are_rejected(machine, size):
    addr = hwemu.__va(PAGE)
    with pytest.raises(ValueError):
        hwemu.load(addr, size)
    with pytest.raises(ValueError):
        hwemu.store(addr, size, 0)
    assert machine.tainted == "Not tainted"


def test_little_endian_layout(machine):
    addr = hwemu.__va(2 * PAGE)
    hwemu.store(addr, 8, 0x1122_3344_5566_7788)
    assert hwemu.read_bytes(addr, 8) == bytes.fromhex("8877665544332211")
    assert hwemu.load(addr, 2) == 0x7788
    assert hwemu.load(addr + 4, 4) == 0x1122_3344
    hwemu.write_bytes(addr, bytes(range(16)))
    assert hwemu.load(addr, 16) == int.from_bytes(bytes(range(16)), "little")


def test_non_int_address_and_negative_length(machine):
    addr = hwemu.__va(PAGE)
    for bad in ("0x1000", 4096.0, None, True, [addr]):
        with pytest.raises(TypeError):
            hwemu.load(bad, 8)
        with pytest.raises(TypeError):
            hwemu.store(bad, 8, 0)
        with pytest.raises(TypeError):
            hwemu.read_bytes(bad, 8)
        with pytest.raises(TypeError):
            hwemu.write_bytes(bad, b"x")
    for call in (lambda: hwemu.read_bytes(addr, -1), lambda: hwemu.memset(addr, 0, -1),
                 lambda: hwemu.memcpy(addr, addr + 64, -1)):
        with pytest.raises(ValueError):
            call()
    assert machine.tainted == "Not tainted"   # none of these is an oops


# ---------------------------------------------------------------------------- memset/memcpy


def test_memset_memcpy_across_a_page_boundary(machine):
    fd = machine.ram.fd
    phys = 10 * M + PAGE - 10            # 20 bytes over the end of a page
    addr = hwemu.__va(phys)
    hwemu.memset(addr - 8, 0, 36)
    assert hwemu.memset(addr, 0x1AB, 20) == addr   # c is converted to unsigned char
    assert os.pread(fd, 36, phys - 8) == bytes(8) + b"\xab" * 20 + bytes(8)

    src = hwemu.__va(20 * M + PAGE - 100)
    pattern = bytes(range(200))
    hwemu.write_bytes(src, pattern)
    dst = hwemu.__va(30 * M + 2 * PAGE - 50)
    assert hwemu.memcpy(dst, src, 200) == dst
    assert hwemu.read_bytes(dst, 200) == pattern
    assert os.pread(fd, 200, 30 * M + 2 * PAGE - 50) == pattern
    # Overlapping copy behaves as memmove.
    hwemu.memcpy(dst + 10, dst, 150)
    assert hwemu.read_bytes(dst, 200) == pattern[:10] + pattern[:150] + pattern[160:]


def test_memset_memcpy_across_node_boundaries(boot):
    m = boot("x86_64-numa4")
    fd = m.ram.fd
    start = G - 100                      # last 100 bytes of node 0, first 100 of node 1
    addr = hwemu.__va(start)
    assert hwemu.page_to_nid(hwemu.virt_to_page(addr)) == 0
    assert hwemu.page_to_nid(hwemu.virt_to_page(addr + 199)) == 1
    hwemu.memset(addr, 0x5A, 200)
    assert os.pread(fd, 202, start - 1) == b"\x00" + b"\x5a" * 200 + b"\x00"

    pattern = os.urandom(3 * PAGE)
    src_phys, dst_phys = 2 * G - PAGE, 3 * G - 2 * PAGE   # nodes 1|2 and 2|3
    hwemu.write_bytes(hwemu.__va(src_phys), pattern)
    assert os.pread(fd, len(pattern), src_phys) == pattern
    hwemu.memcpy(hwemu.__va(dst_phys), hwemu.__va(src_phys), len(pattern))
    assert os.pread(fd, len(pattern), dst_phys) == pattern
    assert hwemu.read_bytes(hwemu.__va(dst_phys), len(pattern)) == pattern


# ---------------------------------------------------------------------------- wild accesses

MAPS_REGION = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) (\S{3})p (.+)$")
MAPS_PTE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) rw-s\s+(.+)\[(\d+)\] pfn 0x[0-9a-f]+$")


class MappedSet:
    """What ``machine.maps()`` says is mapped: rw regions plus mapped window PTEs."""

    def __init__(self, machine):
        self.regions, self.windows, spans = [], [], []
        for line in machine.maps().splitlines():
            if m := MAPS_REGION.match(line):
                start, end = int(m[1], 16), int(m[2], 16)
                self.regions.append((start, end, m[4]))
                if m[3] == "rw-":
                    spans.append((start, end))
                else:
                    self.windows.append((start, end, m[4]))
            elif m := MAPS_PTE.match(line):
                spans.append((int(m[1], 16), int(m[2], 16)))
            else:
                raise AssertionError(f"unexpected maps line {line!r}")
        spans.sort()
        self.spans = spans
        self.starts = [s for s, _ in spans]
        self.ptes = [s for s, e in spans if e - s == PAGE]

    def mapped(self, addr):
        i = bisect.bisect(self.starts, addr) - 1
        return i >= 0 and addr < self.spans[i][1]

    def first_unmapped(self, addr, n):
        return next((b for b in range(addr, addr + n) if not self.mapped(b)), None)


def dead_machine_at(addr):
    """Name of the shut-down machine whose old reservation holds ``addr``, if any."""
    for base, end, name in reversed(vmem._dead):
        if base <= addr < end:
            return name
    return None


def test_wild_accesses_never_crash(highmem_machine):
    m = highmem_machine
    assert vmem.live_spaces() == [m.space]
    # Map a few PKMAP slots and a fixmap slot so the windows are partly mapped.
    high_pages = [hwemu.pfn_to_page(pfn) for pfn in (0x40000, 0x50000, 0x7FFFF)]
    for p in high_pages:
        hwemu.kmap(p)
    local = hwemu.kmap_local_page(hwemu.pfn_to_page(0x60000))
    try:
        table = MappedSet(m)
        space = m.space
        assert len(table.ptes) == 4
        edges = [a for s, e, _ in table.regions for a in (s, e)]
        gaps = [(a, b) for (_, a, _), (b, _, _) in zip(table.regions, table.regions[1:])
                if a < b] + [(space.base, table.regions[0][0]),
                             (table.regions[-1][1], space.end)]
        gaps = [(a, b) for a, b in gaps if a < b]
        rng = random.Random(0x5EED)
        generators = {
            "null": lambda: rng.randrange(0, 4096),
            "host": lambda: rng.randrange(4096, space.base),
            "reservation": lambda: rng.randrange(space.base, space.end),
            "guard": lambda: rng.randrange(*rng.choice(gaps)),
            "window": lambda: (lambda s, e, _: rng.randrange(s, e))(*rng.choice(table.windows)),
            "pte": lambda: rng.choice(table.ptes) + rng.randrange(PAGE),
            "edge": lambda: rng.choice(edges) + rng.randrange(-16, 16),
            "beyond": lambda: space.end + rng.randrange(0, 1 << 40),
            "kernel": lambda: rng.randrange(0xFFFF_8000_0000_0000, (1 << 64) - 16),
            "top": lambda: (1 << 64) - 16,
        }
        outcomes = {}
        oopses = 0
        for i in range(1000):
            kind = rng.choice(list(generators))
            n = rng.choice(SIZES)
            addr = generators[kind]()
            addr = min(addr, (1 << 64) - n)
            op = rng.choice(("load", "store", "read_bytes", "write_bytes"))
            write = op in ("store", "write_bytes")
            value = rng.getrandbits(8 * n)
            data = value.to_bytes(n, "little")
            call = {"load": lambda a=addr, n=n: hwemu.load(a, n),
                    "store": lambda a=addr, n=n, v=value: hwemu.store(a, n, v),
                    "read_bytes": lambda a=addr, n=n: hwemu.read_bytes(a, n),
                    "write_bytes": lambda a=addr, d=data: hwemu.write_bytes(a, d)}[op]
            what = f"#{i} {kind} {op}({addr:#x}, {n})"

            inside = space.base <= addr < space.end
            if not inside and (dead := dead_machine_at(addr)):
                with pytest.raises(hwemu.MachineDown, match=repr(dead)):
                    call()
                outcome = "machine down"
            elif (fault := table.first_unmapped(addr, n)) is None:
                call()
                if write:
                    assert hwemu.read_bytes(addr, n) == data, what
                outcome = "ok"
            else:
                with pytest.raises(hwemu.Oops) as info:
                    call()
                lines = info.value.text.splitlines()
                assert lines[0] == fault_line(fault), what
                assert lines[1] == (f"#PF: supervisor {'write' if write else 'read'} "
                                    "access in kernel mode"), what
                assert f"CR2: {fault:016x}" in lines, what
                oopses += 1
                outcome = "oops"
            outcomes.setdefault(kind, set()).add(outcome)

        # Every kind of address was tried, and both outcomes happened where expected.
        assert set(outcomes) == set(generators)
        for kind in ("null", "host", "guard", "beyond", "kernel", "top", "window"):
            assert "ok" not in outcomes[kind], kind
        assert outcomes["pte"] == {"ok"}
        assert {"ok", "oops"} <= outcomes["edge"]
        assert "ok" in outcomes["reservation"]
        # Each oops was numbered in turn, and the machine is still usable.
        last = [line for line in log_lines(m) if line.startswith("Oops: ")][-1]
        assert f"[#{oopses}]" in last
        hwemu.store(hwemu.__va(PAGE), 8, 99)
        assert hwemu.load(hwemu.__va(PAGE), 8) == 99
    finally:
        hwemu.kunmap_local(local)
        for p in high_pages:
            hwemu.kunmap(p)


@pytest.mark.parametrize("config, lowmem", [("tiny", 64 * M), ("i386-highmem", 896 * M)])
def test_access_straddling_end_of_direct_map(boot, config, lowmem):
    m = boot(config)
    end = page_offset(m) + lowmem
    hwemu.store(end - 8, 8, 0x77)                    # the last word is fine
    assert hwemu.load(end - 8, 8) == 0x77
    for call in (lambda: hwemu.load(end - 4, 8), lambda: hwemu.read_bytes(end - 100, 200),
                 lambda: hwemu.memset(end - 1, 0, 2), lambda: hwemu.load(end - 15, 16)):
        with pytest.raises(hwemu.Oops) as info:
            call()
        assert info.value.text.splitlines()[0] == fault_line(end)
    assert hwemu.load(end - 8, 8) == 0x77


def test_access_straddling_a_hole_between_nodes(boot):
    m = boot({"machine": {"name": "hole",
                          "nodes": [{"mem": "64M"}, {"start": "256M", "mem": "64M"}]}})
    node0_end = page_offset(m) + 64 * M
    with pytest.raises(hwemu.Oops) as info:
        hwemu.read_bytes(node0_end - 8, 16)
    assert info.value.text.splitlines()[0] == fault_line(node0_end)
    with pytest.raises(hwemu.Oops) as info:
        hwemu.store(page_offset(m) + 100 * M, 8, 1)
    assert info.value.text.splitlines()[0] == fault_line(page_offset(m) + 100 * M)
    hwemu.store(page_offset(m) + 256 * M, 8, 5)      # node 1 starts right there
    assert hwemu.load(page_offset(m) + 256 * M, 8) == 5


# ---------------------------------------------------------------------------- oops report


def test_oops_is_logged_and_taints(machine):
    assert machine.tainted == "Not tainted"
    bad = machine.layout["vmalloc"][0] + 0x123
    with pytest.raises(hwemu.Oops) as first:
        hwemu.load(bad, 8)
    with pytest.raises(hwemu.Oops) as second:
        hwemu.store(0x18, 4, 1)
    lines = log_lines(machine)

    def block(text):
        """The oops text must be in the log verbatim; return its lines."""
        body = text.splitlines()
        i = lines.index(body[0])
        assert lines[i:i + len(body)] == body
        return body

    one = block(first.value.text)
    assert one[0] == fault_line(bad)
    assert one[1] == "#PF: supervisor read access in kernel mode"
    assert one[2] == "#PF: error_code(0x0000) - not-present page"
    assert re.fullmatch(r"Oops: 0000 \[#1\] PREEMPT SMP NOPTI", one[3])
    assert re.fullmatch(r"CPU: 0 UID: 0 PID: 1 Comm: init Not tainted \S+ #1", one[4])
    assert one[5] == "Hardware name: hwemu tiny, BIOS hwemu"
    assert re.fullmatch(r"RIP: 0010:test_oops_is_logged_and_taints\+0x[0-9a-f]+/0x[0-9a-f]+",
                        one[6])
    assert f"CR2: {bad:016x}" in one
    assert one[-1].startswith("---[ end trace")

    two = block(second.value.text)
    assert two[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000018"
    assert two[1] == "#PF: supervisor write access in kernel mode"
    assert two[2] == "#PF: error_code(0x0002) - not-present page"
    assert two[3].startswith("Oops: 0002 [#2] ")
    assert re.fullmatch(r"CPU: 0 UID: 0 PID: 1 Comm: init Tainted: G +D +\S+ #1", two[4])
    assert "CR2: 0000000000000018" in two
    assert "D" in machine.tainted

    # The machine keeps working after an oops.
    addr = hwemu.__va(5 * PAGE)
    hwemu.store(addr, 8, 1234)
    assert hwemu.load(addr, 8) == 1234
    assert hwemu.page_to_pfn(hwemu.virt_to_page(addr)) == 5
    with pytest.raises(hwemu.Oops) as third:
        hwemu.memcpy(addr, bad, 8)
    assert third.value.text.splitlines()[3].startswith("Oops: 0000 [#3] ")


def test_oops_in_a_spawned_task(machine):
    bad = machine.layout["vmalloc"][0]

    def faulty():
        return hwemu.load(bad, 8)

    h = machine.spawn(faulty)
    with pytest.raises(hwemu.Oops) as info:
        h.join(timeout=10)
    lines = info.value.text.splitlines()
    assert lines[0] == fault_line(bad)
    assert re.match(rf"CPU: 1 UID: 0 PID: {h.pid} Comm: faulty Not tainted ", lines[4])
    assert lines[6].startswith("RIP: 0010:faulty+0x")
    assert "D" in machine.tainted
    assert machine.spawn(lambda: hwemu.load(hwemu.__va(0), 8)).join(timeout=10) == 0


# ---------------------------------------------------------------------------- bugs


def test_zero_length_access_touches_nothing(machine):
    dst = hwemu.__va(PAGE)
    end = page_offset(machine) + 64 * M          # one past the last direct-map byte
    assert hwemu.memcpy(dst, 0, 0) == dst
    assert hwemu.memset(end, 0, 0) == end
    assert hwemu.read_bytes(end, 0) == b""
    hwemu.write_bytes(0, b"")
    assert machine.tainted == "Not tainted"


I386_HOLE = textwrap.dedent("""
    import hwemu
    m = hwemu.boot({"machine": {"name": "i386hole", "arch": "i386",
                                "nodes": [{"mem": "512M"}, {"start": "1G", "mem": "1G"}]}})
    hole = m.layout["direct map"][0] + 600 * 2**20   # lowmem, but no RAM there
    assert not hwemu.virt_addr_valid(hole)
    try:
        hwemu.load(hole, 8)
    except hwemu.Oops as oops:
        print(oops.text.splitlines()[0])
""")


def test_i386_direct_map_hole_oopses_instead_of_crashing():
    r = subprocess.run([sys.executable, "-c", I386_HOLE], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"interpreter died (rc {r.returncode}): {r.stderr[-500:]}"
    assert r.stdout.startswith("BUG: unable to handle page fault for address: ")
