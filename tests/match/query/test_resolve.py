"""Aliases and NEAR operands: expansion, cycles, unknown names, what NEAR accepts."""

from __future__ import annotations

import pytest

from daemon.match.query import AliasTable, BrokenAliasError, QuerySyntaxError, compile_text, parse


def test_alias_errors_are_located_in_the_alias() -> None:
    """Each bad alias gets one error, located in its own text."""
    table = AliasTable(
        {
            "ok": "=Pyongyang",
            "syntax": "a AND",
            "unknown": "a OR @nope",
            "loop1": "@loop2 OR x",
            "loop2": "@loop1",
            "self": "x OR @self",
            "uses_bad": "@syntax OR y",
        }
    )
    errors = {name: (e.pos, e.message) for name, e in table.errors.items()}
    assert errors == {
        "syntax": (5, "expected a term after AND, got end of query"),
        "unknown": (5, "unknown alias '@nope'"),
        "loop2": (0, "alias cycle: @loop1 → @loop2 → @loop1"),
        "self": (5, "alias cycle: @self → @self"),
    }
    with pytest.raises(BrokenAliasError):
        table.expand(parse("@uses_bad"))
    with pytest.raises(BrokenAliasError):
        table.expand(parse("@loop1"))
    assert compile_text("@ok", table).keys == frozenset({" pyongyang "})


def test_unknown_alias_in_query_suggests() -> None:
    """A misspelt alias in a query points at the reference, with a did-you-mean."""
    table = AliasTable({"dprk": "DPRK"})
    with pytest.raises(QuerySyntaxError) as info:
        compile_text("Kursk AND @dprkk", table)
    assert (info.value.pos, info.value.end) == (10, 16)
    assert info.value.message == "unknown alias '@dprkk' (did you mean '@dprk'?)"


@pytest.mark.parametrize(
    ("query", "pos", "start_of_message"),
    [
        ("a NEAR (b AND c)", 8, "inside NEAR, terms can only be combined with OR, not AND"),
        ("a NEAR (b OR NOT c)", 13, "inside NEAR, terms can only be combined with OR, not NOT"),
        ("title:a NEAR b", 0, "a field scope (title:) cannot be used inside NEAR"),
        ("a NEAR /x/", 7, "a /regex/ cannot be an operand of NEAR"),
        ("a NEAR @both", 7, "@both cannot be used with NEAR: inside NEAR, terms can only be"),
        ("@scoped ONEAR/2 a", 0, "@scoped cannot be used with NEAR: a field scope (title:)"),
    ],
)
def test_near_operands_checked(query: str, pos: int, start_of_message: str) -> None:
    """NEAR takes terms and OR-groups of them, directly or through an alias."""
    table = AliasTable({"both": "x AND y", "scoped": "title:x", "fine": '(x OR "y z")'})
    with pytest.raises(QuerySyntaxError) as info:
        compile_text(query, table)
    assert info.value.pos == pos
    assert info.value.message.startswith(start_of_message)


def test_near_accepts_terms_groups_and_aliases() -> None:
    """Words, phrases, wildcards, {} terms, OR-groups, nested NEAR and aliases of them."""
    table = AliasTable({"fine": '(x OR "y z" OR {W} OR vee*)', "nested": "(@fine)"})
    for query in [
        "a NEAR b",
        '"a b" NEAR/2 cat*',
        "{A} ONEAR (b OR (c OR d))",
        "a NEAR @fine",
        "@nested NEAR/3 (a NEAR/1 b)",
        "title:(a NEAR b)",
    ]:
        compile_text(query, table)
