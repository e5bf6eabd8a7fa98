"""``hwemu run --json``: stdout with ``-``, an error without a ``run:``, a versioned
result with the run's outcome, and KASAN reports as data."""
import json

import pytest
from conftest import CONFIGS
from test_runs import fault_injection_run, hwemu_cli


def test_json_on_stdout_is_the_versioned_result_with_structured_kasan_reports(tmp_path):
    r = hwemu_cli("run", CONFIGS / "kasan-uaf.yaml", "--json", "-", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == []          # no file named "-"
    result = json.loads(r.stdout)                  # stdout holds nothing else
    assert "hwemu run: kasan-uaf, seed 1: ran " in r.stderr   # the summary went there
    assert result["format"] == 1
    assert (result["exit_code"], result["status"]) == (1, "failed")
    assert [e["ok"] for e in result["expectations"]] == [False]
    (kasan,) = result["kasan_reports"]
    assert kasan["bug_type"] == "slab-use-after-free"
    assert (kasan["access"], kasan["size"]) == ("write", 8)
    address, obj = int(kasan["address"], 16), kasan["object"]
    assert kasan["address"] == f"{address:#x}" and f"at addr {address:016x}" in kasan["text"]
    assert (obj["cache"], obj["size"]) == ("kmalloc-96", 96)
    assert int(obj["address"], 16) == address - 8
    assert kasan["task"]["comm"] == "use_after_fre/0" and kasan["task"]["pid"] > 0
    assert kasan["function"].startswith("use_after_free+")
    assert kasan["stack"][0].startswith("use_after_free+")
    assert "buggy_driver.py:" in kasan["stack"][0]
    alloc, freed = kasan["allocated"], kasan["freed"]
    assert alloc["pid"] == freed["pid"] == kasan["task"]["pid"]
    assert any(f.startswith("mempool_alloc") for f in alloc["stack"])
    assert any(f.startswith("mempool_free+") for f in freed["stack"])
    assert kasan["text"].startswith("=" * 66 + "\nBUG: KASAN: slab-use-after-free in ")


def test_a_passing_run_says_so(tmp_path):
    _, result = fault_injection_run(tmp_path, 50)
    assert (result["format"], result["exit_code"], result["status"]) == (1, 0, "passed")
    assert result["interrupted"] is False and result["timed_out"] is False


@pytest.mark.parametrize("flags", [["--json", "out.json"], ["--ktap"], ["--ktap", "out.ktap"],
                                   ["--plot", "plots"], ["--json", "-", "--ktap", "k"]],
                         ids=["json", "ktap", "ktap-file", "plot", "both"])
def test_outputs_of_a_config_without_a_run_are_an_error(tmp_path, flags):
    r = hwemu_cli("run", CONFIGS / "tiny.yaml", *flags, cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr == (f"hwemu: {', '.join(f for f in flags if f.startswith('--'))}: "
                        f"{CONFIGS / 'tiny.yaml'} has no run: section (only a run has a "
                        f"result); add one, or leave {'them' if len(flags) > 3 else 'it'} "
                        "out\n")
    assert list(tmp_path.iterdir()) == []


def test_json_and_ktap_cannot_both_be_stdout(tmp_path):
    r = hwemu_cli("run", CONFIGS / "kasan-uaf.yaml", "--json", "-", "--ktap", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "hwemu: --json - and --ktap -: only one of them can be stdout\n"
