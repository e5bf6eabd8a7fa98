"""Reading a config: YAML with line numbers, ``--set`` overrides, :func:`load_config`.

The YAML is composed with PyYAML's safe loader and converted by hand so that every
key keeps the line it was written at, duplicate and non-string keys are reported,
and hostile documents stop early (file size, node count and nesting are capped;
tags other than the plain ones are refused). Overrides replace keys after reading;
problems they cause are reported against ``--set``.
"""

from __future__ import annotations

import copy
import os
import stat
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .base import Loc, M, _dotted
from .problems import ConfigError, Problem, _hidden_problems, _Origins, _validation_problems
from .schema import Config

# The packaged config, one directory up: hwemu/default.yaml.
DEFAULT_CONFIG = Path(__file__).parents[1] / "default.yaml"
# The example configs shipped with it, by name (tiny: hwemu/configs/tiny.yaml).
PACKAGED_CONFIGS = Path(__file__).parents[1] / "configs"
MAX_FILE_BYTES = 1 * M
MAX_YAML_NODES = 100_000
# Real configs nest about five levels; the cap also stops recursive aliases.
MAX_YAML_DEPTH = 64


# ---------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------


class _Abort(Exception):
    """A problem that stops reading the document."""

    def __init__(self, problem: Problem):
        self.problem = problem


# Plain collections only: a tag such as !!python/object on a mapping would
# otherwise be silently dropped.
_COLLECTION_TAGS = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}
_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}


def _type_name(value: object) -> str:
    """Name a Python value's YAML type for messages."""
    return _TYPE_NAMES.get(type(value), f"{type(value).__name__} {value!r}")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with a cap on nesting while composing.

    The composer recurses once per level, so a deep document would otherwise end in
    ``RecursionError`` (at a depth that depends on the caller's stack) before the
    converter could count its levels.
    """

    def __init__(self, stream: str, file: str):
        super().__init__(stream)
        self.file = file
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, refusing documents nested deeper than MAX_YAML_DEPTH."""
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH + 1:   # + 1: the root is not nested
                # No line, as for the nesting the converter finds (aliases nest too).
                raise _Abort(Problem(self.file, None, "(yaml)",
                                     "document is nested too deeply"))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# An int of more digits is refused before it is converted: Python refuses above 4300
# digits, and converting thousands of digits is slow. Below it, the key's own check
# says what is too large.
MAX_INT_DIGITS = 1000
_INT_TAG = "tag:yaml.org,2002:int"


class _Converter:
    """Turns a composed YAML node graph into plain data, recording key lines."""

    def __init__(self, loader: yaml.SafeLoader, file: str):
        self.loader = loader
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self.count = 0

    def convert(self, node: yaml.Node, path: Loc) -> Any:
        """Convert ``node`` found at ``path``; aliases are expanded and counted."""
        self.count += 1
        line = node.start_mark.line + 1
        if self.count > MAX_YAML_NODES:  # no useful line: aliases share nodes
            self._abort(None, f"document has more than {MAX_YAML_NODES} nodes")
        if len(path) > MAX_YAML_DEPTH:
            self._abort(line, "document is nested too deeply")
        if _COLLECTION_TAGS.get(type(node), node.tag) != node.tag:
            self._abort(line, f"unsupported tag '{node.tag}'")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines[path + (i,)] = item.start_mark.line + 1
                items.append(self.convert(item, path + (i,)))
            return items
        return self._scalar(node, path, line)

    def _scalar(self, node: yaml.Node, path: Loc, line: int) -> Any:
        """Construct a scalar; a value that cannot be constructed stops reading."""
        key = _dotted(path) if path else "(yaml)"
        digits = sum(c.isdigit() for c in node.value) if node.tag == _INT_TAG else 0
        if digits > MAX_INT_DIGITS:
            self._abort(line, f"an integer of {digits} digits is too large", key)
        try:
            return self.loader.construct_object(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # e.g. 2001-13-45, !!bool maybe, !!int 0x
            self._abort(line, f"cannot read {node.value[:40]!r} as "
                              f"{node.tag.rpartition(':')[2]}: {exc}", key)

    def _abort(self, line: int | None, message: str, key: str = "(yaml)") -> typing.NoReturn:
        """Stop reading: the document cannot be used."""
        raise _Abort(Problem(self.file, line, key, message))

    def _key_problem(self, key_node: yaml.Node, path: Loc, message: str) -> None:
        """Record a problem with a mapping key; reading continues."""
        line = key_node.start_mark.line + 1
        self.problems.append(Problem(self.file, line, _dotted(path), message))

    def _mapping(self, node: yaml.MappingNode, path: Loc) -> dict[str, Any]:
        """Convert a mapping, reporting non-string and duplicate keys."""
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                got = "a mapping" if isinstance(key_node, yaml.MappingNode) else "a list"
                self._key_problem(key_node, path, f"mapping keys must be strings, got {got}")
                continue
            key = self.convert(key_node, path)
            if not isinstance(key, str):
                got = _type_name(key)
                self._key_problem(key_node, path, f"mapping keys must be strings, got {got}")
            elif path + (key,) in self.lines:
                first = self.lines[path + (key,)]
                self._key_problem(
                    key_node, path + (key,), f"duplicate key '{key}' (first at line {first})"
                )
            else:
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                result[key] = self.convert(value_node, path + (key,))
        return result


def _yaml_error(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    """Turn a PyYAML exception into a Problem with its line."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        message = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        return Problem(file, line, "(yaml)", message)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or ""
        if exc.context:  # e.g. "while parsing a flow sequence"
            message = f"{exc.context}, {message}"
        return Problem(file, mark.line + 1 if mark else None, "(yaml)", message)
    return Problem(file, None, "(yaml)", str(exc))


def _parse_yaml(
    file: str, text: str
) -> tuple[dict[str, Any], dict[Loc, int], list[Problem]]:
    """Parse YAML text into a top-level dict, key lines and structural problems."""

    def fail(line: int | None, key: str, message: str) -> ConfigError:
        return ConfigError([Problem(file, line, key, message)])

    root, data, converter = _compose(file, text)
    if not isinstance(data, dict):
        got = "an empty document" if root is None else _type_name(data)
        raise fail(None, "(file)", f"expected a mapping at top level, got {got}")
    return data, converter.lines, converter.problems


def _compose(file: str, text: str) -> tuple[yaml.Node | None, Any, _Converter]:
    """Compose and convert one YAML document: its root node (None for an empty one),
    its data and the converter that holds its key lines."""
    try:
        loader = _Loader(text, file)  # already checks for forbidden characters
        try:
            root = loader.get_single_node()
            converter = _Converter(loader, file)
            data = None if root is None else converter.convert(root, ())
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error(file, text, exc)]) from None
    except _Abort as abort:
        raise ConfigError([abort.problem]) from None
    return root, data, converter


def _read_text(file: str) -> str:
    """Read a config file as UTF-8, raising ConfigError for file-level problems.

    Only a regular file is read: opening a FIFO would wait for a writer, and a device
    or directory is no config. The type is checked before opening (``stat`` does not
    block) and again on the open file, which is opened non-blocking in case it changed.
    """

    def fail(message: str) -> ConfigError:
        return ConfigError([Problem(file, None, "(file)", message)])

    def opener(path: str, flags: int) -> int:
        _check_regular(os.stat(path).st_mode, fail)
        return os.open(path, flags | os.O_NONBLOCK)

    try:
        with open(file, "rb", opener=opener) as f:
            st = os.fstat(f.fileno())
            _check_regular(st.st_mode, fail)
            size = st.st_size
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise fail("no such file") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail((exc.strerror or str(exc)).lower()) from None
    if len(data) > MAX_FILE_BYTES:
        raise fail(f"config file is {max(size, len(data))} bytes; configs are limited to 1 MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(f"not valid UTF-8: byte {data[exc.start]:#04x} at line {line}") from None


_FILE_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _check_regular(mode: int, fail: typing.Callable[[str], ConfigError]) -> None:
    """Raise ``fail(...)`` unless ``mode`` is a regular file's."""
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")
        raise fail(f"is {kind}, not a regular file; a config must be a regular file")


# ---------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------

OVERRIDE_FILE = "--set"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as ``{key: value}``.

    A value is YAML (``8``, ``2G``, ``[1, 2]``, ``{mem: 1G}``), read with the caps of a
    config file (nesting, nodes, plain tags only); text that is not YAML stays a string.
    Raises ConfigError for a value beyond the caps.
    """
    out: dict[str, Any] = {}
    problems = []
    for pair in pairs:
        key, _, text = pair.partition("=")
        key = key.strip()
        try:
            out[key] = _override_value(text)
        except ValueError as exc:
            problems.append(Problem(OVERRIDE_FILE, None, key, str(exc)))
    if problems:
        raise ConfigError(problems)
    return out


def _override_value(text: str) -> Any:
    """One ``--set`` value; ValueError if it breaks a cap of the YAML reader."""
    loader = _Loader(text, OVERRIDE_FILE)
    try:
        root = loader.get_single_node()
        return None if root is None else _Converter(loader, OVERRIDE_FILE).convert(root, ())
    except yaml.YAMLError:
        return text
    except _Abort as abort:
        raise ValueError(abort.problem.message) from None
    finally:
        loader.dispose()


def _check_plain(value: Any, file: str, key: str = "(top level)") -> None:
    """Refuse Python data (a dict source, an override) that a YAML file could not be:
    nested deeper than MAX_YAML_DEPTH (a cycle included) or of more than
    MAX_YAML_NODES nodes. Iterative, so that depth is no danger here either."""
    stack = [(value, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise ConfigError([Problem(file, None, key,
                                       f"has more than {MAX_YAML_NODES} nodes")])
        if depth > MAX_YAML_DEPTH:
            raise ConfigError([Problem(file, None, key, "is nested more than "
                                       f"{MAX_YAML_DEPTH} levels deep")])
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def _apply_override(data: dict[str, Any], key: str, value: Any) -> Loc:
    """Set dotted ``key`` in ``data`` to ``value``; return its location.

    Missing mappings on the way are created; list items must already exist.
    Raises ValueError with a message if the key cannot be set.
    """
    parts = key.split(".")
    if not all(parts):
        raise ValueError("empty key component")
    node: Any = data
    loc: Loc = ()
    for i, part in enumerate(parts):
        step: str | int = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"no item {part} in {_dotted(loc)} (it has {len(node)} items)")
            step = int(part)
        elif not isinstance(node, dict):
            raise ValueError(f"{_dotted(loc)} is {_type_name(node)}, not a mapping or list")
        loc += (step,)
        if i == len(parts) - 1:
            node[step] = value
        else:
            node = node.setdefault(step, {}) if isinstance(node, dict) else node[step]
    return loc


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def packaged_configs() -> dict[str, Path]:
    """The configs shipped with hwemu by name: ``default`` (hwemu/default.yaml) and
    each ``hwemu/configs/NAME.yaml``."""
    names = {p.stem: p for p in sorted(PACKAGED_CONFIGS.glob("*.yaml"))}
    return {"default": DEFAULT_CONFIG, **names}


def config_path(source: str | os.PathLike[str] | None) -> str:
    """The file a config source names: None is the packaged default; a path that exists
    is that path; else a bare name (``tiny`` or ``tiny.yaml``, no directory) is the
    packaged config of that name. Anything else raises ConfigError (a bare name lists
    the packaged configs; a missing ``configs/tiny.yaml`` names ``tiny``)."""
    if source is None:
        return os.fspath(DEFAULT_CONFIG)
    file = os.fspath(source)
    if os.path.lexists(file):   # a path wins, even a bad one: reading it says why
        return file
    packaged = packaged_configs()
    head, name = os.path.split(file)
    stem = name.removesuffix(".yaml")
    if not head and isinstance(source, str) and stem in packaged:
        return os.fspath(packaged[stem])
    if stem in packaged:   # configs/tiny.yaml outside the repository
        message = f"no such file; the packaged config of that name is '{stem}'"
    elif not head:
        message = "no such file, nor a packaged config: " + ", ".join(packaged)
    else:
        return file   # reading it says what is wrong
    raise ConfigError([Problem(file, None, "(file)", message)])


def _read_source(
    source: str | os.PathLike[str] | dict[str, Any] | None,
) -> tuple[dict[str, Any], _Origins, list[Problem]]:
    """Return (data, origins, problems) for a path, a packaged config's name, a dict or
    the default config."""
    if isinstance(source, dict):
        _check_plain(source, "<dict>")
        return copy.deepcopy(source), _Origins("<dict>"), []
    if source is not None and not isinstance(source, (str, os.PathLike)):
        kind = type(source).__name__
        raise TypeError(f"config source must be a path, a packaged config's name, a dict "
                        f"or None, not {kind}")
    file = config_path(source)
    data, lines, problems = _parse_yaml(file, _read_text(file))
    return data, _Origins(file, lines), problems


def load_config(
    source: str | os.PathLike[str] | dict[str, Any] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    check: Callable[[Config], Iterable[tuple[Loc, str]]] | None = None,
) -> Config:
    """Load and validate a config, raising ConfigError listing every problem.

    ``source`` is a YAML file path, the name of a packaged config (``"tiny"``: see
    :func:`config_path`; a path that exists wins), a dict in the same schema, or None
    for the packaged default.  ``overrides`` maps dotted keys (``machine.cpus``,
    ``machine.nodes.0.mem``) to values applied on top; problems they cause are
    reported against the file ``--set``. ``check``, given a config that validated,
    yields ``(key path, message)`` problems that layers above the config find (a
    custom workload that cannot be imported); they are placed at their keys' lines.
    """
    data, origins, problems = _read_source(source)
    for key, value in (overrides or {}).items():
        _check_plain(value, OVERRIDE_FILE, str(key))
        try:
            origins.replace(_apply_override(data, str(key), value), OVERRIDE_FILE)
        except ValueError as exc:
            problems.append(Problem(OVERRIDE_FILE, None, str(key), str(exc)))
    config = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, origins))
        problems.extend(p for p in _hidden_problems(data, exc, origins) if p not in problems)
    if problems:
        # Lines in file order; problems without a line (e.g. --set) last.
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(problems)
    assert config is not None   # it validated, or there were problems
    if origins.file != "<dict>":
        # Where it came from, for what sits beside it (a run's custom workloads); not a
        # field: configs from different files compare equal if their keys do.
        object.__setattr__(config, "source_file", os.path.abspath(origins.file))
    if check is not None:
        problems = [origins.problem(loc, message) for loc, message in check(config)]
        if problems:
            raise ConfigError(problems)
    return config
