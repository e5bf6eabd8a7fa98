"""``hwemu run --ktap``, read by a KTAP version 1 parser written to the kernel's spec
(Documentation/dev-tools/ktap.rst): the version line, the plan right after it, ``ok`` /
``not ok`` lines numbered as the plan says, diagnostics as ``# `` lines, nested subtests
indented by four spaces with their own version line and plan. A stream whose plan
promises more results than it has (a run cut short) is an error, as are lines the spec
does not know."""
import dataclasses
import re

import pytest
from conftest import CONFIGS
from test_runs import hwemu_cli

RESULT = re.compile(r"(ok|not ok) ([0-9]+)(?: (?:- )?([^#]*?))?(?: # (.*))?")
NEST = "    "


class KtapError(Exception):
    pass


@dataclasses.dataclass
class Result:
    ok: bool
    number: int
    name: str
    directive: str | None
    diagnostics: list[str] = dataclasses.field(default_factory=list)
    subtests: list["Result"] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Ktap:
    header: list[str]     # the diagnostics between the plan and the first result
    results: list[Result]


def parse_ktap(text: str) -> Ktap:
    """The test tree of a KTAP v1 stream; KtapError for anything the spec forbids."""
    lines = text.splitlines()
    ktap, i = _block(lines, 0, "")
    if i != len(lines):
        raise KtapError(f"line {i + 1}: not KTAP: {lines[i]!r}")
    return ktap


def _block(lines: list[str], i: int, indent: str) -> tuple[Ktap, int]:
    if i >= len(lines) or lines[i] != indent + "KTAP version 1":
        raise KtapError(f"line {i + 1}: expected {indent + 'KTAP version 1'!r}")
    i += 1
    plan = re.fullmatch(re.escape(indent) + r"1\.\.([0-9]+)", lines[i]) \
        if i < len(lines) else None
    if plan is None:
        raise KtapError(f"line {i + 1}: the plan (1..N) must come right after the "
                        "version line")
    planned = int(plan[1])
    i += 1
    ktap = Ktap([], [])
    subtests: list[Result] = []
    while i < len(lines):
        line = lines[i]
        if line == indent + NEST + "KTAP version 1":
            sub, i = _block(lines, i, indent + NEST)
            subtests = sub.results   # the next result at this level is their parent's
            continue
        if not line.startswith(indent):
            break   # the end of a nested block
        body = line[len(indent):]
        if body.startswith("# "):
            (ktap.results[-1].diagnostics if ktap.results else ktap.header).append(body[2:])
        elif (m := RESULT.fullmatch(body)) is not None:
            number = int(m[2])
            if number != len(ktap.results) + 1:
                raise KtapError(f"line {i + 1}: test {number} where the plan has "
                                f"{len(ktap.results) + 1} next")
            if number > planned:
                raise KtapError(f"line {i + 1}: test {number} beyond the plan 1..{planned}")
            ktap.results.append(Result(m[1] == "ok", number, m[3] or "", m[4],
                                       subtests=subtests))
            subtests = []
        else:
            raise KtapError(f"line {i + 1}: not KTAP: {line!r}")
        i += 1
    if subtests:
        raise KtapError(f"line {i + 1}: subtests without their parent's result line")
    if len(ktap.results) != planned:
        raise KtapError(f"truncated: the plan is 1..{planned}, and {len(ktap.results)} "
                        "results came")
    return ktap, i


# ---------------------------------------------------------------- the parser itself

GOOD = """\
KTAP version 1
1..2
# a header diagnostic
    KTAP version 1
    1..2
    ok 1 inner_one
    not ok 2 inner_two
    # why inner_two failed
not ok 1 outer
# outer's diagnostic
ok 2 skipped # SKIP not here
"""


def test_the_parser_reads_nested_subtests_and_diagnostics():
    ktap = parse_ktap(GOOD)
    assert ktap.header == ["a header diagnostic"]
    outer, skipped = ktap.results
    assert (outer.ok, outer.number, outer.name, outer.diagnostics) == (
        False, 1, "outer", ["outer's diagnostic"])
    assert [(r.ok, r.name, r.diagnostics) for r in outer.subtests] == [
        (True, "inner_one", []), (False, "inner_two", ["why inner_two failed"])]
    assert (skipped.ok, skipped.directive, skipped.subtests) == (True, "SKIP not here", [])


@pytest.mark.parametrize("text, error", [
    ("KTAP version 1\n1..3\nok 1 a\nok 2 b\n", "truncated: the plan is 1..3, and 2"),
    ("KTAP version 1\n# hwemu run: x\n1..1\nok 1 a\n", "must come right after"),
    ("KTAP version 1\n1..2\nok 1 a\nok 3 b\n", "test 3 where the plan has 2 next"),
    ("KTAP version 1\n1..1\nok 1 a\nsome text\n", "not KTAP: 'some text'"),
    ("1..1\nok 1 a\n", "expected 'KTAP version 1'"),
    ("KTAP version 1\n1..1\n    KTAP version 1\n    1..2\n    ok 1 a\nok 1 b\n",
     "truncated: the plan is 1..2, and 1"),
], ids=["truncated", "plan-not-second", "numbering", "unknown-line", "no-version",
        "truncated-subtest"])
def test_the_parser_rejects_what_the_spec_forbids(text, error):
    with pytest.raises(KtapError, match=re.escape(error)):
        parse_ktap(text)


# ---------------------------------------------------------------- hwemu's KTAP

def test_ktap_on_stdout_is_ktap_alone_with_the_kasan_report_as_diagnostics(tmp_path):
    r = hwemu_cli("run", CONFIGS / "kasan-uaf.yaml", "--ktap", "-", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    ktap = parse_ktap(r.stdout)   # stdout holds nothing else
    assert [(t.ok, t.number, t.name) for t in ktap.results] == [
        (False, 1, "kasan_reports"), (True, 2, "run")]
    failed = ktap.results[0]
    assert failed.diagnostics[0] == "kasan_reports == 0, got 1"
    report = failed.diagnostics[1:]
    assert report[1].startswith("BUG: KASAN: slab-use-after-free in use_after_free+")
    assert any(line.startswith(" use_after_free+") and "buggy_driver.py:" in line
               for line in report)
    assert "Freed by task 2:" in report and report[-1] == "=" * 66
    # The human summary went to stderr, with the report and the replay line.
    assert "hwemu run: kasan-uaf, seed 1: ran " in r.stderr
    assert "Replay: hwemu run " in r.stderr and "KTAP version 1" not in r.stderr
    # Cut short, the same stream is caught.
    cut = r.stdout[:r.stdout.index("ok 2 run")]
    with pytest.raises(KtapError, match="truncated: the plan is 1..2, and 1 results"):
        parse_ktap(cut)


def test_ktap_to_a_file_leaves_the_summary_on_stdout(tmp_path):
    out = tmp_path / "run.ktap"
    r = hwemu_cli("run", CONFIGS / "fault-injection.yaml", "--set", "run.bio.requests=50",
                  "--ktap", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("hwemu run: fault-injection, seed ") and "KTAP" not in r.stdout
    ktap = parse_ktap(out.read_text())
    assert ktap.header == ["hwemu run: fault-injection seed 11"]
    assert all(t.ok for t in ktap.results) and ktap.results[-1].name == "run"
    assert ktap.results[-1].diagnostics == ["completed"]


def test_a_config_path_after_ktap_is_not_taken_for_its_output(tmp_path):
    r = hwemu_cli("run", "--ktap", CONFIGS / "kasan-uaf.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "a YAML file, not an output" in r.stderr
    assert (CONFIGS / "kasan-uaf.yaml").read_text().startswith("# A deliberately buggy")
