"""The hwemu command, end to end in a subprocess."""
import json
import os
import subprocess
import sys

import pytest
from conftest import CONFIGS


def hwemu(*args):
    return subprocess.run([sys.executable, "-m", "hwemu.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_run_brings_up_every_zone():
    r = hwemu("run", str(CONFIGS / "i386-highmem.yaml"), "--set", "machine.cpus=3")
    assert r.returncode == 0, r.stderr
    assert "  node 0 DMA      pfn       0x0-   0x1000     16M  ok" in r.stdout
    assert "  node 0 HighMem  pfn   0x38000-  0x80000   1152M  ok" in r.stdout
    assert "  highmem mapped from 3 CPU(s): ok" in r.stdout
    assert "Node 0, zone  HighMem" in r.stdout                  # /proc/buddyinfo
    assert r.stdout.rstrip().endswith("i386-highmem: 1 node(s), 3 CPU(s), 2G RAM, Not tainted")


def test_bad_config_exits_2_with_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("machine:\n  cpu: 4\n  nodes:\n    - mem: 3Q\n")
    r = hwemu("run", str(bad), "--set", "machine.hz=7")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"{bad}:2: machine.cpu: unknown key 'cpu'; did you mean 'cpus'?",
        f"{bad}:4: machine.nodes.0.mem: invalid size '3Q': expected bytes as an integer or "
        "with a K/M/G/T suffix, e.g. 896M or 0x1000",
        "--set: machine.hz: Input should be 100, 250, 300 or 1000",
    ]


def test_bad_set_syntax_is_a_usage_error():
    r = hwemu("run", "--set", "machine.cpus")
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr


def test_python_dash_m_validates_a_good_config():
    r = subprocess.run([sys.executable, "-m", "hwemu", "validate",
                        str(CONFIGS / "tiny.yaml")], capture_output=True, text=True,
                       timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{CONFIGS / 'tiny.yaml'}: ok\n", "")


def test_validate_reports_every_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("machine:\n  cpus: 0\n  hz: 7\n")
    r = hwemu("validate", str(bad))
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert [line.split(":")[1] for line in lines] == ["2", "3"]
    assert lines[0].startswith(f"{bad}:2: machine.cpus: ")
    assert lines[1] == f"{bad}:3: machine.hz: Input should be 100, 250, 300 or 1000"


def test_show_prints_zones_and_the_virtual_layout_highest_first():
    r = hwemu("show", str(CONFIGS / "i386-highmem.yaml"))
    assert r.returncode == 0, r.stderr
    assert "1152MB HIGHMEM available." in r.stdout
    assert "896MB LOWMEM available." in r.stdout
    layout = r.stdout.split("Virtual kernel memory layout:\n")[1].splitlines()
    labels = [line.split(":")[0].strip() for line in layout]
    assert labels == ["vmemmap", "fixmap kmap_local", "pkmap", "vmalloc", "direct map node0"]
    starts = [int(line.split(": ")[1].split(" - ")[0], 16) for line in layout]
    assert starts == sorted(starts, reverse=True)
    assert layout[2].endswith("(   4 MB)")      # LAST_PKMAP = 1024 pages
    assert layout[4].endswith("( 896 MB)")      # lowmem


def test_proc_prints_one_file_and_rejects_unknown_paths():
    r = hwemu("proc", str(CONFIGS / "x86_64-numa4.yaml"), "/proc/buddyinfo")
    assert r.returncode == 0, r.stderr
    assert {line.split(",")[0] for line in r.stdout.splitlines()} == {
        f"Node {n}" for n in range(4)}
    r = hwemu("proc", str(CONFIGS / "tiny.yaml"), "/proc/nope")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == ("hwemu: /proc/nope: No such file or directory; the machine has "
                        "/proc/allocinfo, /proc/buddyinfo, /proc/meminfo, /proc/slabinfo, "
                        "/proc/vmstat, /proc/zoneinfo\n")


def test_config_reference_prints_docs_config_md():
    r = hwemu("config-reference")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (CONFIGS.parent / "docs" / "config.md").read_text()


def test_show_config_prints_the_resolved_config_with_overrides():
    r = hwemu("run", str(CONFIGS / "i386-highmem.yaml"), "--set", "machine.cpus=3",
              "--show-config")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["machine:", "  name: i386-highmem", "  arch: i386", "  highmem: true"]
    assert "  cpus: 3" in lines and "  vmalloc: 128M" in lines
    assert "Linux version" not in r.stdout   # printed, not booted


def test_unusable_files_give_one_clear_line_and_exit_2(tmp_path):
    """Acceptance: a missing, unreadable, non-YAML, empty and 10 MB file, each without a
    traceback."""
    cases = {"missing.yaml": (None, "no such file"),
             "empty.yaml": (b"", "expected a mapping at top level, got an empty document"),
             "binary.yaml": (b"\x7fELF\x02\x01\x01\x00\xff",
                             "not valid UTF-8: byte 0xff at line 1"),
             "list.yaml": (b"- 1\n- 2\n", "expected a mapping at top level, got a list"),
             "huge.yaml": (b"#" * (10 << 20), f"config file is {10 << 20} bytes; configs are "
                                              "limited to 1 MiB")}
    for name, (data, message) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        for command in ("run", "validate"):
            r = hwemu(command, str(path))
            assert (r.returncode, r.stdout) == (2, ""), (name, command, r.stderr)
            assert r.stderr == f"{path}: (file): {message}\n", (name, command)
    broken = tmp_path / "broken.yaml"
    broken.write_text("machine: [1, 2\n")
    r = hwemu("validate", str(broken))
    assert r.returncode == 2 and r.stderr.startswith(f"{broken}:2: (yaml): ")
    assert "Traceback" not in r.stderr


def _unreadable(tmp_path):
    """A file that open() refuses with EACCES: mode 0, or for root (who reads anything)
    a write-only sysctl."""
    path = tmp_path / "secret.yaml"
    path.write_text("machine: {cpus: 2}\n")
    path.chmod(0)
    for candidate in (path, "/proc/sys/net/ipv4/route/flush", "/proc/sys/vm/compact_memory"):
        try:
            open(candidate, "rb").close()
        except PermissionError:
            return candidate
        except OSError:
            continue
    pytest.skip("no file here refuses to be read")


def test_unreadable_file(tmp_path):
    path = _unreadable(tmp_path)
    r = hwemu("validate", str(path))
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"{path}: (file): permission denied\n")


# ---------------------------------------------------------------- daily use (issue 14)

TICKER = '''\
from hwemu import msleep


def tick(run):
    while not run.stopping():
        msleep(10)
        run.count("ticks")
'''


def ticker_config(tmp_path, duration):
    """A run of one task that sleeps 10 ms at a time until the run ends."""
    (tmp_path / "ticker.py").write_text(TICKER)
    config = tmp_path / "ticker.yaml"
    config.write_text("machine: {cpus: 2, nodes: [{mem: 64M}]}\n"
                      f"run: {{duration: {duration}, custom: [{{function: 'ticker:tick'}}]}}\n")
    return str(config)


def test_version():
    from hwemu import __version__
    r = hwemu("--version")
    assert (r.returncode, r.stdout) == (0, f"hwemu {__version__}\n")


@pytest.mark.parametrize("args, shown", [
    (["validate"], "the packaged config: ok\n"), (["show"], "Virtual kernel memory layout:"),
    (["proc", "/proc/meminfo"], "MemTotal:")], ids=["validate", "show", "proc"])
def test_commands_default_to_the_packaged_config_as_run_does(args, shown):
    r = hwemu(*args)
    assert r.returncode == 0, r.stderr
    assert shown in r.stdout


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["proc", "--help"]])
def test_help_has_no_rest_markup(args):
    r = hwemu(*args)
    assert r.returncode == 0, r.stderr
    assert "``" not in r.stdout and ":class:" not in r.stdout
    if args == ["--help"]:
        assert "The hwemu command (also python -m hwemu)." in r.stdout
        assert "124 --timeout stopped the run" in " ".join(r.stdout.split())   # exit codes


def test_quiet_prints_nothing_but_keeps_the_exit_code(tmp_path):
    r = hwemu("run", ticker_config(tmp_path, "30ms"), "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = hwemu("run", str(CONFIGS / "kasan-uaf.yaml"), "-q")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")


def test_timeout_stops_a_long_run_as_ctrl_c_does_and_exits_124(tmp_path):
    """--timeout is host time: 1s of it, on a run of a million emulated seconds (the
    subprocess's own limit, 120s, is a generous guard)."""
    out = tmp_path / "result.json"
    r = hwemu("run", ticker_config(tmp_path, "1000000s"), "--timeout", "1",
              "--json", str(out))
    assert r.returncode == 124, r.stdout + r.stderr
    assert "hwemu: --timeout 1s (wall clock) passed: the run was stopped\n" in r.stderr
    assert "hwemu: --timeout: stopping the run\n" in r.stderr      # the progress said it
    assert r.stdout.startswith("hwemu run: hwemu, seed 0: stopped by --timeout after ")
    result = json.loads(out.read_text())
    assert (result["interrupted"], result["timed_out"], result["signal"]) == (True, True, None)
    assert (result["exit_code"], result["status"]) == (124, "timed out")
    assert result["workloads"]["ticker:tick"]["ticks"] > 0 and result["task_errors"] == []


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """``hwemu show | head -1``: the pipe closes under the command (here before it writes
    a byte, so that the test does not depend on who is faster); it ends as a tool killed
    by SIGPIPE would (128 + 13), without a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run([sys.executable, "-m", "hwemu.cli", "show", "tiny"],
                           stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert r.returncode == 141, r.stderr
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
