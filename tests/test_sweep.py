"""Runs at scale (hwemu/runs/fleet.py, sweep.py, explore.py): ``hwemu sweep`` and
``hwemu run --explore --jobs``. The same sweep gives the same table on the local pool
and on a Dask cluster; the schedule exploration reports the lowest failing seed
whatever the number of workers; a worker that dies costs one rerun, not the sweep;
a bad ``--set`` stops the command before any run. Configs are tiny and runs last
tens of emulated milliseconds; nothing here depends on wall time."""
import csv
import json
import random
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from helpers import RACY_WORKLOAD, reserve_only
from test_runs import hwemu_cli

from hwemu.cli import main
from hwemu.runs import sweep as sweeps
from hwemu.runs.fleet import Done

# A pool that only its reserve can fill (every allocator attempt of mempool_alloc()
# fails): 32 requests in flight wait for each other when min_nr is smaller.
POOL_CONFIG = {
    "machine": {"name": "sized", "cpus": 6, "hz": 1000, "nodes": [{"mem": "64M"}]},
    "fault_injection": reserve_only(),
    "run": {"duration": "30ms",
            "pools": [{"name": "rq", "type": "slab", "size": 256, "min_nr": 4}],
            "bio": {"pool": "rq", "submitters": 4, "queue_depth": 8,
                    "latency": {"min": "100us", "mean": "2ms"}}},
    "expect": {"max_wait_ms": "< 2", "null_returns": 0},
}
SIZING = str(Path(__file__).resolve().parent.parent / "configs" / "sizing.yaml")
GRID = ["--set", "run.pools.0.min_nr=2,8,32", "--seeds", "0-4"]


def write_config(tmp_path, data, name="run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def table_rows(stdout):
    """The table's rows (below its header line, the one with "runs"), split into cells."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "runs" in line.split()) + 1
    return [line.split() for line in lines[start:] if line.strip()]


def test_a_sweep_gives_the_same_table_on_the_local_pool_and_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    config = write_config(tmp_path, POOL_CONFIG)
    local = hwemu_cli("sweep", config, *GRID, "--jobs", "2", "--json", tmp_path / "l.json",
                      "--csv", tmp_path / "l.csv")
    assert local.returncode == 0, local.stdout + local.stderr
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        dask = hwemu_cli("sweep", config, *GRID, "--executor", "dask", "--scheduler",
                         cluster.scheduler_address, "--json", tmp_path / "d.json")
    assert dask.returncode == 0, dask.stdout + dask.stderr
    assert "on the Dask scheduler at tcp://" in dask.stderr
    assert dask.stdout == local.stdout
    # What the table says is what the pool does: a reserve as deep as the requests
    # in flight never waits; a shallow one always does, and longer.
    rows = {row[0]: row for row in table_rows(local.stdout)}
    assert list(rows) == ["2", "8", "32"] and {row[1] for row in rows.values()} == {"5"}
    assert rows["32"][2:5] == ["5/5", "5/5", "5/5"]   # both expectations, all of them
    assert rows["2"][3] == "0/5"                      # max_wait_ms < 2 never held
    assert float(rows["2"][5]) > float(rows["8"][5]) > float(rows["32"][5]) == 0
    # One record per run, in the grid's order, the same from both executors.
    records = json.loads((tmp_path / "l.json").read_text())
    assert [(r["run.pools.0.min_nr"], r["seed"]) for r in records] == \
        [(m, s) for m in (2, 8, 32) for s in range(5)]
    assert records == json.loads((tmp_path / "d.json").read_text())
    with open(tmp_path / "l.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(r["max_wait_ms"]) for r in table] == [r["max_wait_ms"] for r in records]
    # A record's replay command runs that run alone, the same.
    worst = max(records, key=lambda r: r["max_wait_ms"])
    alone = hwemu_cli(*shlex.split(worst["replay"])[1:])
    assert alone.returncode == 1   # max_wait_ms < 2 did not hold
    assert f"max_wait_ms < 2 (got {worst['max_wait_ms']:.2f})" in alone.stdout


def test_set_values_split_at_commas_outside_lists_and_quotes():
    grid = sweeps.parse_grid(["machine.nodes=[{mem: 64M}],[{mem: 32M}, {mem: 32M}]",
                              "machine.name='a,b',c", "run.duration=5ms"])
    assert grid.keys == ["machine.nodes", "machine.name"]
    assert grid.values == [[[{"mem": "64M"}], [{"mem": "32M"}, {"mem": "32M"}]],
                           ["a,b", "c"]]
    assert grid.fixed == {"run.duration": "5ms"}   # one value: every run's


def test_the_table_comes_from_the_grid_order_not_the_completion_order():
    grid = sweeps.parse_grid(["run.pools.0.min_nr=2,4", "run.bio.submitters=1,2"])
    assert grid.settings() == [{"run.pools.0.min_nr": m, "run.bio.submitters": s}
                               for m in (2, 4) for s in (1, 2)]
    seeds = range(3)
    jobs = sweeps.jobs(SIZING, grid, seeds)

    def result(job):   # made-up values that differ in every run
        wait = job.index * 2 + job.seeds["run.seed"]
        return {"exit_code": int(wait > 5), "totals": {"max_wait_ms": wait, "waits": 1},
                "expectations": [{"metric": "max_wait_ms", "condition": "< 5",
                                  "ok": wait < 5}]}

    def table(order):
        done = {job.index: Done(job, result(job)) for job in order}
        return sweeps.table(sweeps.Sweep(SIZING, grid, seeds, ["max_wait_ms"], done))

    first = table(jobs)
    for seed in range(5):
        shuffled = list(jobs)
        random.Random(seed).shuffle(shuffled)
        assert table(shuffled) == first
    # min_nr 2, 1 submitter: waits 0, 3 and 6 ms; "< 5" held for two seeds
    assert first.splitlines()[2].split() == ["2", "1", "3", "2/3", "2/3", "3", "5.94", "6"]


# ---------------------------------------------------------------- explore

def test_explore_reports_the_same_lowest_failing_seed_with_one_or_two_jobs(tmp_path):
    (tmp_path / "racy.py").write_text(RACY_WORKLOAD)
    # Few preemption points: most schedules pass, the first failure is a dozen in.
    config = write_config(tmp_path, {
        "machine": {"name": "racy", "cpus": 4, "nodes": [{"mem": "64M"}],
                    "sched": {"strategy": "random"}},
        "run": {"duration": "1s",
                "pools": [{"name": "p", "type": "kmalloc", "size": 64, "min_nr": 4}],
                "custom": [{"function": "racy:add", "tasks": 2,
                            "args": {"n": 5, "tasks": 2}}]}})
    runs = {jobs: hwemu_cli("run", config, "--explore", "30", "--jobs", str(jobs))
            for jobs in (1, 2)}
    for jobs, r in runs.items():
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"schedules/s on {jobs} local worker process" in r.stderr
    replays = {jobs: [line for line in r.stdout.splitlines() if line.startswith("Replay: ")]
               for jobs, r in runs.items()}
    assert len(replays[1]) == 1 and replays[1] == replays[2]
    seed = int(re.search(r"--sched-seed (\d+)", replays[1][0]).group(1))
    assert seed > 1   # a race that the first schedules miss: workers overtake each other

    def lines(r):   # every schedule before the failing one, in order, and it
        return [line for line in r.stderr.splitlines() if line.startswith("hwemu: schedule ")]

    assert lines(runs[1]) == lines(runs[2])
    assert len(lines(runs[1])) == seed + 1
    assert all(line.endswith(": ok") for line in lines(runs[1])[:-1])
    assert lines(runs[1])[-1].endswith(": FAILED")
    assert f"schedule {seed + 1} of 30 failed; {seed} passed before it" in runs[2].stdout


# ---------------------------------------------------------------- dying workers

KILLER = '''
import os
import signal


def work(run):
    """Kill this worker process when running seed ``args.seed``: once if ``args.marker``
    names a file to create the first time, else every time."""
    seed = run.machine.config.run.seed
    marker = run.args.get("marker")
    if seed == run.args["seed"] and not (marker and os.path.exists(marker)):
        if marker:
            open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    run.count("steps", run.args["n"])
'''


def killer_config(tmp_path, marker):
    (tmp_path / "killer.py").write_text(KILLER)
    args = {"n": 1, "seed": 2, **({"marker": str(marker)} if marker else {})}
    return write_config(tmp_path, {
        "machine": {"name": "killer", "cpus": 2, "nodes": [{"mem": "64M"}]},
        "run": {"duration": "10ms",
                "pools": [{"name": "p", "type": "kmalloc", "size": 64, "min_nr": 4}],
                "custom": [{"function": "killer:work", "args": args}]}})


STEPS = "workloads.killer:work.steps"


def test_a_worker_killed_mid_sweep_costs_one_rerun_and_the_sweep_completes(tmp_path):
    marker = tmp_path / "killed-once"
    config = killer_config(tmp_path, marker)
    r = hwemu_cli("sweep", config, "--set", "run.custom.0.args.n=1,2,3", "--seeds", "0-4",
                  "--metric", STEPS, "--jobs", "2", "--json", tmp_path / "out.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert marker.exists() and "hwemu: a worker died: runs " in r.stderr
    records = json.loads((tmp_path / "out.json").read_text())
    assert [rec["error"] for rec in records] == [None] * 15
    assert [rec[STEPS] for rec in records] == [n for n in (1, 2, 3) for _ in range(5)]
    assert records[2]["retried"]   # n=1, seed 2: the run that killed its worker
    assert [row[1] for row in table_rows(r.stdout)] == ["5", "5", "5"]


def test_a_run_that_kills_its_worker_twice_is_reported_and_the_rest_complete(tmp_path):
    config = killer_config(tmp_path, None)
    r = hwemu_cli("sweep", config, "--seeds", "0-3", "--metric", STEPS, "--jobs", "2",
                  "--json", tmp_path / "out.json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "lost: run #2 (seed 2): its worker died twice" in r.stdout
    records = json.loads((tmp_path / "out.json").read_text())
    assert [rec["error"] for rec in records] == [None, None, "its worker died twice", None]
    assert table_rows(r.stdout)[0][:3] == ["(config)", "3", "3/3"]


# ---------------------------------------------------------------- bad options

TOUCH = '''
def work(run):
    open(run.args["ran"], "a").close()
'''


@pytest.mark.parametrize("sets, message", [
    (["run.pools.0.min_nr=4,abc"],
     "--set: run.pools.0.min_nr: Input should be a valid integer, unable to parse string"),
    (["run.pools.0.min_nr=4,,8"], "--set: run.pools.0.min_nr: empty value in '4,,8'"),
    (["run.pools.0.min_nr=2,4", "run.pools.0.min_nr=8"],
     "--set: run.pools.0.min_nr: given twice"),
    (["run.pools.0.min_nr=2,4", "run.pool=1,2"], "--set: run.pool: unknown key 'pool'"),
    (["run.duration=1ms,-1ms"], "--set: run.duration: "),
])
def test_bad_set_values_exit_2_before_any_run_starts(tmp_path, capsys, sets, message):
    (tmp_path / "touch.py").write_text(TOUCH)
    ran = tmp_path / "ran"
    config = write_config(tmp_path, {
        "machine": {"name": "t", "cpus": 2, "nodes": [{"mem": "64M"}]},
        "run": {"duration": "1ms",
                "pools": [{"name": "p", "type": "kmalloc", "size": 64, "min_nr": 4}],
                "custom": [{"function": "touch:work", "args": {"ran": str(ran)}}]}})
    argv = ["sweep", str(config), *[w for s in sets for w in ("--set", s)], "--jobs", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert "sweep of" not in err and not ran.exists()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "5-2"], "hwemu: --seeds '5-2': expected A-B with 0 <= A <= B"),
    (["--seeds", "x"], "hwemu: --seeds 'x': expected A-B, e.g. 0-9"),
    (["--metric", "nope"], "hwemu: --metric 'nope': expected one of"),
    (["--scheduler", "tcp://127.0.0.1:1"], "hwemu: --scheduler: only with --executor dask"),
])
def test_bad_sweep_options_exit_2(capsys, args, message):
    assert main(["sweep", SIZING, *args]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_jobs_without_explore_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", SIZING, "--jobs", "2"])
    assert info.value.code == 2
    assert "--jobs, --executor and --scheduler go with --explore" in capsys.readouterr().err


def test_the_job_function_returns_what_hwemu_run_reports(tmp_path):
    """What a worker runs is a plain function of (config path, overrides, seeds)."""
    from hwemu.runs.fleet import run_job
    config = write_config(tmp_path, POOL_CONFIG)
    result = run_job(str(config), {"run.pools.0.min_nr": 32}, {"run.seed": 3})
    assert (result["seed"], result["exit_code"], result["pools"]["rq"]["min_nr"]) == (3, 0, 32)
    assert result["totals"]["waits"] == 0 and "samples" not in result
    assert json.loads(json.dumps(result)) == result


def test_the_dask_executor_says_how_to_install_dask_when_it_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed fails
    assert main(["sweep", SIZING, "--executor", "dask"]) == 2
    assert capsys.readouterr().err == "hwemu: --executor dask needs dask and distributed, " \
        "an optional extra: pip install 'hwemu[dask]'\n"
