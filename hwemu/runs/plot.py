"""``hwemu run --plot DIR``: PNG plots of a run's samples (matplotlib, Agg backend).

``pool-fill.png``: each pool's reserve (curr_nr) at each sample and the lowest it fell
to between samples, its ``min_nr``, and markers where tasks waited in
``mempool_alloc()``, where it returned NULL and where KASAN reported; the y axis starts
at 0 and reaches at least ``min_nr``. ``free-memory.png``: free memory per node on a log
scale (the pressure phase, a few MiB, shows beside the idle hundreds), with each node's
min/low/high watermarks summed over its zones. ``ops.png``: each pool's allocations and
frees per second between samples. The axis labels are also written into each PNG's
text chunks (Title, Description), so the files describe themselves.

:func:`figures` builds the figures (to inspect their artists), :func:`plot` writes them.
"""
from __future__ import annotations

import os

from ..page_types import PAGE_SIZE

XLABEL = "emulated time (s)"
FILES = ("pool-fill.png", "free-memory.png", "ops.png")


def plot(result: dict, directory: str) -> list[str]:
    """Write the PNGs into ``directory`` (created if missing); returns their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for file, fig in figures(result).items():
        ax = fig.axes[0]
        path = os.path.join(directory, file)
        fig.savefig(path, format="png", metadata={
            "Title": ax.get_title(),
            "Description": f"x: {ax.get_xlabel()}; y: {ax.get_ylabel()}"})
        paths.append(path)
    return paths


def figures(result: dict) -> dict:
    """``{file name: matplotlib Figure}`` for a run's result (no pyplot: no global
    figure state)."""
    import matplotlib
    matplotlib.use("Agg")
    return {"pool-fill.png": pool_fill(result), "free-memory.png": free_memory(result),
            "ops.png": ops(result)}


def _axes(title: str, ylabel: str):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=XLABEL, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _new(series: list[int]) -> list[int]:
    """Indexes of the samples at which a running total grew."""
    return [i for i in range(1, len(series)) if series[i] > series[i - 1]]


def pool_fill(result: dict):
    """The reserves: curr_nr, lowest between samples, min_nr, and the events."""
    samples = result["samples"]
    t = samples["t"]
    fig, ax = _axes(f"{result['machine']}: mempool reserve fill",
                    "elements in reserve (curr_nr)")
    events = samples.get("pool_events", {})
    top = 1
    waits_x, waits_y, nulls_x, nulls_y = [], [], [], []
    for name, fill in samples["pools"].items():
        ev = events.get(name)
        line, = ax.plot(t, fill, drawstyle="steps-post", label=f"pool {name}")
        color = line.get_color()
        min_nr = ev["min_nr"] if ev else [result["pools"][name]["min_nr"]] * len(t)
        ax.plot(t, min_nr, drawstyle="steps-post", color=color, linestyle="--",
                linewidth=2.5, alpha=0.6, zorder=2.5, label=f"pool {name}: min_nr")
        top = max(top, *min_nr, *fill) if t else top
        if not ev:
            continue
        # The lowest fill of each interval is drawn at its end (where it is sampled).
        ax.fill_between(t, ev["lowest"], fill, step="pre", color=color, alpha=0.25,
                        label=f"pool {name}: lowest between samples")
        for i in _new(ev["waits"]):
            waits_x.append(t[i])
            waits_y.append(ev["lowest"][i])
        for i in _new(ev["nulls"]):
            nulls_x.append(t[i])
            nulls_y.append(ev["lowest"][i])
    waits = sum(p.get("waits", 0) for p in result["pools"].values())
    nulls = sum(p.get("alloc_null", 0) for p in result["pools"].values())
    ax.scatter(waits_x, waits_y, marker="v", color="tab:orange", zorder=3,
               label=f"waits in mempool_alloc() ({waits})")
    ax.scatter(nulls_x, nulls_y, marker="x", color="black", zorder=3,
               label=f"NULL returns ({nulls})")
    reports = samples.get("kasan_reports", [])
    kasan = [t[i] for i in _new(reports)]
    if reports and reports[0]:
        kasan.insert(0, t[0])
    ax.vlines(kasan, 0, top * 1.1, colors="red", linestyles=":",
              label=f"KASAN reports ({len(result.get('kasan_reports', ()))})")
    ax.set_ylim(0, top * 1.1 + 1)
    _legend(ax)
    return fig


def _legend(ax) -> None:
    """The legend beside the plot, where it hides nothing."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def free_memory(result: dict):
    """Free memory per node (log scale) and the nodes' summed watermarks."""
    samples = result["samples"]
    t = samples["t"]
    fig, ax = _axes(f"{result['machine']}: free memory per node", "free memory (MiB)")
    mib = PAGE_SIZE / (1 << 20)
    wmarks: dict[str, dict[str, int]] = {}
    for zone in result.get("zones", ()):
        node = wmarks.setdefault(str(zone["node"]), {"min": 0, "low": 0, "high": 0})
        for key in node:
            node[key] += zone[key]
    styles = {"min": ":", "low": "-.", "high": "--"}
    for nid, free in samples["nodes"].items():
        line, = ax.plot(t, [f * mib for f in free], drawstyle="steps-post",
                        label=f"node {nid}")
        for key, pages in wmarks.get(str(nid), {}).items():
            ax.axhline(pages * mib, color=line.get_color(), linestyle=styles[key],
                       linewidth=1, label=f"node {nid} watermark {key}")
    ax.set_yscale("log")
    _legend(ax)
    return fig


def ops(result: dict):
    """Allocations and frees per second of each pool: between two samples (thin) and
    over the last second (bold)."""
    samples = result["samples"]
    t = samples["t"]
    fig, ax = _axes(f"{result['machine']}: mempool operations", "operations per second")
    for name, ev in samples.get("pool_events", {}).items():
        for key, style in (("allocs", "-"), ("frees", "--")):
            what = "allocations" if key == "allocs" else "frees"
            line, = ax.plot(t[1:], _rates(t, ev[key], 0), drawstyle="steps-pre",
                            linestyle=style, linewidth=0.8, alpha=0.4,
                            label=f"pool {name}: {what}/s")
            ax.plot(t[1:], _rates(t, ev[key], 1.0), linestyle=style, linewidth=2,
                    color=line.get_color(), label=f"pool {name}: {what}/s, last second")
    ax.set_ylim(bottom=0)
    _legend(ax)
    return fig


def _rates(t: list[float], total: list[int], window: float) -> list[float]:
    """Per second, at each sample but the first: the growth of ``total`` since the
    previous sample (``window`` 0) or over the last ``window`` seconds."""
    rates, start = [], 0
    for i in range(1, len(t)):
        start = i - 1 if not window else start
        while window and start < i - 1 and t[i] - t[start + 1] >= window:
            start += 1
        dt = t[i] - t[start]
        rates.append((total[i] - total[start]) / dt if dt > 0 else 0.0)
    return rates
