"""A config written out: resolved, as YAML, and as the reference of every key.

:func:`resolve` fills in the defaults the machine derives, :func:`dump_config` writes
a config back as YAML that :func:`~hwemu.config.load_config` reads equal, and
:func:`config_reference` renders ``docs/config.md`` from the models' fields: how a
YAML author writes each value, its default and its description.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel

from .base import _inner_model, format_size, parse_size
from .run import _condition, format_duration, parse_duration
from .schema import Config, NodeConfig

# ---------------------------------------------------------------------------
# The resolved config, as YAML
# ---------------------------------------------------------------------------


def resolve(config: Config) -> Config:
    """``config`` with the machine's derived defaults written out (highmem, DMA32,
    vmalloc size, node starts, distances); other ``None`` keys stay ``auto``."""
    m = config.machine
    nodes = tuple(NodeConfig(mem=node.mem, start=start)
                  for node, (start, _) in zip(m.nodes, m.node_ranges))
    machine = m.model_copy(update={
        "highmem": m.highmem_enabled, "zone_dma32": m.dma32_enabled,
        "vmalloc": m.vmalloc_size, "nodes": nodes, "distance": m.distances})
    return config.model_copy(update={"machine": machine})


def plain(value: Any, field) -> Any:
    """A model value as plain YAML data; sizes as ``512M`` strings."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {**{k: plain(getattr(value, k), fields[k]) for k in fields},
                **(value.model_extra or {})}   # expect: custom workloads' counters
    if isinstance(value, tuple):
        return [plain(v, field) for v in value]
    kind = _yaml_type(field.annotation, field.metadata) if field is not None else None
    if isinstance(value, int) and not isinstance(value, bool) and kind == "size":
        text = format_size(value)
        return value if text.isdigit() else text   # 0 and odd sizes stay ints
    if isinstance(value, int) and kind == "duration":
        return format_duration(value)
    return value


class _Dumper(yaml.SafeDumper):
    """Block style, but a list of scalars on one line: ``distance: [[10, 20], [20, 10]]``
    reads as a matrix."""

    def represent_list(self, data):
        flat = all(not isinstance(v, dict) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _Dumper.represent_list)


def dump_config(config: Config) -> str:
    """The YAML text of ``config`` (every key; load_config() reads it back equal)."""
    return yaml.dump(plain(config, None), Dumper=_Dumper, sort_keys=False)


# ---------------------------------------------------------------------------
# The config reference (docs/config.md), generated from the models
# ---------------------------------------------------------------------------


def _yaml_type(annotation: Any, metadata: list) -> str:
    """How a YAML author writes a field's value: ``size``, ``int``, ``a | b``..."""
    funcs = {getattr(m, "func", None) for m in metadata}
    if parse_size in funcs:
        return "size"
    if parse_duration in funcs:
        return "duration"
    if _condition in funcs:
        return "condition"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(str(a) for a in args)
    if origin is tuple:
        return f"list of {_yaml_type(args[0], [])}"
    if origin is Annotated:
        return _yaml_type(args[0], list(annotation.__metadata__))
    if origin is dict:
        return "mapping"
    if args:   # X | None: the default says what None means
        return _yaml_type(args[0], metadata)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {bool: "bool", int: "int", float: "float", str: "string"}[annotation]


def _yaml_default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return ""
    if field.default is None:   # what an unset optional key means
        kind = _yaml_type(field.annotation, field.metadata)
        return {"mapping": "off", "condition": "unchecked"}.get(kind, "auto")
    return _yaml_value(field.default, field)


def _yaml_value(value: Any, field) -> str:
    """``value`` of ``field`` as YAML flow text: ``512M``, ``[{mem: 512M}]``, ``auto``."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml_value(v, field) for v in value) + "]"
    if isinstance(value, BaseModel):   # the keys its author set: {mem: 512M}
        fields = type(value).model_fields
        return "{" + ", ".join(f"{k}: {_yaml_value(getattr(value, k), fields[k])}"
                               for k in sorted(value.model_fields_set)) + "}"
    return str(plain(value, field))


def _reference_rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + name
        inner = _inner_model(field.annotation)
        kind = _yaml_type(field.annotation, field.metadata)
        text = (field.description or "").replace("|", r"\|")   # a table cell
        rows.append((key, kind, _yaml_default(field), text))
        if inner is not None:
            rows += _reference_rows(inner, key + ("[]." if kind.startswith("list") else "."))
    return rows


def config_reference() -> str:
    """The config reference in Markdown: every key with its type, default and meaning,
    read off the models (``docs/config.md`` is this text; a test keeps it so)."""
    lines = ["# Config reference", "",
             "Generated from the pydantic models in `hwemu/config/` by "
             "`make docs` (`hwemu config-reference`); do not edit by hand. Sizes are "
             "bytes as an integer or with a K/M/G/T suffix (`896M`, `0x1000`); `auto` "
             "means the description says how the default is derived.", ""]
    for name, field in Config.model_fields.items():
        lines += [f"## `{name}`", "", field.description or "", "",
                  "| key | type | default | description |", "|---|---|---|---|"]
        model = _inner_model(field.annotation)
        assert model is not None, f"Config.{name} is no model"
        lines += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text
                  in _reference_rows(model, name + ".")]
        lines.append("")
    return "\n".join(lines)
