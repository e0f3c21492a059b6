"""YAML reading: libyaml (fast) and ruamel (line-keeping) give the same data and the same problems.

``yamlfile.parse_yaml`` reads with libyaml when it can and leaves to ruamel whatever the two
might read differently; problems are always located by a ruamel re-read. Here every YAML file
of the project is read both ways (``_ruamel_only`` switches libyaml off) and compared: the data,
the rules (with their lines), the config, and the rendered problems of every invalid file.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import registry
from daemon.config import yamlfile
from daemon.config.load import load_config
from daemon.errors import ConfigError, Problem
from daemon.match.examples import check_rules
from daemon.match.rules import compile_rules, load_rules
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(yamlfile._CParser is None, reason="PyYAML with libyaml missing")

RULE_DIRS = [
    Path("rules"),
    *(Path("tests/data/rules") / d for d in ("valid", "invalid", "examples", "check")),
]
CONFIG_DATA = Path("tests/data/config")
YAML_FILES = sorted(
    p.relative_to(ROOT)
    for pattern in ("rules/*.yaml", "tests/data/**/*.yaml", "tests/data/**/*.yml", "*.yaml")
    for p in ROOT.glob(pattern)
)
VALID_CONFIGS = [Path("feedwatch.yaml"), *sorted((CONFIG_DATA / "valid").glob("*.yaml"))]
INVALID_CONFIGS = sorted(p.name for p in (ROOT / CONFIG_DATA / "invalid").glob("*.yaml"))
GOLDEN_ENV = {"FW_TEST_FORMAT": "yaml-please"}  # as tests/config/test_config.py


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@contextmanager
def _ruamel_only() -> Iterator[None]:
    """Read YAML as before libyaml was used: ruamel's round-trip loader for everything."""
    saved = yamlfile._CParser
    yamlfile._CParser = None
    try:
        yield
    finally:
        yamlfile._CParser = saved


def _typed(node: Any) -> Any:
    """``node`` with every value tagged by its plain type (ruamel's int/float/str subclasses as
    their base), so two trees compare equal only if values *and* types agree."""
    if isinstance(node, dict):
        return {("str", str(k)) if isinstance(k, str) else k: _typed(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_typed(v) for v in node]
    for base in (bool, int, float, str):
        if isinstance(node, base):
            return (base.__name__, base(node))
    return (type(node).__name__, repr(node))  # a TaggedScalar has no __eq__


def _both_ways(text: str) -> tuple[Any, Any]:
    """(fast, slow) readings of ``text``: plain data each, or the rendered ConfigError (or
    whatever else ruamel raised: a plain ``k: -_`` crashes its int constructor)."""
    out = []
    for fast in (True, False):
        try:
            if fast:
                doc = yamlfile.parse_yaml(text, "t.yaml")
                out.append(_typed(doc.data if doc.fast else yamlfile.to_plain(doc.data)))
            else:
                out.append(_typed(yamlfile.to_plain(yamlfile.load_yaml_text(text, "t.yaml"))))
        except ConfigError as e:
            out.append(e.render())
        except Exception as e:  # ruamel crashes on '-_' or '._': so must we
            out.append(f"{type(e).__name__}: {e}")
    return out[0], out[1]


def _locs(node: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield loc
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _locs(v, (*loc, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _locs(v, (*loc, i))


# -- every YAML file of the project --------------------------------------------------------------


def test_the_corpus_is_there() -> None:
    assert len(YAML_FILES) >= 30 and Path("rules/kursk.yaml") in YAML_FILES


@pytest.mark.parametrize("path", YAML_FILES, ids=[str(p) for p in YAML_FILES])
def test_fast_and_line_keeping_readings_agree(path: Path) -> None:
    """Same data (types included) or the same error text, and libyaml's lines are ruamel's."""
    text = path.read_text(encoding="utf-8")
    fast, slow = _both_ways(text)
    assert fast == slow
    try:
        marked = yamlfile.load_yaml_text(text, str(path))
    except ConfigError:
        return
    doc = yamlfile.parse_yaml(text, str(path))
    for loc in _locs(yamlfile.to_plain(marked)):
        assert doc.line(loc) == yamlfile.position(marked, loc)[0], loc
        assert yamlfile.position(doc, loc) == yamlfile.position(marked, loc), loc


def test_libyaml_reads_the_files_that_matter() -> None:
    """The fast path is taken for the shipped rules, the sample config and the valid test files
    (a file ruamel must read after all would silently lose the speed)."""
    for path in [*Path("rules").glob("*.yaml"), *VALID_CONFIGS, Path("tests/data/rules/valid")]:
        for file in [path] if path.is_file() else sorted(path.glob("*.y*ml")):
            doc = yamlfile.read_yaml(file)
            assert doc.fast, file


def test_rules_load_the_same_both_ways() -> None:
    """Every rule folder: the same rules (spec, file, line, index), aliases and problems."""

    def load(path: Path) -> tuple[Any, ...]:
        ruleset, problems = compile_rules([path], notifiers={"analysts-slack", "ops-email"})
        rules = [(r.id, r.file, r.line, r.index, r.spec, r.query) for r in ruleset.rules]
        return rules, dict(ruleset.aliases), [p.render() for p in problems]

    for path in RULE_DIRS:
        fast = load(path)
        with _ruamel_only():
            slow = load(path)
        assert fast == slow, path
    assert load(Path("tests/data/rules/valid"))[0], "the valid folder has rules"


def test_check_reports_the_same_both_ways() -> None:
    """``feedwatch check`` (examples included) renders the same problems either way."""
    for path in RULE_DIRS:
        _, fast = check_rules([path])
        with _ruamel_only():
            _, slow = check_rules([path])
        key = Problem.sort_key
        assert [p.render() for p in sorted(fast, key=key)] == [
            p.render() for p in sorted(slow, key=key)
        ]


@pytest.mark.parametrize("path", VALID_CONFIGS, ids=[str(p) for p in VALID_CONFIGS])
def test_valid_config_loads_the_same_both_ways(path: Path) -> None:
    fast = load_config(path, env={})
    with _ruamel_only():
        slow = load_config(path, env={})
    assert fast == slow


@pytest.mark.parametrize("name", INVALID_CONFIGS)
def test_invalid_config_renders_the_same_both_ways(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The golden text (tests/config/test_config.py checks it on the fast path) is what ruamel
    alone gives too."""
    monkeypatch.chdir(ROOT / CONFIG_DATA)
    rendered = []
    for fast in (True, False):
        with pytest.raises(ConfigError) as info:
            if fast:
                load_config(f"invalid/{name}", env=GOLDEN_ENV)
            else:
                with _ruamel_only():
                    load_config(f"invalid/{name}", env=GOLDEN_ENV)
        rendered.append(info.value.render())
    assert rendered[0] == rendered[1]
    expected = (ROOT / CONFIG_DATA / "invalid" / f"{name[:-5]}.expected.txt").read_text("utf-8")
    assert rendered[0] + "\n" == expected.replace("{AVAILABLE}", ", ".join(registry.available()))


# -- YAML 1.1 (libyaml's usual reading) against 1.2 (ruamel's, the project's) -------------------

SCALARS = [
    # YAML 1.1 booleans are strings in 1.2
    *("yes", "no", "on", "off", "y", "n", "Yes", "NO", "On"),
    # sexagesimal, octal, hex, binary, grouped numbers, specials
    *("1:30", "190:20:30", "017", "0o17", "0x1F", "0b101", "1_000", "1_0.5", "+0", "-0", "007"),
    *(".inf", "-.inf", ".nan", ".5", "-.5", "1.", "1e3", "1.5e-3", "+12", "-3", "0", "10"),
    # timestamps, null, merge, value, booleans of 1.2, plain strings that look like numbers
    *("2024-01-01", "2024-01-01T10:00:00Z", "2024-1-1 10:00:00", "~", "null", "Null", ""),
    *("=", "true", "FALSE", "6h", "1.5.3", "0x", "12abc", "-", "+", ".", "1e", "e3"),
    *("'yes'", '"017"', "!!str 1:30", "!!int '12'", "!!bool yes", "!!float 1", "!!null ''"),
    *("!custom x", "!!timestamp 2024-01-01", "!!binary aGVsbG8=", "&a 5", "[on, off, 1:30]"),
]


@pytest.mark.parametrize("scalar", SCALARS)
def test_scalars_read_as_ruamel_reads_them(scalar: str) -> None:
    fast, slow = _both_ways(f"k: {scalar}\n{scalar if scalar[:1] not in '!&' else 'x'}: v\n")
    assert fast == slow


def test_yaml_11_words_stay_strings_and_duplicates_stay_errors(tmp_path: Path) -> None:
    """``on``/``yes``/``no`` as a rule id, title or notifier are strings (as with ruamel, YAML
    1.2), not the booleans a YAML 1.1 reader (PyYAML's own resolver) makes of them; a
    duplicate key, which libyaml would accept silently, is ruamel's located error."""
    yaml = pytest.importorskip("yaml")
    text = "rules:\n  - id: on\n    title: yes\n    query: Kursk\n    notify: [no]\n"
    assert yaml.safe_load(text)["rules"][0]["id"] is True  # the 1.1 reading we must not take
    (tmp_path / "r.yaml").write_text(text, encoding="utf-8")
    assert yamlfile.read_yaml(tmp_path / "r.yaml").fast
    (rule,) = load_rules([tmp_path / "r.yaml"], notifiers={"no"}).rules
    assert (rule.id, rule.title, rule.notify, rule.line) == ("on", "yes", ("no",), 2)

    dup = tmp_path / "dup.yaml"
    dup.write_text("rules:\n  - id: a\n    query: x\n    query: y\n", encoding="utf-8")
    assert yaml.safe_load(dup.read_text())["rules"][0]["query"] == "y"  # libyaml: last one wins
    with pytest.raises(ConfigError) as info:
        load_rules([dup])
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (4, 5) and "duplicate key" in problem.message


def test_sexagesimal_interval_is_not_90_seconds(tmp_path: Path) -> None:
    """``interval: 1:30`` is the string '1:30' (YAML 1.2), reported as a bad duration at its
    position, not 90 s as YAML 1.1 would read it."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "feeds:\n  - name: a\n    url: https://example.org/a.xml\n    interval: 1:30\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert (problem.line, problem.column, problem.where) == (4, 15, "feeds[0].interval")
    assert "'1:30'" in problem.message


def test_yaml_directive_and_merge_keys_go_to_ruamel() -> None:
    text = "%YAML 1.1\n---\nbase: &b {a: yes}\nk:\n  <<: *b\n  c: 1\n"
    assert not yamlfile.parse_yaml(text, "t").fast
    assert yamlfile.to_plain(yamlfile.parse_yaml(text, "t").data) == yamlfile.to_plain(
        yamlfile.load_yaml_text(text, "t")
    )
    assert not yamlfile.parse_yaml("\ufeff%YAML 1.1\n---\na: yes\n", "t").fast
    assert not yamlfile.parse_yaml("a: &x {b: 1}\nc:\n  <<: *x\n", "t").fast
    assert yamlfile.parse_yaml("a: &x {b: 1}\nc: *x\n", "t").data == {"a": {"b": 1}, "c": {"b": 1}}


_PLAIN = st.text(alphabet=string.digits + ".-+_:eExobTtrueFalsNnYyO~ ", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PLAIN, min_size=1, max_size=4))
def test_plain_scalars_read_alike(words: list[str]) -> None:
    """Number- and boolean-like plain scalars, as values, keys and list items: same data or the
    same syntax error either way."""
    text = "".join(f"k{i}: {w}\n{w}: {i}\nl{i}: [{w}, {w}]\n" for i, w in enumerate(words))
    fast, slow = _both_ways(text)
    assert fast == slow
