"""``hwemu sweep``: one scenario over a grid of settings and seeds, aggregated.

``hwemu sweep CONFIG --set KEY=V1,V2,... [--set ...] --seeds A-B`` runs the config
once per setting (the product of the ``--set`` lists, the first key varying slowest)
and seed, each run a job of a fleet (:mod:`hwemu.runs.fleet`: local worker processes
or a Dask cluster). Seed S sets ``run.seed``, ``fault_injection.seed`` and
``machine.sched.seed`` to S, as ``hwemu run --seed S --sched-seed S`` does, which
replays that run alone. A ``--set`` with one value applies to every run.

The table has a row per setting: how many runs gave a result, in how many each
expectation held and all did (``hwemu run`` would have exited 0), and the median,
p99 and max over the seeds of each chosen metric (``--metric``: a value expectations
are checked against, such as ``max_wait_ms``, or a dotted path into a run's result,
such as ``pools.bio.lowest_fill``). Everything is computed from the results put in
the grid's order, never in the order they completed: the same sweep prints the same
table on one core, on eight, or on a cluster. Every run is also one record of the
results file (``--json``, ``--csv``: a row per run, flat columns, as pandas reads
them), and ``--plot DIR`` draws each metric against the setting.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import os
import shlex
import sys
import time
from typing import Any, Iterable, TextIO

from ..config import ConfigError, ExpectConfig, Problem, load_config, parse_overrides
from ..config.source import OVERRIDE_FILE, config_path
from .fleet import Done, Job, executor
from .report import totals

SEED_KEYS = ("run.seed", "fault_injection.seed", "machine.sched.seed")
DEFAULT_METRICS = ("max_wait_ms", "waits", "alloc_reserve")
# The parts of a run's result a dotted metric may name.
RESULT_PARTS = ("pools", "workloads", "vm", "schedule", "emulated_seconds")
STATS = ("median", "p99", "max")
PROGRESS_SECONDS = 1.0   # wall time between progress lines


# ---------------------------------------------------------------- the grid

@dataclasses.dataclass
class Grid:
    """What ``--set`` asked for: the swept keys with their values (as written and as
    read), and the overrides every run gets."""
    keys: list[str]
    texts: list[list[str]]
    values: list[list[Any]]
    fixed: dict[str, Any]

    def settings(self) -> list[dict[str, Any]]:
        """Every combination of the swept values, the first key varying slowest."""
        return [dict(zip(self.keys, combo)) for combo in itertools.product(*self.values)]

    def labels(self) -> list[tuple[str, ...]]:
        """The values of each setting as written on the command line."""
        return list(itertools.product(*self.texts))


def split_values(text: str) -> list[str]:
    """``V1,V2,...``: split at the commas outside brackets, braces and quotes, so a
    value may be a YAML list (``[1, 2],[3]``) or a quoted string with commas."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(pairs: list[str]) -> Grid:
    """The ``--set KEY=V1,V2,...`` pairs as a :class:`Grid`; a problem is raised as
    :class:`ConfigError` at ``--set: key: message``."""
    grid = Grid([], [], [], {})
    problems: list[Problem] = []
    seen: set[str] = set()
    for pair in pairs:
        key, _, text = pair.partition("=")
        key = key.strip()
        texts = split_values(text)
        if key in seen:
            problems.append(Problem(OVERRIDE_FILE, None, key, "given twice; list every "
                                    "value in one --set, e.g. KEY=1,2,4"))
            continue
        seen.add(key)
        if not all(texts):
            problems.append(Problem(OVERRIDE_FILE, None, key,
                                    f"empty value in {text!r}; expected V1,V2,..."))
            continue
        try:
            values = [parse_overrides([f"{key}={t}"])[key] for t in texts]
        except ConfigError as exc:
            problems += exc.problems
            continue
        if len(values) == 1:
            grid.fixed[key] = values[0]
        else:
            grid.keys.append(key)
            grid.texts.append(texts)
            grid.values.append(values)
    if problems:
        raise ConfigError(problems)
    return grid


def parse_seeds(text: str) -> range:
    """``A-B`` (both included) or one seed ``A``; ValueError says what is expected."""
    first, dash, last = text.partition("-")
    try:
        seeds = range(int(first), int(last if dash else first) + 1)
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected A-B, e.g. 0-9") from None
    if not seeds or seeds.start < 0:
        raise ValueError(f"--seeds {text!r}: expected A-B with 0 <= A <= B")
    return seeds


def check_metrics(metrics: Iterable[str]) -> list[str]:
    """The metrics, each known: a totals name or a dotted path into a result."""
    names = list(ExpectConfig.model_fields)
    out = []
    for metric in metrics:
        if metric not in names and metric.split(".")[0] not in RESULT_PARTS:
            raise ValueError(f"--metric {metric!r}: expected one of {', '.join(names)}, "
                             f"or a path under {', '.join(RESULT_PARTS)}")
        out.append(metric)
    return out


def validate(config: str, grid: Grid, seeds: range, check=None) -> list[dict[str, Any]]:
    """Load the config with every setting (and the first seed) before any job runs:
    every problem at once, each once, as ``hwemu run`` reports them. Returns the
    settings."""
    settings = grid.settings()
    problems: list[Problem] = []
    for setting in settings:
        overrides = {**grid.fixed, **setting, **seed_overrides(seeds.start)}
        try:
            cfg = load_config(config, overrides=overrides, check=check)
        except ConfigError as exc:
            problems += [p for p in exc.problems if p not in problems]
            continue
        if cfg.run is None:
            raise ConfigError([Problem(config, None, "run",
                                       "a sweep needs a run: section")])
    if problems:
        raise ConfigError(problems)
    return settings


def seed_overrides(seed: int) -> dict[str, int]:
    """What seed ``seed`` sets: every seed of the run (``SEED_KEYS``)."""
    return dict.fromkeys(SEED_KEYS, seed)


def jobs(config: str, grid: Grid, seeds: range) -> list[Job]:
    """A job per setting and seed, numbered setting by setting, seed by seed."""
    path = os.path.abspath(config_path(config))   # a packaged config's name: its file
    return [Job(i * len(seeds) + j, path, {**grid.fixed, **setting}, seed_overrides(seed))
            for i, setting in enumerate(grid.settings()) for j, seed in enumerate(seeds)]


# ---------------------------------------------------------------- running it

@dataclasses.dataclass
class Sweep:
    """A sweep and what became of each of its jobs (``done``, by job index)."""
    config: str
    grid: Grid
    seeds: range
    metrics: list[str]
    done: dict[int, Done]

    def cell(self, setting: int) -> list[Done]:
        """The outcomes of one setting, in seed order."""
        n = len(self.seeds)
        return [self.done[k] for k in range(setting * n, (setting + 1) * n) if k in self.done]


def run_sweep(config: str, grid: Grid, seeds: range, metrics: list[str], fleet,
              out: TextIO | None = None) -> Sweep:
    """Run every job on ``fleet`` (an executor of :mod:`hwemu.runs.fleet`), with
    progress lines on ``out`` (default: stderr)."""
    out = out or sys.stderr
    todo = jobs(config, grid, seeds)
    done: dict[int, Done] = {}
    start = last = time.monotonic()
    print(f"hwemu: sweep of {len(todo)} runs ({len(grid.settings())} settings x "
          f"{len(seeds)} seeds) on {fleet.describe()}", file=out)

    def lost(jobs_lost: list[Job]) -> None:
        names = ", ".join(f"#{j.index}" for j in jobs_lost)
        print(f"hwemu: a worker died: runs {names} run again, each alone", file=out)

    for d in fleet.run(todo, on_lost=lost):
        done[d.job.index] = d
        if d.error:
            print(f"hwemu: run #{d.job.index} ({_where(grid, d.job)}): {d.error}", file=out)
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS or len(done) == len(todo):
            last = now
            print(f"hwemu: {len(done)}/{len(todo)} runs, "
                  f"{len(done) / max(now - start, 1e-9):.1f} runs/s", file=out)
    return Sweep(config, grid, seeds, metrics, done)


def _where(grid: Grid, job: Job) -> str:
    return ", ".join([f"{k}={job.overrides[k]}" for k in grid.keys] +
                     [f"seed {job.seeds[SEED_KEYS[0]]}"])


# ---------------------------------------------------------------- aggregates

def metric_value(result: dict, metric: str) -> float | None:
    """A metric of one result: a totals value, or the number at a dotted path (None
    where the result has none)."""
    values = result.get("totals") or totals(result)
    if metric in values:
        return values[metric]
    node: Any = result
    for part in metric.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile, interpolated between the closest ranks (numpy's
    default method)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def stats(values: list[float]) -> dict[str, float | None]:
    """Median, p99 and max of ``values`` (None for each if there are none)."""
    if not values:
        return dict.fromkeys(STATS)
    return {"median": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values)}


def expectation_names(sweep: Sweep) -> list[str]:
    """Every expectation some run declared (``metric condition``), first seen first."""
    names: dict[str, None] = {}
    for k in sorted(sweep.done):
        result = sweep.done[k].result
        for e in (result or {}).get("expectations", ()):
            names.setdefault(f"{e['metric']} {e['condition']}")
    return list(names)


def rows(sweep: Sweep) -> list[dict]:
    """A row per setting: its labels, the runs that gave a result, each expectation's
    ``(held, runs)``, the runs that passed, and each metric's stats."""
    out = []
    names = expectation_names(sweep)
    for i, label in enumerate(sweep.grid.labels()):
        results = [d.result for d in sweep.cell(i) if d.result is not None]
        held = {name: 0 for name in names}
        for result in results:
            for e in result["expectations"]:
                held[f"{e['metric']} {e['condition']}"] += bool(e["ok"])
        metrics = {}
        for metric in sweep.metrics:
            values = [metric_value(r, metric) for r in results]
            metrics[metric] = stats([v for v in values if v is not None])
        out.append({"setting": label, "runs": len(results), "held": held,
                    "passed": sum(r["exit_code"] == 0 for r in results),
                    "metrics": metrics})
    return out


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def table(sweep: Sweep) -> str:
    """The table a sweep prints (see the module docstring)."""
    data = rows(sweep)
    names = expectation_names(sweep)
    # (group, header, cells, left-aligned) per column
    columns = [("", key, [r["setting"][i] for r in data], True)
               for i, key in enumerate(sweep.grid.keys)]
    if not columns:   # nothing swept: one row, for the seeds alone
        columns = [("", "setting", ["(config)" for _ in data], True)]
    columns.append(("", "runs", [str(r["runs"]) for r in data], False))
    for name in names:
        columns.append(("expectations held", name,
                        [f"{r['held'][name]}/{r['runs']}" for r in data], False))
    columns.append(("expectations held", "all",
                    [f"{r['passed']}/{r['runs']}" for r in data], False))
    for metric in sweep.metrics:
        for stat in STATS:
            columns.append((metric, stat, [_cell(r["metrics"][metric][stat]) for r in data],
                            False))
    return "\n".join(_render(columns)) + "\n"


def _render(columns: list[tuple[str, str, list[str], bool]]) -> list[str]:
    """Columns under their headers, a group's name above its first column; a group's
    columns widen if its name is longer than they are."""
    widths = [max(len(h), *(len(c) for c in cells)) for _, h, cells, _ in columns]
    for group, members in itertools.groupby(range(len(columns)), lambda i: columns[i][0]):
        span = list(members)
        short = len(group) - (sum(widths[i] for i in span) + 2 * (len(span) - 1))
        if group and short > 0:
            widths[span[-1]] += short
    groups, at = "", 0
    for group, members in itertools.groupby(range(len(columns)), lambda i: columns[i][0]):
        span = list(members)
        if group:
            groups += " " * (at - len(groups)) + group
        at += sum(widths[i] + 2 for i in span)
    lines = ["  " + groups.rstrip()] if groups.strip() else []
    n = len(columns[0][2])
    for row in [[h for _, h, _, _ in columns]] + [[c[2][r] for c in columns]
                                                    for r in range(n)]:
        lines.append("  " + "  ".join(cell.ljust(w) if left else cell.rjust(w)
                                      for cell, w, (_, _, _, left) in
                                      zip(row, widths, columns)).rstrip())
    return lines


def lost_lines(sweep: Sweep) -> list[str]:
    """A line per run that gave no result, in the grid's order."""
    return [f"lost: run #{k} ({_where(sweep.grid, d.job)}): {d.error}"
            for k, d in sorted(sweep.done.items()) if d.result is None]


# ---------------------------------------------------------------- results files

def records(sweep: Sweep) -> list[dict]:
    """A flat record per run, in the grid's order: the setting, the seed, whether it
    passed, each expectation, every totals value and each metric, the error of a run
    that gave no result, and the command that replays it."""
    names = expectation_names(sweep)
    keys = list(ExpectConfig.model_fields)
    out = []
    for job in jobs(sweep.config, sweep.grid, sweep.seeds):
        d = sweep.done.get(job.index)
        result = d.result if d else None
        record: dict[str, Any] = {"setting": job.index // len(sweep.seeds),
                                  **{k: job.overrides[k] for k in sweep.grid.keys},
                                  "seed": job.seeds[SEED_KEYS[0]],
                                  "exit_code": result["exit_code"] if result else None,
                                  "error": d.error if d else "not run",
                                  "retried": bool(d and d.retried)}
        held = {f"{e['metric']} {e['condition']}": e["ok"]
                for e in (result or {}).get("expectations", ())}
        record.update({f"expect {name}": held.get(name) for name in names})
        record.update({k: (result["totals"][k] if result else None) for k in keys})
        record.update({m: (metric_value(result, m) if result else None)
                       for m in sweep.metrics if m not in keys})
        record["replay"] = replay(sweep, job)
        out.append(record)
    return out


def replay(sweep: Sweep, job: Job) -> str:
    """The ``hwemu run`` command that runs one job alone, the same."""
    words = ["hwemu", "run", sweep.config]
    for key, value in job.overrides.items():
        words += ["--set", f"{key}={json.dumps(value)}"]
    seed = job.seeds[SEED_KEYS[0]]
    words += ["--seed", str(seed), "--sched-seed", str(seed)]
    return " ".join(shlex.quote(w) for w in words)


def write_json(sweep: Sweep, path: str) -> None:
    """The records as a JSON list (``pandas.read_json(path)``)."""
    with open(path, "w") as f:
        json.dump(records(sweep), f, indent=1)
        f.write("\n")


def write_csv(sweep: Sweep, path: str) -> None:
    """The records as CSV with a header row (``pandas.read_csv(path)``)."""
    data = records(sweep)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)


# ---------------------------------------------------------------- plots

def plot(sweep: Sweep, directory: str) -> list[str]:
    """``METRIC.png`` per metric (median, p99 and max against the setting) and
    ``expectations.png`` (the share of seeds where each expectation held), with the
    Agg backend; returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    os.makedirs(directory, exist_ok=True)
    data = rows(sweep)
    x, xlabel, ticks = _axis(sweep)
    seeds = f"seeds {sweep.seeds.start}-{sweep.seeds.stop - 1}"
    series = [(f"{metric}.png", f"{metric} over {seeds}", metric,
               {stat: [r["metrics"][metric][stat] for r in data] for stat in STATS})
              for metric in sweep.metrics]
    names = expectation_names(sweep)
    series.append(("expectations.png", f"seeds where each expectation held ({seeds})",
                   "share of seeds", {name: [r["held"][name] / r["runs"] if r["runs"]
                                             else None for r in data] for name in names}))
    paths = []
    for file, title, ylabel, lines in series:
        fig = Figure(figsize=(8, 4.5), dpi=100)
        ax = fig.add_subplot()
        for label, values in lines.items():
            ax.plot(x, [float("nan") if v is None else v for v in values], marker="o",
                    label=label)
        for name in names:   # an expectation on this metric: its limit, dashed
            metric, _, condition = name.partition(" ")
            if metric == ylabel:
                ax.axhline(float(condition.split()[1]), color="grey", linestyle="--",
                           label=f"expect {condition}")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if ticks:
            ax.set_xticks(x, ticks, rotation=20)
        elif min(x) > 0 and max(x) >= 8 * min(x):   # 2, 4, 8... evenly spaced
            ax.set_xscale("log", base=2)
            ax.set_xticks(x, [str(v) for v in x])
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(loc="best")
        path = os.path.join(directory, file)
        fig.savefig(path, format="png", bbox_inches="tight", metadata={
            "Title": title, "Description": f"x: {xlabel}; y: {ylabel}"})
        paths.append(path)
    return paths


def _axis(sweep: Sweep) -> tuple[list, str, list[str] | None]:
    """The x values, the x label, and tick labels for settings that are not one
    number each (None when they are)."""
    grid = sweep.grid
    if len(grid.keys) == 1 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   for v in grid.values[0]):
        return list(grid.values[0]), grid.keys[0], None
    labels = [", ".join(f"{k.rsplit('.', 1)[-1]}={t}" for k, t in zip(grid.keys, label))
              for label in grid.labels()] or ["(config)"]
    return list(range(len(labels))), ", ".join(grid.keys) or "setting", labels


# ---------------------------------------------------------------- the command

def command(args, check=None) -> int:
    """``hwemu sweep``: check everything, run, print the table, write the files.
    Exit codes: 0 every run gave a result (whatever its expectations: they are what
    the table shows), 1 some did not, 2 bad config or options (before any run).
    ``check`` is load_config's (the command's check of custom workloads)."""
    try:
        grid = parse_grid(args.set)   # ConfigError: the command exits 2
        seeds = parse_seeds(args.seeds)
        metrics = check_metrics(args.metric or DEFAULT_METRICS)
        validate(args.config, grid, seeds, check)
        _check_outputs(args)
        fleet = executor(args.executor, args.jobs, args.scheduler)
    except (ValueError, OSError) as exc:
        print(f"hwemu: {exc}", file=sys.stderr)
        return 2
    with fleet:
        sweep = run_sweep(args.config, grid, seeds, metrics, fleet)
    return _output(sweep, args)


def _output(sweep: Sweep, args) -> int:
    """The table and the runs lost on stdout, then the files asked for."""
    sys.stdout.write(table(sweep))
    lost = lost_lines(sweep)
    if lost:
        print("\n" + "\n".join(lost))
    for path, write in ((args.json, write_json), (args.csv, write_csv)):
        if path:
            write(sweep, path)
            print(f"hwemu: wrote {path}", file=sys.stderr)
    if args.plot:
        for path in plot(sweep, args.plot):
            print(f"hwemu: wrote {path}", file=sys.stderr)
    return 1 if lost else 0


def _check_outputs(args) -> None:
    """What could fail after the runs fails before them: matplotlib missing for
    ``--plot``, a results file or plot directory that cannot be written."""
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'hwemu[plot]'") from None
        os.makedirs(args.plot, exist_ok=True)
    for path in (args.json, args.csv):
        if path:
            open(path, "a").close()
