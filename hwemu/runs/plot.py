"""``hwemu run --plot DIR``: PNG plots of a run's samples (matplotlib, Agg backend).

``pool-fill.png``: each pool's reserve (curr_nr) over emulated time;
``free-memory.png``: free memory per node over emulated time. The axis labels are also
written into each PNG's text chunks (Title, Description), so the files describe
themselves.
"""
from __future__ import annotations

import os

from ..page_types import PAGE_SIZE


def plot(result: dict, directory: str) -> list[str]:
    """Write the PNGs into ``directory`` (created if missing); returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    os.makedirs(directory, exist_ok=True)
    samples, name = result["samples"], result["machine"]
    t = samples["t"]
    series = [
        ("pool-fill.png", f"{name}: mempool reserve fill", "elements in reserve (curr_nr)",
         {f"pool {p}": v for p, v in samples["pools"].items()}),
        ("free-memory.png", f"{name}: free memory per node", "free memory (MiB)",
         {f"node {n}": [f * PAGE_SIZE / (1 << 20) for f in v]
          for n, v in samples["nodes"].items()}),
    ]
    paths = []
    for file, title, ylabel, lines in series:
        fig = Figure(figsize=(8, 4.5), dpi=100)
        ax = fig.add_subplot()
        for label, values in lines.items():
            ax.plot(t, values, label=label, drawstyle="steps-post")
        xlabel = "emulated time (s)"
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(loc="best")
        path = os.path.join(directory, file)
        fig.savefig(path, format="png", metadata={
            "Title": title, "Description": f"x: {xlabel}; y: {ylabel}"})
        paths.append(path)
    return paths
