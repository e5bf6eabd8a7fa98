"""The README's examples, executed: each Python block runs, and where the README shows
what it prints, it prints that ("..." in a shown output stands for any lines). The
sample summary is the real output of ``make run`` (``hwemu run`` on the packaged
default), wall time aside."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_plugin import run as run_pytester
from test_runs import hwemu_cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# (code, the block that follows it or None), for every ```python block
BLOCKS = [(m.group(1), m.group(3)) for m in re.finditer(
    r"```python\n(.*?)```\n(```\n(.*?)```\n)?", README, re.S)]

pytest_plugins = ["pytester"]


def kind(code: str) -> str:
    if "def test_" in code:
        return "pytest"
    if "def stress(run)" in code:
        return "workload"
    return "script"


# A function's offset in a stack line is in bytecode: it moves with the Python version.
OFFSET = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+")


def matches(shown: str, printed: str) -> bool:
    """Whether ``printed`` is ``shown``, a "..." line of it standing for any lines."""
    shown, printed = OFFSET.sub("+off", shown), OFFSET.sub("+off", printed)
    pattern = "\n".join(".*?" if line == "..." else re.escape(line)
                        for line in shown.rstrip("\n").splitlines())
    return re.fullmatch(pattern, printed.rstrip("\n"), re.S) is not None


SCRIPTS = [(code, shown) for code, shown in BLOCKS if kind(code) == "script"]


@pytest.mark.parametrize("code, shown", SCRIPTS, ids=[f"block{i}" for i in range(len(SCRIPTS))])
def test_python_blocks_run_and_print_what_is_shown(code, shown):
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    if shown is not None:
        assert matches(shown, r.stdout), r.stdout


TESTS = [code for code, _ in BLOCKS if kind(code) == "pytest"]


@pytest.mark.parametrize("code", TESTS, ids=[f"block{i}" for i in range(len(TESTS))])
def test_the_plugin_examples_pass(pytester, code):
    """In a directory of their own: the configs they name are the packaged ones."""
    result, out, outcomes = run_pytester(pytester, code)
    assert outcomes and set(outcomes.values()) == {"PASSED"}, out


def test_the_workload_example_runs_as_a_custom_workload(tmp_path):
    code = next(code for code, _ in BLOCKS if kind(code) == "workload")
    (tmp_path / "mydriver.py").write_text(code)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "machine": {"cpus": 2, "nodes": [{"mem": "64M"}]},
        "run": {"pools": [{"name": "requests", "type": "kmalloc", "size": 64, "min_nr": 4}],
                "custom": [{"function": "mydriver:stress", "args": {"n": 1000}}]}}))
    r = hwemu_cli("run", config)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mydriver:stress: requests 1000" in r.stdout


def test_the_sample_summary_is_what_make_run_prints():
    shown = README.split("(wall time aside):\n\n```\n", 1)[1].split("```", 1)[0]
    r = hwemu_cli("run", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    wall = re.compile(r" \(\d+\.\d+s wall\)$", re.M)
    printed = wall.sub(" (wall)", r.stdout)
    assert matches(wall.sub(" (wall)", shown), printed), printed
