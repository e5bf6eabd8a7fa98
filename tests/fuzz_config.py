"""Config fuzz: seeded mutations of the packaged configs through the ``hwemu`` command.

Each case mutates one of ``configs/*.yaml`` and ``hwemu/*.yaml`` (type changes, huge,
negative, NaN and infinite numbers, huge digit strings, deep nesting, long strings,
deleted, duplicated and unknown keys, anchors and aliases, tags, binary junk), writes
it next to a copy of the configs' workload modules and runs ``hwemu validate`` on it
in a subprocess; the first ``--runs`` cases that validate are also run for 50 ms of
emulated time (``hwemu run --duration 50ms``). Case ``i`` of seed ``s`` is the same
everywhere (``--case i`` runs it alone and keeps it with ``--keep DIR``).

Counted as failures: a traceback on stderr; a hang (no answer within the wall-clock
guard, a harness guard and not a speed test); an exit status other than 0, 2 (a bad
config, every line ``file:LINE: key: message``, or ``file: (file|yaml): message`` for
a problem of the whole document) and, for a run, 1 (the machine failed or an
expectation did not hold, after the summary); a run that stops before its summary
(validate accepted what run could not do); a child's max RSS of 256 MiB or more.

Usage: ``python tests/fuzz_config.py [--count N] [--seed S] [--runs R] [--jobs J]``
(``make fuzz``); prints the counts and exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "hwemu").glob("*.yaml"))
MODULES = sorted((ROOT / "configs").glob("*.py"))   # custom workloads the configs import
VALIDATE_TIMEOUT = 60.0   # seconds of wall clock before a case counts as a hang
RUN_TIMEOUT = 180.0
MAX_RSS = 256 << 20
HWEMU = [sys.executable, "-m", "hwemu"]

# ---------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------

Path_ = tuple[Any, ...]

NUMBERS = [-1, -(2 ** 63), 2 ** 63, 2 ** 64, 2 ** 64 - 1, 10 ** 30, 10 ** 300, 1e300,
           -1e300, math.nan, math.inf, -math.inf, 0, 0.5, -0.0, 4095, 2 ** 31]
STRINGS = ["", " ", "0x", "-1M", "1.5G", "1e3", "1e400", "null", "~", "yes", "0b101",
           "１２", "\u00e9\u00e9", "\\x00", "-", "%s%n", "1 2", "64T", "16E", "0x" + "f" * 40,
           "1__0", "nan", "-0", "+5", "9" * 25 + "ms", "GFP_KERNEL|", "a:b", "a.b:c"]
TYPES = [lambda r: r.choice(STRINGS), lambda r: r.randint(-5, 10 ** 6),
         lambda r: r.random() * 10 ** r.randint(0, 30), lambda r: [1, "x", None],
         lambda r: {"a": 1}, lambda r: r.choice([True, False]), lambda r: None, lambda r: []]
# Raw YAML put in place of a value: what the dumper cannot write, or writes too slowly.
RAW = [
    lambda r: "[" * (d := r.choice([65, 300, 3000, 50_000])) + "]" * d,
    lambda r: "{a: " * (d := r.choice([65, 300, 3000])) + "1" + "}" * d,
    lambda r: "9" * r.choice([400, 4301, 5000, 100_000]),
    lambda r: "9" * r.choice([400, 5000]) + r.choice(["s", "ms", "M", "G", "ns", "K"]),
    lambda r: "-" + "9" * r.choice([30, 5000]),
    lambda r: "0x" + "f" * r.choice([17, 5000]),
    lambda r: '"' + "a" * r.choice([240, 300, 10_000, 500_000]) + '"',
    lambda r: r.choice([".nan", ".inf", "-.inf", "1e400", "-1e400", "1.0e+300"]),
    lambda r: r.choice(["!!binary aGVsbG8=", "!!python/object:os.system {}",
                        "!!python/name:os.system ''", "!!set {a, b}", "!!omap [a: 1]",
                        "!!timestamp 2001-13-45", "!!bool maybe", "!!int 0x", "!!float x",
                        "!!str 5", "!!null ''", "!!int '99999'", "!!merge x", "!!pairs [a: 1]",
                        "!<tag:example.com,2000:x> 1", "!local 1", "&a [*a]"]),
    lambda r: r.choice(["{<<: {a: 1}}", "[*undefined]", "{? [1, 2] : 3}", "{{a: 1}: 2}",
                        "{[1]: 2}", "{1: 2}", "{null: 1}", "{true: 1}", "{1.5: x}"]),
]


@dataclasses.dataclass
class Case:
    """One mutated config: where it came from, what was done, and its bytes."""

    index: int
    source: Path
    steps: list[str]
    data: bytes

    @property
    def name(self) -> str:
        """The case's file name."""
        return f"case{self.index}.yaml"

    def label(self) -> str:
        """``#i source: steps``, for the report."""
        return f"#{self.index} {self.source.name}: {'; '.join(self.steps)}"[:300]


def paths(data: Any, prefix: Path_ = (), above: frozenset[int] = frozenset()) -> list[Path_]:
    """Every key path in ``data`` (mappings and lists), the root excluded; a value
    that holds itself (aliases can make one) is not entered again."""
    found = []
    items = data.items() if isinstance(data, dict) else \
        enumerate(data) if isinstance(data, list) else ()
    above = above | {id(data)}
    for k, v in items:
        found.append(prefix + (k,))
        if id(v) not in above:
            found.extend(paths(v, prefix + (k,), above))
    return found


# Nodes (or 100s of characters of raw YAML) a repeated value may grow to: more than the
# loader's MAX_YAML_NODES (100,000), within what the fuzzer itself can hold.
GROWTH_BUDGET = 150_000


def count(data: Any, limit: int = GROWTH_BUDGET) -> int:
    """Nodes in ``data``, counting stopped past ``limit``."""
    n, stack = 0, [data]
    while stack and n <= limit:   # a cycle only counts up to the limit
        node = stack.pop()
        n += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return n


def _holds(data: Any, text: str) -> bool:
    """Whether the string ``text`` is in ``data``."""
    stack, seen = [data], set()
    while stack:
        node = stack.pop()
        if node == text:
            return True
        if isinstance(node, (dict, list)) and id(node) not in seen:
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)
    return False


def get(data: Any, path: Path_) -> Any:
    """The value at ``path``."""
    for k in path:
        data = data[k]
    return data


class Mutator:
    """Structural and textual mutations, all drawn from one ``random.Random``."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.raw: dict[str, str] = {}   # placeholder -> raw YAML, put in after dumping

    def _copies(self, value: Any, choices: list[int]) -> int:
        """How many times to repeat ``value`` in a list: a choice, cut so that the
        document stays within GROWTH_BUDGET nodes (the dumper repeats scalars, and
        the next mutation lists every path)."""
        weight = count(value) + sum(len(raw) // 100 for key, raw in self.raw.items()
                                    if _holds(value, key))
        return max(1, min(self.rng.choice(choices), GROWTH_BUDGET // (1 + weight)))

    def _placeholder(self, text: str) -> str:
        key = f"RAWYAML{len(self.raw)}X"
        self.raw[key] = text
        return key

    def structural(self, data: Any) -> str:
        """Change ``data`` in place at a random path; return what was done."""
        rng = self.rng
        every = paths(data)
        if not every:
            return "empty: nothing to change"
        path = rng.choice(every)
        parent, key = get(data, path[:-1]), path[-1]
        where = ".".join(map(str, path))
        kind = rng.choice(["type", "number", "raw", "raw", "delete", "unknown", "alias",
                           "swap", "many", "tweak", "tweak", "tweak"])
        if kind == "tweak":   # a value of the same type, often still valid
            parent[key] = tweak(rng, parent[key])
        elif kind == "type":
            parent[key] = rng.choice(TYPES)(rng)
        elif kind == "number":
            parent[key] = rng.choice(NUMBERS)
        elif kind == "raw":
            parent[key] = self._placeholder(rng.choice(RAW)(rng))
        elif kind == "delete":
            del parent[key]
        elif kind == "unknown" and isinstance(parent, list):   # an item too many
            parent.append(parent[key])
        elif kind == "unknown":
            name = rng.choice([str(key) + "s", str(key)[:-1], "zzz_unknown", str(key).upper()])
            parent[name] = parent[key]
            where = f"{where} -> {name}"
        elif kind == "alias":   # the dumper writes a shared object as &anchor / *alias
            target = rng.choice(every)
            if _is_prefix(target, path):   # no cycles: RAW has a recursive alias
                return f"alias at {where}: skipped, {'.'.join(map(str, target))} holds it"
            other = get(data, target)
            parent[key] = other
            if isinstance(other, (dict, list)) and rng.random() < 0.3:
                parent[key] = [other] * self._copies(other, [2, 50, 2000])
        elif kind == "swap":
            other = rng.choice(every)
            oparent = get(data, other[:-1])
            if not _is_prefix(path, other) and not _is_prefix(other, path):
                parent[key], oparent[other[-1]] = oparent[other[-1]], parent[key]
        elif kind == "many":   # a big list: the validation must stay linear
            parent[key] = [parent[key]] * self._copies(parent[key], [100, 2_500, 10_000])
        return f"{kind} at {where}"

    def dump(self, data: Any) -> str:
        """``data`` as YAML with the raw placeholders put back."""
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 16)
        for key, raw in self.raw.items():
            text = text.replace(key, raw)
        return text

    def textual(self, raw: bytes) -> tuple[str, bytes]:
        """A mutation of the bytes: junk, truncation, duplicated lines, laughs."""
        rng = self.rng
        kind = rng.choice(["junk", "truncate", "duplicate", "laughs", "nul", "bom"])
        at = rng.randrange(len(raw) + 1)
        if kind == "junk":
            return kind, raw[:at] + rng.randbytes(rng.choice([1, 8, 200])) + raw[at:]
        if kind == "truncate":
            return kind, raw[:at]
        if kind == "duplicate":
            lines = raw.splitlines(keepends=True)
            i = rng.randrange(len(lines))
            return f"duplicate line {i + 1}", b"".join(lines[:i + 1] + lines[i:])
        if kind == "laughs":
            depth = rng.choice([3, 6, 9])
            rows = ["lol0: &l0 [x, x, x, x, x, x, x, x, x, x]"] + [
                f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]"
                for i in range(1, depth)]
            return f"laughs {depth}", raw + ("\n".join(rows) + "\n").encode()
        if kind == "nul":
            return kind, raw[:at] + b"\0" + raw[at:]
        return kind, b"\xef\xbb\xbf" + raw + rng.randbytes(3)


def tweak(rng: random.Random, value: Any) -> Any:
    """Another value of ``value``'s type: a bool flipped, a number scaled, a size or
    duration with another number or unit."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([0, 1, value + 1, value * 2, value // 2, value * 1000, -value])
    if isinstance(value, float):
        return rng.choice([0.0, value * 2, value / 2, 1.0, value * 1e6])
    if isinstance(value, str) and (m := re.fullmatch(r"([0-9]+)\s*([A-Za-z]*)", value)):
        number = rng.choice([0, 1, int(m[1]) * 2, int(m[1]) // 2, int(m[1]) * 1024])
        unit = rng.choice([m[2], m[2], "K", "M", "G", "T", "ns", "us", "ms", "s"])
        return f"{number}{unit}"
    if isinstance(value, list) and value:
        return value[:-1] if rng.random() < 0.5 else value + [value[-1]]
    return value


def _is_prefix(a: Path_, b: Path_) -> bool:
    return b[:len(a)] == a


def make_case(seed: int, index: int) -> Case:
    """Case ``index`` of ``seed``: one to three mutations of one packaged config."""
    rng = random.Random(f"{seed}:{index}")
    source = rng.choice(SOURCES)
    raw = source.read_bytes()
    mutator = Mutator(rng)
    steps = []
    if rng.random() < 0.8:
        data = yaml.safe_load(raw)
        for _ in range(rng.choice([1, 1, 2, 3])):
            steps.append(mutator.structural(data))
        raw = mutator.dump(data).encode("utf-8", "surrogatepass")
    if rng.random() < 0.25 or not steps:
        step, raw = mutator.textual(raw)
        steps.append(step)
    return Case(index, source, steps, raw)


# ---------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------

LINE_RE = re.compile(r"(?P<line>\d+): \S|(?P<whole> \((?:file|yaml)\): \S)")


def bad_problem_lines(stderr: str, file: str) -> list[str]:
    """Lines of a rejected config's stderr that are not ``file:LINE: key: message``
    (a problem of the whole document, ``file: (yaml): message``, has no line)."""
    return [line for line in stderr.splitlines()
            if not (line.startswith(file + ":") and LINE_RE.match(line, len(file) + 1))]


@dataclasses.dataclass
class Outcome:
    """What one command did with a case."""

    command: str
    returncode: int | None   # None: it hung
    stdout: str
    stderr: str
    maxrss: int = 0          # the child's peak resident set, bytes


def run_hwemu(args: list[str], cwd: Path, timeout: float) -> Outcome:
    """``hwemu ARGS`` in a subprocess, killed after ``timeout`` seconds (a hang).

    The child is reaped with ``os.wait4`` for its own peak RSS.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(HWEMU + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    hung = threading.Event()

    def kill() -> None:
        hung.set()
        p.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    out: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda n=n, f=f: out.__setitem__(n, f.read()))
               for n, f in (("stdout", p.stdout), ("stderr", p.stderr))]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    _, status, usage = os.wait4(p.pid, 0)
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)   # reaped here, not by Popen
    for f in (p.stdout, p.stderr):
        f.close()   # type: ignore[union-attr]
    code = None if hung.is_set() else p.returncode
    return Outcome(args[0], code, _text(out["stdout"]), _text(out["stderr"]),
                   usage.ru_maxrss * 1024)


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def judge(outcome: Outcome, file: str) -> str | None:
    """The failure ``outcome`` shows, or None if it is an allowed answer."""
    if outcome.returncode is None:
        return "hang"
    if "Traceback" in outcome.stderr:
        return "traceback"
    allowed = (0, 2) if outcome.command == "validate" else (0, 1, 2)
    if outcome.returncode not in allowed:
        return "bad exit code"
    if outcome.returncode == 2 and bad_problem_lines(outcome.stderr, file):
        return "bad exit code"   # exit 2 without file:LINE
    if outcome.command == "run" and outcome.returncode == 1 and not outcome.stdout:
        return "broken at run"   # stopped before the summary: validate let it through
    if outcome.maxrss >= MAX_RSS:
        return "max RSS"
    return None


def validate(case: Case, workdir: Path) -> Outcome:
    """``hwemu validate`` of ``case``, written into ``workdir``."""
    (workdir / case.name).write_bytes(case.data)
    return run_hwemu(["validate", case.name], workdir, VALIDATE_TIMEOUT)


def run(case: Case, workdir: Path) -> Outcome:
    """``hwemu run`` of ``case`` (validated) for 50 ms of emulated time."""
    return run_hwemu(["run", case.name, "--duration", "50ms"], workdir, RUN_TIMEOUT)


# ---------------------------------------------------------------------------
# The fuzz
# ---------------------------------------------------------------------------


def fuzz(count: int, seed: int, runs: int, jobs: int, keep: Path | None,
         only: int | None = None, say: Callable[[str], None] = print) -> int:
    """Run the fuzz; print the counts; 1 if anything failed, else 0."""
    indices = [only] if only is not None else list(range(count))
    cases = [make_case(seed, i) for i in indices]
    counts: collections.Counter[str] = collections.Counter()
    failed: list[tuple[Case, str, Outcome]] = []
    ran = accepted = 0
    with tempfile.TemporaryDirectory(prefix="fuzz_config.") as tmp:
        workdir = Path(tmp)
        for module in MODULES:
            shutil.copy(module, workdir / module.name)

        def record(case: Case, outcome: Outcome) -> Outcome:
            if problem := judge(outcome, case.name):
                counts[problem] += 1
                failed.append((case, problem, outcome))
            return outcome

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            # validate every case, then run the first `runs` that validated
            validated = list(pool.map(lambda c: record(c, validate(c, workdir)), cases))
            accepted = sum(o.returncode == 0 for o in validated)
            good = [c for c, o in zip(cases, validated) if o.returncode == 0][:runs]
            ran = len(good)
            list(pool.map(lambda c: record(c, run(c, workdir)), good))
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for case, _, _ in failed:
                shutil.copy(workdir / case.name, keep / case.name)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024   # the largest
    for case, problem, outcome in sorted(failed, key=lambda f: f[0].index):
        tail = "\n    ".join(outcome.stderr.strip().splitlines()[-6:])
        say(f"FAIL {problem}: {case.label()}\n  hwemu {outcome.command} -> "
            f"{outcome.returncode}, {outcome.maxrss >> 20} MiB RSS\n    {tail}")
    say(f"fuzz_config: seed {seed}, {len(cases)} cases ({accepted} valid, "
        f"{len(cases) - accepted} refused), {ran} run; "
        f"tracebacks {counts['traceback']}, hangs {counts['hang']}, bad exit codes "
        f"{counts['bad exit code']}, broken at run {counts['broken at run']}, over "
        f"{MAX_RSS >> 20} MiB RSS {counts['max RSS']}; max RSS of a child "
        f"{rss / (1 << 20):.0f} MiB")
    return 1 if sum(counts.values()) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="cases (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--runs", type=int, default=40,
                        help="cases that validated to run too (default 40)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="cases at a time (default: the CPUs)")
    parser.add_argument("--case", type=int, help="run only this case")
    parser.add_argument("--keep", type=Path, help="copy failing cases into this directory")
    parser.add_argument("--show", type=int, metavar="I", help="print case I and exit")
    args = parser.parse_args(argv)
    if args.show is not None:
        case = make_case(args.seed, args.show)
        print(f"# {case.label()}")
        sys.stdout.buffer.write(case.data)
        return 0
    return fuzz(args.count, args.seed, args.runs, args.jobs, args.keep, args.case)


if __name__ == "__main__":
    sys.exit(main())
