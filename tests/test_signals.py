"""Stopping a run (issue 13, items 5 and 6): SIGINT, SIGTERM and SIGHUP sent to
``hwemu run`` in a subprocess at the moment its output says, never after a fixed
sleep; and workloads asleep in emulated time when a run stops."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from hwemu.config import load_config
from hwemu.runs import Run, report

HANG_GUARD = 90   # seconds: a child still running then is killed (the test fails)

# A small run that reaches its first progress line (1 s of emulated time) quickly.
LIGHT = """\
machine:
  name: light
  cpus: 4
  hz: 1000
  nodes:
    - mem: 64M
run:
  seed: 5
  duration: 60s
  pools:
    - {name: skb, type: kmalloc, size: 256, min_nr: 16}
  net_rx: {pool: skb, batch: 4, backlog: 8, interval: 1ms}
expect:
  io_errors: 0
"""

WORKLOADS = '''\
"""Custom workloads of tests/test_signals.py."""
import os
import signal

from hwemu import (TASK_INTERRUPTIBLE, cond_resched, msleep, schedule,
                   schedule_timeout_uninterruptible, usleep_range)
from hwemu.wait import DEFINE_WAIT, WaitQueueHead, finish_wait, prepare_to_wait

if os.environ.get("PAUSE_ON_IMPORT"):   # start-up: wait here for the test's signal
    os.write(2, b"importing the workloads\\n")
    signal.pause()


def in_msleep(run):
    while not run.stopping():
        msleep(10**9)
        run.count("naps")


def in_usleep_range(run):
    while not run.stopping():
        usleep_range(10**12, 10**12)
        run.count("naps")


def in_schedule_timeout(run):
    while not run.stopping():
        schedule_timeout_uninterruptible(10**12)
        run.count("naps")


def on_a_wait_queue(run):
    """Waits for a wake-up no one sends, as a kthread does: the stop's wake-up ends it."""
    wq = WaitQueueHead()
    while not run.stopping():
        wait = DEFINE_WAIT()
        prepare_to_wait(wq, wait, TASK_INTERRUPTIBLE)
        if not run.stopping():
            schedule()
        finish_wait(wq, wait)
        run.count("naps")


def ignoring_the_stop(run):
    """Naps until the run stops, then keeps the CPU busy: the run waits for it."""
    while not run.stopping():
        msleep(1)
    while True:
        cond_resched()
'''


@pytest.fixture
def workdir(tmp_path):
    """A directory with light.yaml and the custom workloads module beside it."""
    (tmp_path / "light.yaml").write_text(LIGHT)
    (tmp_path / "sigworkloads.py").write_text(WORKLOADS)
    return tmp_path


def custom(function: str, **extra) -> str:
    """A config of one custom workload on the light machine."""
    text = LIGHT.split("run:")[0] + textwrap.dedent(f"""\
        run:
          duration: {extra.pop("duration", "60s")}
          pools:
            - {{name: p, type: kmalloc, size: 256, min_nr: 4}}
          custom:
            - function: "sigworkloads:{function}"
        """)
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    return text


class Child:
    """``hwemu run ARGS`` in a subprocess (stdin closed, output piped, SIGINT at its
    default as in a terminal's foreground job); a thread per stream collects the lines."""

    def __init__(self, cwd, *args, env=None):
        self.p = subprocess.Popen(
            [sys.executable, "-m", "hwemu.cli", "run", *map(str, args)], cwd=cwd,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.guard = threading.Timer(HANG_GUARD, self.p.kill)
        self.guard.start()
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self.changed = threading.Condition()
        self.readers = [threading.Thread(target=self._read, args=(name, stream))
                        for name, stream in (("out", self.p.stdout), ("err", self.p.stderr))]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines[name].append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines[name].append("")   # the end of the stream
            self.changed.notify_all()

    def wait_for(self, stream: str, predicate) -> str:
        """Wait for a line of ``stream`` (out or err) that satisfies ``predicate``."""
        seen = 0
        with self.changed:
            while True:
                lines = self.lines[stream]
                for line in lines[seen:]:
                    if line == "":
                        raise AssertionError(
                            f"the child ended (rc {self.p.wait()}) before the line; "
                            f"stdout:\n{''.join(self.lines['out'])}\n"
                            f"stderr:\n{''.join(self.lines['err'])}")
                    if predicate(line):
                        return line
                seen = len(lines)
                self.changed.wait()

    def send(self, signum: int) -> None:
        self.p.send_signal(signum)

    def finish(self) -> tuple[int, str, str]:
        """The exit code, the whole stdout and stderr."""
        try:
            rc = self.p.wait()
            for reader in self.readers:
                reader.join()
        finally:
            self.guard.cancel()
        return rc, "".join(self.lines["out"]), "".join(self.lines["err"])


def progress(line: str) -> bool:
    return line.startswith("[")


# ---------------------------------------------------------------- one signal

@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                          (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_prints_the_partial_result_and_exits_128_plus_its_number(
        workdir, signum, code):
    out = workdir / "result.json"
    ktap = workdir / "result.ktap"
    child = Child(workdir, "light.yaml", "--json", out, "--ktap", ktap)
    child.wait_for("err", progress)
    child.send(signum)
    rc, stdout, stderr = child.finish()
    name = signal.Signals(signum).name
    assert rc == code, stdout + stderr
    assert "Traceback" not in stderr
    assert f"hwemu: {name}: stopping the run" in stderr
    how = "interrupted" if signum == signal.SIGINT else f"interrupted by {name}"
    assert stdout.startswith(f"hwemu run: light, seed 5: {how} after ")
    assert "\nExpectations:\n  ok    io_errors == 0 (got 0)\n" in stdout
    assert ktap.read_text().endswith(f"not ok 2 run\n# {how}\n")   # the run did not end
    result = json.loads(out.read_text())
    assert result["interrupted"] is True and result["signal"] == name
    assert result["task_errors"] == [] and result["workloads"]["net_rx"]["received"] > 0
    assert 1 <= result["emulated_seconds"] < 60


# ---------------------------------------------------------------- a second Ctrl-C

def test_a_second_ctrl_c_while_the_run_stops_quits_at_once(workdir):
    """The run waits for a workload that ignores the stop (30 s of emulated time of
    busy work); the second Ctrl-C does not wait for it."""
    (workdir / "busy.yaml").write_text(custom("ignoring_the_stop"))
    out = workdir / "result.json"
    child = Child(workdir, "busy.yaml", "--json", out)
    child.wait_for("err", progress)
    child.send(signal.SIGINT)
    child.wait_for("err", lambda line: "stopping the run" in line)
    child.send(signal.SIGINT)
    rc, stdout, stderr = child.finish()
    assert rc == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert stderr.endswith("hwemu: interrupted again: quitting without the summary\n")
    assert stdout == "" and out.read_text() == ""   # no result: it quit


def test_a_second_ctrl_c_never_kills_the_process_nor_loses_the_summary(workdir):
    """A second Ctrl-C as the run stops, or as the summary is printed (once flaky:
    killed by SIGINT, rc -2, or the summary cut short): exit 130, no traceback, and
    either the whole result or the line saying it quit."""
    for attempt in range(6):
        out = workdir / f"result{attempt}.json"
        child = Child(workdir, "light.yaml", "--json", out)
        child.wait_for("err", progress)
        child.send(signal.SIGINT)
        if attempt % 2:
            child.wait_for("err", lambda line: "stopping the run" in line)
        else:
            child.wait_for("out", lambda line: line.startswith("hwemu run: light"))
        child.send(signal.SIGINT)
        rc, stdout, stderr = child.finish()
        assert rc == 130, (attempt, stdout + stderr)
        assert "Traceback" not in stderr
        if stdout:   # the second Ctrl-C came once the result was in hand
            assert stdout.rstrip().endswith("  ok    io_errors == 0 (got 0)")
            assert json.loads(out.read_text())["interrupted"] is True
        else:
            assert stderr.endswith("quitting without the summary\n"), (attempt, stderr)


# ---------------------------------------------------------------- start-up

@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                          (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_during_start_up_exits_at_once_without_a_traceback(workdir, signum, code):
    """The signal comes while the custom workloads are imported, before the boot."""
    (workdir / "nap.yaml").write_text(custom("in_msleep"))
    child = Child(workdir, "nap.yaml", env={"PAUSE_ON_IMPORT": "1"})
    child.wait_for("err", lambda line: line.startswith("importing the workloads"))
    child.send(signum)
    rc, stdout, stderr = child.finish()
    assert rc == code, stdout + stderr
    assert "Traceback" not in stderr and stdout == ""
    how = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
    assert stderr.splitlines()[-1] == f"hwemu: interrupted{how}"


# ---------------------------------------------------------------- sleeping workloads

@pytest.mark.parametrize("function", ["in_msleep", "in_usleep_range", "in_schedule_timeout",
                                      "on_a_wait_queue"])
def test_a_workload_asleep_when_the_run_stops_is_woken(workdir, function):
    """kthread_stop()'s wake-up: the sleep ends at the stop, the workload returns."""
    config = _config(workdir, custom(function, duration="200ms"))
    result = Run(config, (str(workdir),)).execute()
    result["expectations"] = report.expectations(result, config.expect)
    assert result["task_errors"] == [] and result["blocked_tasks"] == ""
    assert result["emulated_seconds"] == 0.2
    assert result["workloads"][f"sigworkloads:{function}"] == {"naps": 1}
    assert report.exit_code(result) == 0


def _config(workdir, text: str):
    path = workdir / "run.yaml"
    path.write_text(text)
    return load_config(str(path))


def test_a_run_ends_after_its_duration_whatever_a_workload_sleeps(workdir):
    """net_rx sleeps 45 s between polls; the run lasts 50 s: the stop wakes it from
    the second sleep (which would end at 90 s) and the run ends cleanly at 50 s."""
    (workdir / "slow.yaml").write_text(LIGHT.replace("interval: 1ms", "interval: 45s"))
    out = workdir / "result.json"
    child = Child(workdir, "slow.yaml", "--duration", "50s", "--json", out)
    rc, stdout, stderr = child.finish()
    assert rc == 0, stdout + stderr
    result = json.loads(out.read_text())
    assert result["emulated_seconds"] == 50.0
    assert result["task_errors"] == [] and result["interrupted"] is False
    assert result["workloads"]["net_rx"]["polls"] == 2


def test_a_background_workload_asleep_when_the_foreground_ends_is_woken(workdir):
    """The counted packets are received in 3 ms; the resize workload sleeps 40 s
    before its first resize: the run stops at once, without waiting for it."""
    text = LIGHT.replace("interval: 1ms}", "interval: 1ms, packets: 64}\n"
                         "  resize: {pool: skb, sizes: [8, 16], interval: 40s}")
    config = _config(workdir, text)
    result = Run(config).execute()
    assert result["task_errors"] == [] and result["interrupted"] is False
    assert result["workloads"]["net_rx"]["received"] == 64
    assert result["workloads"]["resize"] == {}
    assert result["emulated_seconds"] < 0.1


def test_a_signal_ends_an_exploration_without_calling_a_schedule_failed(workdir):
    """--explore: the schedule the signal stops, or the next one, is not run to the end
    nor called FAILED."""
    child = Child(workdir, "light.yaml", "--duration", "2s", "--explore", "5", "--jobs", "1")
    child.wait_for("err", lambda line: line.startswith("hwemu: schedule 1/5: "))
    child.send(signal.SIGTERM)
    rc, stdout, stderr = child.finish()
    assert rc == 143, stdout + stderr
    assert "Traceback" not in stderr and "FAILED" not in stderr
    last = stderr.splitlines()[-1]
    assert last == "hwemu: interrupted after 1 of 5 schedules, all passed" or \
        last.endswith(": interrupted") and "interrupted by SIGTERM after" in stdout, stderr
