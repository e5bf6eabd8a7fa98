"""What a run prints: the summary tables, the expectations and KTAP.

All of it is computed from the result dict of :meth:`hwemu.runs.Run.execute`, so a
saved JSON result renders the same.
"""
from __future__ import annotations

import operator
import signal

from ..config import ExpectConfig
from ..page_types import PAGE_SIZE

TIMEOUT_EXIT = 124   # hwemu run --timeout expired (as timeout(1) exits)
_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


def totals(result: dict) -> dict[str, float]:
    """The values expectations are checked against (see :class:`ExpectConfig`)."""
    pools, work = result["pools"].values(), result["workloads"]

    def pool_sum(key: str) -> int:
        return sum(p[key] for p in pools)

    def work_sum(key: str) -> int:
        return sum(c.get(key, 0) for c in work.values())

    return {
        "alloc_allocator": pool_sum("alloc_allocator"),
        "alloc_reserve": pool_sum("alloc_reserve"),
        "null_returns": pool_sum("alloc_null"),
        "waits": pool_sum("waits"),
        "max_wait_ms": max((p["max_wait_ns"] for p in pools), default=0) / 1e6,
        "free_reserve": pool_sum("free_reserve"),
        "free_allocator": pool_sum("free_allocator"),
        "completed": work_sum("completed"),
        "io_errors": work_sum("io_errors"),
        "drops": work_sum("drops"),
        "oom_kills": result["vm"].get("oom_kill", 0),
        "kasan_reports": len(result["kasan_reports"]),
        "bugs": result["bugs"],
        "warnings": result["warnings"],
    }


def expectations(result: dict, expect: ExpectConfig) -> list[dict]:
    """Each declared expectation with the run's value and whether it held; a custom
    workload's counter (``expect.model_extra``) is its sum over every workload."""
    values = totals(result)
    out = []
    declared = [(m, getattr(expect, m)) for m in ExpectConfig.model_fields]
    for metric, condition in declared + list((expect.model_extra or {}).items()):
        if condition is None:
            continue
        op, number = condition.split()
        value = values[metric] if metric in values else \
            sum(c.get(metric, 0) for c in result["workloads"].values())
        out.append({"metric": metric, "condition": condition, "value": value,
                    "ok": _OPS[op](value, float(number))})
    return out


def exit_code(result: dict) -> int:
    """0 if every expectation held, no task died and the kernel did not panic; 128 +
    the signal's number if a signal stopped the run (130 for SIGINT, 143 for SIGTERM,
    129 for SIGHUP); 124 if ``hwemu run --timeout`` did; else 1."""
    if result["interrupted"]:
        if result.get("timed_out"):
            return TIMEOUT_EXIT
        name = result.get("signal")
        return 128 + (signal.Signals[name] if name else signal.SIGINT)
    if result["task_errors"] or result["panic"] or result["deadlock"] or \
            not all(e["ok"] for e in result["expectations"]):
        return 1
    return 0


def status(result: dict) -> str:
    """The run in a word: ``passed`` (exit code 0), ``failed`` (1), ``interrupted``
    (a signal stopped it) or ``timed out`` (``--timeout`` stopped it)."""
    if result["interrupted"]:
        return "timed out" if result.get("timed_out") else "interrupted"
    return "passed" if exit_code(result) == 0 else "failed"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.2f} ms"


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    """Columns right-aligned under their headers, the first left-aligned."""
    cells = [header] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths)))
            for row in cells]


def _pool_kind(p: dict) -> str:
    return f"page/order-{p['order']}" if p["type"] == "page" else f"{p['type']}/{p['size']}"


def summary(result: dict) -> str:
    """The summary a run prints: pools, workloads, memory, reclaim, bugs, expectations."""
    state = _stopped(result) + " after" if result["interrupted"] else "ran"
    sched = result["schedule"]
    lines = [f"hwemu run: {result['machine']}, seed {result['seed']}: {state} "
             f"{result['emulated_seconds']:.2f}s of emulated time "
             f"({result['wall_seconds']:.2f}s wall)",
             f"Schedule: {sched['strategy']}, seed {sched['seed']}: {sched['steps']} "
             f"scheduling points, {sched['switches']} switches, interleaving "
             f"{sched['interleaving']}", ""]
    if result["pools"]:
        lines.append("Pools (min_nr at the end; allocations from the allocator or the "
                     "reserve; frees to the reserve or the allocator):")
        lines += _table(
            ("pool", "type", "min_nr", "allocator", "reserve", "NULL", "waits", "max wait",
             "p99 wait", "free:reserve", "free:allocator", "lowest fill"),
            [(name, _pool_kind(p), p["min_nr"], p["alloc_allocator"], p["alloc_reserve"],
              p["alloc_null"], p["waits"], _ms(p["max_wait_ns"]), _ms(p["p99_wait_ns"]),
              p["free_reserve"], p["free_allocator"], p["lowest_fill"])
             for name, p in result["pools"].items()])
        lines.append("")
    if result["workloads"]:
        lines.append("Workloads:")
        lines += [f"  {name}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "-")
                  for name, counts in result["workloads"].items()]
        lines.append("")
    lines.append("Memory (pages; min free is the lowest an allocation left):")
    lines += _table(("zone", "managed", "free", "min free", "wmark min", "low", "high",
                     "reclaimed"),
                    [(f"node {z['node']} {z['zone']}", z["managed"], z["free"],
                      z["min_free"], z["min"], z["low"], z["high"], z["reclaimed"])
                     for z in result["zones"]])
    vm = result["vm"]
    stalls = sum(v for k, v in vm.items() if k.startswith("allocstall"))
    lines += ["", f"Reclaim: kswapd woken {vm['kswapd_wake']} times, reclaimed "
              f"{vm['pgsteal_kswapd']} pages; direct reclaim {stalls} stalls, "
              f"{vm['pgsteal_direct']} pages; OOM kills {vm['oom_kill']}",
              f"Bugs: {len(result['kasan_reports'])} KASAN reports, {result['bugs']} oopses, "
              f"{result['warnings']} warnings; {result['tainted']}"]
    lines += [f"Task failed: {e}" for e in result["task_errors"]]
    if result["deadlock"]:
        lines.append(f"Deadlock: {result['deadlock']} (their stacks follow)")
    if result["panic"]:
        lines.append(f"The run stopped at: {result['panic']}")
    if result["expectations"]:
        lines += ["", "Expectations:"]
        lines += [f"  {'ok  ' if e['ok'] else 'FAIL'}  {e['metric']} {e['condition']} "
                  f"(got {_number(e['value'])})" for e in result["expectations"]]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _stopped(result: dict) -> str:
    """How a stopped run ended: ``interrupted`` (Ctrl-C), ``interrupted by SIGTERM``,
    ``stopped by --timeout``."""
    if result.get("timed_out"):
        return "stopped by --timeout"
    name = result.get("signal")
    return "interrupted" if name in (None, "SIGINT") else f"interrupted by {name}"


def ktap(result: dict) -> str:
    """KTAP version 1 (the kernel's Documentation/dev-tools/ktap.rst): the version line,
    the plan right after it, then one test per expectation and a last one, ``run``,
    for the run itself (no task died, no panic or deadlock, not stopped early), so a
    CI parser sees every check. What the machine said goes as diagnostic lines (``# ``)
    after the result they explain: the KASAN reports after ``kasan_reports``, the
    WARNINGs after ``warnings`` (after ``run`` when the config expects nothing of
    them), the panic and the failed tasks after ``run``."""
    checks = [(e["ok"], e["metric"], [f"{e['metric']} {e['condition']}, got "
                                      f"{_number(e['value'])}"])
              for e in result["expectations"]]
    problems = result["task_errors"] + [p for p in (result["panic"], result["deadlock"])
                                        if p]
    ran = not problems and not result["interrupted"]
    checks.append((ran, "run", problems or [_stopped(result) if result["interrupted"]
                                            else "completed"]))
    texts = {"kasan_reports": [r["text"] for r in result["kasan_reports"]],
             "warnings": result.get("warning_reports", [])}
    for metric, reports in texts.items():
        owner = next((c for c in checks if c[1] == metric), checks[-1])
        owner[2].extend(line for text in reports for line in text.splitlines())
    if result["blocked_tasks"]:
        checks[-1][2].extend(result["blocked_tasks"].splitlines())
    lines = ["KTAP version 1", f"1..{len(checks)}",
             f"# hwemu run: {result['machine']} seed {result['seed']}"]
    for n, (ok, name, diag) in enumerate(checks, 1):
        lines.append(f"{'ok' if ok else 'not ok'} {n} {name}")
        lines += [f"# {line}" for line in diag]   # "# " even for an empty line
    return "\n".join(lines) + "\n"


def mib(pages: int) -> str:
    return f"{pages * PAGE_SIZE / (1 << 20):.1f}M"
