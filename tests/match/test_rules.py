"""Rule files: loading, every problem located at once (golden files), examples, rule_files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.errors import ConfigError, Problem
from daemon.match.examples import check_examples, check_rules
from daemon.match.rule_spec import ExampleItem, RuleSpec
from daemon.match.rules import load_rules, make_rule, rule_files
from tests.conftest import ROOT

DATA = Path("tests") / "data" / "rules"  # relative to ROOT: problems show this path
NOTIFIERS = {"analysts-slack", "ops-email"}
INVALID = sorted((ROOT / DATA / "invalid").glob("*.yaml"))
UPDATE = os.environ.get("FEEDWATCH_UPDATE_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root, so problem paths are the relative ones in the goldens."""
    monkeypatch.chdir(ROOT)


def _golden(path: Path, actual: str) -> str:
    expected_file = path.with_suffix(".expected.txt")
    if UPDATE:
        expected_file.write_text(actual + "\n", encoding="utf-8")
    return expected_file.read_text(encoding="utf-8").rstrip("\n")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_rule_files(path: Path) -> None:
    """Each invalid file yields exactly the problems in its .expected.txt, all at once."""
    rel = path.relative_to(ROOT)
    with pytest.raises(ConfigError) as info:
        load_rules([rel], notifiers=NOTIFIERS)
    assert info.value.render() == _golden(path, info.value.render())


def test_bad_examples_golden() -> None:
    """check_examples reports each example that does not behave, at the example."""
    path = ROOT / DATA / "examples" / "bad-examples.yaml"
    ruleset = load_rules([path.relative_to(ROOT)])
    rendered = "\n".join(p.render() for p in check_examples(ruleset))
    assert rendered == _golden(path, rendered)


def test_valid_rules_load_across_files() -> None:
    """A folder loads every .yaml/.yml file in order; aliases are shared across files."""
    ruleset = load_rules([DATA / "valid"], notifiers=NOTIFIERS)
    assert [r.id for r in ruleset.rules] == ["dprk-troops", "minimal", "dprk-in-title"]
    assert ruleset.files == (DATA / "valid" / "a.yaml", DATA / "valid" / "b.yml")
    assert set(ruleset.aliases) == {"dprk"}
    troops, minimal, titled = ruleset.rules
    assert (troops.title, troops.severity, troops.notify, troops.feeds, troops.enabled) == (
        "North Korean troops in Russia",
        "high",
        ("analysts-slack",),
        ("aljazeera", "tag:ukraine"),
        True,
    )
    assert (troops.file, troops.line) == (str(DATA / "valid" / "a.yaml"), 5)
    assert (minimal.title, minimal.severity, minimal.notify, minimal.feeds) == (
        "minimal",
        "medium",
        (),
        (),
    )
    assert not titled.enabled
    assert titled.examples.match == (ExampleItem(title="DPRK troops"),)
    assert check_examples(ruleset) == []


def test_notifier_check_can_be_skipped() -> None:
    """notifiers=None accepts any notifier name; an empty set knows none."""
    load_rules([DATA / "valid"])
    with pytest.raises(ConfigError) as info:
        load_rules([DATA / "valid"], notifiers=set())
    assert [p.message for p in info.value.problems] == [
        "unknown notifier 'analysts-slack' (known: none)"
    ]


def test_problems_across_files(tmp_path: Path) -> None:
    """Duplicate ids and aliases are found across files; missing paths are problems too."""
    (tmp_path / "one.yaml").write_text(
        "aliases:\n  x: Kursk\nrules:\n  - id: same\n    query: '@x'\n", encoding="utf-8"
    )
    (tmp_path / "two.yaml").write_text(
        "aliases:\n  x: Sumy\nrules:\n  - id: same\n    query: Sumy\n", encoding="utf-8"
    )
    one, two = str(tmp_path / "one.yaml"), str(tmp_path / "two.yaml")
    with pytest.raises(ConfigError) as info:
        load_rules([tmp_path, tmp_path / "missing.yaml"])
    assert info.value.problems == (
        Problem(str(tmp_path / "missing.yaml"), 0, 0, "rules", "no such file or folder"),
        Problem(two, 2, 3, "aliases.x", f"alias 'x' is already defined at {one}:2"),
        Problem(two, 4, 9, "rules[0].id", f"duplicate rule id 'same' (first defined at {one}:4)"),
    )


def test_empty_file_and_folder(tmp_path: Path) -> None:
    """An empty rule file or folder is no rules, not an error."""
    (tmp_path / "empty.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert load_rules([tmp_path]).rules == ()
    assert load_rules([tmp_path / "empty.yaml"]).files == (tmp_path / "empty.yaml",)


def test_rule_files(tmp_path: Path) -> None:
    """Folders give their *.yaml and *.yml files sorted (not recursive); files are kept."""
    for name in ("b.yml", "a.yaml", "notes.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("", encoding="utf-8")
    extra = tmp_path / "sub" / "c.yaml"
    assert rule_files([tmp_path, extra, tmp_path / "missing"]) == [
        tmp_path / "a.yaml",
        tmp_path / "b.yml",
        extra,
    ]


def test_make_rule_and_feed_restriction() -> None:
    """Rules can be built in memory; feeds admit listed feed names and tag:X."""
    rule = make_rule(RuleSpec(id="r", query="=Kursk", feeds=("aljazeera", "tag:ukraine")))
    assert rule.title == "r" and rule.compiled.keys == frozenset({" kursk "})
    assert rule.wants_feed("aljazeera", ())
    assert rule.wants_feed("bbc", ("ukraine",))
    assert not rule.wants_feed("bbc", ("russia",))
    assert make_rule(RuleSpec(id="any", query="x")).wants_feed("bbc", ())


def test_check_reports_every_problem_examples_included() -> None:
    """check_rules: the problems of the rules that failed and the examples of those that compiled,
    in one run (a file with seven kinds of problems reports seven kinds)."""
    path = ROOT / DATA / "check" / "seven-kinds.yaml"
    ruleset, problems = check_rules([path.relative_to(ROOT)], notifiers=NOTIFIERS)
    assert [r.id for r in ruleset.rules] == ["routed", "routed", "dprk-troops"]
    rendered = "\n".join(p.render() for p in sorted(problems, key=Problem.sort_key))
    assert rendered == _golden(path, rendered)
