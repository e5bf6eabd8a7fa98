"""Schedule exploration and replay (hwemu/explore.py, hwemu run --explore, the
hwemu_explore marker): a planted race is found within a bounded number of schedules,
and what is printed replays it exactly."""
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from helpers import RACY_WORKLOAD, add_in_two_tasks
from test_plugin import run as run_pytester
from test_runs import hwemu_cli

import hwemu
from hwemu import (GFP_KERNEL, cond_resched, kfree, kmalloc, load, spin_lock, spin_lock_init,
                   spin_unlock, store)

pytest_plugins = ["pytester"]

TINY = str(Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml")
N = 20


def counter_test(locked: bool):
    """Two tasks add N each to a counter in emulated memory: read, a preemption point,
    write; with ``locked`` under a spinlock, else a lost-update race."""
    def test(machine):
        counter = kmalloc(8 + 8, GFP_KERNEL)
        lock = counter + 8
        store(counter, 8, 0)
        spin_lock_init(lock)

        def add():
            for _ in range(N):
                if locked:
                    spin_lock(lock)
                value = load(counter, 8)
                cond_resched()
                store(counter, 8, value + 1)
                if locked:
                    spin_unlock(lock)

        add_in_two_tasks(machine, add, counter, N)
    return test


racy, locked = counter_test(False), counter_test(True)


# ---------------------------------------------------------------- hwemu.explore

@pytest.mark.parametrize("strategy", ["pct", "random"])
def test_explore_finds_the_lost_update_and_replays_it(strategy):
    with pytest.raises(hwemu.ExploreFailure) as info:
        hwemu.explore(racy, schedules=100, strategy=strategy, config=TINY)
    failure = info.value
    schedule = failure.schedule
    assert (schedule.strategy, isinstance(failure.cause, AssertionError)) == (strategy, True)
    assert failure.problems[0].startswith("AssertionError: lost update: counter ")
    seed = f"seed={schedule.seed}" + (f", steps={schedule.steps}" if schedule.steps else "")
    assert failure.replay == (f"hwemu.replay(test_explore.counter_test.<locals>.test, "
                              f"strategy={strategy!r}, {seed}, config={TINY!r})")
    assert str(failure).splitlines()[-1] == f"replay: {failure.replay}"
    for _ in range(2):   # the same schedule, the same lost update
        with pytest.raises(hwemu.ExploreFailure) as again:
            hwemu.replay(racy, schedule.strategy, schedule.seed, schedule.steps, config=TINY)
        assert again.value.problems == failure.problems


def test_the_locked_counter_passes_every_schedule_and_they_differ():
    tried = hwemu.explore(locked, schedules=50, strategy="pct", config=TINY)
    assert tried.schedules == 50 and tried.seeds == range(0, 50)
    assert tried.interleavings >= 10   # many orders tried, none lost an update
    assert all(o.problems == [] for o in tried.outcomes)


def test_explore_fails_a_schedule_for_a_dead_task_a_deadlock_and_kasan():
    def dies(machine):
        machine.spawn(lambda: 1 // 0, name="div")

    with pytest.raises(hwemu.ExploreFailure, match=r"task div/2 died: ZeroDivisionError"):
        hwemu.explore(dies, schedules=3, config=TINY)

    def stuck(machine):
        never = hwemu.init_completion()
        machine.spawn(hwemu.wait_for_completion, never, name="waiter")

    with pytest.raises(hwemu.ExploreFailure) as info:
        hwemu.explore(stuck, schedules=3, config=TINY)
    assert type(info.value.cause) is hwemu.Deadlock
    assert "sysrq: Show Blocked State" in info.value.cause.text

    def use_after_free(machine):
        p = kmalloc(32, GFP_KERNEL)
        kfree(p)
        load(p, 8)

    with pytest.raises(hwemu.ExploreFailure, match="BUG: KASAN: slab-use-after-free"):
        hwemu.explore(use_after_free, schedules=1, config=TINY,
                      overrides={"kasan.enabled": True})


def test_explore_rejects_an_unknown_strategy():
    with pytest.raises(ValueError, match="strategy 'fifo': expected one of random, pct"):
        hwemu.explore(locked, strategy="fifo")


# ---------------------------------------------------------------- hwemu run --explore

def test_cli_explore_finds_the_race_and_its_replay_line_reproduces_it(tmp_path):
    (tmp_path / "racy.py").write_text(RACY_WORKLOAD)
    config = tmp_path / "racy.yaml"
    config.write_text(yaml.safe_dump({
        "machine": {"name": "racy", "cpus": 4, "nodes": [{"mem": "64M"}]},
        "run": {"duration": "1s", "pools": [{"name": "p", "type": "kmalloc", "size": 64,
                                              "min_nr": 4}],
                "custom": [{"function": "racy:add", "tasks": 2,
                            "args": {"n": N, "tasks": 2}}]}}))
    r = hwemu_cli("run", config, "--strategy", "pct", "--explore", "100")
    assert r.returncode == 1, r.stdout + r.stderr
    replay = [line for line in r.stdout.splitlines() if line.startswith("Replay: ")]
    assert len(replay) == 1
    words = shlex.split(replay[0].removeprefix("Replay: "))
    assert words[:3] == ["hwemu", "run", str(config)] and "--sched-seed" in words
    assert "AssertionError: lost update" in r.stdout
    tried = [line for line in r.stderr.splitlines() if line.startswith("hwemu: schedule ")]
    assert tried[-1].endswith("FAILED") and all(t.endswith(": ok") for t in tried[:-1])
    assert f"schedule {len(tried)} of 100 failed; {len(tried) - 1} passed before it" \
        in r.stdout

    def summary(stdout):   # the failing run's report, its wall time aside
        lines = stdout.split("\nReplay: ")[0].splitlines()
        return [line.split(" (")[0] if line.startswith("hwemu run:") else line
                for line in lines if not line.startswith("hwemu: schedule")]

    again = hwemu_cli(*words[1:])
    assert again.returncode == 1, again.stdout + again.stderr
    assert summary(again.stdout) == summary(r.stdout)
    assert f"Replay: {replay[0].removeprefix('Replay: ')}" in again.stdout


def test_cli_explore_counts_the_schedules_of_a_run_that_passes():
    r = hwemu_cli("run", "configs/fault-injection.yaml", "--explore", "3", "--sched-seed", "5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("hwemu: 3 schedules (random, seeds 5..7) passed; ")
    assert r.stdout.rstrip().endswith("distinct interleavings")
    assert len([line for line in r.stderr.splitlines()
                if line.startswith("hwemu: schedule ")]) == 3


# ---------------------------------------------------------------- the pytest marker

MARKED = '''
import pytest
import hwemu
from hwemu import cond_resched

TINY = {tiny!r}


def bump(state):
    value = state["value"]
    cond_resched()
    state["value"] = value + 1


@pytest.mark.hwemu_config(TINY)
@pytest.mark.hwemu_explore(schedules=100, strategy="pct")
def test_racy(hwemu_machine):
    state = {{"value": 0}}

    def add():
        for _ in range(10):
            bump(state)

    tasks = [hwemu_machine.spawn(add) for _ in range(2)]
    for task in tasks:
        task.join()
    assert state["value"] == 20


@pytest.mark.hwemu_config(TINY)
@pytest.mark.hwemu_explore(schedules=20)
def test_leaky(hwemu_machine):
    hwemu_machine.spawn(hwemu.kmalloc, 64, hwemu.GFP_KERNEL)


@pytest.mark.hwemu_config(TINY)
@pytest.mark.hwemu_explore(schedules=20, strategy="random")
def test_fine(hwemu_machine):
    tasks = [hwemu_machine.spawn(cond_resched) for _ in range(3)]
    for task in tasks:
        task.join()
'''


def test_marker_explores_reports_the_replay_option_and_it_replays(pytester):
    source = MARKED.format(tiny=TINY)
    result, out, outcomes = run_pytester(pytester, source)
    assert outcomes == {"test_racy": "FAILED", "test_leaky": "FAILED",
                        "test_fine": "PASSED"}, out
    assert "AssertionError: assert" in out and "memory leaked by the test" in out
    # Counted above pytest's short summary, which repeats them in full on CI
    # hosts (pytest does not truncate it when $CI is set).
    failures = out.split("short test summary info")[0]
    option = [w for line in failures.splitlines() if "replay: pytest" in line
              for w in line.split() if w.startswith("--hwemu-schedule=pct:")]
    assert len(option) == 2   # test_racy's, then test_leaky's
    # The replay runs that one schedule: the same failure, the same message.
    result, again, outcomes = run_pytester(pytester, source, "-k", "test_racy", option[0])
    assert outcomes == {"test_racy": "FAILED"}, again
    assert "schedule failed (strategy pct" in again
    for bad in ("pct", "fifo:1", "pct:x"):
        result = pytester.runpytest_subprocess(f"--hwemu-schedule={bad}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert f"--hwemu-schedule={bad}: expected STRATEGY:SEED[:STEPS]" in result.stderr.str()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
