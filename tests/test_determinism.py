"""The deterministic machine, end to end: a run is a function of its config and seeds
(the example configs, run again and again through ``hwemu run``, give the same bytes
but for the wall time), the schedule's seed changes the interleaving and nothing else
does, a deadlock is reported at once with sysrq-w's stacks and a replay line that
reproduces it, a pool that waits for ever is reported after the stop, and khungtaskd
reports a task stuck in D state.

Nothing here asserts on wall time except the "<5 s wall" bounds of the failing runs
(which would last a 10 s duration plus 30 s of joining if time were not emulated).
"""
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hwemu
from hwemu import complete, init_completion, msleep, wait_for_completion
from hwemu.config import load_config
from hwemu.runs import Run

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CONFIGS = ROOT / "configs"
HWEMU = [sys.executable, "-m", "hwemu.cli"]
WALL_RE = re.compile(r" \(\d+\.\d\ds wall\)$")
WALL_JSON_RE = re.compile(rb'\n *"wall_seconds": [0-9.eE+-]+,')
BLOCKED_RE = re.compile(r"^task:(\S+)\s+state:D stack:0\s+pid:(\d+)", re.M)
TIMESTAMP_RE = re.compile(r"^\[ *\d+\.\d{6}\] ", re.M)

# --duration of the example configs whose own duration is long (the rest end early on
# their own: fault-injection after 3000 requests per submitter, at ~0.2 s; kasan-uaf
# after 200 requests, at ~0.05 s). The default (10s) does ~0.5 s of CPU per emulated
# second; its hog fills the 512M machine at ~2 s, and only then is kswapd woken and
# the pool's reserve used: 2.5 s shows them (4 wakes, ~1300 reserve allocations).
# highmem-page-pool (3s, ~2 s of CPU per emulated second) and net-rx (5s) are cut to
# 1 s. Each config's three runs go side by side (two CPUs).
DURATIONS = {"default.yaml": "2500ms", "highmem-page-pool.yaml": "1s", "net-rx.yaml": "1s"}


def run_configs():
    """configs/*.yaml that have a run: section."""
    return [p.name for p in sorted(CONFIGS.glob("*.yaml")) if load_config(p).run is not None]


def hwemu_cli(*args, cwd=TESTS, timeout=600):
    """``hwemu ARGS`` (``python -m hwemu.cli``) in a subprocess, from tests/ so that
    determinism_workloads is importable (custom functions are imported from the config's
    directory and the working directory)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([*HWEMU, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def timed_cli(*args):
    """``hwemu_cli(*args)`` and the wall seconds it took."""
    start = time.monotonic()
    proc = hwemu_cli(*args)
    return proc, time.monotonic() - start


def cli_side_by_side(commands, tmp_path):
    """Run each ``hwemu`` argument list at the same time; ``[(returncode, stdout,
    stderr)]`` in order. Output goes to files: no pipe can fill up and stall a run."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = []
    for i, args in enumerate(commands):
        out, err = tmp_path / f"stdout{i}", tmp_path / f"stderr{i}"
        with open(out, "w") as fo, open(err, "w") as fe:
            procs.append((subprocess.Popen([*HWEMU, *map(str, args)], stdout=fo, stderr=fe,
                                           cwd=TESTS, env=env), out, err))
    results = []
    for proc, out, err in procs:
        proc.wait(timeout=600)
        results.append((proc.returncode, out.read_text(), err.read_text()))
    return results


def without_wall(stdout):
    """The summary without the ``(N.NNs wall)`` of its first line (it must be there)."""
    first, sep, rest = stdout.partition("\n")
    stripped, n = WALL_RE.subn("", first)
    assert n == 1, f"no wall time on the first line: {first!r}"
    return stripped + sep + rest


def json_without_wall(raw: bytes) -> bytes:
    """The --json bytes without the ``"wall_seconds"`` line (it must be there once)."""
    stripped, n = WALL_JSON_RE.subn(b"", raw)
    assert n == 1, "wall_seconds is not in the JSON exactly once"
    return stripped


def replay_command(stdout):
    """The ``Replay: hwemu run ...`` line of a failing run, as an argument list."""
    lines = [line for line in stdout.splitlines() if line.startswith("Replay: ")]
    assert len(lines) == 1, stdout
    words = shlex.split(lines[0][len("Replay: "):])
    assert words[:2] == ["hwemu", "run"], lines[0]
    return words[1:]


def task_sections(report):
    """``{comm: text}`` of each task's line and Call Trace in a sysrq-w style report."""
    starts = [m.start() for m in re.finditer(r"^task:", report, re.M)] + [len(report)]
    sections = {}
    for a, b in zip(starts, starts[1:]):
        text = report[a:b]
        sections[text.split()[0][len("task:"):]] = text
    return sections


def log_text(machine):
    """The kernel log without its timestamps."""
    return TIMESTAMP_RE.sub("", machine.dmesg())


# ---------------------------------------------------------------- 1. same seed, same run

@pytest.mark.parametrize("name", run_configs())
def test_example_config_runs_are_identical_but_for_wall_time(name, tmp_path):
    """Three runs of a config with the same seed give the same JSON bytes (but for
    wall_seconds), the same summary (but for its wall time) and the same stderr
    (progress lines included)."""
    config = load_config(CONFIGS / name)
    extra = ["--seed", config.run.seed]
    if name in DURATIONS:
        extra += ["--duration", DURATIONS[name]]
    jsons = [tmp_path / f"result{i}.json" for i in range(3)]
    if name == "default.yaml":
        # configs/default.yaml is the packaged default: `hwemu run` without CONFIG
        # (twice) must give what the file gives.
        assert (CONFIGS / name).resolve() == Path(hwemu.__file__).parent / "default.yaml"
        where = [[], [], [CONFIGS / name]]
    else:
        where = [[CONFIGS / name]] * 3
    runs = cli_side_by_side([["run", *w, *extra, "--json", j] for w, j in zip(where, jsons)],
                            tmp_path)

    codes = {code for code, _, _ in runs}
    assert len(codes) == 1 and codes <= {0, 1}, runs[0][1] + runs[0][2]
    assert all("Traceback" not in err for _, _, err in runs), runs[0][2]
    summaries = [without_wall(out) for _, out, _ in runs]
    assert summaries[1] == summaries[0]
    assert summaries[2] == summaries[0]
    progress = [[line for line in err.splitlines() if line.startswith("[")]
                for _, _, err in runs]
    assert progress[0], runs[0][2]
    assert progress[1] == progress[0] and progress[2] == progress[0]
    assert runs[1][2] == runs[0][2] and runs[2][2] == runs[0][2]   # all of stderr, too
    raws = [json_without_wall(j.read_bytes()) for j in jsons]
    assert raws[1] == raws[0]
    assert raws[2] == raws[0]

    result = json.loads(jsons[0].read_text())
    # The kernel log is part of the JSON compared above.
    assert result["dmesg"].startswith("[    0.000000] Linux version ")
    assert result["schedule"]["steps"] > 0
    if name == "default.yaml":
        # The whole machine took part: 4 submitters and the disk (bio), the hog, kswapd
        # (woken once the hog filled memory) and the pool's reserve.
        assert result["config"]["run"]["bio"]["submitters"] == 4
        assert {"bio", "memory_hog"} <= set(result["workloads"])
        assert result["workloads"]["bio"]["completed"] > 0
        assert result["workloads"]["memory_hog"]["pages_added"] > 0
        assert result["vm"]["kswapd_wake"] > 0
        assert result["pools"]["bio"]["alloc_reserve"] > 0
        assert result["emulated_seconds"] == 2.5
        assert result["schedule"]["switches"] > 0


# ---------------------------------------------------------------- 2. seeds and schedules

def default_schedule(strategy, seed):
    """The schedule of 0.1 s of the default run (4 submitters, the disk, the hog)
    under ``strategy`` and ``seed``."""
    config = load_config(None, overrides={"machine.sched.strategy": strategy,
                                          "machine.sched.seed": seed,
                                          "run.duration": "100ms"})
    result = Run(config).execute()
    assert result["task_errors"] == [] and not result["deadlock"]
    return result["schedule"]


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_sched_seeds_give_different_interleavings_and_the_same_seed_the_same(strategy):
    schedules = [default_schedule(strategy, k) for k in range(10)]
    assert [(s["strategy"], s["seed"]) for s in schedules] == [(strategy, k)
                                                               for k in range(10)]
    assert all(s["switches"] > 100 for s in schedules)
    distinct = {s["interleaving"] for s in schedules}
    assert len(distinct) >= 8, [s["interleaving"] for s in schedules]
    # The same seed again: the same schedule, step for step.
    assert default_schedule(strategy, 3) == schedules[3]
    assert default_schedule(strategy, 7) == schedules[7]


def test_round_robin_ignores_the_seed():
    """The fingerprint is the schedule's, not the run's: round_robin has no random
    choices, so every seed gives the same interleaving."""
    first, second = default_schedule("round_robin", 0), default_schedule("round_robin", 5)
    assert first["switches"] > 100
    assert (first["steps"], first["switches"], first["interleaving"]) == \
        (second["steps"], second["switches"], second["interleaving"])


# ---------------------------------------------------------------- 3. a true deadlock

ABBA = """\
# Two tasks, each waiting for a completion the other would complete after its wait.
machine:
  name: abba
  cpus: 4
  hz: 1000
  nodes:
    - mem: 64M
run:
  seed: 1
  duration: 10s
  custom:
    - function: determinism_workloads:abba_first
    - function: determinism_workloads:abba_second
"""


@pytest.fixture(scope="module")
def abba(tmp_path_factory):
    """The ABBA run through ``hwemu run``: (process, wall seconds, result, config)."""
    path = tmp_path_factory.mktemp("abba")
    config = path / "abba.yaml"
    config.write_text(ABBA)
    proc, wall = timed_cli("run", config, "--json", path / "result.json")
    return proc, wall, json.loads((path / "result.json").read_text()), config


def test_a_true_deadlock_is_reported_at_once(abba):
    proc, wall, result, _ = abba
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert wall < 5, f"{wall:.2f}s wall"
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert "\nDeadlock: deadlock on machine 'abba': every task is blocked" in out
    assert "sysrq: Show Blocked State" in out
    blocked = BLOCKED_RE.findall(out)
    assert sorted(comm for comm, _ in blocked) == ["abba_first/0", "abba_second/0"]
    for marker in ("Call Trace:", " <TASK>", " </TASK>"):
        assert f"\n{marker}\n" in out, marker
    report = out[out.index("sysrq: Show Blocked State"):]
    assert re.search(r"^ abba_(first|second)\+0x[0-9a-f]+/0x[0-9a-f]+ .*"
                     r"determinism_workloads\.py:\d+$", report, re.M)
    assert re.search(r"^ wait_for_completion\+0x", report, re.M)
    assert re.search(r"^Replay: hwemu run \S*abba\.yaml --strategy random --sched-seed 0$",
                     out, re.M)
    # Stopped at the deadlock, not at the end of the 10 s duration.
    assert result["emulated_seconds"] < 10
    assert result["deadlock"] and result["blocked_tasks"] in out
    assert result["workloads"]["determinism_workloads:abba_first"] == {"waits": 1}
    assert result["workloads"]["determinism_workloads:abba_second"] == {"waits": 1}
    assert result["blocked_tasks"] in TIMESTAMP_RE.sub("", result["dmesg"])


def test_the_deadlock_replays_to_the_same_output(abba):
    proc, _, _, config = abba
    replay = hwemu_cli(*replay_command(proc.stdout))
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert without_wall(replay.stdout) == without_wall(proc.stdout)
    assert replay.stderr == proc.stderr


def test_the_deadlock_report_has_each_blocked_tasks_stack(abba):
    proc, _, result, _ = abba
    sections = task_sections(result["blocked_tasks"])
    for comm, function in (("abba_first/0", "abba_first"), ("abba_second/0", "abba_second")):
        assert re.search(rf"^ {function}\+0x", sections[comm], re.M), sections[comm]
        assert re.search(r"^ wait_for_completion\+0x", sections[comm], re.M), sections[comm]


# ---------------------------------------------------------------- 4. the deadlocked pool

POOL = """\
# The issue's deadlocked pool: two tasks allocate pages with GFP_NOIO and never free.
machine:
  name: deadlocked-pool
  cpus: 4
  hz: 1000
  nodes:
    - mem: 64M
run:
  seed: 1
  duration: 10s
  pools:
    - name: p
      type: page
      order: 0
      min_nr: 16
  custom:
    - function: determinism_workloads:hoard_pages
      tasks: 2
"""


def test_a_pool_that_waits_for_ever_is_reported_after_the_stop(tmp_path):
    """Memory and the reserve run out; mempool_alloc() then waits in 5 s timeouts for
    an element that never comes back: a livelock on a timer, not a deadlock. The run
    lasts its duration, the join its 30 s, in emulated time only."""
    config = tmp_path / "pool.yaml"
    config.write_text(POOL)
    proc, wall = timed_cli("run", config, "--json", tmp_path / "result.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert wall < 5, f"{wall:.2f}s wall"
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    for i in range(2):
        assert f"\nTask failed: hoard_pages/{i}: still running 30s (emulated) after the " \
               "stop\n" in out
    assert "Deadlock:" not in out
    assert "sysrq: Show Blocked State" in out
    report = out[out.index("sysrq: Show Blocked State"):]
    assert sorted(comm for comm, _ in BLOCKED_RE.findall(report)) == ["hoard_pages/0",
                                                                     "hoard_pages/1"]
    sections = task_sections(report)
    for i in range(2):
        stack = sections[f"hoard_pages/{i}"]
        assert "Call Trace:\n <TASK>\n" in stack and " </TASK>" in stack
        assert re.search(r"^ mempool_alloc\w*\+0x", stack, re.M), stack
        assert re.search(r"^ hoard_pages\+0x", stack, re.M), stack
    assert re.search(r"^Replay: hwemu run \S*pool\.yaml --strategy random --sched-seed 0$",
                     out, re.M)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["deadlock"] == ""
    assert result["emulated_seconds"] == 10      # timers kept it going to the end
    pool = result["pools"]["p"]
    assert pool["alloc_reserve"] == 16 and pool["alloc_null"] == 0 and pool["waits"] > 0
    assert round(pool["max_wait_ns"] / 1e9, 2) == 5   # a wait ends at its 5 s timeout
    # Replayed, the livelock is the same.
    replay = hwemu_cli(*replay_command(out))
    assert replay.returncode == 1
    assert without_wall(replay.stdout) == without_wall(out)


# ---------------------------------------------------------------- 5. hung tasks

def hung_machine(boot, timeout_secs):
    """A waiter in D state without a timer, and a waker that completes it after 50
    sleeps of 100 ms (the machine is not deadlocked: the waker's timer is pending)."""
    m = boot({"machine": {"name": "hung", "cpus": 4, "hz": 1000, "nodes": [{"mem": "64M"}],
                          "sched": {"hung_task_timeout_secs": timeout_secs}}})
    done = init_completion()

    def waiter():
        wait_for_completion(done)
        return hwemu.current().now

    def waker():
        for _ in range(50):
            msleep(100)
        complete(done)

    w = m.spawn(waiter, name="waiter")
    k = m.spawn(waker, name="waker")
    k.join()
    woke_at = w.join()
    assert woke_at >= 5_000_000_000          # it did wait the 5 emulated seconds
    return m, w.pid


def test_khungtaskd_reports_a_task_blocked_in_d_state(boot):
    m, pid = hung_machine(boot, 2)
    assert not m.bugs.deadlock
    reports = m.bugs.hung_tasks
    assert len(reports) == 1, reports
    text = reports[0]
    assert text.startswith(f"INFO: task waiter:{pid} blocked for more than 2 seconds.\n")
    lines = text.splitlines()
    assert lines[2] == '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this ' \
                       'message.'
    assert re.match(rf"task:waiter\s+state:D stack:0\s+pid:{pid} ", lines[3])
    assert lines[4:6] == ["Call Trace:", " <TASK>"] and lines[-1] == " </TASK>"
    assert any(line.startswith(" wait_for_completion+0x") for line in lines)
    assert any(line.startswith(" waiter+0x") for line in lines)
    assert "waker" not in text
    assert text in log_text(m)


def test_no_hung_task_report_with_hung_task_timeout_secs_0(boot):
    m, _ = hung_machine(boot, 0)
    assert m.bugs.hung_tasks == []
    assert "INFO: task" not in m.dmesg()
