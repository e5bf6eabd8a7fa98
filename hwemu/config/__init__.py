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

from .base import Size, format_size, parse_size
from .problems import ConfigError, Problem
from .reference import config_reference, dump_config, plain, resolve
from .run import (BioConfig, CustomConfig, Duration, ExpectConfig, LatencyConfig,  # _condition:
                  MemoryHogConfig, NetRxConfig, PoolConfig, ResizeConfig, RunConfig,  # tests
                  _condition, format_duration, parse_duration)
from .schema import (Config, DebugConfig, FailPageAllocConfig, FailslabConfig, FaultAttrConfig,
                     FaultInjectionConfig, KasanConfig, MachineConfig, NodeConfig, VmConfig)
from .source import DEFAULT_CONFIG, load_config, parse_overrides

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
