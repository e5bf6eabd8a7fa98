"""Only the optional C helper; everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("hwemu._speedups", ["hwemu/_speedups.c"],
                             depends=["hwemu/_core.h", "hwemu/_hw.h"], optional=True)])
