"""Emulation of KUnit's per-test checks (lib/kunit, with KASAN and a kmemleak-lite) for
users' own pytest tests.

Loaded automatically through the ``pytest11`` entry point ``hwemu``. It offers:

- fixture ``hwemu_machine``: a machine booted for the test (the test's thread is its
  first task), shut down afterwards. Its config comes from the closest
  ``@pytest.mark.hwemu_config(config, **overrides)`` marker, else from the ini option
  ``hwemu_config``, else the packaged default. ``config`` is a path (relative paths are
  taken from the rootdir), the name of a packaged config (``"tiny"``, when no file of
  that name is in the rootdir) or a dict; overrides are dotted keys with ``__`` for the
  dots (``machine__cpus=8``).
- fixture ``hwemu_boot``: ``hwemu_boot(config=None, **overrides)`` boots more machines
  for the test; each gets the same checks and is shut down at the end.
- fixture ``hwemu_run``: ``hwemu_run(config=None, overrides=None, *, custom=(),
  check=True)`` runs a machine run (``hwemu run``'s scenario, :class:`hwemu.runs.Run`)
  and returns its result dict; ``custom`` adds workloads given as functions, so that a
  test can exercise its own workload under a scenario's pressure (see the fixture).
- fixture ``expect_kasan_report``: :func:`hwemu.kasan.expect_report`, KUnit's
  ``KUNIT_EXPECT_KASAN_FAIL``: ``with expect_kasan_report("slab-out-of-bounds"):``.
  Reports made inside it are marked ``expected``.
- marker ``@pytest.mark.hwemu_explore(schedules=100, strategy="pct", seed=0)``: the test
  (which takes ``hwemu_machine``, spawns tasks and checks what they did) runs once per
  schedule on a fresh machine, through :func:`hwemu.explore`; the first schedule that
  fails fails the test with the option that replays it:
  ``--hwemu-schedule=STRATEGY:SEED[:STEPS]`` runs the explored tests under that one
  schedule. Each schedule gets the checks below.

After a test that passed, on every machine the plugin booted and that is still up:

1. a KASAN report made during the test and not inside an ``expect_report`` block fails
   the test (KUnit fails a test on an unexpected KASAN report);
2. unless ``@pytest.mark.hwemu_allow_leaks``, memory the test allocated and did not
   free fails it: after flushing deferred vfrees, ``slab.shrink()`` (which also empties
   the KASAN quarantine) and ``drain_all_pages()``, live objects per slab cache are
   compared with the counts taken right after boot (after the same flushing), and free
   pages with the free pages then. Page cache and anonymous memory (``add_to_page_cache``,
   ``add_anon_pages``) are owned by the emulated file and task, not leaked; they are
   counted out.

The checks run in a ``pytest_runtest_call`` hook (``trylast``: after the test function
returned), not in the fixture's teardown: pytest counts an exception in the call phase
as a *failure* of the test, one in teardown as an *error* besides it. When the test
itself failed the checks are skipped and any unexpected KASAN report is added to the
failure output instead, as it may well be the cause. Not emulated: kmemleak's scan for
references (any object still allocated is a leak) and KUnit's resource API.
"""
from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest

import hwemu   # lazy (PEP 562): the machine loads when a test first boots one
from hwemu.current import current_on, swap
from hwemu.strategy import STRATEGIES

_TRACKER = pytest.StashKey["_Tracker"]()
_SCHEDULE = pytest.StashKey[tuple]()   # --hwemu-schedule, parsed


# ---------------------------------------------------------------- hooks

def pytest_addoption(parser) -> None:
    parser.addini("hwemu_config", "config of the hwemu_machine fixture when no "
                  "hwemu_config marker says otherwise: a YAML path relative to the rootdir or a "
                  "packaged config's name (default: the packaged default machine)", default="")
    parser.addoption("--hwemu-schedule", metavar="STRATEGY:SEED[:STEPS]", default=None,
                     help="run hwemu_explore tests under this one schedule (the replay "
                     "of a failure they reported)")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "hwemu_config(config=None, **overrides): boot hwemu_machine from this "
        "config (a YAML path relative to the rootdir, a packaged config's name such as "
        "'tiny', or a dict), with dotted-key "
        "overrides written with __ for the dots (machine__cpus=8)")
    config.addinivalue_line(
        "markers", "hwemu_allow_leaks: do not fail the test for pages or slab objects it "
        "allocated and did not free")
    config.addinivalue_line(
        "markers", "hwemu_explore(schedules=100, strategy='pct', seed=0): run the test once "
        "per schedule, each on a fresh hwemu_machine; stop at the first that fails")
    schedule = config.getoption("hwemu_schedule", None)
    if schedule:
        config.stash[_SCHEDULE] = _schedule(schedule)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """An ``hwemu_explore`` test: :func:`hwemu.explore` runs it, one machine per
    schedule, with the checks of a plain test after each."""
    marker = pyfuncitem.get_closest_marker("hwemu_explore")
    if marker is None:
        return None
    options = {"schedules": 100, "strategy": "pct", "seed": 0, **marker.kwargs}
    config, overrides = _marker_config(pyfuncitem)
    config, overrides = _Tracker(pyfuncitem.config).source(config, **overrides)
    leaks = pyfuncitem.get_closest_marker("hwemu_allow_leaks") is None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    tracker = _Tracker(pyfuncitem.config)

    def body(machine) -> None:
        nonlocal tracker   # one per schedule: its machine, watched from boot
        tracker = _Tracker(pyfuncitem.config)
        tracker.watch(machine)
        if "hwemu_machine" in args:
            args["hwemu_machine"] = machine
        pyfuncitem.obj(**args)

    def check(machine) -> list[str]:   # run once every task of the schedule is done
        return tracker.leaks(machine) if leaks else []

    replay = pyfuncitem.config.stash.get(_SCHEDULE, None)
    try:
        if replay:
            hwemu.replay(body, *replay, config, overrides, check)
        else:
            hwemu.explore(body, options["schedules"], options["strategy"],
                          options["seed"], config, overrides, check)
    except hwemu.ExploreFailure as exc:
        failure = exc
    else:
        return True
    s, cause = failure.schedule, failure.cause
    again = f"{s.strategy}:{s.seed}" + (f":{s.steps}" if s.steps is not None else "")
    where = "" if cause is None else "\n" + "".join(traceback.format_exception(cause))
    pytest.fail("\n".join(["hwemu: " + str(failure).splitlines()[0], *failure.problems,
                           f"replay: pytest '{pyfuncitem.nodeid}' --hwemu-schedule={again}"])
                + where, pytrace=False)



def _schedule(text: str) -> tuple[str, int, int | None]:
    """``STRATEGY:SEED[:STEPS]`` of ``--hwemu-schedule``."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3) or parts[0] not in STRATEGIES:
            raise ValueError
        return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise pytest.UsageError(f"--hwemu-schedule={text}: expected STRATEGY:SEED[:STEPS] "
                                f"(STRATEGY one of {', '.join(STRATEGIES)}), e.g. pct:17:412"
                                ) from None


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item) -> None:
    tracker = item.stash.get(_TRACKER, None)
    if tracker is None:
        return
    tracker.checked = True
    leaks = item.get_closest_marker("hwemu_allow_leaks") is None
    problems = [p for m in tracker.machines for p in tracker.problems(m, leaks)]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    tracker = item.stash.get(_TRACKER, None)
    if tracker is not None and not tracker.checked and report.when == "call" \
            and report.failed:
        text = "\n".join(r.text for m in tracker.machines if not m.down
                         for r in tracker.unexpected(m))
        if text:
            report.sections.append(("hwemu: unexpected KASAN reports", text))


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def hwemu_boot(request):
    """``hwemu_boot(config=None, **overrides)`` -> :class:`hwemu.Machine`: boot a machine
    for this test, checked and shut down with it. ``config`` None is the ini option
    ``hwemu_config`` or the packaged default."""
    tracker = _Tracker(request.config)
    request.node.stash[_TRACKER] = tracker
    yield tracker.boot
    for m in reversed(tracker.machines):
        m.shutdown()


@pytest.fixture
def hwemu_machine(request, hwemu_boot):
    """The machine of this test, from the closest ``hwemu_config`` marker (None for an
    ``hwemu_explore`` test: each schedule boots its own)."""
    if request.node.get_closest_marker("hwemu_explore") is not None:
        return None
    config, overrides = _marker_config(request.node)
    return hwemu_boot(config, **overrides)


def _marker_config(item) -> tuple:
    """``(config, overrides)`` of the closest ``hwemu_config`` marker."""
    marker = item.get_closest_marker("hwemu_config")
    if marker is None:
        return None, {}
    return (marker.args[0] if marker.args else marker.kwargs.get("config")), \
        {k: v for k, v in marker.kwargs.items() if k != "config"}


@pytest.fixture
def hwemu_run(request):
    """``hwemu_run(config=None, overrides=None, *, custom=(), check=True)`` -> ``dict``:
    run a config's ``run:`` scenario, as ``hwemu run`` does, and return the result
    (:meth:`hwemu.runs.Run.execute`'s dict, its ``expectations`` evaluated; render it
    with ``hwemu.runs.report.summary(result)``).

    :param config: a path (relative to the rootdir), a packaged config's name
        (``"tiny"``), a dict in the YAML schema, a :class:`hwemu.config.Config`, or
        None: the test's ``hwemu_config`` marker (its overrides apply first), else
        the ini option ``hwemu_config``, else the packaged default.
    :param overrides: a mapping applied on top: nested mappings merge key by key
        (``{"run": {"duration": "1s"}}`` keeps the rest of ``run``), dotted keys
        work too (``{"run.seed": 3}``); any other value (a list) replaces.
    :param custom: workloads added to ``run.custom``, each a function ``fn(run)`` (see
        :class:`hwemu.runs.workloads.CustomTask` for ``run``) or a mapping as in the
        config with the function itself as ``function``:
        ``{"function": fn, "args": {...}, "tasks": 2}``. In the result, a function's
        counters are under ``workloads["module:name"]``; ``expect:`` can name them.
        A ``module:function`` string in the config is imported from the config's
        directory, the test file's, the rootdir or ``sys.path``.
    :param check: fail the test, with the run's summary and KASAN reports, where
        ``hwemu run`` would exit non-zero (an expectation did not hold, a workload
        died, a panic or deadlock) or, unless the config expects ``kasan_reports``,
        where KASAN reported; with False, return the result whatever happened.

    The run boots a machine of its own and shuts it down; the test's other machines
    (``hwemu_machine``) are not touched. The run is deterministic: the same config,
    overrides and seeds give the same result.
    """
    tracker = _Tracker(request.config)

    def run(config=None, overrides=None, *, custom=(), check: bool = True) -> dict:
        overrides = overrides or {}
        if config is None:   # the test's hwemu_config marker, its overrides under these
            config, marked = _marker_config(request.node)
            overrides = {**{k.replace("__", "."): v for k, v in marked.items()},
                         **_dotted(overrides)}
        return _run_scenario(tracker, request.path.parent, config, overrides, custom, check)
    return run


def _run_scenario(tracker: _Tracker, here: Path, config, overrides: dict, custom,
                  check: bool) -> dict:
    """:func:`hwemu_run`'s work: the config, the custom workloads, the run, the check."""
    import sys

    from hwemu.config import Config, load_config, plain
    from hwemu.current import current_or_none
    from hwemu.runs import Run, report

    if isinstance(config, Config):   # one already loaded: its keys, loaded again
        config = {k: v for k, v in plain(config, None).items() if v is not None}
    source, _ = tracker.source(config)
    dotted = _dotted(overrides)
    modules: dict[str, object] = {}
    if custom:
        entries = dotted.get("run.custom")
        if entries is None:
            entries = _config_customs(source)
        entries = list(entries)
        for item in custom:
            item = dict(item) if isinstance(item, dict) else {"function": item}
            if callable(item.get("function")):
                item["function"] = _workload_name(item["function"], modules)
            entries.append(item)
        dotted["run.custom"] = entries
    search = (str(here), str(tracker.config.rootpath))   # after the config's directory
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)   # type: ignore[arg-type]
    before = current_or_none()
    try:
        cfg = load_config(source, overrides=dotted)
        if cfg.run is None:
            raise ValueError("hwemu_run: the config has no run: section; give one in "
                             "overrides, e.g. {'run': {'pools': [...]}}")
        result = Run(cfg, search).execute(signals=False)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if before is not None and current_or_none() is not before:
            swap(before)
    if "expectations" not in result:
        result["expectations"] = report.expectations(result, cfg.expect)
    failed = report.exit_code(result) != 0
    kasan = bool(result["kasan_reports"]) and cfg.expect.kasan_reports is None
    if check and (failed or kasan):
        why = "the run failed (hwemu run would exit non-zero)" if failed else \
            "KASAN reported (expect kasan_reports in the config to allow it)"
        text = "\n".join(r["text"] for r in result["kasan_reports"])
        pytest.fail(f"hwemu_run: {why}:\n{report.summary(result)}"
                    + (f"\n{text}" if text else ""), pytrace=False)
    return result


def _dotted(overrides: dict, prefix: str = "") -> dict:
    """``{"run": {"seed": 3}}`` as ``{"run.seed": 3}``: nested mappings merge."""
    out: dict = {}
    for key, value in overrides.items():
        if isinstance(value, dict) and value:
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _config_customs(source) -> list:
    """The ``run.custom`` entries ``source`` has as written (none if it cannot be read:
    loading it says why)."""
    from hwemu.config import ConfigError
    from hwemu.config.source import _read_source
    try:
        data = _read_source(source)[0]
    except (ConfigError, TypeError):
        return []
    run = data.get("run")
    customs = run.get("custom") if isinstance(run, dict) else None
    return list(customs) if isinstance(customs, list) else []


def _workload_name(fn, modules: dict) -> str:
    """``module:function`` for a workload given as a function: its own where its module
    has it (a test module's function), else a module made for the run."""
    import sys
    import types

    module, name = getattr(fn, "__module__", None), getattr(fn, "__name__", "")
    if module and name.isidentifier() and all(p.isidentifier() for p in module.split(".")) \
            and getattr(sys.modules.get(module), name, None) is fn:
        return f"{module}:{name}"
    name = name if name.isidentifier() else "workload"
    synthetic = types.ModuleType(f"hwemu_run_{len(modules)}")
    setattr(synthetic, name, fn)
    modules[synthetic.__name__] = synthetic
    return f"{synthetic.__name__}:{name}"


@pytest.fixture
def expect_kasan_report():
    """:func:`hwemu.kasan.expect_report`: ``with expect_kasan_report("use-after-free"):``"""
    import hwemu.kasan
    return hwemu.kasan.expect_report


# ---------------------------------------------------------------- the checks

class _Tracker:
    """The machines one test booted and their state right after boot."""

    def __init__(self, config):
        self.config = config
        self.machines: list[hwemu.Machine] = []
        self.baseline: dict[hwemu.Machine, tuple] = {}
        self.checked = False

    def source(self, config=None, **overrides) -> tuple:
        """``(config, dotted overrides)`` for :func:`hwemu.boot`: None is the ini option
        or the packaged default; a relative path is taken from the rootdir, and a name
        that is no file there is a packaged config's (``"tiny"``)."""
        if config is None:
            config = self.config.getini("hwemu_config") or None
        if isinstance(config, (str, Path)):
            path = self.config.rootpath / config   # an absolute path stays as it is
            if isinstance(config, Path) or os.path.dirname(config) or os.path.lexists(path):
                config = path   # a bare name that is no file here: hwemu.boot's to read
        return config, {k.replace("__", "."): v for k, v in overrides.items()}

    def boot(self, config=None, **overrides) -> hwemu.Machine:
        config, dotted = self.source(config, **overrides)
        return self.watch(hwemu.boot(config, overrides=dotted))

    def watch(self, m) -> hwemu.Machine:
        """Check ``m`` after the test: note its state now."""
        self.machines.append(m)
        self.baseline[m] = (len(m.kasan.reports), *_call_on(m, lambda: _usage(m)))
        return m

    def unexpected(self, m) -> list:
        return [r for r in m.kasan.reports[self.baseline[m][0]:] if not r.expected]

    def problems(self, m, leaks: bool) -> list[str]:
        """What the test did wrong on ``m``, one message per kind of problem."""
        if m.down:   # the test shut it down itself
            return []
        out = []
        reports = self.unexpected(m)
        if reports:
            out.append(f"hwemu: {len(reports)} unexpected KASAN report(s) on machine "
                       f"{m.name!r} (expect them with hwemu.kasan.expect_report()):\n"
                       + "\n".join(r.text for r in reports))
        return out + self.leaks(m) if leaks else out

    def leaks(self, m) -> list[str]:
        """The slab objects and pages allocated since :meth:`watch` and not freed."""
        _, pages0, live0 = self.baseline[m]
        pages, live = _call_on(m, lambda: _usage(m))
        lines = []
        for cache, objs in live.items():
            n = len(objs) - len(live0.get(cache, ()))
            if n > 0:   # kmemleak's "unreferenced object 0x... (size N)", three at most
                new = [f"{a:#x} (size {size})" for a, size in objs.items()
                       if a not in live0.get(cache, ())]
                lines.append(f"  {cache.name}: {n} object{'s' * (n != 1)} not freed: "
                             + ", ".join(new[:3]) + (", ..." if len(new) > 3 else ""))
        if pages0 > pages:
            n = pages0 - pages
            lines.append(f"  {n} page{'s' * (n != 1)} not returned to the page allocator"
                         + (" (the slabs of those objects included)" if lines else ""))
        if not lines:
            return []
        return [f"hwemu: memory leaked by the test on machine {m.name!r} (mark the "
                "test @pytest.mark.hwemu_allow_leaks to allow it):\n" + "\n".join(lines)]


def _usage(m) -> tuple[int, dict]:
    """(free pages + page cache + anon pages, {cache: {live object: size}}), measured
    after giving back everything cached: deferred vfrees, per-CPU arrays, empty slabs,
    the KASAN quarantine, per-CPU page lists."""
    m.vmalloc.flush_deferred()
    m.slab.shrink()
    m.page_alloc.drain_all_pages()
    pages = (sum(z.free_pages for z in m.page_alloc.zones)
             + m.vmstat["nr_file_pages"] + m.vmstat["nr_anon_pages"])
    return pages, {c: dict(c.live) for c in list(m.slab.slab_caches)}


def _call_on(m, fn):
    """``fn()`` as this thread's task on ``m``. A thread that booted several machines is
    a task of each, and ``current`` is the last one booted: switch for the call."""
    task = current_on(m)
    if task is None:   # booted from another thread
        return m.spawn(fn).join()
    saved = swap(task)
    try:
        return fn()
    finally:
        swap(saved)
