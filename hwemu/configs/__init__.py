"""The example configs shipped with hwemu, each a name for :func:`hwemu.boot`,
:func:`hwemu.load_config`, ``hwemu run`` and the plugin's ``hwemu_config`` marker
(``hwemu.boot("tiny")`` is ``hwemu/configs/tiny.yaml``; see
:func:`hwemu.config.source.config_path`). ``buggy_driver.py`` is the custom workload of
``kasan-uaf.yaml``, imported from this directory as ``buggy_driver`` by that run, not as
part of this package. The repository's ``configs/`` holds symlinks to these files.
"""
