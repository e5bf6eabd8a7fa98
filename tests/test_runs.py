"""Machine runs (``hwemu run CONFIG``): the example configs end to end, the command's
flags (--set, --seed, --json, --plot, --ktap, SIGINT), bad run configs, and the pieces
(durations, expectations, report, PoolStats, the Python API, workloads) in process."""
import io
import json
import os
import random
import re
import signal
import subprocess
import sys

import pytest
from conftest import CONFIGS

import hwemu
import mempool
from hwemu import GFP_KERNEL, MachineDown, msleep
from hwemu.config import (ExpectConfig, _condition, format_duration, load_config, parse_duration,
                          resolve)
from hwemu.runs import Run, report
from mempool.stats import WAIT_SAMPLES, PoolStats

ROOT = CONFIGS.parent
PROGRESS_RE = re.compile(r"^\[ *\d+\.\d\ds\] +\d+ ops/s \| pools: .* \| free: .* \| "
                         r"KASAN reports: \d+$")


def hwemu_cli(*args, cwd=ROOT, timeout=120):
    """``python -m hwemu.cli ARGS`` in a subprocess (stderr is a pipe: plain progress)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "hwemu.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def fault_injection_run(tmp_path, requests):
    """``hwemu run`` of configs/fault-injection.yaml with ``requests`` bios a submitter
    and ``--json``, checked to exit 0: the process and its JSON result."""
    out = tmp_path / "result.json"
    r = hwemu_cli("run", CONFIGS / "fault-injection.yaml", "--set",
                  f"run.bio.requests={requests}", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads(out.read_text())


def pool_row(stdout, name):
    """The summary's row of pool ``name``, as a dict of its columns."""
    for line in stdout.splitlines():
        cols = line.split()
        if line.startswith(f"  {name} ") and len(cols) == 14:
            return {"type": cols[1], "min_nr": int(cols[2]), "allocator": int(cols[3]),
                    "reserve": int(cols[4]), "null": int(cols[5]), "waits": int(cols[6]),
                    "free_reserve": int(cols[11]), "free_allocator": int(cols[12]),
                    "lowest_fill": int(cols[13])}
    raise AssertionError(f"no pool row {name!r} in:\n{stdout}")


def expectation_lines(stdout):
    """The lines under ``Expectations:`` of the summary."""
    lines = stdout.splitlines()
    start = lines.index("Expectations:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        out.append(line)
    return out


def declared_expectations(config):
    return [m for m in ExpectConfig.model_fields if getattr(config.expect, m) is not None]


def ktap_section(stdout):
    lines = stdout.splitlines()
    return lines[lines.index("KTAP version 1"):]


def ktap_results(lines):
    """``[(ok, number, name)]`` of a KTAP section."""
    out = []
    for line in lines:
        m = re.fullmatch(r"(ok|not ok) (\d+) (\S+)", line)
        if m:
            out.append((m[1] == "ok", int(m[2]), m[3]))
    return out


# ---------------------------------------------------------------- example configs

@pytest.mark.parametrize("args, pool, kind", [
    (("--duration", "1s"), "bio", "page/order-0"),
    ((CONFIGS / "highmem-page-pool.yaml",), "bounce", "page/order-2"),
    ((CONFIGS / "net-rx.yaml", "--duration", "1s"), "skb", "kmalloc/2048"),
    ((CONFIGS / "fault-injection.yaml",), "requests", "slab/192"),
], ids=["default", "highmem-page-pool", "net-rx", "fault-injection"])
def test_example_configs_run_and_meet_their_expectations(args, pool, kind, tmp_path):
    out = tmp_path / "result.json"
    r = hwemu_cli("run", *args, "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    config_file = args[0] if not str(args[0]).startswith("--") else None
    config = load_config(config_file)
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"hwemu run: {config.machine.name}, seed {config.run.seed}: ran ")
    row = pool_row(r.stdout, pool)
    assert row["type"] == kind
    # min_nr at the end of the run: a resize workload moves it through its sizes.
    resized = config.run.resize.sizes if config.run.resize else ()
    assert row["min_nr"] in {config.run.pools[0].min_nr, *resized}
    assert row["allocator"] + row["reserve"] > 0          # the workload used the pool
    assert row["null"] == 0
    lines = expectation_lines(r.stdout)
    assert len(lines) == len(declared_expectations(config)) > 0
    assert all(line.startswith("  ok    ") for line in lines), lines
    assert "Replay:" not in r.stdout   # nothing failed, nothing to replay
    result = json.loads(out.read_text())
    assert result["task_errors"] == [] and result["interrupted"] is False
    assert [e["metric"] for e in result["expectations"]] == declared_expectations(config)
    # Progress on stderr: the start line, then plain lines (stderr is no terminal).
    err = r.stderr.splitlines()
    assert err[0].startswith(f"hwemu: running {config.machine.name} for at most ")
    progress = [line for line in err if line.startswith("[")]
    assert progress and all(PROGRESS_RE.match(line) for line in progress), err
    if "--duration" in args:
        assert result["emulated_seconds"] >= 0.99


def test_fault_injection_run_takes_elements_from_the_reserve(tmp_path):
    r, result = fault_injection_run(tmp_path, 1000)
    pool = result["pools"]["requests"]
    assert pool["alloc_reserve"] > 0 and pool["free_reserve"] > 0
    assert pool["alloc_allocator"] > 0 and pool["alloc_null"] == 0
    assert pool["lowest_fill"] < pool["min_nr"]
    bio = result["workloads"]["bio"]
    # 2 submitters x 1000 requests, all completed, none corrupted; the run then ends.
    assert bio["submitted"] == bio["completed"] == 2000
    assert bio.get("io_errors", 0) == 0
    assert pool["alloc_allocator"] + pool["alloc_reserve"] == 2000
    assert result["workloads"]["resize"]["resizes"] > 0
    row = pool_row(r.stdout, "requests")
    assert (row["allocator"], row["reserve"]) == (pool["alloc_allocator"], pool["alloc_reserve"])


def test_a_kernel_panic_stops_the_run(tmp_path):
    """kasan.fault=panic: the first report panics; the run stops there (a real machine
    would) instead of going on for its duration."""
    # net_rx would go on for the whole 10s duration without the stop.
    r = hwemu_cli("run", CONFIGS / "kasan-uaf.yaml", "--set", "kasan.fault=panic",
                  "--set", "machine.cpus=3", "--set", "run.net_rx={pool: requests}",
                  "--ktap", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    # --ktap: stdout is the KTAP, the summary goes to stderr.
    assert "The run stopped at: Kernel panic - not syncing: kasan.fault=panic set" in r.stderr
    assert "BUG: KASAN: slab-use-after-free in use_after_free" in r.stderr
    assert ktap_results(ktap_section(r.stdout))[-1] == (False, 2, "run")
    seconds = float(re.search(r"ran ([0-9.]+)s of emulated time", r.stderr)[1])
    assert seconds < 5


def test_kasan_uaf_run_reports_the_use_after_free_and_exits_1(tmp_path):
    # From another directory: buggy_driver is imported from the config's directory.
    r = hwemu_cli("run", CONFIGS / "kasan-uaf.yaml", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout
    assert "BUG: KASAN: slab-use-after-free in use_after_free" in out
    assert expectation_lines(out) == ["  FAIL  kasan_reports == 0 (got 1)"]
    assert "  buggy_driver:use_after_free: requests 200" in out
    assert "Bugs: 1 KASAN reports, 0 oopses, 0 warnings;" in out
    block = out.split("\nKASAN report 1 of 1:\n", 1)[1]
    assert block.startswith("=" * 66 + "\nBUG: KASAN: slab-use-after-free in use_after_free")
    assert "Write of size 8 at addr" in block
    assert "Allocated by task" in block and "Freed by task" in block
    assert "buggy_driver.py:20" in block        # the store after the free
    assert "KASAN report 2" not in out
    assert out.endswith(f"\nReplay: hwemu run {CONFIGS / 'kasan-uaf.yaml'} --strategy random "
                        "--sched-seed 0\n")


def test_a_kasan_report_that_was_expected_still_prints_the_replay_line(tmp_path):
    r = hwemu_cli("run", CONFIGS / "kasan-uaf.yaml", "--set", "expect.kasan_reports=1",
                  cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\nReplay: hwemu run " in r.stdout and "--set expect.kasan_reports=1" in r.stdout


# ---------------------------------------------------------------- --set, --seed

def test_set_beats_the_file_and_seed_sets_both_seeds(tmp_path):
    out = tmp_path / "result.json"
    r = hwemu_cli("run", "--duration", "500ms", "--set", "run.pools.0.min_nr=5",
                  "--set", "run.bio.submitters=2", "--seed", "42", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith("hwemu run: hwemu, seed 42: ran ")
    assert "(seed 42)" in r.stderr.splitlines()[0]
    row = pool_row(r.stdout, "bio")
    assert row["min_nr"] == 5                       # the file says 64
    result = json.loads(out.read_text())
    pool = result["pools"]["bio"]
    assert pool["min_nr"] == 5 and pool["preallocated"] == 5   # really created with 5
    config = result["config"]
    assert config["run"]["pools"][0]["min_nr"] == 5
    assert config["run"]["bio"]["submitters"] == 2
    assert config["run"]["duration"] == "500ms"
    assert config["run"]["seed"] == 42 and config["fault_injection"]["seed"] == 42
    assert result["seed"] == 42
    assert sorted(result["workloads"]) == ["bio", "memory_hog"]
    assert result["emulated_seconds"] < 5           # --duration beat the file's 10s


def test_seed_on_a_config_without_run_still_brings_the_machine_up():
    """tiny.yaml has no run: section, so `hwemu run` brings the machine up; --seed
    (the fault-injection seed too) must not turn that into an empty run."""
    r = hwemu_cli("run", CONFIGS / "tiny.yaml", "--seed", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\nBring-up:\n" in r.stdout
    assert "hwemu run:" not in r.stdout


# ---------------------------------------------------------------- --json

def test_json_holds_the_result_and_the_resolved_config(tmp_path):
    out = tmp_path / "result.json"
    file = CONFIGS / "fault-injection.yaml"
    r = hwemu_cli("run", file, "--set", "run.bio.requests=300", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    config = load_config(result["config"])
    assert config == resolve(load_config(file, overrides={"run.bio.requests": 300}))
    assert config.run.bio.requests == 300
    assert config.fault_injection.failslab.probability == 50
    exps = result["expectations"]
    assert [e["metric"] for e in exps] == declared_expectations(config)
    for e in exps:
        assert set(e) == {"metric", "condition", "value", "ok"}
        assert e["ok"] is True
        assert re.fullmatch(r"(==|!=|<=|>=|<|>) \d+(\.\d+)?", e["condition"])
        assert e["value"] == report.totals(result)[e["metric"]]
    assert {e["metric"]: e["condition"] for e in exps}["alloc_reserve"] == ">= 1"
    samples = result["samples"]
    t = samples["t"]
    assert len(t) >= 2 and t == sorted(t)
    assert len(samples["ops"]) == len(t) and samples["ops"] == sorted(samples["ops"])
    assert samples["ops"][-1] == 600
    assert list(samples["pools"]) == ["requests"] and len(samples["pools"]["requests"]) == len(t)
    assert list(samples["nodes"]) == ["0"] and len(samples["nodes"]["0"]) == len(t)
    assert result["machine"] == "fault-injection" and result["seed"] == 11
    assert "Linux version" in result["dmesg"] and "reboot: Power down" not in result["dmesg"]


# ---------------------------------------------------------------- --plot

def test_plot_writes_labelled_pngs_and_the_config(tmp_path):
    from PIL import Image
    plots = tmp_path / "plots"
    file = CONFIGS / "fault-injection.yaml"
    r = hwemu_cli("run", file, "--set", "run.bio.requests=300", "--plot", plots)
    assert r.returncode == 0, r.stdout + r.stderr
    ylabels = {"pool-fill.png": "elements in reserve (curr_nr)",
               "free-memory.png": "free memory (MiB)"}
    for name, ylabel in ylabels.items():
        path = plots / name
        assert f"hwemu: wrote {path}" in r.stderr
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.format == "PNG"
            width, height = img.size
            assert width > 0 and height > 0
            text = img.text
            assert len(img.convert("RGB").getcolors(1 << 20)) > 2   # something drawn
        assert text["Title"].startswith("fault-injection: ")
        assert text["Description"] == f"x: emulated time (s); y: {ylabel}"
    config = load_config(plots / "config.yaml")
    assert config == resolve(load_config(file, overrides={"run.bio.requests": 300}))


# ---------------------------------------------------------------- --ktap

def test_ktap_of_a_failing_run():
    r = hwemu_cli("run", CONFIGS / "kasan-uaf.yaml", "--ktap")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = ktap_section(r.stdout)
    assert lines[:3] == ["KTAP version 1", "1..2", "# hwemu run: kasan-uaf seed 1"]
    assert ktap_results(lines) == [(False, 1, "kasan_reports"), (True, 2, "run")]
    assert "# kasan_reports == 0, got 1" in lines


def test_ktap_agrees_with_the_expectations(tmp_path):
    out = tmp_path / "result.json"
    r = hwemu_cli("run", CONFIGS / "fault-injection.yaml", "--set", "run.bio.requests=300",
                  "--ktap", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    exps = json.loads(out.read_text())["expectations"]
    lines = ktap_section(r.stdout)
    assert lines[1] == f"1..{len(exps) + 1}"
    assert ktap_results(lines) == [(e["ok"], n, e["metric"]) for n, e in enumerate(exps, 1)] \
        + [(True, len(exps) + 1, "run")]
    assert lines[-2:] == [f"ok {len(exps) + 1} run", "# completed"]


# ---------------------------------------------------------------- SIGINT

def test_sigint_prints_the_partial_summary_and_exits_130(tmp_path):
    out = tmp_path / "result.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # A shell's background job ignores SIGINT, and children inherit that: restore it,
    # as a terminal's foreground job has it.
    ktap = tmp_path / "result.ktap"
    p = subprocess.Popen([sys.executable, "-m", "hwemu.cli", "run", "--duration", "60s",
                          "--ktap", str(ktap), "--json", str(out)], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = []
        for line in p.stderr:   # progress: one plain line a second; wait for the second
            seen.append(line)
            if sum(s.startswith("[") for s in seen) == 2:
                break
        assert sum(s.startswith("[") for s in seen) == 2, seen
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    first = stdout.splitlines()[0]
    assert first.startswith("hwemu run: hwemu, seed 1: interrupted after ")
    seconds = float(re.search(r"interrupted after ([0-9.]+)s", first)[1])
    assert 0.5 < seconds < 30
    assert pool_row(stdout, "bio")["allocator"] > 0
    assert ktap_results(ktap_section(ktap.read_text()))[-1] == (False, 6, "run")
    assert "# interrupted" in ktap.read_text()
    result = json.loads(out.read_text())
    assert result["interrupted"] is True and result["task_errors"] == []


# ---------------------------------------------------------------- determinism

DETERMINISTIC = """\
machine:
  name: det
  cpus: 2
  hz: 1000
  nodes:
    - mem: 64M
fault_injection:
  failslab:
    probability: 30
    times: -1
    verbose: 0
run:
  duration: 30s
  pools:
    - name: skb
      type: kmalloc
      size: 512
      min_nr: 8
  net_rx:
    pool: skb
    batch: 8
    backlog: 4
    interval: 0
    packets: 2000
"""


def test_a_single_task_run_is_reproducible_from_its_seed(tmp_path):
    config = tmp_path / "det.yaml"
    config.write_text(DETERMINISTIC)

    def run(seed):
        out = tmp_path / f"seed{seed}-{len(list(tmp_path.iterdir()))}.json"
        r = hwemu_cli("run", config, "--seed", seed, "--json", out)
        assert r.returncode == 0, r.stdout + r.stderr
        result = json.loads(out.read_text())
        assert result["config"]["fault_injection"]["seed"] == seed
        return result

    a, b, c = run(5), run(5), run(6)
    assert a["workloads"] == {"net_rx": {"polls": 250, "received": 2000}}
    pool = a["pools"]["skb"]
    assert pool["alloc_allocator"] + pool["alloc_reserve"] == 2000
    assert 0 < pool["alloc_reserve"] < 2000                  # failslab failed some
    assert (a["pools"], a["workloads"]) == (b["pools"], b["workloads"])
    assert c["pools"] != a["pools"]
    assert c["pools"]["skb"]["alloc_reserve"] != pool["alloc_reserve"]


# ---------------------------------------------------------------- bad run configs

BASE = """\
machine:
  cpus: 4
  nodes:
    - mem: 64M
run:
  pools:
    - name: a
      type: kmalloc
      size: 64
"""   # 9 lines; what a case appends starts at line 10


@pytest.mark.parametrize("extra, line, key, message", [
    ("  bio:\n    pool: nope\n", 11, "run.bio.pool", "no pool named 'nope' in run.pools (a)"),
    ("    - name: a\n", 10, "run.pools.1.name", "duplicate pool name 'a'"),
    ("  bio:\n    pool: a\n    submitters: 3\n", 5, "run",
     "the workloads need 4 CPUs besides CPU 0, the machine has 4; raise machine.cpus"),
    ("  duration: 10 parsecs\n", 10, "run.duration", "invalid duration '10 parsecs'"),
    ("  duration: .inf\n", 10, "run.duration", "invalid duration"),
    ("  bio:\n    pool: a\n    gfp: GFP_NOPE\n", 12, "run.bio.gfp", "unknown GFP flag 'GFP_NOPE'"),
    ("expect:\n  null_returns: \"about 3\"\n", 11, "expect.null_returns",
     "invalid expectation 'about 3'"),
    ("  custom:\n    - function: \"not a function\"\n", 11, "run.custom.0.function",
     "'not a function' is not module:function"),
], ids=["unknown-pool", "duplicate-pool", "too-many-tasks", "bad-duration", "infinite-duration",
        "bad-gfp", "bad-expectation", "bad-function"])
def test_bad_run_config_exits_2_with_file_line_key(tmp_path, extra, line, key, message):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + extra)
    r = hwemu_cli("run", path)
    assert "Traceback" not in r.stderr, r.stderr
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}:{line}: {key}: "), lines[0]
    assert message in lines[0]


@pytest.mark.parametrize("module, function, message", [
    (None, "no_such_module_xyz:fn", "cannot import no_such_module_xyz: ModuleNotFoundError"),
    ("raise RuntimeError('broken on import')\n", "broken_mod:fn",
     "cannot import broken_mod: RuntimeError: broken on import"),
    ("x = 1\n", "nofn_mod:fn", "nofn_mod has no function fn"),
], ids=["missing", "raises", "no-function"])
def test_unimportable_custom_function_exits_2(tmp_path, module, function, message):
    if module is not None:
        (tmp_path / f"{function.split(':')[0]}.py").write_text(module)
    path = tmp_path / "custom.yaml"
    path.write_text(BASE.replace("cpus: 4", "cpus: 2")
                    + f"  custom:\n    - function: \"{function}\"\n")
    r = hwemu_cli("run", path, cwd=ROOT)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, lines
    line = 1 + path.read_text().splitlines().index(f"    - function: \"{function}\"")
    assert lines[0].startswith(f"{path}:{line}: run.custom.0.function: {message}"), lines[0]


# ---------------------------------------------------------------- durations, conditions

@pytest.mark.parametrize("value, ns", [
    ("10s", 10_000_000_000), ("500ms", 500_000_000), ("50us", 50_000), ("7ns", 7),
    ("1.5s", 1_500_000_000), (".5ms", 500_000), ("2", 2_000_000_000), (" 3 ms ", 3_000_000),
    (0, 0), (2, 2_000_000_000), (0.25, 250_000_000),
])
def test_parse_duration(value, ns):
    assert parse_duration(value) == ns


@pytest.mark.parametrize("value", ["10 parsecs", "", "s", "-1s", "1e3", "5m", "1h", -1, -0.5,
                                   True, None, [1], float("nan"), float("inf")])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("ns, text", [
    (10_000_000_000, "10s"), (500_000_000, "500ms"), (1_500_000_000, "1500ms"),
    (50_000, "50us"), (1_500, "1500ns"), (7, "7ns"), (0, "0ns"),
])
def test_format_duration_round_trips(ns, text):
    assert format_duration(ns) == text
    assert parse_duration(text) == ns


@pytest.mark.parametrize("value, normal", [
    (0, "== 0"), (3, "== 3"), (2.5, "== 2.5"), ("7", "== 7"), (">=1", ">= 1"),
    ("  <  10 ", "< 10"), ("!= 0", "!= 0"), ("<=0.5", "<= 0.5"), (">2", "> 2"), ("==4", "== 4"),
])
def test_expectation_conditions_are_normalised(value, normal):
    assert _condition(value) == normal
    assert ExpectConfig(waits=value).waits == normal


@pytest.mark.parametrize("value", ["about 3", "=> 1", "= 1", ">= -1", "", True, None, "1."])
def test_bad_expectation_conditions_are_rejected(value):
    with pytest.raises(ValueError):
        _condition(value)


# ---------------------------------------------------------------- report

def fake_result(**overrides):
    """A result as Run.execute() makes it, with the values expectations look at."""
    result = {
        "machine": "m", "seed": 1, "interrupted": False, "wall_seconds": 1.0,
        "emulated_seconds": 1.0,
        "pools": {
            "a": {"type": "slab", "size": 64, "order": 0, "min_nr": 4, "preallocated": 4,
                  "alloc_allocator": 10, "alloc_reserve": 3, "alloc_null": 0, "waits": 2,
                  "wait_ns": 3_000_000, "max_wait_ns": 2_500_000, "free_reserve": 3,
                  "free_allocator": 10, "kasan_dropped": 0, "lowest_fill": 1,
                  "p99_wait_ns": 2_500_000},
            "b": {"type": "page", "size": 256, "order": 1, "min_nr": 2, "preallocated": 2,
                  "alloc_allocator": 5, "alloc_reserve": 1, "alloc_null": 4, "waits": 1,
                  "wait_ns": 1_000_000, "max_wait_ns": 1_000_000, "free_reserve": 1,
                  "free_allocator": 5, "kasan_dropped": 0, "lowest_fill": 0,
                  "p99_wait_ns": 1_000_000}},
        "workloads": {"bio": {"completed": 15, "submitted": 15},
                      "net_rx": {"received": 5, "drops": 4, "io_errors": 1}},
        "zones": [], "vm": {"oom_kill": 0}, "kasan_reports": [], "bugs": 0, "warnings": 2,
        "tainted": "Not tainted", "task_errors": [], "panic": None, "samples": {},
        "expectations": [], "deadlock": "", "blocked_tasks": "", "hung_tasks": [],
        "schedule": {"strategy": "random", "seed": 0, "steps": 100, "switches": 10,
                     "interleaving": "00000000deadbeef"},
    }
    result.update(overrides)
    return result


def test_totals_sum_pools_and_workloads():
    t = report.totals(fake_result())
    assert t == {"alloc_allocator": 15, "alloc_reserve": 4, "null_returns": 4, "waits": 3,
                 "max_wait_ms": 2.5, "free_reserve": 4, "free_allocator": 15, "completed": 15,
                 "io_errors": 1, "drops": 4, "oom_kills": 0, "kasan_reports": 0, "bugs": 0,
                 "warnings": 2}


@pytest.mark.parametrize("metric, condition, ok", [
    ("alloc_allocator", "== 15", True), ("alloc_allocator", "== 14", False),
    ("null_returns", "!= 0", True), ("null_returns", "!= 4", False),
    ("waits", "< 4", True), ("waits", "< 3", False),
    ("max_wait_ms", "<= 2.5", True), ("max_wait_ms", "<= 2", False),
    ("drops", "> 3", True), ("drops", "> 4", False),
    ("completed", ">= 15", True), ("completed", ">= 16", False),
    ("warnings", 2, True), ("bugs", ">= 1", False),
])
def test_expectations_with_each_operator(metric, condition, ok):
    expect = ExpectConfig(**{metric: condition})
    value = report.totals(fake_result())[metric]
    assert report.expectations(fake_result(), expect) == [
        {"metric": metric, "condition": _condition(condition), "value": value, "ok": ok}]


def test_expectations_only_the_declared_ones_in_field_order():
    expect = ExpectConfig(warnings=0, alloc_reserve=">= 1", io_errors=0)
    got = report.expectations(fake_result(), expect)
    assert [(e["metric"], e["ok"]) for e in got] == [
        ("alloc_reserve", True), ("io_errors", False), ("warnings", False)]
    assert report.expectations(fake_result(), ExpectConfig()) == []


def test_exit_code():
    ok = {"metric": "bugs", "condition": "== 0", "value": 0, "ok": True}
    bad = dict(ok, ok=False)
    assert report.exit_code(fake_result(expectations=[ok])) == 0
    assert report.exit_code(fake_result(expectations=[])) == 0
    assert report.exit_code(fake_result(expectations=[ok, bad])) == 1
    assert report.exit_code(fake_result(expectations=[ok], task_errors=["x/0: E: e"])) == 1
    assert report.exit_code(fake_result(expectations=[ok], panic="Kernel panic - not "
                                        "syncing: x")) == 1
    assert report.exit_code(fake_result(expectations=[ok], deadlock="deadlock on m")) == 1
    assert report.exit_code(fake_result(expectations=[ok], interrupted=True)) == 130
    assert report.exit_code(fake_result(expectations=[bad], interrupted=True)) == 130
    for name, code in (("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)):
        assert report.exit_code(fake_result(expectations=[bad], interrupted=True,
                                            signal=name)) == code


def test_summary_and_ktap_render_a_result():
    result = fake_result(expectations=report.expectations(
        fake_result(), ExpectConfig(null_returns=0, max_wait_ms="< 3")),
        vm={"oom_kill": 0, "kswapd_wake": 1, "pgsteal_kswapd": 2, "pgsteal_direct": 0,
            "allocstall_normal": 0})
    text = report.summary(result)
    assert text.startswith("hwemu run: m, seed 1: ran 1.00s of emulated time (1.00s wall)\n")
    assert pool_row(text, "b") == {"type": "page/order-1", "min_nr": 2, "allocator": 5,
                                   "reserve": 1, "null": 4, "waits": 1, "free_reserve": 1,
                                   "free_allocator": 5, "lowest_fill": 0}
    assert expectation_lines(text) == ["  FAIL  null_returns == 0 (got 4)",
                                       "  ok    max_wait_ms < 3 (got 2.50)"]
    assert "  net_rx: received 5, drops 4, io_errors 1" in text
    ktap = report.ktap(dict(result, interrupted=True)).splitlines()
    assert ktap[:2] == ["KTAP version 1", "1..3"]
    assert ktap_results(ktap) == [(False, 1, "null_returns"), (True, 2, "max_wait_ms"),
                                  (False, 3, "run")]
    assert "interrupted after" in report.summary(dict(result, interrupted=True)).splitlines()[0]
    stopped = dict(result, interrupted=True, signal="SIGTERM")
    assert ", seed 1: interrupted by SIGTERM after 1.00s" in report.summary(stopped)
    assert report.ktap(stopped).splitlines()[-2:] == ["not ok 3 run", "# interrupted by SIGTERM"]


# ---------------------------------------------------------------- PoolStats

def test_wait_percentile_of_known_samples():
    s = PoolStats()
    assert s.wait_percentile(99) == 0                     # no sleeps yet
    values = [10 * i for i in range(1, 101)]              # 10..1000
    random.Random(1).shuffle(values)
    for v in values:
        s.wait(v)
    assert s.wait_percentile(0) == 10
    assert s.wait_percentile(100) == 1000
    assert s.wait_percentile(50) in (500, 510)
    assert s.wait_percentile(99) in (990, 1000)
    assert s.wait_percentile(90) in (900, 910)
    snap = s.snapshot()
    assert (snap["waits"], snap["wait_ns"], snap["max_wait_ns"]) == (100, 50500, 1000)
    one = PoolStats()
    one.wait(7)
    assert [one.wait_percentile(p) for p in (0, 50, 99, 100)] == [7, 7, 7, 7]


def test_wait_reservoir_keeps_a_uniform_sample_of_wait_samples_entries():
    s = PoolStats()
    n = 2 * WAIT_SAMPLES + WAIT_SAMPLES // 2
    for ns in range(1, n + 1):
        s.wait(ns)
        if ns == WAIT_SAMPLES:
            assert len(s._waits) == WAIT_SAMPLES
    assert len(s._waits) == WAIT_SAMPLES
    snap = s.snapshot()
    assert snap["waits"] == n and snap["max_wait_ns"] == n
    assert snap["wait_ns"] == n * (n + 1) // 2
    # A uniform sample of 1..n: its median is near n/2 (the first WAIT_SAMPLES
    # alone would put it at WAIT_SAMPLES/2), its top near n.
    assert abs(s.wait_percentile(50) - n / 2) < n * 0.03
    assert s.wait_percentile(99) > n * 0.97
    assert s.wait_percentile(1) < n * 0.03


def test_lowest_fill_follows_reserve_allocations(machine):
    pool = mempool.mempool_create_kmalloc_pool(4, 64)
    assert mempool.mempool_stats(pool)["lowest_fill"] is None
    from_allocator = mempool.mempool_alloc(pool, GFP_KERNEL)
    assert mempool.mempool_stats(pool)["lowest_fill"] is None   # the reserve untouched
    taken = [mempool.mempool_alloc_preallocated(pool) for _ in range(3)]
    assert all(taken)
    assert mempool.mempool_stats(pool)["lowest_fill"] == 1
    mempool.mempool_free(taken.pop(), pool)                      # back to 2 in reserve
    assert mempool.mempool_stats(pool)["lowest_fill"] == 1       # the lowest stays
    taken += [mempool.mempool_alloc_preallocated(pool) for _ in range(2)]
    assert mempool.mempool_alloc_preallocated(pool) == 0         # empty
    s = mempool.mempool_stats(pool)
    assert s["lowest_fill"] == 0
    assert (s["alloc_reserve"], s["alloc_null"], s["alloc_allocator"]) == (5, 1, 1)
    for e in taken + [from_allocator]:
        mempool.mempool_free(e, pool)
    mempool.mempool_destroy(pool)


# ---------------------------------------------------------------- the Python API

DRAWS = []


def alloc_and_count(task):
    """A custom workload: ``args.n`` allocations from pool ``p``, counted."""
    pool = task.pools["p"]
    DRAWS.append(task.rng.getrandbits(64))
    for _ in range(task.args["n"]):
        if task.stopping():
            return
        e = mempool.mempool_alloc(pool, GFP_KERNEL)
        hwemu.store(e, 8, 0x1234)
        task.count("allocs")
        task.count("bytes", 64)
        mempool.mempool_free(e, pool)


def explode(task):
    task.count("before")
    raise RuntimeError("boom")


def idle_until_stopped(task):
    while not task.stopping():
        hwemu.schedule_timeout_uninterruptible(1)
    task.count("idled")


def small_machine(cpus=4, **run):
    return {"machine": {"name": "api", "cpus": cpus, "hz": 1000, "nodes": [{"mem": "64M"}]},
            "run": {"seed": 9, "duration": "10s",
                    "pools": [{"name": "p", "type": "kmalloc", "size": 64, "min_nr": 4}],
                    **run}}


def test_run_api_custom_workload_counts_and_is_seeded():
    cfg = small_machine(custom=[{"function": "test_runs:alloc_and_count", "tasks": 2,
                                 "args": {"n": 50}}])
    DRAWS.clear()
    result = Run(load_config(cfg)).execute()
    first = sorted(DRAWS)
    assert result["task_errors"] == [] and result["interrupted"] is False
    assert result["workloads"] == {"test_runs:alloc_and_count": {"allocs": 100,
                                                                 "bytes": 6400}}
    pool = result["pools"]["p"]
    assert pool["alloc_allocator"] + pool["alloc_reserve"] == 100
    assert pool["free_allocator"] + pool["free_reserve"] == 100
    assert result["emulated_seconds"] < 10        # counted work done: the run ended
    assert len(first) == 2 and first[0] != first[1]   # each task its own rng
    DRAWS.clear()
    Run(load_config(cfg)).execute()
    assert sorted(DRAWS) == first                  # same seed, same numbers
    DRAWS.clear()
    cfg["run"]["seed"] = 10
    Run(load_config(cfg)).execute()
    assert sorted(DRAWS) != first


def test_run_api_reports_a_task_that_raised():
    cfg = small_machine(custom=[{"function": "test_runs:explode"}])
    result = Run(load_config(cfg)).execute()
    assert result["task_errors"] == ["explode/0: RuntimeError: boom"]
    assert result["workloads"] == {"test_runs:explode": {"before": 1}}
    result["expectations"] = []
    assert report.exit_code(result) == 1
    assert "Task failed: explode/0: RuntimeError: boom" in report.summary(result)


def ignore_stopping(run):
    """A workload that never looks at run.stopping()."""
    while True:
        msleep(10)


def ignore_shutdown(run):
    """A workload that does not stop when its machine goes down either."""
    while True:
        try:
            msleep(10)
        except MachineDown:
            run.count("ignored")


def test_a_task_that_ignores_the_stop_is_stopped_by_shutdown(monkeypatch):
    import hwemu.runs
    monkeypatch.setattr(hwemu.runs, "JOIN_SECONDS", 0.2)
    cfg = small_machine(duration="50ms", custom=[{"function": "test_runs:ignore_stopping"}])
    result = Run(load_config(cfg)).execute()
    # 15 characters of comm; the join waited 0.2 s of emulated time, no wall time.
    assert result["task_errors"] == [
        "ignore_stoppi/0: still running 0.2s (emulated) after the stop"]
    blocked = result["blocked_tasks"]
    assert "sysrq: Show Blocked State" in blocked
    assert re.search(r"task:ignore_stoppi/0 state:D .*pid:2 ", blocked)
    assert "msleep" in blocked and "ignore_stopping" in blocked
    result["expectations"] = []
    assert report.exit_code(result) == 1


def test_a_task_that_ignores_the_shutdown_still_gives_a_result(monkeypatch):
    import hwemu.runs
    monkeypatch.setattr(hwemu.runs, "JOIN_SECONDS", 0.2)
    monkeypatch.setattr(hwemu.runs, "SHUTDOWN_SECONDS", 0.2)
    cfg = small_machine(duration="50ms", custom=[{"function": "test_runs:ignore_shutdown"}])
    run = Run(load_config(cfg))
    result = run.execute()
    errors = result["task_errors"]
    assert errors[0] == "ignore_shutdo/0: still running 0.2s (emulated) after the stop"
    assert errors[1] == ("shutdown of 'api': task(s) still running after 0.2s: "
                         "ignore_shutdo/0/2")
    # The machine stays up: nothing is unmapped under the task.
    assert [t.comm for t in run.machine.sched.tasks.values()] == ["init", "ignore_shutdo/0"]
    result["expectations"] = []
    assert report.exit_code(result) == 1


def test_run_api_rejects_a_config_without_run_and_a_bad_import():
    with pytest.raises(ValueError):
        Run(load_config({"machine": {"cpus": 2, "nodes": [{"mem": "64M"}]}}))
    with pytest.raises(ImportError, match=r"^run\.custom\.0\.function: "):
        Run(load_config(small_machine(custom=[{"function": "test_runs:no_such_fn"}])))


# ---------------------------------------------------------------- workloads

RESIZE = {"pool": "p", "sizes": [8, 2], "interval": "20ms"}


def test_resize_workload_resizes_the_pool():
    cfg = small_machine(duration="300ms", resize=RESIZE,
                        custom=[{"function": "test_runs:idle_until_stopped"}])
    result = Run(load_config(cfg)).execute()
    assert result["task_errors"] == []
    resize = result["workloads"]["resize"]
    assert resize["resizes"] > 0 and "resize_failures" not in resize
    # Growing 4 -> 8 (and later 2 -> 8) preallocates elements beyond the first 4.
    assert result["pools"]["p"]["preallocated"] >= 8
    assert result["samples"]["pools"]["p"][-1] in (2, 8)   # curr_nr: one of the sizes
    assert result["pools"]["p"]["min_nr"] == result["samples"]["pools"]["p"][-1]
    assert result["emulated_seconds"] >= 0.29


def test_resize_alone_runs_for_the_duration():
    """A run whose workloads are all background ones (resize, memory_hog) has no counts:
    it must last its duration, not end at the first sample."""
    result = Run(load_config(small_machine(duration="300ms", resize=RESIZE))).execute()
    assert result["emulated_seconds"] >= 0.29
    assert result["workloads"]["resize"].get("resizes", 0) > 0


def test_bio_on_i386_highmem_page_pool_keeps_the_data_intact():
    cfg = {"machine": {"name": "i386-bio", "arch": "i386", "cpus": 4, "hz": 1000,
                       "nodes": [{"mem": "2G"}]},
           "run": {"seed": 3, "duration": "10s",
                   "pools": [{"name": "bounce", "type": "page", "order": 1, "min_nr": 8}],
                   "bio": {"pool": "bounce", "submitters": 2, "queue_depth": 8,
                           "requests": 400, "gfp": "GFP_NOIO | __GFP_HIGHMEM",
                           "latency": {"min": "50us", "mean": "200us"}}}}
    config = load_config(cfg)
    assert config.machine.highmem_enabled
    result = Run(config).execute()
    assert result["task_errors"] == []
    bio = result["workloads"]["bio"]
    assert bio["submitted"] == bio["completed"] == 800
    assert bio.get("io_errors", 0) == 0
    assert result["pools"]["bounce"]["alloc_null"] == 0
    zones = {z["zone"]: z for z in result["zones"]}
    high = zones["HighMem"]
    # The requests' pages came from highmem (and went back to it).
    assert high["min_free"] < high["free"]
    assert result["bugs"] == 0 and result["warnings"] == 0


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr is under `make run`."""

    def isatty(self):
        return True


def test_progress_on_a_terminal_is_a_live_table_and_plain_lines_otherwise(monkeypatch):
    from hwemu.runs import progress
    monkeypatch.setattr(progress, "LIVE_SECONDS", 0.0)
    monkeypatch.setattr(progress, "PLAIN_SECONDS", 0.0)
    cfg = small_machine(duration="300ms", net_rx={"pool": "p", "interval": "1ms"})
    tty, pipe = Terminal(), io.StringIO()
    live, plain = progress.Progress(tty), progress.Progress(pipe)

    def both(run, samples):
        live(run, samples)
        plain(run, samples)

    try:
        Run(load_config(cfg)).execute(both)
    finally:
        live.close()
        plain.close()
    screen = tty.getvalue()
    assert "pool p" in screen and "node 0 free" in screen and "ops/s" in screen
    assert "\x1b[" in screen          # drawn and redrawn in place
    lines = pipe.getvalue().splitlines()
    assert len(lines) >= 2 and all(PROGRESS_RE.match(line) for line in lines)
    assert "\x1b[" not in pipe.getvalue()


# ---------------------------------------------------------------- issue 14

def test_the_readme_run_api_gives_a_complete_result(tmp_path, monkeypatch):
    """``report.summary(Run(load_config(p)).execute())`` as the README has it, from
    another directory: the custom workload beside the config is found, and the
    expectations, exit code and status are in the result (not added by the CLI)."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "issue14_driver.py").write_text(
        "def work(run):\n    run.count('completed', 3)\n")
    path = configs / "run.yaml"
    path.write_text(
        "machine: {cpus: 2, nodes: [{mem: 64M}]}\n"
        "run: {duration: 20ms, custom: [{function: 'issue14_driver:work'}]}\n"
        "expect: {completed: 3, kasan_reports: 0}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = hwemu.runs.Run(hwemu.load_config(str(path))).execute()
    text = hwemu.runs.report.summary(result)
    assert "  issue14_driver:work: completed 3" in text
    assert expectation_lines(text) == ["  ok    completed == 3 (got 3)",
                                       "  ok    kasan_reports == 0 (got 0)"]
    assert (result["format"], result["exit_code"], result["status"]) == (1, 0, "passed")


def hold_memory(run):
    """Hold 2000 pages until the run ends, then give them back."""
    from hwemu import add_anon_pages, release_anon_pages
    run.count("held", add_anon_pages(2000))
    while not run.stopping():
        msleep(10)
    release_anon_pages()


def test_the_run_ends_at_its_last_sample_and_its_time_excludes_shutdown(monkeypatch):
    """``--duration 100ms`` is 0.10 s of emulated time, and the samples end there: what
    the workloads give back as they stop (a spike of free memory in the plot) and the
    shutdown are not in them; the wall time is the run's, without the shutdown's."""
    import hwemu.runs
    clock = [0.0]
    monkeypatch.setattr(hwemu.runs, "time", type("Clock", (), {
        "monotonic": staticmethod(lambda: clock[0])}))
    real_boot = hwemu.runs.boot

    def boot(config):
        machine = real_boot(config)
        shutdown = machine.shutdown

        def slow_shutdown(*args):
            clock[0] += 100.0   # a shutdown of 100 s of host time
            return shutdown(*args)
        machine.shutdown = slow_shutdown
        return machine
    monkeypatch.setattr(hwemu.runs, "boot", boot)
    cfg = small_machine(duration="100ms", custom=[{"function": "test_runs:hold_memory"}])
    result = Run(load_config(cfg)).execute()
    assert result["task_errors"] == [] and result["workloads"]["test_runs:hold_memory"] == {
        "held": 2000}
    assert result["emulated_seconds"] == 0.1 and result["samples"]["t"][-1] == 0.1
    assert "ran 0.10s of emulated time (0.00s wall)" in report.summary(result)
    (free,) = result["samples"]["nodes"].values()
    assert free[-1] < max(free) - 1500          # still held at the last sample
    assert result["wall_seconds"] == 0.0


def cache_then_drop(run):
    """Fill the page cache past the low watermark (kswapd reclaims some), then drop
    what is left: drop_caches is not reclaim."""
    from hwemu import add_to_page_cache, drop_caches
    run.count("cached", add_to_page_cache(100_000))
    msleep(50)
    run.count("dropped", drop_caches())


def test_the_reclaim_line_counts_kswapd_and_direct_reclaim_apart():
    cfg = small_machine(duration="1s", custom=[{"function": "test_runs:cache_then_drop"}])
    result = Run(load_config(cfg)).execute()
    assert result["task_errors"] == []
    vm, work = result["vm"], result["workloads"]["test_runs:cache_then_drop"]
    assert work["dropped"] > 0
    # kswapd was woken (its first wake started it, and counts) and reclaimed.
    assert vm["kswapd_wake"] >= 1 and vm["pgsteal_kswapd"] > 0
    assert sum(z["reclaimed"] for z in result["zones"]) == vm["pgsteal_kswapd"]
    line = next(x for x in report.summary(result).splitlines() if x.startswith("Reclaim:"))
    assert line == (f"Reclaim: kswapd woken {vm['kswapd_wake']} times, reclaimed "
                    f"{vm['pgsteal_kswapd']} pages; direct reclaim 0 stalls, 0 pages; "
                    "OOM kills 0")
