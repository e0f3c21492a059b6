"""The matcher (prefilter, feeds, enabled, explanations), excerpts, and ``test-rule``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.match import testrule
from daemon.match.matcher import Matcher
from daemon.match.rule_spec import RuleSpec
from daemon.match.rules import RuleSet, make_rule
from daemon.parse.excerpt import excerpt
from daemon.types import Item, MatchSpan
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer


def item(
    summary: str = "",
    title: str = "",
    feed: str = "f",
    tags: tuple[str, ...] = (),
    link: str | None = None,
) -> Item:
    return Item(feed, "id-1", title, summary, link, None, tags)


def ruleset(*queries: str) -> RuleSet:
    rules = tuple(make_rule(RuleSpec(id=f"r{i}", query=q)) for i, q in enumerate(queries))
    return RuleSet(rules, ())


def ids(matches: list) -> list[str]:  # type: ignore[type-arg]
    return [m.rule.id for m in matches]


def test_match_in_rule_order_with_spans() -> None:
    """Every matching rule, in rule order, with the spans that explain it."""
    m = Matcher(ruleset("Kursk", "Sumy", '"North Korean" NEAR/3 troop*', "NOT Belgorod"))
    found = m.match(item("North Korean troops in Kursk", title="Kursk"))
    assert ids(found) == ["r0", "r2", "r3"]
    assert found[0].spans == (
        MatchSpan("Kursk", "title", 0, 5),
        MatchSpan("Kursk", "summary", 23, 28),
    )
    assert found[2].spans == ()  # a pure NOT explains nothing


def test_disabled_rules_and_feed_restrictions() -> None:
    """Disabled rules never match; feeds admit a feed name or tag:X."""
    rules = (
        make_rule(RuleSpec(id="off", query="Kursk", enabled=False)),
        make_rule(RuleSpec(id="aj", query="Kursk", feeds=("aljazeera",))),
        make_rule(RuleSpec(id="tagged", query="Kursk", feeds=("tag:ukraine",))),
        make_rule(RuleSpec(id="all", query="Kursk")),
    )
    m = Matcher(RuleSet(rules, ()))
    assert ids(m.match(item("Kursk", feed="aljazeera"))) == ["aj", "all"]
    assert ids(m.match(item("Kursk", feed="bbc", tags=("ukraine",)))) == ["tagged", "all"]
    assert ids(m.match(item("Kursk", feed="bbc"))) == ["all"]
    assert m.rule_count == 3
    # evaluate() runs the query alone: enabled and feeds are not consulted
    assert m.evaluate(rules[0], item("Kursk")) is not None
    assert m.evaluate(rules[1], item("Sumy")) is None


def test_evaluate_refuses_foreign_rules() -> None:
    """A rule whose terms the matcher does not know cannot be evaluated by it."""
    m = Matcher(ruleset("Kursk"))
    with pytest.raises(ValueError, match="not part of this matcher"):
        m.evaluate(make_rule(RuleSpec(id="x", query="Sumy")), item("Sumy"))


def test_rules_without_literals() -> None:
    """Regex-only and NOT-only rules are always evaluated; no rules at all is fine."""
    m = Matcher(ruleset("/K.rsk/", "NOT Kursk", "link:/\\.ru/"))
    assert ids(m.match(item("Kirsk"))) == ["r0", "r1"]
    assert ids(m.match(item("Kursk", link="https://x.ru/a"))) == ["r0", "r2"]
    assert Matcher(RuleSet((), ())).match(item("Kursk")) == []


def test_prefilter_picks_rare_required_words() -> None:
    """A rule is only a candidate for items that hold one of its required words."""
    m = Matcher(ruleset("the AND =Zaporizhzhia", "(=Kursk OR =Sumy) AND the", "NOT x", "x NEAR y"))
    from daemon.match.query.doc import Doc

    doc = Doc(item("the Kursk and the x"), m._automaton)
    assert m.candidates(doc) == [1, 2, 3]
    assert m.ruleset.rules[0].compiled.required == frozenset({" zaporizhzhia "})
    assert m.ruleset.rules[1].compiled.required == frozenset({" kursk ", " sumy "})
    assert m.ruleset.rules[2].compiled.required is None


_WORDS = ["ant", "bee", "cat", "dog", "eel", "the"]
_W = st.sampled_from(_WORDS)


@st.composite
def queries(draw: st.DrawFn, depth: int = 0) -> str:
    leaf = st.one_of(
        _W,
        _W.map(lambda w: w[:3] + "*"),
        st.tuples(_W, _W).map(lambda t: f'"{t[0]} {t[1]}"'),
        _W.map(lambda w: "{" + w.upper() + "}"),
        _W.map(lambda w: f"/{w[0]}.{w[2]}/"),
        _W.map(lambda w: f"title:{w}"),
        _W.map(lambda w: f"tag:{w}"),
        st.tuples(_W, _W, st.integers(0, 3)).map(lambda t: f"{t[0]} NEAR/{t[2]} ({t[1]} OR eel)"),
    )
    if depth >= 2 or draw(st.booleans()):
        return str(draw(leaf))
    a, b = draw(queries(depth + 1)), draw(queries(depth + 1))
    op = draw(st.sampled_from(["AND", "OR", "AND NOT", "OR NOT"]))
    return f"({a}) {op} ({b})"


@st.composite
def items(draw: st.DrawFn) -> Item:
    def text(n: int) -> str:
        ws = draw(st.lists(_W, max_size=n))
        return " ".join(w.upper() if draw(st.booleans()) else w for w in ws)

    return item(text(12), title=text(4), tags=tuple(draw(st.lists(_W, max_size=2))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(queries(), min_size=1, max_size=12), st.lists(items(), min_size=1, max_size=5))
def test_prefilter_gives_same_results_as_evaluating_every_rule(
    qs: list[str], its: list[Item]
) -> None:
    """The prefilter only skips rules that could not match."""
    rs = ruleset(*qs)
    fast, slow = Matcher(rs), Matcher(rs, prefilter=False)
    for it in its:
        assert fast.match(it) == slow.match(it)


# -- excerpts ----------------------------------------------------------------------------------

SEED_LIKE = (
    "Russia is trying to push Ukrainian forces from Kursk. Zelenskyy said Ukrainian soldiers "
    "were fighting nearly 50,000 enemy troops.\nThe U.S. President-elect Mr. Trump said nothing! "
    "Was it true? Nobody knows…"
)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Kursk", "Russia is trying to push Ukrainian forces from Kursk."),
        ("enemy", "Zelenskyy said Ukrainian soldiers were fighting nearly 50,000 enemy troops."),
        ("Trump", "The U.S. President-elect Mr. Trump said nothing!"),
        ("true", "Was it true?"),
        ("Nobody", "Nobody knows…"),
    ],
)
def test_excerpt_is_the_sentence(word: str, expected: str) -> None:
    """The excerpt is the sentence around the match (abbreviations do not end sentences)."""
    start = SEED_LIKE.index(word)
    assert excerpt(SEED_LIKE, start, start + len(word)) == expected


def test_excerpt_trims_long_sentences_around_the_match() -> None:
    """A long sentence is cut at word boundaries with … and keeps the match in view."""
    text = " ".join(f"w{i}" for i in range(200)) + " Kursk " + " ".join(f"v{i}" for i in range(200))
    start = text.index("Kursk")
    out = excerpt(text, start, start + 5, limit=80)
    assert out.startswith("…") and out.endswith("…")
    assert "Kursk" in out and len(out) <= 82
    assert all(part in text for part in out.strip("…").split())


def test_excerpt_edges() -> None:
    """Empty text, offsets out of range and whitespace are handled."""
    assert excerpt("", 0, 0) == ""
    assert excerpt("One.  Two\n\nthree.", 100, 200) == "three."  # a line break ends it
    assert excerpt("One.  Two  three.", 100, 200) == "Two three."
    assert excerpt("First sentence. Second.", 0, 0) == "First sentence."


# -- test-rule ---------------------------------------------------------------------------------

RULES = """
rules:
  - id: dprk
    title: North Korean troops
    severity: high
    query: '"North Korean" NEAR/5 soldier*'
  - id: kursk
    query: Kursk
"""
FEED = rss(
    [
        Entry(
            "a", "North Korean soldiers in Kursk", "Russia deployed North Korean soldiers to Kursk."
        ),
        Entry("b", "Weather", "Sunny."),
    ]
)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def test_test_rule_text(rules_file: Path, tmp_path: Path) -> None:
    """Text output: each matching item, its rules, the matched words highlighted."""
    feed = tmp_path / "feed.xml"
    feed.write_bytes(FEED)
    out = io.StringIO()
    assert testrule.test_rule([rules_file], str(feed), as_json=False, out=out) == 0
    text = out.getvalue()
    assert "North Korean soldiers in Kursk\n  https://news.example.org/a\n" in text
    assert "  [high] dprk: North Korean troops\n" in text
    assert "    summary: Russia deployed **North Korean** **soldiers** to Kursk.\n" in text
    assert "    title: North Korean soldiers in **Kursk**\n" in text
    assert "Weather" not in text
    assert text.endswith("1 of 2 items matched (2 matches, 2 rules)\n")


def test_test_rule_json_over_http(rules_file: Path) -> None:
    """--json: one object per (item, rule) match; a URL is fetched (redirects followed)."""
    with FeedServer() as srv:
        srv.set("/feed.xml", FEED)
        srv.redirect("/old", "/feed.xml")
        out = io.StringIO()
        assert testrule.test_rule([rules_file], srv.url("/old"), as_json=True, out=out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["rule_id"], d["item_id"]) for d in lines] == [("dprk", "a"), ("kursk", "a")]
    assert lines[0]["title"] == "North Korean soldiers in Kursk"
    assert lines[0]["link"] == "https://news.example.org/a"
    summary = "Russia deployed North Korean soldiers to Kursk."
    assert lines[0]["matches"] == [
        {"term": '"North Korean"', "field": "title", "start": 0, "end": 12},
        {"term": "soldier*", "field": "title", "start": 13, "end": 21},
        {"term": '"North Korean"', "field": "summary", "start": 16, "end": 28},
        {"term": "soldier*", "field": "summary", "start": 29, "end": 37},
    ]
    assert summary[16:28] == "North Korean"


def test_test_rule_failures(rules_file: Path, tmp_path: Path) -> None:
    """Bad rules, a missing file, an HTTP error or a non-feed: exit 1 with a clear message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    query: 'a AND'\n", encoding="utf-8")
    out = io.StringIO()
    assert testrule.test_rule([bad], "nowhere.xml", as_json=False, out=out) == 1
    assert "expected a term after AND" in out.getvalue()

    out = io.StringIO()
    assert (
        testrule.test_rule([rules_file], str(tmp_path / "missing.xml"), as_json=False, out=out) == 1
    )
    assert out.getvalue().startswith("error: cannot read feed file ")

    html = tmp_path / "page.html"
    html.write_text("<html><body>not a feed</body></html>", encoding="utf-8")
    out = io.StringIO()
    assert testrule.test_rule([rules_file], str(html), as_json=False, out=out) == 1
    assert out.getvalue().startswith(f"error: cannot parse {html}: ")

    with FeedServer() as srv:
        out = io.StringIO()
        assert testrule.test_rule([rules_file], srv.url("/gone"), as_json=True, out=out) == 1
    assert out.getvalue() == f"error: cannot fetch {srv.url('/gone')}: HTTP 404\n"


def test_highlight_merges_overlaps_and_uses_ansi_on_terminals() -> None:
    """Overlapping spans are highlighted once; bold uses ANSI escapes."""
    text = "North Korean troops"
    spans = [
        MatchSpan("a", "summary", 0, 12),
        MatchSpan("b", "summary", 6, 12),
        MatchSpan("c", "summary", 13, 19),
    ]
    assert testrule.highlight(text, spans, bold=False) == "**North Korean** **troops**"
    assert testrule.highlight(text, spans[:1], bold=True) == "\x1b[1mNorth Korean\x1b[0m troops"
