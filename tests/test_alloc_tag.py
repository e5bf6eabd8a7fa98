"""Memory allocation profiling: /proc/allocinfo and the alloc_hooks() call sites."""
import inspect

import pytest

import hwemu
import mempool

HEADER = ["allocinfo - version: 2.0", "#     <size>  <calls> <tag info>"]


def here() -> int:
    """The line number of the caller."""
    return inspect.currentframe().f_back.f_lineno


def allocinfo(m) -> dict[str, tuple[int, int]]:
    """``file:line func:name`` -> (bytes, calls), format-checked."""
    lines = m.procfs.read("/proc/allocinfo").split("\n")
    assert lines[:2] == HEADER and lines[-1] == ""
    out = {}
    for line in lines[2:-1]:
        size, calls, site, func, end = line[:12], line[13:21], *line[22:].split(" ")
        assert (line[12], line[21], end) == (" ", " ", "")   # "%12lli %8llu %s \n"
        out[f"{site} {func}"] = (int(size), int(calls))
    return out


def site(line: int, func: str) -> str:
    return f"tests/test_alloc_tag.py:{line} func:{func}"


@pytest.fixture
def prof(boot):
    return boot("tiny", vm__mem_profiling=True)


def test_off_by_default(machine):
    p = hwemu.kmalloc(100, hwemu.GFP_KERNEL)
    assert allocinfo(machine) == {}
    hwemu.kfree(p)


def test_kmalloc_and_pages_are_charged_to_their_call_sites(prof):
    p = hwemu.kmalloc(100, hwemu.GFP_KERNEL); line_k = here()
    page = hwemu.alloc_pages(hwemu.GFP_KERNEL, 1); line_p = here()
    info = allocinfo(prof)
    func = "test_kmalloc_and_pages_are_charged_to_their_call_sites"
    assert info[site(line_k, func)] == (128, 1)            # the object's stride
    assert info[site(line_p, func)] == (8192, 1)
    assert any(key.startswith("hwemu/slab.py:") and key.endswith("func:alloc_slab_pages")
               for key in info)                            # slab pages: the slab's own site
    hwemu.kfree(p)
    hwemu.__free_pages(page, 1)
    info = allocinfo(prof)
    assert info[site(line_k, func)] == (0, 0) and info[site(line_p, func)] == (0, 0)


def test_mempool_reserve_to_the_creator_fresh_elements_to_the_allocating_line(prof):
    func = "test_mempool_reserve_to_the_creator_fresh_elements_to_the_allocating_line"
    pool = mempool.mempool_create_kmalloc_pool(4, 100); line_c = here()
    e = mempool.mempool_alloc(pool, hwemu.GFP_KERNEL); line_a = here()
    r = mempool.mempool_alloc_preallocated(pool)
    info = allocinfo(prof)
    # 4 reserved elements (kmalloc-128), the struct (72 bytes: kmalloc-96) and the
    # array (4 pointers: kmalloc-32) belong to the creating line; handing out a
    # reserved element does not move its charge.
    assert info[site(line_c, func)] == (4 * 128 + 96 + 32, 6)
    assert info[site(line_a, func)] == (128, 1)
    mempool.mempool_free(r, pool)
    mempool.mempool_free(e, pool)           # the pool is full: kfree()
    mempool.mempool_destroy(pool)
    info = allocinfo(prof)
    assert info[site(line_c, func)] == (0, 0) and info[site(line_a, func)] == (0, 0)


def test_innermost_hook_wins(prof):
    func = "test_innermost_hook_wins"

    def alloc_fn(gfp, size):
        return hwemu.kmalloc(size, gfp)     # a hooked call inside mempool_alloc()
    line_inner = here() - 1

    pool = mempool.mempool_create(1, alloc_fn, lambda e, d: hwemu.kfree(e), 64)
    e = mempool.mempool_alloc(pool, hwemu.GFP_KERNEL); line_outer = here()
    info = allocinfo(prof)
    assert info[site(line_inner, "alloc_fn")] == (2 * 64, 2)   # the reserve one too
    assert site(line_outer, func) not in info or info[site(line_outer, func)] == (0, 0)
    mempool.mempool_free(e, pool)
    mempool.mempool_destroy(pool)


def test_vmalloc_pages_are_charged_to_the_vmalloc_line(prof):
    v = hwemu.vmalloc(10000); line = here()
    assert allocinfo(prof)[site(line, "test_vmalloc_pages_are_charged_to_the_vmalloc_line")] \
        == (3 * 4096, 3)
    hwemu.vfree(v)


def test_hooks_stay_live_while_any_machine_profiles(boot):
    """The global fast test only skips the hooks while no live machine profiles."""
    from hwemu import alloc_tag
    before = alloc_tag._profiling
    plain = boot("tiny")
    assert alloc_tag._profiling == before
    m = boot("tiny", vm__mem_profiling=True)
    assert alloc_tag._profiling == before + 1
    p = hwemu.kmalloc(100, hwemu.GFP_KERNEL); line = here()   # noqa: E702
    assert allocinfo(m)[site(line, "test_hooks_stay_live_while_any_machine_profiles")] == \
        (128, 1)
    hwemu.kfree(p)
    m.shutdown()
    assert alloc_tag._profiling == before
    assert allocinfo(plain) == {}
