"""Query semantics: what matches what, and where the explanation points."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.match.query import parse
from daemon.match.query.ast import Term
from daemon.match.query.tokenize import words
from daemon.types import MatchSpan
from tests.match.query.support import explain, matches

CASES = [
    # words: whole-word, case- and accent-insensitive, any script
    ("Kursk", "Fighting in the KURSK region", True),
    ("Kursk", "Kursk's governor", True),
    ("Kursk", "Kurskaya oblast", False),
    ("Kursk", "Kúrsk", True),
    ("kúrsk", "Kursk", True),
    ("=Курськ", "бої під Курськом", False),  # exact form only
    ("Курськ", "бої під Курськом", True),  # word forms
    ("Курськ", "місто Курськ", True),
    ("Курск", "город КУРСК", True),
    ("北朝鲜", "据报道北朝鲜军队", True),
    # phrases: consecutive words, any punctuation between
    ('"North Korean"', "North Korean troops", True),
    ('"North Korean"', "north-korean troops", True),
    ('"North Korean"', "North. Korean", True),
    ('"North Korean"', "North big Korean", False),
    ('"North Korean"', "Korean North", False),
    ('"U.S."', "the U.S. army", True),
    ("long-range", "long range weapons", True),
    # prefixes
    ("troop*", "TROOPS", True),
    ("troop*", "troop", True),
    ("troop*", "stroop", False),
    ('"North Kor*"', "North Koreans", True),
    ('"North Kor*"', "North Carolina", False),
    ("Курськ*", "бої під Курськом", True),
    # case-sensitive
    ("{US}", "the US sent arms", True),
    ("{US}", "they told us", False),
    ("{US}", "the Us army", False),
    ("{U.S.}", "the U.S. army", True),
    ("{U.S.}", "the u.s. army", False),
    ("{New York}", "New York Times", True),
    ("{New York}", "new York Times", False),
    # boolean
    ("a AND b", "b a", True),
    ("a AND b", "a", False),
    ("a b", "a b", True),
    ("a OR b", "b", True),
    ("a OR b", "c", False),
    ("NOT a", "b", True),
    ("NOT a", "a", False),
    ("a AND NOT b", "a c", True),
    ("a AND NOT b", "a b", False),
    ("a OR b c", "c", False),  # a OR (b AND c)
    ("a OR b c", "a", True),
    ("(a OR b) c", "a", False),
    ("(a OR b) c", "b c", True),
    ("NOT a b", "b", True),
    ("NOT a b", "a b", False),
    ("a and b", "a b", False),  # "and" is a word
    ("a and b", "a and b", True),
    # proximity: at most n words between, either order; ONEAR: in order
    ("a NEAR/0 b", "a b", True),
    ("a NEAR/0 b", "b a", True),
    ("a NEAR/0 b", "a x b", False),
    ("a NEAR/1 b", "a x b", True),
    ("a NEAR/1 b", "b x a", True),
    ("a NEAR/1 b", "a x y b", False),
    ("a ONEAR/1 b", "a x b", True),
    ("a ONEAR/1 b", "b x a", False),
    ("a NEAR b", "a 1 2 3 4 5 6 7 8 9 10 b", True),
    ("a NEAR b", "a 1 2 3 4 5 6 7 8 9 10 11 b", False),
    ("a NEAR/1 a", "a", False),  # two occurrences needed
    ("a NEAR/1 a", "a x a", True),
    ('"North Korea" NEAR/2 troop*', "troops from North Korea", True),
    ('"North Korea" ONEAR/2 troop*', "troops from North Korea", False),
    ("Pyongyang NEAR/3 (troop* OR forces)", "Pyongyang's forces", True),
    ("(a OR b) NEAR/1 (c OR d)", "b x d", True),
    ("(a OR b) NEAR/1 (c OR d)", "b x y d", False),
    ("a NEAR/1 b NEAR/1 c", "a b x c", True),
    ("a NEAR/1 b NEAR/1 c", "a b x y c", False),
    ("a ONEAR/1 b ONEAR/1 c", "a b c", True),
    ("a ONEAR/1 b ONEAR/1 c", "b a c", False),
    # regex, RE2 syntax, over the field text as written
    ("/K[uo]u?rsk/", "Koursk", True),
    ("/(?i)kursk/", "KURSK", True),
    ("/kursk/", "KURSK", False),
    (r"/\d{4}-\d{2}/", "on 2024-08", True),
]


@pytest.mark.parametrize(("query", "text", "expected"), CASES)
def test_semantics(query: str, text: str, expected: bool) -> None:
    """Query × text → match or not."""
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "title", "summary", "expected"),
    [
        ("Kursk", "Kursk", "", True),
        ("Kursk", "", "Kursk", True),
        ("title:Kursk", "", "Kursk", False),
        ("title:Kursk", "Kursk", "", True),
        ("summary:Kursk", "Kursk", "", False),
        ("title:(a OR b)", "b", "a", True),
        ("title:(a AND b)", "a", "b", False),
        ("a AND b", "a", "b", True),  # terms are independent
        ('"a b"', "x a", "b x", False),  # a phrase never spans title and summary
        ("a NEAR/5 b", "x a", "b x", False),  # nor does NEAR
        ("title:(a NEAR/1 b)", "a b", "", True),
        ("title:(Kursk AND NOT summary:Belgorod)", "Kursk", "Belgorod", False),
        ("title:/K.rsk/", "Kursk", "", True),
        ("title:/K.rsk/", "", "Kursk", False),
    ],
)
def test_fields(query: str, title: str, summary: str, expected: bool) -> None:
    """Unscoped terms look in title and summary; a scope restricts them."""
    assert matches(query, summary, title=title) is expected


def test_other_fields() -> None:
    """link, feed and tag are fields too."""
    kw: dict[str, Any] = {
        "link": "https://example.com/news/north_korea-troops",
        "feed": "aljazeera",
        "tags": ("ukraine", "war"),
    }
    assert matches("link:korea", "", **kw)
    assert matches('link:"north korea troops"', "", **kw)
    assert matches("link:/example\\.com/", "", **kw)
    assert not matches("korea", "", **kw)  # not in title/summary
    assert matches("feed:aljazeera", "", **kw)
    assert matches("tag:ukraine AND tag:war", "", **kw)
    assert not matches("tag:russia", "", **kw)
    assert not matches("link:korea", "", link=None)


def test_aliases_expand() -> None:
    """An alias stands for its query, and may use other aliases."""
    aliases = {"dprk": '("North Korea" OR DPRK OR @capital)', "capital": "Pyongyang"}
    assert matches("@dprk NEAR/3 soldier*", "Pyongyang sent soldiers", aliases=aliases)
    assert not matches("@dprk NEAR/3 soldier*", "Seoul sent soldiers", aliases=aliases)
    assert matches("@capital", "PYONGYANG", aliases=aliases)


def test_explanation_spans() -> None:
    """The explanation lists each matched term as written, its field and offsets."""
    spans = explain(
        '"North Korean" NEAR/5 troop* AND NOT Seoul OR {US}',
        "Some North Korean troops; 1 2 3 4 5 6 troops.",
        title="DPRK",
    )
    assert spans == (
        MatchSpan('"North Korean"', "summary", 5, 17),
        MatchSpan("troop*", "summary", 18, 24),
    )


def test_explanation_of_or_lists_only_what_matched() -> None:
    """Only the OR branches that matched are explained; NOT contributes nothing."""
    spans = explain("(Kursk OR Belgorod) AND NOT Sumy", "Kursk and Kursk", title="Kursk")
    assert spans == (
        MatchSpan("Kursk", "title", 0, 5),
        MatchSpan("Kursk", "summary", 0, 5),
        MatchSpan("Kursk", "summary", 10, 15),
    )


def test_explanation_of_regex_and_exact() -> None:
    """Regex spans are the regex's own match; {} terms point at the case-sensitive word."""
    assert explain("/\\d+ soldiers/", "some 50000 soldiers") == (
        MatchSpan("/\\d+ soldiers/", "summary", 5, 19),
    )
    assert explain("{US}", "us and the US") == (MatchSpan("{US}", "summary", 11, 13),)


# -- properties --------------------------------------------------------------------------------

_WORD = st.sampled_from(["ant", "bee", "cat", "dog"])
_SEP = st.sampled_from([" ", ", ", " - ", "'", ". ", "\n"])


@st.composite
def texts(draw: st.DrawFn) -> tuple[list[str], str]:
    ws = draw(st.lists(_WORD, max_size=12))
    seps = draw(st.lists(_SEP, min_size=len(ws), max_size=len(ws)))
    cased = [x.upper() if draw(st.booleans()) else x for x in ws]
    return ws, "".join(w + s for w, s in zip(cased, seps, strict=True))


def _positions(ws: list[str], w: str) -> list[int]:
    return [i for i, x in enumerate(ws) if x == w]


@settings(max_examples=150, deadline=None)
@given(texts(), st.lists(_WORD, min_size=1, max_size=3))
def test_phrase_iff_consecutive(text: tuple[list[str], str], phrase: list[str]) -> None:
    """A phrase matches iff its words occur consecutively."""
    ws, s = text
    n = len(phrase)
    expected = any(ws[i : i + n] == phrase for i in range(len(ws) - n + 1))
    assert matches('"' + " ".join(phrase) + '"', s) is expected


@settings(max_examples=150, deadline=None)
@given(texts(), _WORD, _WORD, st.integers(0, 6), st.integers(0, 4))
def test_near_symmetric_monotone_and_exact(
    text: tuple[list[str], str], x: str, y: str, n: int, more: int
) -> None:
    """NEAR/n is symmetric, monotone in n, and means "at most n words between"."""
    ws, s = text
    near = matches(f"{x} NEAR/{n} {y}", s)
    assert near is matches(f"{y} NEAR/{n} {x}", s)
    if near:
        assert matches(f"{x} NEAR/{n + more} {y}", s)
    expected = any(
        i != j and abs(i - j) - 1 <= n for i in _positions(ws, x) for j in _positions(ws, y)
    )
    assert near is expected
    ordered = any(0 <= j - i - 1 <= n for i in _positions(ws, x) for j in _positions(ws, y))
    assert matches(f"{x} ONEAR/{n} {y}", s) is ordered


_QUERIES = st.sampled_from(
    [
        "ant",
        "bee*",
        '"ant bee"',
        "{ANT}",
        "ant NEAR/2 bee",
        "(ant OR cat) ONEAR/1 bee",
        "/[ab]+/",
        "title:ant",
        "NOT cat",
        "ant OR bee AND cat",
    ]
)


@settings(max_examples=150, deadline=None)
@given(texts(), _QUERIES)
def test_a_and_not_a_never_matches(text: tuple[list[str], str], q: str) -> None:
    """`A AND NOT A` never matches, whatever A is."""
    _, s = text
    assert not matches(f"({q}) AND NOT ({q})", s, title=s)


@settings(max_examples=150, deadline=None)
@given(
    texts(),
    st.sampled_from(
        [
            "ant",
            "bee*",
            '"ant bee"',
            '"bee ant*"',
            "{ANT}",
            "ant NEAR/2 bee",
            "(ant OR cat) ONEAR/1 (bee OR dog)",
        ]
    ),
)
def test_offsets_point_at_matched_text(text: tuple[list[str], str], q: str) -> None:
    """Every span's text, normalised, is the term (a prefix term: starts with it)."""
    _, s = text
    if not matches(q, s, title=s):
        return
    for span in explain(q, s, title=s):
        term = parse(span.term)
        assert isinstance(term, Term)
        got = tuple(w for w, _, _ in words(s[span.start : span.end]))
        if term.prefix:
            assert got[:-1] == term.words[:-1] and got[-1].startswith(term.words[-1])
        else:
            assert got == term.words
        if term.exact is not None:
            assert s[span.start : span.end] == "ANT"


def test_explanation_puts_strongest_evidence_first() -> None:
    """NEAR and phrase matches first, then the rule's indexed words, then the rest."""
    spans = explain(
        '(Ukraine OR Kyiv) AND (Zaporizhzhia OR "arms deliveries" OR tank*)',
        "Kyiv got tanks. Zaporizhzhia waits. Ukraine wants arms deliveries.",
    )
    # indexed under {Ukraine, Kyiv}: rarer than "one of Zaporizhzhia, arms deliveries, tank*"
    assert [s.term for s in spans] == [
        '"arms deliveries"',
        "Kyiv",
        "Ukraine",
        "tank*",
        "Zaporizhzhia",
    ]
    assert [s.start for s in spans] == [50, 0, 36, 9, 16]


def test_explanations_are_capped() -> None:
    """An explanation lists at most MAX_SPANS spans (the first ones)."""
    from daemon.match.query.evaluate import MAX_SPANS

    spans = explain("Kursk", " ".join(["Kursk"] * (MAX_SPANS + 50)))
    assert len(spans) == MAX_SPANS
    assert spans[0].start == 0 and spans[-1].start == (MAX_SPANS - 1) * 6


def test_near_of_common_words_in_a_long_text_is_bounded() -> None:
    """Two very common words, a wide window, a long text: answers, with a bounded explanation."""
    text = " ".join(["the cat sat on the mat"] * 3000)
    assert matches("the NEAR/1000 the", text)
    assert matches("(the NEAR/50 cat) NEAR/50 mat", text)
    assert not matches("the NEAR/3 zebra", text)
    assert len(explain("the NEAR/1000 the", text)) <= 100
