"""Live progress of a run on stderr: a rich display on a terminal, refreshed in wall
time; otherwise (CI logs, pipes) a plain line per second of emulated time and one at
the end, the same on any host. Both show elapsed emulated time, operations per second,
each pool's fill level, free memory per node and the KASAN report count.
"""
from __future__ import annotations

import signal
import sys
import time

from .report import mib

PLAIN_SECONDS = 1.0    # emulated time between plain lines
LIVE_SECONDS = 0.25    # wall-clock time between refreshes of the live display


def status(run, samples: dict) -> dict:
    """The numbers both displays show, from the run's latest samples."""
    t, ops = samples["t"], samples["ops"]
    back = next((i for i in range(len(t) - 1, -1, -1) if t[-1] - t[i] >= 1.0), 0)
    span = t[-1] - t[back]
    return {
        "t": t[-1],
        "ops_per_s": (ops[-1] - ops[back]) / span if span > 0 else 0.0,
        "pools": {name: (fill[-1], run.min_nr(name))
                  for name, fill in samples["pools"].items()},
        "free": {nid: free[-1] for nid, free in samples["nodes"].items()},
        "kasan": len(run.machine.kasan.reports),
    }


def stopping_line(signum: int) -> str:
    """What the watcher says when a signal stopped the run."""
    name = signal.Signals(signum).name
    again = " (Ctrl-C again quits at once, without the summary)" \
        if signum == signal.SIGINT else ""
    return f"hwemu: {name}: stopping the run{again}"


def plain_line(s: dict) -> str:
    pools = " ".join(f"{name} {curr}/{min_nr}" for name, (curr, min_nr) in s["pools"].items())
    free = " ".join(f"node{nid} {mib(f)}" for nid, f in s["free"].items())
    return (f"[{s['t']:7.2f}s] {s['ops_per_s']:9.0f} ops/s | pools: {pools or '-'} | "
            f"free: {free} | KASAN reports: {s['kasan']}")


class Progress:
    """``progress(run, samples)`` for :meth:`Run.execute`; ``close()`` when done."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.live = None
        self.last = 0.0
        self.pending: dict | None = None   # the status not printed yet (plain mode)
        self.told = False   # that the run is stopping, on a signal or --timeout
        if stream.isatty():
            from rich.console import Console
            from rich.live import Live
            self.live = Live(console=Console(file=stream), auto_refresh=False,
                             transient=True)
            self.live.start()

    def __call__(self, run, samples: dict) -> None:
        if (run.stop_signal is not None or run.timed_out) and not self.told:
            self.told = True
            self._say(stopping_line(run.stop_signal) if run.stop_signal is not None
                      else "hwemu: --timeout: stopping the run")
        if self.live:
            now = time.monotonic()
            if now - self.last >= LIVE_SECONDS:
                self.last = now
                self.live.update(self._table(status(run, samples)), refresh=True)
        else:
            self.pending = status(run, samples)
            if self.pending["t"] - self.last >= PLAIN_SECONDS:
                self._print()

    def _say(self, text: str) -> None:
        """A line above the live display, or between the plain lines."""
        if self.live:
            self.live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def _print(self) -> None:
        assert self.pending is not None
        self.last = self.pending["t"]
        print(plain_line(self.pending), file=self.stream, flush=True)
        self.pending = None

    @staticmethod
    def _table(s: dict):
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        table = Table(title=f"{s['t']:.2f}s emulated, {s['ops_per_s']:.0f} ops/s, "
                            f"{s['kasan']} KASAN reports", title_justify="left")
        table.add_column("pool / node")
        table.add_column("level", width=30)
        table.add_column("", justify="right")
        for name, (curr, min_nr) in s["pools"].items():
            table.add_row(f"pool {name}", ProgressBar(total=max(1, min_nr), completed=curr),
                          f"{curr}/{min_nr}")
        for nid, free in s["free"].items():
            table.add_row(f"node {nid} free", "", mib(free))
        return table

    def close(self) -> None:
        """Stop the live display; in plain mode, print the last sample if it was not."""
        if self.live:
            self.live.stop()
        elif self.pending:
            self._print()
