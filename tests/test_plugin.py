"""The pytest plugin (hwemu.pytest_plugin): generated test files run by pytester in a
subprocess (its own machine reservations), many cases per run to keep it quick."""
import re
import shutil
import textwrap
from pathlib import Path

pytest_plugins = ["pytester"]

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

CASES = '''
import pytest

import hwemu
import hwemu.kasan
from hwemu import GFP_KERNEL, kfree, kmalloc, load
from hwemu.kasan import expect_report

TINY = {tiny!r}
KASAN = pytest.mark.hwemu_config(TINY, kasan__enabled=True)


def oob_read():
    p = kmalloc(60, GFP_KERNEL)   # kmalloc-64; bytes 60.. are redzone
    load(p + 64, 1)
    kfree(p)


def test_default_config(hwemu_machine):
    assert hwemu_machine.name == "hwemu"
    assert hwemu.current().machine is hwemu_machine


@KASAN
def test_clean(hwemu_machine):
    p = kmalloc(100, GFP_KERNEL)
    hwemu.store(p, 8, 1)
    kfree(p)
    hwemu.vfree(hwemu.vmalloc(3 * 4096))
    hwemu.__free_pages(hwemu.alloc_pages(GFP_KERNEL, 2), 2)
    hwemu.add_to_page_cache(8)    # owned by the file and the task: not leaks
    hwemu.add_anon_pages(4)


@pytest.mark.hwemu_config(TINY, machine__name="small", machine__cpus=2)
def test_marker_config(hwemu_machine):
    assert hwemu_machine.name == "small" and len(hwemu_machine.sched.cpus) == 2


@KASAN
def test_kasan_unexpected(hwemu_machine):
    oob_read()


@KASAN
def test_kasan_expected(hwemu_machine):
    with hwemu.kasan.expect_report("slab-out-of-bounds"):
        oob_read()


@KASAN
def test_kasan_expected_imported(hwemu_machine):
    with expect_report():
        oob_read()


@KASAN
def test_kasan_expected_fixture(hwemu_machine, expect_kasan_report):
    with expect_kasan_report("slab-out-of-bounds") as got:
        oob_read()
    assert [r.bug_type for r in got] == ["slab-out-of-bounds"]


@KASAN
def test_own_failure_shows_kasan(hwemu_machine):
    oob_read()
    assert False, "the test's own failure"


def test_leak_object(hwemu_machine):
    kmalloc(64, GFP_KERNEL)


def test_leak_many(hwemu_machine):
    for _ in range(5):
        kmalloc(30, GFP_KERNEL)


def test_leak_pages(hwemu_machine):
    hwemu.alloc_pages(GFP_KERNEL, 2)


@pytest.mark.hwemu_allow_leaks
def test_leaks_allowed(hwemu_machine):
    kmalloc(64, GFP_KERNEL)
    hwemu.alloc_pages(GFP_KERNEL, 2)


def test_shutdown_by_test(hwemu_machine):
    kmalloc(64, GFP_KERNEL)
    hwemu_machine.shutdown()


def test_boot_second(hwemu_machine, hwemu_boot):
    other = hwemu_boot(TINY, machine__name="second")
    assert other is not hwemu_machine and other.name == "second"
    assert hwemu.current().machine is other     # the last machine booted
    kfree(kmalloc(64, GFP_KERNEL))


def test_boot_second_leaks(hwemu_machine, hwemu_boot):
    hwemu_boot(TINY, machine__name="second")
    kmalloc(200, GFP_KERNEL)
'''

INI_CASES = '''
import pytest


def test_ini_config(hwemu_machine):
    assert hwemu_machine.name == "tiny"


@pytest.mark.hwemu_config({"machine": {"name": "fromdict", "nodes": [{"mem": "64M"}]}})
def test_dict_config(hwemu_machine, hwemu_boot):
    assert hwemu_machine.name == "fromdict"
    assert hwemu_boot().name == "tiny"
'''


def run(pytester, source, *args):
    pytester.makepyfile(test_cases=textwrap.dedent(source))
    result = pytester.runpytest_subprocess("-v", "--strict-markers", "-p", "no:cacheprovider",
                                           *args)
    out = result.stdout.str()
    outcomes = dict(re.findall(r"::(\w+) (PASSED|FAILED|ERROR)", out))
    return result, out, outcomes


def failure(out, name):
    """The failure section of test ``name`` in pytest's output."""
    m = re.search(rf"^_+ {name} _+$(.*?)(?=^_+ \w+ _+$|^=+ )", out, re.M | re.S)
    assert m, f"no failure section for {name} in:\n{out}"
    return m.group(1)


def test_plugin_checks(pytester):
    result, out, outcomes = run(pytester, CASES.format(tiny=str(CONFIGS / "tiny.yaml")))
    assert outcomes == {
        "test_default_config": "PASSED", "test_clean": "PASSED",
        "test_marker_config": "PASSED", "test_kasan_unexpected": "FAILED",
        "test_kasan_expected": "PASSED", "test_kasan_expected_imported": "PASSED",
        "test_kasan_expected_fixture": "PASSED", "test_own_failure_shows_kasan": "FAILED",
        "test_leak_object": "FAILED", "test_leak_many": "FAILED",
        "test_leak_pages": "FAILED",
        "test_leaks_allowed": "PASSED", "test_shutdown_by_test": "PASSED",
        "test_boot_second": "PASSED", "test_boot_second_leaks": "FAILED"}, out
    result.assert_outcomes(passed=9, failed=6)     # failures, never errors

    text = failure(out, "test_kasan_unexpected")
    assert "1 unexpected KASAN report(s) on machine 'tiny'" in text
    assert "BUG: KASAN: slab-out-of-bounds in oob_read" in text
    assert "Read of size 1 at addr" in text
    assert "memory leaked" not in text

    text = failure(out, "test_own_failure_shows_kasan")
    assert "the test's own failure" in text
    assert "hwemu: unexpected KASAN reports" in text
    assert "BUG: KASAN: slab-out-of-bounds" in text

    text = failure(out, "test_leak_object")
    assert "memory leaked by the test on machine 'hwemu'" in text
    assert re.search(r"kmalloc-64: 1 object not freed: 0x[0-9a-f]+ \(size 64\)\n", text)
    assert "1 page not returned to the page allocator (the slabs of those" in text
    assert "hwemu_allow_leaks" in text

    text = failure(out, "test_leak_many")
    assert re.search(r"kmalloc-32: 5 objects not freed: (0x[0-9a-f]+ \(size 30\), ){3}\.\.\.\n",
                     text)

    text = failure(out, "test_leak_pages")
    assert "4 pages not returned to the page allocator\n" in text
    assert "object" not in text

    text = failure(out, "test_boot_second_leaks")
    assert "on machine 'second'" in text and "kmalloc-256: 1 object not freed" in text
    assert "on machine 'hwemu'" not in text


def test_plugin_ini_default(pytester):
    shutil.copy(CONFIGS / "tiny.yaml", pytester.path / "tiny.yaml")
    pytester.makeini("[pytest]\nhwemu_config = tiny.yaml\n")
    result, out, outcomes = run(pytester, INI_CASES)
    assert outcomes == {"test_ini_config": "PASSED", "test_dict_config": "PASSED"}, out
    result.assert_outcomes(passed=2)


NAME_CASES = '''
import pytest


@pytest.mark.hwemu_config("tiny", machine__cpus=2)
def test_packaged_name(hwemu_machine):
    assert hwemu_machine.name == "tiny" and len(hwemu_machine.sched.cpus) == 2


@pytest.mark.hwemu_config("x86_64-numa4.yaml")
def test_file_in_rootdir_wins(hwemu_machine):
    assert hwemu_machine.name == "mine"


@pytest.mark.hwemu_config("configs/tiny.yaml")
def test_missing_path(hwemu_machine):
    pass
'''


def test_plugin_takes_packaged_config_names(pytester):
    """Outside the repository (pytester's directory has no configs/): a name is a
    packaged config, a file in the rootdir wins, a missing path says which name."""
    (pytester.path / "x86_64-numa4.yaml").write_text("machine:\n  name: mine\n")
    pytester.makeini("[pytest]\nhwemu_config = i386-highmem\n")
    result, out, outcomes = run(pytester, NAME_CASES + '''

def test_ini_name(hwemu_machine):
    assert hwemu_machine.name == "i386-highmem"
''')
    assert outcomes == {"test_packaged_name": "PASSED", "test_file_in_rootdir_wins": "PASSED",
                        "test_missing_path": "ERROR", "test_ini_name": "PASSED"}, out
    assert f"{pytester.path}/configs/tiny.yaml: (file): no such file; the packaged config " \
        "of that name is 'tiny'" in out


RUN_CASES = '''
import mempool
import pytest
import hwemu
from hwemu import GFP_KERNEL, GFP_NOIO, kfree, kmalloc, store

POOL = {"run": {"pools": [{"name": "requests", "type": "kmalloc", "size": 64,
                           "min_nr": 4}]}}


def stress(run):
    pool = run.pools["requests"]
    for i in range(run.args.get("n", 100)):
        if run.stopping():
            break
        rq = mempool.mempool_alloc(pool, GFP_NOIO)
        store(rq, 8, i)
        mempool.mempool_free(rq, pool)
        run.count("requests")
    run.count("cpus", len(run.machine.sched.cpus))


def uaf(run):
    rq = mempool.mempool_alloc(run.pools["requests"], GFP_KERNEL)
    mempool.mempool_free(rq, run.pools["requests"])
    store(rq, 8, 1)


def test_function(hwemu_run):
    result = hwemu_run("tiny", {**POOL, "expect": {"requests": 600, "null_returns": 0}},
                       custom=[{"function": stress, "args": {"n": 300}, "tasks": 2}])
    assert result["workloads"]["test_cases:stress"] == {"requests": 600, "cpus": 16}
    assert [(e["metric"], e["value"], e["ok"]) for e in result["expectations"]] == [
        ("null_returns", 0, True), ("requests", 600, True)]
    assert result["pools"]["requests"]["alloc_null"] == 0


def test_closure_and_dotted_overrides(hwemu_run):
    seen = []
    result = hwemu_run(hwemu.load_config("tiny"), {"run.pools": POOL["run"]["pools"],
                                                   "run.seed": 5},
                       custom=[lambda run: seen.append(run.args)])
    assert seen == [{}] and list(result["workloads"]) == ["hwemu_run_0:workload"]
    assert result["seed"] == 5


def test_expectation_fails(hwemu_run):
    hwemu_run("tiny", {**POOL, "expect": {"requests": ">= 1000"}}, custom=[stress])


def test_check_false(hwemu_run):
    result = hwemu_run("tiny", {**POOL, "expect": {"requests": ">= 1000", "nothing": 0}},
                       custom=[stress], check=False)
    assert [(e["metric"], e["value"], e["ok"]) for e in result["expectations"]] == [
        ("requests", 100, False), ("nothing", 0, True)]


def test_kasan_unexpected(hwemu_run):
    hwemu_run("tiny", {**POOL, "kasan": {"enabled": True}}, custom=[uaf])


def test_kasan_expected(hwemu_run):
    result = hwemu_run("tiny", {**POOL, "kasan": {"enabled": True},
                                "expect": {"kasan_reports": 1}}, custom=[uaf])
    assert result["kasan_reports"][0]["bug_type"] == "slab-use-after-free"


def test_packaged_scenario(hwemu_run):
    result = hwemu_run("kasan-uaf", {"run": {"custom": [{"function":
                       "buggy_driver:use_after_free", "args": {"requests": 10, "bug_at": 99}}]}})
    assert result["workloads"] == {"buggy_driver:use_after_free": {"requests": 10}}


def test_no_run(hwemu_run):
    with pytest.raises(ValueError, match="no run: section"):
        hwemu_run("tiny")


def test_deterministic(hwemu_run):
    one, two = (hwemu_run("tiny", POOL, custom=[stress]) for _ in range(2))
    for r in (one, two):
        r.pop("wall_seconds")
    assert one == two


def test_beside_a_machine(hwemu_machine, hwemu_run):
    p = kmalloc(32, GFP_KERNEL)
    hwemu_run("tiny", POOL, custom=[stress])
    assert hwemu.current().machine is hwemu_machine
    kfree(p)


@pytest.mark.hwemu_config("tiny", machine__name="marked", run__seed=7)
def test_marker_config(hwemu_run):
    result = hwemu_run(overrides={**POOL, "run": {**POOL["run"], "seed": 8}},
                       custom=[stress])
    assert (result["machine"], result["seed"]) == ("marked", 8)
'''


def test_hwemu_run_fixture(pytester):
    result, out, outcomes = run(pytester, RUN_CASES)
    assert outcomes == {
        "test_function": "PASSED", "test_closure_and_dotted_overrides": "PASSED",
        "test_expectation_fails": "FAILED", "test_check_false": "PASSED",
        "test_kasan_unexpected": "FAILED", "test_kasan_expected": "PASSED",
        "test_packaged_scenario": "PASSED", "test_no_run": "PASSED",
        "test_deterministic": "PASSED", "test_beside_a_machine": "PASSED",
        "test_marker_config": "PASSED"}, out
    text = failure(out, "test_expectation_fails")
    assert "hwemu_run: the run failed (hwemu run would exit non-zero)" in text
    assert "FAIL  requests >= 1000 (got 100)" in text
    assert "test_cases:stress: cpus 8, requests 100" in text
    text = failure(out, "test_kasan_unexpected")
    assert "KASAN reported (expect kasan_reports in the config to allow it)" in text
    assert "BUG: KASAN: slab-use-after-free in uaf" in text
