"""Tests for hwemu.config: sizes, example configs, and error reporting."""

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

import hwemu.config as config_module
import hwemu.config.source as config_source
from hwemu.config import (Config, ConfigError, MachineConfig, NodeConfig, Problem, format_size,
                          load_config, parse_size)

K, M, G = 1 << 10, 1 << 20, 1 << 30
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


# -- sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (0, 0), (4096, 4096), ("4096", 4096), ("896M", 896 * M), ("4G", 4 * G),
        ("1T", 1 << 40), ("64K", 64 * K), ("64k", 64 * K), ("0x1000", 4096),
        ("0X1_000", 4096), ("512MiB", 512 * M), ("2GB", 2 * G), ("2gb", 2 * G),
        ("512 M", 512 * M), (" 1_024 K ", 1024 * K), ("100B", 100),
    ],
)
def test_parse_size_accepts(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "value",
    ["12Q", "", "-1", "M", "1__0", "_1", "0x", "0x10M", "1iB", "4 G B", "1e9",
     -1, True, 1.5, None],
)
def test_parse_size_rejects(value):
    with pytest.raises(ValueError) as info:
        parse_size(value)
    assert str(info.value) == (
        f"invalid size '{value}': expected bytes as an integer or with a "
        "K/M/G/T suffix, e.g. 896M or 0x1000"
    )


def test_parse_size_rejects_fractions_with_hint():
    with pytest.raises(ValueError, match="fractional sizes are not supported; use a smaller unit"):
        parse_size("1.5G")


@pytest.mark.parametrize(
    "n, text",
    [(896 * M, "896M"), (4 * G, "4G"), (1 << 40, "1T"), (4096, "4K"), (1000, "1000"), (0, "0"),
     (3 * 512 * M, "1536M")],
)
def test_format_size(n, text):
    assert format_size(n) == text
    assert parse_size(text) == n


# -- example configs -----------------------------------------------------------


def test_default_config():
    cfg = load_config()
    m = cfg.machine
    assert (m.arch, m.cpus, m.hz) == ("x86_64", 8, 250)
    assert m.node_ranges == ((0, G // 4), (G // 4, G // 2))
    assert m.distances == ((10, 21), (21, 10))
    assert (m.highmem_enabled, m.dma32_enabled, m.last_pkmap) == (False, True, 0)
    assert m.lowmem_limit == m.ram_end == G // 2
    assert m.vmalloc_size == G
    assert cfg.kasan.enabled is False


def test_all_example_configs_load():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert names == [
        "default.yaml", "fault-injection.yaml", "highmem-page-pool.yaml",
        "i386-highmem.yaml", "i386-pae-highmem.yaml", "kasan-uaf.yaml", "net-rx.yaml",
        "noio-pressure.yaml", "sizing.yaml", "tiny.yaml", "x86_64-1node.yaml",
        "x86_64-numa4.yaml",
    ]
    for path in CONFIGS.glob("*.yaml"):
        assert isinstance(load_config(path), Config)


def test_x86_64_1node():
    m = load_config(CONFIGS / "x86_64-1node.yaml").machine
    assert m.node_ranges == ((0, 2 * G),)
    assert m.distances == ((10,),)
    assert m.lowmem_limit == 2 * G


def test_numa4():
    m = load_config(CONFIGS / "x86_64-numa4.yaml").machine
    assert m.cpus == 8
    assert m.node_ranges == tuple((i * G, (i + 1) * G) for i in range(4))
    assert m.distances[0] == (10, 16, 22, 16)
    assert all(m.distances[i][j] == m.distances[j][i] for i in range(4) for j in range(4))


def test_i386_highmem():
    m = load_config(CONFIGS / "i386-highmem.yaml").machine
    assert m.highmem_enabled and not m.dma32_enabled
    assert m.vmalloc_size == 128 * M
    assert m.lowmem_limit == 896 * M
    assert m.last_pkmap == 1024
    assert m.ram_end == 2 * G


def test_i386_pae_highmem():
    m = load_config(CONFIGS / "i386-pae-highmem.yaml").machine
    assert m.pae and m.last_pkmap == 512
    assert m.node_ranges == ((0, 3 * G), (3 * G, 6 * G))
    assert m.lowmem_limit == 896 * M


def test_tiny():
    m = load_config(CONFIGS / "tiny.yaml").machine
    assert (m.cpus, m.hz, m.log_buf_len) == (8, 1000, 256 * K)
    assert (m.sched.strategy, m.sched.seed, m.sched.step_cost) == ("random", 0, 250)
    assert m.ram_end == 64 * M


def test_model_defaults_and_resolution():
    m = MachineConfig()
    assert m.node_ranges == ((0, 512 * M),)
    assert MachineConfig(arch="i386", highmem=False).last_pkmap == 0
    assert MachineConfig(arch="i386", vmalloc="256M").lowmem_limit == 768 * M
    m = MachineConfig(nodes=[{"mem": "1G"}, {"mem": "1G", "start": "4G"}], movablecore="512M")
    assert m.node_ranges == ((0, G), (4 * G, 5 * G))
    assert m.movable_per_node == 256 * M


def test_configs_are_frozen_and_hashable():
    cfg = load_config()
    with pytest.raises(ValidationError):
        cfg.machine.cpus = 8
    with pytest.raises(ValidationError):
        cfg.machine.nodes[0].mem = 0
    assert hash(cfg) == hash(load_config())


# -- validation errors -------------------------------------------------------------


def errors_for(tmp_path, text, name="c.yaml", **kwargs):
    """Load ``text`` from a file and return the error lines (file name only)."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    return str(info.value).replace(str(tmp_path) + os.sep, "").splitlines()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("machine:\n  cpu: 4\n",
         "c.yaml:2: machine.cpu: unknown key 'cpu'; did you mean 'cpus'?"),
        ("machine:\n  nodes:\n    - mem: 1G\n    - mem: 1G\n      strat: 0\n",
         "c.yaml:5: machine.nodes.1.strat: unknown key 'strat'; did you mean 'start'?"),
        ("kasan:\n  xyz: 1\n",
         "c.yaml:2: kasan.xyz: unknown key 'xyz'; valid keys: enabled, fault, multi_shot, "
         "stacktrace, quarantine_size"),
        ("machine:\n  cpus: 4\n  hz: 100\n  cpus: 8\n",
         "c.yaml:4: machine.cpus: duplicate key 'cpus' (first at line 2)"),
        ("machine:\n  cpus: lots\n",
         "c.yaml:2: machine.cpus: Input should be a valid integer, "
         "unable to parse string as an integer"),
        ("machine:\n  cpus: 0\n",
         "c.yaml:2: machine.cpus: Input should be greater than or equal to 1"),
        ("machine:\n  hz: 200\n",
         "c.yaml:2: machine.hz: Input should be 100, 250, 300 or 1000"),
        ("machine:\n  sched:\n    preempt: .nan\n",
         "c.yaml:3: machine.sched.preempt: Input should be a finite number"),
        ("machine:\n  sched:\n    strategy: fifo\n",
         "c.yaml:3: machine.sched.strategy: Input should be 'random', 'pct' or "
         "'round_robin'"),
        ("machine:\n  time_scale: 100\n",
         "c.yaml:2: machine.time_scale: removed: emulated time now belongs to the machine "
         "(each scheduling point costs machine.sched.step_cost, and when no task can run "
         "the clock jumps to the next timer), so it no longer follows the wall clock; "
         "delete this key"),
        ("machine: 3\n", "c.yaml:1: machine: Input should be a mapping"),
        ("machine:\n  nodes: 3\n", "c.yaml:2: machine.nodes: Input should be a list"),
        ("machine:\n  nodes: []\n", "c.yaml:2: machine.nodes: at least one node is required"),
        ("machine:\n  nodes:\n    - start: 0\n",
         "c.yaml:3: machine.nodes.0.mem: Field required"),
        ("machine:\n  nodes:\n    - mem: 12Q\n",
         "c.yaml:3: machine.nodes.0.mem: invalid size '12Q': expected bytes as an integer "
         "or with a K/M/G/T suffix, e.g. 896M or 0x1000"),
        ("machine:\n  nodes:\n    - mem: 6M\n",
         "c.yaml:3: machine.nodes.0.mem: 0x600000 is not a multiple of 4M (0x400000)"),
        ("machine:\n  log_buf_len: 1K\n",
         "c.yaml:2: machine.log_buf_len: 1K is out of range; must be 4K..64M"),
        ("machine:\n  arch: x86_64\n  highmem: true\n",
         "c.yaml:3: machine.highmem: CONFIG_HIGHMEM is 32-bit only: x86_64 maps all RAM "
         "directly; use arch: i386"),
        ("machine:\n  pae: true\n",
         "c.yaml:2: machine.pae: CONFIG_X86_PAE is 32-bit only: x86_64 always uses 64-bit "
         "page tables; use arch: i386"),
        ("machine:\n  arch: i386\n  zone_dma32: true\n",
         "c.yaml:3: machine.zone_dma32: CONFIG_ZONE_DMA32 is x86_64 only: on i386 all lowmem "
         "is below 4G; use arch: x86_64"),
        ("machine:\n  arch: i386\n  nodes:\n    - mem: 2G\n    - mem: 3G\n",
         "c.yaml:5: machine.nodes.1: RAM ends at 0x140000000 (5G), above the 4G that i386 "
         "addresses without PAE; set pae: true or use less memory"),
        ("machine:\n  arch: i386\n  highmem: false\n  nodes:\n    - mem: 1G\n",
         "c.yaml:3: machine.highmem: RAM ends at 0x40000000 (1G), above the 896M lowmem "
         "limit, and without highmem only lowmem is usable; set highmem: true"),
        ("machine:\n  arch: i386\n  vmalloc: 1G\n",
         "c.yaml:3: machine.vmalloc: 1G is too large for i386; the maximum is 512M "
         "(it shares the kernel's 1G of address space with lowmem)"),
        ("machine:\n  nodes:\n    - mem: 512M\n    - mem: 512M\n      start: 256M\n",
         "c.yaml:5: machine.nodes.1.start: node 1 [0x10000000-0x30000000) overlaps "
         "node 0 [0x0-0x20000000)"),
        ("machine:\n  nodes:\n    - mem: 512M\n      start: 1G\n    - mem: 512M\n      start: 0\n",
         "c.yaml:6: machine.nodes.1.start: node 1 [0x0-0x20000000) is below node 0 "
         "[0x40000000-0x60000000); list nodes in increasing address order"),
        ("machine:\n  nodes: [{mem: 1G}, {mem: 1G}]\n  distance: [[10, 20]]\n",
         "c.yaml:3: machine.distance: expected 2 rows (one per node), got 1"),
        ("machine:\n  nodes: [{mem: 1G}, {mem: 1G}]\n  distance:\n    - [10, 20]\n    - [20]\n",
         "c.yaml:5: machine.distance.1: expected 2 entries (one per node), got 1"),
        ("machine:\n  nodes: [{mem: 1G}, {mem: 1G}]\n  distance:\n    - [10, 20]\n    - [20, 11]\n",
         "c.yaml:5: machine.distance.1.1: distance from node 1 to itself must be 10 "
         "(LOCAL_DISTANCE), got 11"),
        ("machine:\n  nodes: [{mem: 1G}, {mem: 1G}]\n  distance:\n"
         "    - [10, 255]\n    - [20, 10]\n",
         "c.yaml:4: machine.distance.0.1: distance from node 0 to node 1 must be 11..254, "
         "got 255 (255 means unreachable in ACPI SLIT)"),
        ("machine:\n  nodes: [{mem: 8M}, {mem: 1G}]\n  movablecore: 16M\n",
         "c.yaml:3: machine.movablecore: 8M per node leaves no non-movable memory on node 0 (8M)"),
        ("machine:\n  nodes: [{mem: 1G}, {mem: 1G}]\n  movablecore: 4M\n",
         "c.yaml:3: machine.movablecore: 4M is not a multiple of 8M (4M x 2 nodes)"),
        ("machine:\n  1: 2\n", "c.yaml:2: machine: mapping keys must be strings, got int 1"),
    ],
)
def test_single_error(tmp_path, text, expected):
    assert errors_for(tmp_path, text) == [expected]


def test_all_errors_reported_together(tmp_path):
    text = (
        "machine:\n"
        "  cpu: 4\n"
        "  hz: 7\n"
        "  nodes:\n"
        "    - mem: 3M\n"
        "      start: 0x1001\n"
        "kasan:\n"
        "  enabled: maybe\n"
        "kasan: {}\n"
    )
    assert errors_for(tmp_path, text) == [
        "c.yaml:2: machine.cpu: unknown key 'cpu'; did you mean 'cpus'?",
        "c.yaml:3: machine.hz: Input should be 100, 250, 300 or 1000",
        "c.yaml:5: machine.nodes.0.mem: 0x300000 is not a multiple of 4M (0x400000)",
        "c.yaml:6: machine.nodes.0.start: 0x1001 is not a multiple of 4M (0x400000)",
        "c.yaml:8: kasan.enabled: Input should be a valid boolean, unable to interpret input",
        "c.yaml:9: kasan: duplicate key 'kasan' (first at line 7)",
    ]


def test_field_errors_do_not_hide_cross_field_errors(tmp_path):
    text = (
        "machine:\n"
        "  cpu: 4\n"
        "  highmem: true\n"
        "  nodes:\n"
        "    - mem: 512M\n"
        "    - start: 256M\n"
        "      mem: 512M\n"
    )
    assert errors_for(tmp_path, text) == [
        "c.yaml:2: machine.cpu: unknown key 'cpu'; did you mean 'cpus'?",
        "c.yaml:3: machine.highmem: CONFIG_HIGHMEM is 32-bit only: x86_64 maps all RAM "
        "directly; use arch: i386",
        "c.yaml:6: machine.nodes.1.start: node 1 [0x10000000-0x30000000) overlaps "
        "node 0 [0x0-0x20000000)",
    ]


def test_several_problems_on_one_key(tmp_path):
    text = "machine:\n  vmalloc: 2M\n  nodes: [{mem: 1G}]\n  distance: [[11, 1]]\n"
    assert errors_for(tmp_path, text) == [
        "c.yaml:2: machine.vmalloc: 2M is too small; the minimum is 8M",
        "c.yaml:4: machine.distance.0: expected 1 entries (one per node), got 2",
    ]
    assert errors_for(tmp_path, "machine:\n  vmalloc: 3M\n") == [
        "c.yaml:2: machine.vmalloc: 3M is not a multiple of 2M",
        "c.yaml:2: machine.vmalloc: 3M is too small; the minimum is 8M",
    ]


# -- file problems ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "c.yaml: (file): expected a mapping at top level, got an empty document"),
        (b"# comment\n", "c.yaml: (file): expected a mapping at top level, got an empty document"),
        (b"- 1\n- 2\n", "c.yaml: (file): expected a mapping at top level, got a list"),
        (b"hello\n", "c.yaml: (file): expected a mapping at top level, got a string"),
        (b"machine:\n  name: \xff\n", "c.yaml: (file): not valid UTF-8: byte 0xff at line 2"),
        (b"machine:\n  hz: : 3\n", "c.yaml:2: (yaml): mapping values are not allowed here"),
        (b"machine:\n  cpus: [1\n", "c.yaml:3: (yaml): while parsing a flow sequence, "
                                   "expected ',' or ']', but got '<stream end>'"),
        (b"machine: \x01\n", "c.yaml:1: (yaml): unacceptable character #x0001: "
                             "special characters are not allowed"),
        (b"---\na: 1\n---\nb: 2\n", "c.yaml:3: (yaml): expected a single document in the stream, "
                                    "but found another document"),
        (b"[" * 5000, "c.yaml: (yaml): document is nested too deeply"),
        (b"a: &a [*a]\n", "c.yaml:1: (yaml): document is nested too deeply"),
        (b"x: !!python/object:os.system {}\n", "c.yaml:1: (yaml): unsupported tag "
                                               "'tag:yaml.org,2002:python/object:os.system'"),
        (b"x: !!python/name:os.system ''\n",
         "c.yaml:1: (yaml): could not determine a constructor "
         "for the tag 'tag:yaml.org,2002:python/name:os.system'"),
    ],
)
def test_file_problems(tmp_path, content, expected):
    (tmp_path / "c.yaml").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml")
    assert str(info.value).replace(str(tmp_path) + os.sep, "") == expected
    assert len(info.value.problems) == 1


def test_billion_laughs(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\n"
    assert errors_for(tmp_path, text) == ["c.yaml: (yaml): document has more than 100000 nodes"]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [Problem(str(path), None, "(file)", "no such file")]
    assert str(info.value) == f"{path}: (file): no such file"


def test_directory(tmp_path):
    with pytest.raises(ConfigError, match=r": \(file\): is a directory"):
        load_config(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # chmod 0 would not stop root, so fake the failing open() instead.
    monkeypatch.setattr(config_source, "open", denied, raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml")
    assert info.value.problems == [
        Problem(str(tmp_path / "c.yaml"), None, "(file)", "permission denied")
    ]


def test_oversized_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"#" * (1024 * 1024) + b"\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: (file): config file is 1048577 bytes; configs are limited to 1 MiB"
    )


def test_non_path_source_is_a_type_error():
    with pytest.raises(TypeError):
        load_config(42)


# -- dict input and overrides -----------------------------------------------------------


def test_dict_input():
    source = {"machine": {"cpus": 2, "nodes": [{"mem": "256M"}]}}
    cfg = load_config(source)
    assert cfg.machine.cpus == 2 and cfg.machine.ram_end == 256 * M
    with pytest.raises(ConfigError) as info:
        load_config({"machine": {"cpus": 0, "cpu": 1}})
    assert str(info.value).splitlines() == [
        "<dict>: machine.cpus: Input should be greater than or equal to 1",
        "<dict>: machine.cpu: unknown key 'cpu'; did you mean 'cpus'?",
    ]


def test_overrides_apply():
    source = {"machine": {"nodes": [{"mem": "256M"}]}}
    cfg = load_config(source, overrides={"machine.cpus": 16, "machine.nodes.0.mem": "1G",
                                         "kasan.enabled": True})
    assert (cfg.machine.cpus, cfg.machine.ram_end, cfg.kasan.enabled) == (16, G, True)
    assert source == {"machine": {"nodes": [{"mem": "256M"}]}}  # caller's dict untouched
    cfg = load_config(overrides={"machine.nodes": [{"mem": "64M"}], "machine.distance": None})
    assert cfg.machine.node_ranges == ((0, 64 * M),)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"machine.cpu": 2}, "--set: machine.cpu: unknown key 'cpu'; did you mean 'cpus'?"),
        ({"machine.cpus": "many"},
         "--set: machine.cpus: Input should be a valid integer, "
         "unable to parse string as an integer"),
        ({"machine.highmem": True},
         "--set: machine.highmem: CONFIG_HIGHMEM is 32-bit only: x86_64 maps all RAM directly; "
         "use arch: i386"),
        ({"machine.nodes.3.mem": "1G"},
         "--set: machine.nodes.3.mem: no item 3 in machine.nodes (it has 1 items)"),
        ({"machine.cpus.x": 1},
         "--set: machine.cpus.x: machine.cpus is int 8, not a mapping or list"),
        ({"machine..cpus": 1}, "--set: machine..cpus: empty key component"),
        ({"machine.nodes": [{"mem": "1M"}]},
         "--set: machine.nodes.0.mem: 0x100000 is not a multiple of 4M (0x400000)"),
    ],
)
def test_override_errors(overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIGS / "tiny.yaml", overrides=overrides)
    assert str(info.value) == expected


def test_override_errors_come_after_file_errors(tmp_path):
    text = "machine:\n  hz: 7\n"
    assert errors_for(tmp_path, text, overrides={"machine.cpus": 0}) == [
        "c.yaml:2: machine.hz: Input should be 100, 250, 300 or 1000",
        "--set: machine.cpus: Input should be greater than or equal to 1",
    ]


def test_direct_model_construction_validates():
    with pytest.raises(ValidationError, match="overlaps"):
        MachineConfig(nodes=[NodeConfig(mem=G), NodeConfig(mem=G, start=0)])


def test_vm_sysctls():
    assert load_config({}).vm.min_free_kbytes is None
    assert load_config({"vm": {"watermark_scale_factor": 200}}).vm.watermark_scale_factor == 200
    with pytest.raises(ConfigError) as exc:
        load_config({"vm": {"min_free_kbytes": 64, "watermark_scale_factr": 5}})
    lines = str(exc.value).splitlines()
    assert "<dict>: vm.min_free_kbytes: Input should be greater than or equal to 128" in lines
    assert any("vm.watermark_scale_factr: unknown key 'watermark_scale_factr'; did you mean "
               "'watermark_scale_factor'?" in line for line in lines)


# ---------------------------------------------------------------- the reference

REPO = Path(__file__).resolve().parent.parent


def _leaf_keys(data, prefix=""):
    """Dotted keys of a parsed YAML document; list items as ``key[]``; the free-form
    ``args`` of a custom workload as one key."""
    for key, value in data.items():
        path = prefix + key
        if isinstance(value, dict) and key != "args":
            yield from _leaf_keys(value, path + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                yield from _leaf_keys(item, path + "[].")
        else:
            yield path


def test_docs_config_md_is_the_generated_reference():
    """docs/config.md cannot drift from the models: regenerate it with `make docs`."""
    assert (REPO / "docs" / "config.md").read_text() == config_module.config_reference()


def test_reference_lists_every_key_of_every_packaged_config():
    reference = config_module.config_reference()
    rows = {line.split("`")[1] for line in reference.splitlines() if line.startswith("| `")}
    for path in [config_module.DEFAULT_CONFIG, *sorted((REPO / "configs").glob("*.yaml"))]:
        keys = set(_leaf_keys(yaml.safe_load(path.read_text())))
        assert keys and keys <= rows, (path, keys - rows)


def test_reference_rows_give_yaml_types_and_defaults():
    lines = config_module.config_reference().splitlines()
    assert "| `machine.hz` | 100 \\| 250 \\| 300 \\| 1000 | 250 | CONFIG_HZ: timer ticks " \
        "per second. |" in lines
    assert "| `machine.nodes` | list of mapping | [{mem: 512M}] | NUMA nodes (1..64), in " \
        "increasing address order. |" in lines
    assert "| `machine.log_buf_len` | size | 1M | printk ring buffer size, 4K..64M. |" in lines
    row = next(line for line in lines if line.startswith("| `machine.nodes[].mem` |"))
    assert row.split(" | ")[1:3] == ["size", "required"]
    row = next(line for line in lines if line.startswith("| `kasan.quarantine_size` |"))
    assert row.split(" | ")[1:3] == ["size", "auto"]


@pytest.mark.parametrize("name", [None, "i386-highmem.yaml", "i386-pae-highmem.yaml",
                                  "x86_64-numa4.yaml", "tiny.yaml"])
def test_dumped_resolved_config_loads_back_equal(name):
    config = load_config(None if name is None else REPO / "configs" / name)
    resolved = config_module.resolve(config)
    text = config_module.dump_config(resolved)
    assert load_config(yaml.safe_load(text)) == resolved
    assert config_module.resolve(resolved) == resolved   # nothing left to derive
    m, r = config.machine, resolved.machine
    assert (r.highmem, r.zone_dma32, r.vmalloc, r.distance) == (
        m.highmem_enabled, m.dma32_enabled, m.vmalloc_size, m.distances)
    assert tuple(n.start for n in r.nodes) == tuple(s for s, _ in m.node_ranges)


def test_dump_writes_sizes_with_units_and_matrices_inline():
    text = config_module.dump_config(config_module.resolve(
        load_config(REPO / "configs" / "x86_64-numa4.yaml")))
    lines = text.splitlines()
    assert "  vmalloc: 1G" in lines and "  movablecore: 0" in lines
    assert "  - mem: 1G" in lines and "    start: 3G" in lines
    assert "  distance: [[10, 16, 22, 16], [16, 10, 16, 22], [22, 16, 10, 16], " \
        "[16, 22, 16, 10]]" in lines
    assert "  quarantine_size: null" in lines   # auto: derived at boot


# -- custom workloads' counters in expect: ------------------------------------------

COUNTED = """\
machine:
  cpus: 2
run:
  pools: [{name: requests, type: kmalloc, size: 64}]
  custom: [{function: "mydriver:stress"}]
expect:
  null_returns: 0
  requests: ">= 1000"
  uaf_seen: 0
"""


def test_expect_names_a_custom_workloads_counter(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(COUNTED)
    config = load_config(path)
    assert config.expect.null_returns == "== 0"
    assert config.expect.model_extra == {"requests": ">= 1000", "uaf_seen": "== 0"}
    again = load_config(yaml.safe_load(config_module.dump_config(config)))   # --show-config, --json
    assert again.expect == config.expect


def test_a_counter_needs_a_custom_workload(tmp_path):
    text = COUNTED.replace('  custom: [{function: "mydriver:stress"}]\n', "")
    rest = ("valid keys: alloc_allocator, alloc_reserve, null_returns, waits, max_wait_ms, "
            "free_reserve, free_allocator, completed, io_errors, drops, oom_kills, "
            "kasan_reports, bugs, warnings (a counter of a custom workload can be expected "
            "when run.custom has one)")
    assert errors_for(tmp_path, text) == [
        f"c.yaml:7: expect.requests: unknown key 'requests'; {rest}",
        f"c.yaml:8: expect.uaf_seen: unknown key 'uaf_seen'; {rest}"]
    assert errors_for(tmp_path, "expect:\n  null_return: 0\n")[0].startswith(
        "c.yaml:2: expect.null_return: unknown key 'null_return'; did you mean "
        "'null_returns'?")
    assert errors_for(tmp_path, COUNTED.replace('">= 1000"', "lots")) == [
        "c.yaml:8: expect.requests: invalid expectation 'lots': expected a number or "
        "'<op> number' with ==, !=, <, <=, >, >=, e.g. '>= 1'"]


def test_a_counter_is_summed_over_the_workloads():
    from hwemu.runs import report
    config = load_config(yaml.safe_load(COUNTED))
    result = {"pools": {}, "vm": {}, "kasan_reports": [], "bugs": 0, "warnings": 0,
              "workloads": {"mydriver:stress": {"requests": 600, "completed": 3},
                            "other:fn": {"requests": 500}}}
    assert report.expectations(result, config.expect) == [
        {"metric": "null_returns", "condition": "== 0", "value": 0, "ok": True},
        {"metric": "requests", "condition": ">= 1000", "value": 1100, "ok": True},
        {"metric": "uaf_seen", "condition": "== 0", "value": 0, "ok": True}]
