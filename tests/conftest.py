"""Shared fixtures: booted machines that are shut down after each test."""
from pathlib import Path

import pytest

import hwemu

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture
def boot():
    """``boot(name_or_dict, **overrides)``: boot a machine for this test only.

    ``name`` is a file in configs/ without ``.yaml``; overrides are dotted keys with
    ``__`` for dots (``machine__cpus=8``).
    """
    machines = []

    def _boot(config="tiny", **overrides):
        if isinstance(config, str):
            config = CONFIGS / f"{config}.yaml"
        m = hwemu.boot(config, overrides={k.replace("__", "."): v
                                          for k, v in overrides.items()})
        machines.append(m)
        return m

    yield _boot
    for m in reversed(machines):
        m.shutdown()


@pytest.fixture
def machine(boot):
    """The tiny x86_64 machine (64M, 8 CPUs, HZ 1000, time 100x faster)."""
    return boot("tiny")


@pytest.fixture
def highmem_machine(boot):
    """A 32-bit machine: 896M lowmem, highmem above, 1024 PKMAP slots, 8 CPUs."""
    return boot("i386-highmem", machine__cpus=8, )
