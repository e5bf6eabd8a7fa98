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
    # 4 reserved elements (kmalloc-128), the struct (104 bytes: kmalloc-128) and the
    # array (4 pointers: kmalloc-32) belong to the creating line; handing out a
    # reserved element does not move its charge.
    assert info[site(line_c, func)] == (4 * 128 + 128 + 32, 6)
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
    from hwemu.jump_label import MEM_PROFILING
    before = MEM_PROFILING.count
    plain = boot("tiny")
    assert MEM_PROFILING.count == before
    m = boot("tiny", vm__mem_profiling=True)
    assert MEM_PROFILING.count == before + 1 and MEM_PROFILING.enabled
    p = hwemu.kmalloc(100, hwemu.GFP_KERNEL); line = here()   # noqa: E702
    assert allocinfo(m)[site(line, "test_hooks_stay_live_while_any_machine_profiles")] == \
        (128, 1)
    hwemu.kfree(p)
    m.shutdown()
    assert MEM_PROFILING.count == before
    assert allocinfo(plain) == {}


def test_page_pool_elements_are_charged_to_the_pool_lines(prof):
    """The stock page callback calls alloc_pages_noprof(): reserved pages belong to the
    line that created the pool, fresh ones to the line that called mempool_alloc()."""
    func = "test_page_pool_elements_are_charged_to_the_pool_lines"
    pool = mempool.mempool_create_page_pool(2, 1); line_c = here()
    e = mempool.mempool_alloc(pool, hwemu.GFP_KERNEL); line_a = here()
    info = allocinfo(prof)
    assert info[site(line_c, func)] == (2 * 8192 + 128 + 16, 4)   # pages, struct, array
    assert info[site(line_a, func)] == (8192, 1)
    assert not any(key.startswith("mempool/") for key in info)
    mempool.mempool_free(e, pool)
    mempool.mempool_destroy(pool)


def test_kvmalloc_and_kvzalloc_are_charged_to_their_caller(prof):
    func = "test_kvmalloc_and_kvzalloc_are_charged_to_their_caller"
    small = hwemu.kvmalloc(100, hwemu.GFP_KERNEL); line_s = here()
    big = hwemu.kvzalloc(3 * 4096 + 1, hwemu.GFP_KERNEL); line_b = here()
    node = hwemu.kvzalloc_node(64, hwemu.GFP_KERNEL, 0); line_n = here()
    info = allocinfo(prof)
    assert info[site(line_s, func)] == (128, 1)
    assert info[site(line_b, func)] == (4 * 4096, 1)   # kmalloc: a 16K large kmalloc
    assert info[site(line_n, func)] == (64, 1)
    assert not any(key.startswith(("hwemu/util.py", "hwemu/vmalloc.py")) for key in info)
    for p in (small, big, node):
        hwemu.kvfree(p)


def test_kvrealloc_is_charged_to_its_caller(prof):
    func = "test_kvrealloc_is_charged_to_its_caller"
    p = hwemu.kvmalloc(100, hwemu.GFP_KERNEL)
    q = hwemu.kvrealloc(p, 300, hwemu.GFP_KERNEL); line = here()
    info = allocinfo(prof)
    assert info[site(line, func)] == (512, 1)
    assert not any(key.startswith(("hwemu/util.py", "hwemu/slab.py:1")) and
                   "krealloc" in key for key in info)
    hwemu.kvfree(q)


# ---------------------------------------------------------------- the _noprof rule

def _functions():
    """Every module-level function of hwemu/ and mempool/: name -> (path, ast node)."""
    import ast
    import pathlib
    root = pathlib.Path(hwemu.__file__).resolve().parent.parent
    found = {}
    for package in ("hwemu", "mempool"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef):
                    found[node.name] = (path.relative_to(root), node)
    return found


MODULES = {"hwemu", "mempool", "_mempool", "slab", "page_alloc", "vmalloc", "util"}


def _calls(node) -> set[str]:
    """Names of the functions ``node`` calls: ``f()`` or ``module.f()`` (a method
    ``obj.f()`` is no kernel API)."""
    import ast
    names = set()
    for c in ast.walk(node):
        if isinstance(c, ast.Call):
            f = c.func
            if isinstance(f, ast.Name):
                names.add(f.id)
            elif isinstance(f, ast.Attribute) and getattr(f.value, "id", None) in MODULES:
                names.add(f.attr)
    return names


def test_noprof_code_calls_no_profiled_function():
    """A _noprof function (and what it calls, and the stock pool callbacks it calls
    through pool->alloc) calls only _noprof allocators, as the kernel does: otherwise
    the innermost alloc_hooks() charges the allocation to hwemu's own line instead of
    the line that called the public name."""
    functions = _functions()
    profiled = {name[:-len("_noprof")] for name in functions if name.endswith("_noprof")}
    roots = [n for n in functions if n.endswith("_noprof")] + [
        "mempool_alloc_slab", "mempool_kmalloc", "mempool_alloc_pages"]
    seen, todo, bad = set(), list(roots), []
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        path, node = functions[name]
        calls = _calls(node)
        bad += [f"{path}:{name}() calls {c}()" for c in sorted(calls & profiled)]
        todo += [c for c in calls if c in functions and not c.endswith("_noprof")]
    assert len(seen) > 40, "the scan found too few functions to mean anything"
    assert not bad, "\n".join(bad)
