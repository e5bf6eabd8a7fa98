"""The hwemu command, end to end in a subprocess."""
import subprocess
import sys

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
