"""Kernel C through hwemu's own headers (hwemu/include), end to end: a mempool written
here from the spec (tests/kbuild/mempool_spec.c) bound to the ``mempool`` package with
``hwemu.kbuild.use_mempool()`` and as a run's ``mempool.source``, and a block driver in
C (tests/kbuild/cdrv.c) as a run's custom workload, completing its requests from hard
interrupts; its planted use-after-free found by KASAN in C; gcc's errors.

Lines the tests look for are marked in the C with "cdrv:" comments (:func:`line_of`).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import helpers

import hwemu
import mempool
from hwemu import GFP_ATOMIC, GFP_NOIO, kbuild, kmem_cache_create, kmem_cache_destroy
from hwemu.kbuild.build import compile_flags

HERE = Path(__file__).resolve().parent
KB = HERE / "kbuild"
SPEC, CDRV = KB / "mempool_spec.c", KB / "cdrv.c"
SPEC_RUN, CDRV_RUN = KB / "mempool_spec.yaml", KB / "cdrv.yaml"
TINY = str(HERE.parent / "configs" / "tiny.yaml")
HWEMU = Path(sys.executable).parent / "hwemu"   # .venv/bin/hwemu
MIN_NR = 4
# failslab fails every allocation that may not sleep: mempool_alloc()'s first pass
FAILSLAB = {"fault_injection__failslab__probability": 100,
            "fault_injection__failslab__times": -1,
            "fault_injection__failslab__verbose": 0}


pytestmark = pytest.mark.skipif(sys.platform != "linux" or sys.maxsize < 2**32,
                                reason="kernel C runs on 64-bit Linux hosts only")


def line_of(marker: str, path: Path = CDRV) -> int:
    return helpers.line_of(marker, path)


def hwemu_run(config, *args, cwd=None):
    """``hwemu run CONFIG ARGS --json -``: (exit code, the result or None, stderr)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    r = subprocess.run([str(HWEMU), "run", str(config), *map(str, args), "--json", "-"],
                       capture_output=True, text=True, timeout=120, cwd=cwd or HERE, env=env)
    try:
        result = json.loads(r.stdout)
    except ValueError:
        result = None
    return r.returncode, result, r.stderr


def own_pool_driver(tmp_path, *sets) -> Path:
    """cdrv.c built with its own C pool (mempool_spec.c in the same unit), as a run's
    workload."""
    (tmp_path / "cdrv_own.c").write_text(
        f'#define CDRV_OWN_POOL\n#include "{SPEC}"\n#include "{CDRV}"\n\n'
        "int own_submit_loop(void)\n{\n\treturn submit_loop();\n}\n")
    config = tmp_path / "cdrv_own.yaml"
    config.write_text(CDRV_RUN.read_text().replace('"cdrv.c:submit_loop"',
                                                   '"cdrv_own.c:own_submit_loop"'))
    return config


# ---------------------------------------------------------------- compiling

@pytest.mark.parametrize("source, extra", [
    (SPEC, {}), (SPEC, {"CONFIG_SLUB_DEBUG_ON": True}),
    (SPEC, {"CONFIG_SLUB_DEBUG_ON": True, "CONFIG_HIGHMEM": True}),
    pytest.param(CDRV, {}),
    pytest.param(CDRV, {"CDRV_OWN_POOL": True})], ids=str)
@pytest.mark.parametrize("kasan", [False, True], ids=["plain", "kasan"])
def test_the_c_compiles_without_warnings(source, extra, kasan):
    """load() passes gcc's warnings over in silence: check with -Werror here, with the
    flags load() uses for a 64-bit machine."""
    defines = {"HZ": 1000, "CONFIG_KASAN": kasan, "NR_CPUS": 8, **extra}
    flags = [*compile_flags(kasan, defines, ()), "-iquote", str(source.parent)]
    r = subprocess.run(["gcc", *flags, "-Werror", "-Wextra", "-Wno-unused-parameter",
                        "-Wno-sign-compare", "-fsyntax-only", str(source)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.hwemu_config(TINY)
def test_a_machines_defines_compile_without_warnings(hwemu_machine, tmp_path):
    from hwemu.kbuild import _defines
    src = tmp_path / "empty_mod.c"
    src.write_text("#include <linux/kernel.h>\n\nint empty_mod(void)\n{\n\treturn 0;\n}\n")
    flags = compile_flags(False, _defines(hwemu_machine.config, False), ())
    r = subprocess.run(["gcc", *flags, "-Werror", "-fsyntax-only", str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_wait_h_is_self_contained(tmp_path):
    src = tmp_path / "sleepers.c"
    src.write_text("#include <linux/wait.h>\n\nint sleepers(wait_queue_head_t *wq)\n{\n"
                   "\treturn wq_has_sleeper(wq);\n}\n")
    assert "sleepers" in kbuild.load(src, kasan=False).exports


# ---------------------------------------------------------------- use_mempool()

def bound_to_c():
    return mempool.mempool_alloc_noprof.__qualname__.startswith("CMempool.")


@pytest.mark.parametrize("kasan", [
    pytest.param(False, marks=pytest.mark.hwemu_config(TINY, kasan__enabled=False, **FAILSLAB)),
    pytest.param(True, marks=pytest.mark.hwemu_config(TINY, kasan__enabled=True, **FAILSLAB))],
    ids=["plain", "kasan"])
def test_use_mempool_runs_the_spec_c(hwemu_machine, kasan):
    python_alloc, python_free = mempool.mempool_alloc, mempool.mempool_free
    assert not bound_to_c()
    cache = kmem_cache_create("spec_test", 96, 0, 0, None)
    module = kbuild.use_mempool(SPEC)
    try:
        assert module.kasan is kasan and module.bulk_params == "allocated"
        assert bound_to_c() and mempool.mempool_alloc is not python_alloc
        pool = mempool.mempool_create_slab_pool(MIN_NR, cache)
        assert pool
        # failslab fails the first pass (no direct reclaim): the reserve, LIFO
        reserve = [mempool.mempool_alloc(pool, GFP_NOIO) for _ in range(MIN_NR)]
        assert len(set(reserve)) == MIN_NR and 0 not in reserve
        assert mempool.mempool_stats(pool)["alloc_reserve"] == MIN_NR
        # reserve empty: the full mask may sleep, failslab lets it through
        fresh = mempool.mempool_alloc(pool, GFP_NOIO)
        assert fresh and fresh not in reserve
        # an atomic caller with nothing left gets NULL
        assert mempool.mempool_alloc(pool, GFP_ATOMIC) == 0
        assert mempool.mempool_alloc_preallocated(pool) == 0
        stats = mempool.mempool_stats(pool)
        assert (stats["alloc_reserve"], stats["alloc_allocator"], stats["alloc_null"]) \
            == (MIN_NR, 1, 2)
        for element in reserve:
            mempool.mempool_free(element, pool)   # refills the reserve
        mempool.mempool_free(fresh, pool)          # full: back to the slab
        stats = mempool.mempool_stats(pool)
        assert (stats["free_reserve"], stats["free_allocator"]) == (MIN_NR, 1)
        assert f"element in the reserve of pool {pool:#x} (slot {MIN_NR - 1} of {MIN_NR})" \
            in mempool.describe(reserve[-1])
        # LIFO: the element given back last comes out first
        assert mempool.mempool_alloc_preallocated(pool) == reserve[-1]
        assert "element in the reserve" not in mempool.describe(reserve[-1])
        mempool.mempool_free(reserve[-1], pool)
        # resize: grow (filled with GFP_KERNEL, which failslab lets through), shrink
        assert mempool.mempool_resize(pool, MIN_NR + 2) == 0
        assert mempool.mempool_is_saturated(pool)
        got = [mempool.mempool_alloc_preallocated(pool) for _ in range(MIN_NR + 3)]
        assert got[-1] == 0 and 0 not in got[:-1]
        for element in got[:-1]:
            mempool.mempool_free(element, pool)
        assert mempool.mempool_resize(pool, 2) == 0
        left = [mempool.mempool_alloc_preallocated(pool) for _ in range(3)]
        assert left[2] == 0 and 0 not in left[:2]   # 2 kept, the rest went to the slab
        for element in left[:2]:
            mempool.mempool_free(element, pool)
        mempool.mempool_destroy(pool)
    finally:
        kbuild.use_mempool(None)
    assert mempool.mempool_alloc is python_alloc and mempool.mempool_free is python_free
    assert not bound_to_c()
    kmem_cache_destroy(cache)
    assert hwemu_machine.warnings == []


@pytest.mark.hwemu_config(TINY, debug__slub_debug_on=True)
def test_reserved_elements_are_poisoned_under_slub_debug_on(hwemu_machine):
    cache = kmem_cache_create("spec_poison", 64, 0, 0, None)
    kbuild.use_mempool(SPEC)
    try:
        pool = mempool.mempool_create_slab_pool(2, cache)
        element = mempool.mempool_alloc_preallocated(pool)
        assert [hwemu.load(element + i, 1) for i in (0, 63)] == [0x5a, 0x5a]   # INUSE
        mempool.mempool_free(element, pool)
        assert [hwemu.load(element + i, 1) for i in (0, 62, 63)] == [0x6b, 0x6b, 0xa5]
        hwemu.store(element + 20, 1, 0)   # a write to an element in the reserve
        assert mempool.mempool_alloc_preallocated(pool) == element
        log = hwemu_machine.dmesg()
        assert "BUG: mempool element poison mismatch" in log
        assert re.search(r"Mempool \S+ size 64\n.* nr=1 @ \S+: \.\.\. 0x6b 6b 6b 6b 6b 6b 6b 6b "
                         r"0 6b 6b 6b 6b 6b 6b 6b \.\.\.", log), log
        mempool.mempool_free(element, pool)
        mempool.mempool_destroy(pool)
    finally:
        kbuild.use_mempool(None)
    kmem_cache_destroy(cache)


@pytest.mark.hwemu_config(TINY)
def test_c_pool_counts_its_preallocated_elements(hwemu_machine):
    cache = kmem_cache_create("spec_prealloc", 64, 0, 0, None)
    kbuild.use_mempool(SPEC)
    try:
        pool = mempool.mempool_create_slab_pool(MIN_NR, cache)
        preallocated = mempool.mempool_stats(pool)["preallocated"]
        mempool.mempool_destroy(pool)
    finally:
        kbuild.use_mempool(None)
        kmem_cache_destroy(cache)
    assert preallocated == MIN_NR


# ---------------------------------------------------------------- hwemu run

def test_run_with_mempool_source_uses_the_c_reserve():
    code, result, err = hwemu_run(SPEC_RUN, "--set", "fault_injection.fail_mempool_alloc"
                                  "={probability: 5, times: 3, verbose: 0}")
    assert code == 0, err
    assert result["config"]["mempool"]["source"] == "mempool_spec.c"
    pool = result["pools"]["requests"]
    assert pool["alloc_reserve"] > 0 and pool["free_reserve"] > 0
    assert pool["alloc_null"] == 0 and pool["lowest_fill"] < pool["min_nr"]
    assert pool["alloc_allocator"] + pool["alloc_reserve"] == 300 == \
        result["workloads"]["bio"]["completed"]
    # the C's own fault attribute (late_initcall) fired: its pr_info names the C caller
    forced = re.findall(r"forcing mempool usage for (\S+)", result["dmesg"])
    assert len(forced) == 3 and all(f.startswith("hw_x_mempool_alloc_noprof+") for f in forced)
    assert all(e["ok"] for e in result["expectations"])




def test_c_driver_run_on_the_runs_pool():
    code, result, err = hwemu_run(CDRV_RUN)
    assert code == 0, err
    work = result["workloads"]["cdrv.c:submit_loop"]
    assert work["completed"] == work["in_irq"] == 200


def test_c_driver_use_after_free_on_the_runs_pool():
    code, result, err = hwemu_run(CDRV_RUN, "--set", "kasan.enabled=true",
                                  "--set", "run.custom.0.args.plant_uaf=1")
    assert code == 1 and result["task_errors"] == [], err
    assert len(result["kasan_reports"]) == 1


def test_c_driver_run_with_its_own_c_pool(tmp_path):
    code, result, err = hwemu_run(own_pool_driver(tmp_path), cwd=tmp_path)
    assert code == 0, err
    work = result["workloads"]["cdrv_own.c:own_submit_loop"]
    # 2 tasks x 100 requests, every one completed in hard IRQ, data intact
    assert work["submitted"] == work["completed"] == work["in_irq"] == 200
    assert work.get("io_errors", 0) == 0
    assert {e["metric"]: e["ok"] for e in result["expectations"]} == {
        "completed": True, "null_returns": True, "io_errors": True, "kasan_reports": True,
        "bugs": True}
    assert "cdrv: 100 requests completed, 51200 bytes" in result["dmesg"]


def test_c_driver_use_after_free_is_a_kasan_report_naming_the_c(tmp_path):
    code, result, err = hwemu_run(own_pool_driver(tmp_path), "--set", "kasan.enabled=true",
                                  "--set", "run.custom.0.tasks=1",
                                  "--set", "run.custom.0.args.plant_uaf=1", cwd=tmp_path)
    assert code == 1, err
    assert result["task_errors"] == []
    assert [(e["metric"], e["ok"]) for e in result["expectations"] if not e["ok"]] == \
        [("kasan_reports", False)]
    [report] = result["kasan_reports"]
    text = report if isinstance(report, str) else json.dumps(report)
    uaf = line_of("cdrv: use after free")
    log = result["dmesg"]
    for where in (text, log):
        assert re.search(r"BUG: KASAN: slab-use-after-free in cdrv_irq\+0x[0-9a-f]+/0x[0-9a-f]+",
                         where), where
        assert re.search(rf"cdrv_end_request \S*cdrv\.c:{uaf} \[inline\]", where), where
    assert "Read of size 4 at addr" in log
    assert re.search(r"cdrv_irq\+\S+ \S*cdrv\.c:\d+", log), log


def test_c_driver_in_two_tasks_under_kasan(tmp_path):
    code, result, err = hwemu_run(own_pool_driver(tmp_path), "--set", "kasan.enabled=true",
                                  cwd=tmp_path)
    assert code == 0, f"exit {code}: {err[-2000:]}"


# ---------------------------------------------------------------- gcc's errors

def bad_driver(tmp_path) -> Path:
    (tmp_path / "cdrv_bad.c").write_text(
        "#include <hwemu/workload.h>\n\nint submit_loop(void)\n{\n\treturn 0\n}\n")
    config = tmp_path / "cdrv_bad.yaml"
    config.write_text(CDRV_RUN.read_text().replace('"cdrv.c:submit_loop"',
                                                   '"cdrv_bad.c:submit_loop"'))
    return config


def test_a_syntax_error_in_a_c_workload_prints_gccs_line(tmp_path):
    code, result, err = hwemu_run(bad_driver(tmp_path), cwd=tmp_path)
    assert code != 0
    assert re.search(rf"^{re.escape(str(tmp_path))}/cdrv_bad\.c:5:\d+: error: expected .;. before",
                     err, re.M), err
    assert "Traceback" not in err


def test_a_syntax_error_in_a_c_workload_exits_2(tmp_path):
    code, result, err = hwemu_run(bad_driver(tmp_path), cwd=tmp_path)
    assert code == 2, err
