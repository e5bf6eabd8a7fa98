"""Machine configuration: YAML loading, validation and resolved values.

A config describes the emulated machine (architecture, NUMA nodes, zones,
timer, log buffer) plus debug features.  :func:`load_config` reads it from a
YAML file, a dict or the packaged ``default.yaml``, validates it with the
pydantic models of the package and reports every problem at once as
``file:LINE: dotted.key: message`` lines in a :class:`ConfigError`.

The rest of hwemu should read resolved values (``highmem_enabled``,
``node_ranges``, ``lowmem_limit``...) from :class:`MachineConfig` rather than
re-deriving defaults from the raw optional fields.

The package, in import order (each module imports only those above it):

- :mod:`~hwemu.config.base`: the models' settings, byte sizes, the hand-over of
  cross-field problems;
- :mod:`~hwemu.config.limits`: what a machine needs of its host process (address
  space, the RAM memfd's name), so that a config that validates boots;
- :mod:`~hwemu.config.run`: the run schema (pools, workloads, expectations, durations);
- :mod:`~hwemu.config.schema`: the machine schema and :class:`Config`, the whole config;
- :mod:`~hwemu.config.problems`: :class:`Problem`, :class:`ConfigError`, pydantic
  errors rendered as problems;
- :mod:`~hwemu.config.source`: YAML with line numbers, ``--set`` overrides,
  :func:`load_config`;
- :mod:`~hwemu.config.reference`: :func:`resolve`, :func:`dump_config`,
  :func:`config_reference`.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # imported on first use, by __getattr__ below
    from .base import Size, format_size, parse_size
    from .problems import ConfigError, Problem
    from .reference import config_reference, dump_config, plain, resolve
    from .run import (BioConfig, CustomConfig, Duration, ExpectConfig, LatencyConfig,
                      MemoryHogConfig, NetRxConfig, PoolConfig, ResizeConfig, RunConfig,
                      _condition, format_duration, parse_duration)   # _condition: tests
    from .schema import (Config, DebugConfig, FailPageAllocConfig, FailslabConfig,
                         FaultAttrConfig, FaultInjectionConfig, KasanConfig, MachineConfig,
                         NodeConfig, VmConfig)
    from .source import DEFAULT_CONFIG, load_config, parse_overrides

# The names above by module, imported on first use (PEP 562): the machine's modules read
# hwemu.config.limits, and importing it must not load pydantic and the models.
_ORIGIN = {name: module for module, names in {
    "base": ("Size", "format_size", "parse_size"),
    "problems": ("ConfigError", "Problem"),
    "reference": ("config_reference", "dump_config", "plain", "resolve"),
    "run": ("BioConfig", "CustomConfig", "Duration", "ExpectConfig", "LatencyConfig",
            "MemoryHogConfig", "NetRxConfig", "PoolConfig", "ResizeConfig", "RunConfig",
            "_condition", "format_duration", "parse_duration"),
    "schema": ("Config", "DebugConfig", "FailPageAllocConfig", "FailslabConfig",
               "FaultAttrConfig", "FaultInjectionConfig", "KasanConfig", "MachineConfig",
               "NodeConfig", "VmConfig"),
    "source": ("DEFAULT_CONFIG", "load_config", "parse_overrides"),
}.items() for name in names}
_SUBMODULES = ("base", "limits", "problems", "reference", "run", "schema", "source")

if not TYPE_CHECKING:   # a type checker sees the imports above, and no catch-all
    def __getattr__(name: str):
        if name in _ORIGIN:
            value = getattr(importlib.import_module("." + _ORIGIN[name], __name__), name)
        elif name in _SUBMODULES:
            value = importlib.import_module("." + name, __name__)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_ORIGIN, *_SUBMODULES})

__all__ = [
    "Config",
    "ConfigError",
    "Duration",
    "BioConfig",
    "CustomConfig",
    "DebugConfig",
    "ExpectConfig",
    "FailPageAllocConfig",
    "FailslabConfig",
    "FaultAttrConfig",
    "FaultInjectionConfig",
    "KasanConfig",
    "LatencyConfig",
    "MachineConfig",
    "MemoryHogConfig",
    "NetRxConfig",
    "NodeConfig",
    "PoolConfig",
    "Problem",
    "ResizeConfig",
    "RunConfig",
    "Size",
    "VmConfig",
    "config_reference",
    "dump_config",
    "format_duration",
    "format_size",
    "load_config",
    "parse_duration",
    "parse_overrides",
    "parse_size",
    "plain",
    "resolve",
]
