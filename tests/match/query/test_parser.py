"""Query syntax: every construct, precedence, and where errors are reported."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.match.query import QuerySyntaxError, parse, unparse
from daemon.match.query.ast import AliasRef, And, Group, Near, Node, Not, Or, Regex, Scope, Term
from daemon.match.query.lexer import tokenize_query


def w(text: str) -> Term:
    """The term a bare word parses to (positions are not compared)."""
    node = parse(text)
    assert isinstance(node, Term)
    return node


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Kursk", Term("Kursk", ("kursk",))),
        ("Курськ", Term("Курськ", ("курськ",))),
        ('"North Korean"', Term('"North Korean"', ("north", "korean"))),
        ('"North Kor*"', Term('"North Kor*"', ("north", "kor"), prefix=True)),
        ("troop*", Term("troop*", ("troop",), prefix=True)),
        ("{US}", Term("{US}", ("us",), exact=("US",))),
        ("{New York}", Term("{New York}", ("new", "york"), exact=("New", "York"))),
        ("long-range", Term("long-range", ("long", "range"))),
        ("and", Term("and", ("and",))),
        ("/K[uo]rsk/", Regex("/K[uo]rsk/", "K[uo]rsk")),
        (r"/a\/b/", Regex(r"/a\/b/", "a/b")),
        ("@dprk", AliasRef("dprk")),
        ("title:Kursk", Scope("title", Term("Kursk", ("kursk",)))),
        (
            "link:https://example.com/x",
            Scope("link", Term("https://example.com/x", ("https", "example", "com", "x"))),
        ),
        ("tag:ukraine", Scope("tag", Term("ukraine", ("ukraine",)))),
        ("a AND b", And((w("a"), w("b")))),
        ("a b", And((w("a"), w("b")))),
        ("a OR b", Or((w("a"), w("b")))),
        ("NOT a", Not(w("a"))),
        ("a NEAR b", Near(w("a"), w("b"), 10)),
        ("a NEAR/3 b", Near(w("a"), w("b"), 3)),
        ("a ONEAR/3 b", Near(w("a"), w("b"), 3, ordered=True)),
        ("a ONEAR b", Near(w("a"), w("b"), 10, ordered=True)),
        ("(a OR b)", Group(Or((w("a"), w("b"))))),
        ("summary:(a OR b)", Scope("summary", Group(Or((w("a"), w("b")))))),
    ],
)
def test_constructs(query: str, expected: Node) -> None:
    """Each construct of the language parses to its node."""
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # NOT > AND > OR
        ("a OR b AND c", "a OR b AND c"),
        ("a OR b c", "a OR b AND c"),
        ("NOT a AND b", "NOT a AND b"),
        ("NOT a OR b", "NOT a OR b"),
        ("a AND NOT b OR c", "a AND NOT b OR c"),
        # NEAR binds its neighbours
        ("a NEAR/2 b AND c", "a NEAR/2 b AND c"),
        ("a NEAR/2 b NEAR/3 c", "a NEAR/2 b NEAR/3 c"),
    ],
)
def test_precedence_shapes(query: str, expected: str) -> None:
    """Precedence gives the documented tree (checked by its printed form)."""
    assert unparse(parse(query)) == expected


def test_precedence_trees() -> None:
    """NOT binds tighter than AND, AND tighter than OR; NEAR chains to the left."""
    a, b, c = w("a"), w("b"), w("c")
    assert parse("a OR b AND c") == Or((a, And((b, c))))
    assert parse("NOT a b") == And((Not(a), b))
    assert parse("a OR NOT b c") == Or((a, And((Not(b), c))))
    assert parse("NOT NOT a") == Not(Not(a))
    assert parse("a NEAR/1 b NEAR/2 c") == Near(Near(a, b, 1), c, 2)
    assert parse("a NEAR/1 b c") == And((Near(a, b, 1), c))
    assert parse("(a OR b) AND c") == And((Group(Or((a, b))), c))


def test_lower_case_operators_are_words() -> None:
    """Only upper-case AND/OR/NOT/NEAR are operators."""
    assert parse("a and b") == And((w("a"), w("and"), w("b")))
    assert parse("a near b") == And((w("a"), w("near"), w("b")))
    assert parse("NEARBY") == w("NEARBY")


def test_token_positions() -> None:
    """Tokens know where they were written."""
    toks = tokenize_query('title:"North Korea" NEAR/5 {US}')
    assert [(t.kind, t.pos, t.end) for t in toks] == [
        ("FIELD", 0, 6),
        ("PHRASE", 6, 19),
        ("NEAR", 20, 26),
        ("EXACT", 27, 31),
        ("EOF", 31, 31),
    ]


@pytest.mark.parametrize(
    ("query", "pos", "message"),
    [
        ("", 0, "empty query"),
        ("a AND", 5, "expected a term after AND, got end of query"),
        ("AND a", 0, "expected a term, got 'AND'"),
        ("x OR OR y", 5, "expected a term after OR, got 'OR'"),
        ("(a", 2, "expected ')' to close the '(' at column 1, got end of query"),
        ("a OR (b c", 9, "expected ')' to close the '(' at column 6, got end of query"),
        ("a)", 1, "unmatched ')'"),
        ("()", 0, "empty parentheses"),
        ("a }", 2, "unexpected '}'"),
        ("tr*", 2, "a wildcard needs at least 3 letters before '*'"),
        ("a*b", 1, "'*' is only allowed at the end of a word"),
        ("troop-*", 6, "'*' must directly follow a letter or digit"),
        ('"a* b"', 2, "'*' is not allowed inside a phrase except at the end of its last word"),
        ("{US*}", 3, "'*' is not allowed inside {}"),
        ('x "North', 2, "unterminated phrase: missing closing '\"'"),
        ("{US", 0, "unterminated case-sensitive term: missing closing '}'"),
        ('""', 0, "empty phrase"),
        ("{}", 0, "empty case-sensitive term"),
        ("a NEAR/x b", 7, "expected a number of words after 'NEAR/', e.g. NEAR/5"),
        ("a ONEAR/ b", 8, "expected a number of words after 'ONEAR/', e.g. ONEAR/5"),
        ("a NEAR/2000 b", 2, "NEAR distance must be at most 1000"),
        ("a NEAR NOT b", 7, "expected a term after NEAR, got 'NOT'"),
        ("a NEAR/5", 8, "expected a term after NEAR/5, got end of query"),
        ("title: x", 6, "expected a term after 'title:'"),
        ("title:NOT x", 6, "expected a term or '(' after title:, got 'NOT'"),
        ("//", 0, "empty regular expression"),
        ("/(a/", 0, "invalid regular expression: missing ): (a"),
        ("/(?=a)/", 0, "invalid regular expression: invalid perl operator: (?="),
        ("@", 0, "expected an alias name after '@'"),
        ("a - b", 2, "'-' has no letters or digits to match"),
    ],
)
def test_errors(query: str, pos: int, message: str) -> None:
    """Every syntax error says what is wrong and points at where."""
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    assert (info.value.pos, info.value.message) == (pos, message)


def test_unknown_field_suggests() -> None:
    """A misspelt field is an error with a did-you-mean, not a word."""
    with pytest.raises(QuerySyntaxError) as info:
        parse("a titel:Kursk")
    assert info.value.pos == 2
    assert info.value.message.startswith("unknown field 'titel' (did you mean 'title'?)")


def test_caret_points_at_error_line() -> None:
    """The caret helper echoes the error's line and underlines the offending part."""
    err = QuerySyntaxError("x", 8, 11)
    assert err.caret("first\n  a NEAR/x b") == ("  a NEAR/x b", "  ^^^")


_LEAVES = st.sampled_from(
    [
        "Kursk",
        "troop*",
        '"North Korea"',
        "{US}",
        "/k.rsk/",
        "@dprk",
        "title:Kursk",
        "and",
        "Курськ",
        '"Pyongyang\'s forces"',
    ]
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(
            children, st.sampled_from([" AND ", " OR ", " ", " NEAR/3 ", " ONEAR "]), children
        ).map("".join),
        children.map(lambda c: f"NOT {c}"),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"summary:({c})"),
    )


@settings(max_examples=150, deadline=None)
@given(st.recursive(_LEAVES, _combine, max_leaves=8))
def test_unparse_round_trip(query: str) -> None:
    """Printing a tree and parsing it again gives the same tree."""
    try:
        tree = parse(query)
    except QuerySyntaxError:
        return  # e.g. "NOT" as the right operand of NEAR
    assert parse(unparse(tree)) == tree


def test_colons_that_are_not_fields() -> None:
    """A URL, or a word followed by a colon and a space, is a word, not a field scope."""
    assert parse("warning: Kursk") == And((w("warning:"), w("Kursk")))
    assert parse("https://example.com").words == ("https", "example", "com")  # type: ignore[union-attr]
    assert parse('"10:30"') == Term('"10:30"', ("10", "30"))
