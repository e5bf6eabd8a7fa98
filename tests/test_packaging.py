"""The example configs are packaged: the wheel ships them, the repository's configs/
links to them, and an installed hwemu takes their names (``hwemu.boot("tiny")``,
``hwemu run kasan-uaf``) from any directory. A path that exists wins over a name."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hwemu
from hwemu.config import ConfigError, load_config
from hwemu.config.source import DEFAULT_CONFIG, PACKAGED_CONFIGS, packaged_configs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "configs").iterdir())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel ``pip wheel .`` builds, and the directory it is installed in (with
    ``--target``: put it first on PYTHONPATH to import it instead of the checkout)."""
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT),
                        "-w", str(out)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:   # e.g. no index to take the build backend from
        pytest.skip(f"pip wheel failed: {r.stderr[-500:]}")
    whl = next(out.glob("hwemu-*.whl"))
    target = out / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                        "--no-compile", "--target", str(target), str(whl)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return whl, target


def test_every_example_is_a_link_into_the_package():
    """A config added to configs/ as a file of its own would not be installed: it
    belongs in hwemu/configs/, with a link in configs/."""
    for name in EXAMPLES:
        path = ROOT / "configs" / name
        assert path.is_symlink(), (f"configs/{name} is not packaged: move it to "
                                   f"hwemu/configs/ and link it: ln -s ../hwemu/configs/"
                                   f"{name} configs/{name}")
        assert path.resolve().parent in (PACKAGED_CONFIGS, DEFAULT_CONFIG.parent), name
    assert {f"{n}.yaml" for n in packaged_configs()} == \
        {n for n in EXAMPLES if n.endswith(".yaml")}


def test_the_wheel_ships_every_example(wheel):
    whl, _ = wheel
    names = set(zipfile.ZipFile(whl).namelist())
    for name in EXAMPLES:
        packaged = "hwemu/default.yaml" if name == "default.yaml" else f"hwemu/configs/{name}"
        assert packaged in names, f"{packaged} is not in {whl.name}"


def test_an_installed_hwemu_boots_packaged_configs_by_name(wheel, tmp_path):
    """From a directory with no configs, the installed package (not the checkout)."""
    _, site = wheel
    code = ("import hwemu\n"
            "assert hwemu.__file__.startswith(%r), hwemu.__file__\n"
            "with hwemu.boot('tiny') as m:\n"
            "    print(m.name, m.config.machine.cpus)\n"
            "print(hwemu.load_config('x86_64-numa4.yaml').machine.name)\n" % str(site))
    env = dict(os.environ, PYTHONPATH=str(site))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["tiny 8", "x86_64-numa4"]


def installed_cli(site, cwd, *args):
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "hwemu", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_cli_takes_packaged_names(wheel, tmp_path):
    """``hwemu validate/run NAME`` from elsewhere; kasan-uaf imports its custom workload
    (buggy_driver.py) from the packaged directory."""
    _, site = wheel
    r = installed_cli(site, tmp_path, "validate", "x86_64-numa4")
    assert (r.returncode, r.stdout) == (0, "x86_64-numa4: ok\n"), r.stderr
    r = installed_cli(site, tmp_path, "run", "kasan-uaf")
    assert r.returncode == 1, r.stderr   # the expected failure: a KASAN report
    assert "BUG: KASAN: slab-use-after-free in use_after_free" in r.stdout, r.stdout
    assert "buggy_driver:use_after_free: requests" in r.stdout
    r = installed_cli(site, tmp_path, "validate", "tiny.yml")
    assert r.returncode == 2
    assert r.stderr.startswith("tiny.yml: (file): no such file, nor a packaged config: "
                               "default, "), r.stderr
    assert "kasan-uaf" in r.stderr and "tiny" in r.stderr


def test_a_path_that_exists_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("machine:\n  name: mine\n  nodes: [{mem: 64M}]\n")
    assert load_config("tiny.yaml").machine.name == "mine"       # the file here
    assert load_config("./tiny.yaml").machine.name == "mine"
    assert load_config("tiny").machine.name == "tiny"            # no file 'tiny': the name
    assert load_config(None).machine.name == load_config("default").machine.name


def test_a_missing_path_is_no_name(tmp_path, monkeypatch):
    """A path with a directory is only a path; its error names the packaged config of
    the same name (configs/tiny.yaml outside the repository)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("configs/tiny.yaml")
    assert str(info.value) == ("configs/tiny.yaml: (file): no such file; the packaged "
                               "config of that name is 'tiny'")
    with pytest.raises(ConfigError, match=r"^x/nope.yaml: \(file\): no such file$"):
        load_config("x/nope.yaml")
    with pytest.raises(ConfigError, match=r"no such file, nor a packaged config: default, "):
        hwemu.boot("nope")
    with pytest.raises(ConfigError, match="no such file; the packaged config of that name"):
        load_config(Path("tiny"))   # a Path is a path, never a name
