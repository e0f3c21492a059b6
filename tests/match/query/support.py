"""Helpers for the query tests: compile a query and run it on a text, no rule files."""

from __future__ import annotations

from collections.abc import Mapping

from daemon.match.matcher import build_automaton
from daemon.match.query import AliasTable, Query, compile_text
from daemon.match.query.doc import Doc
from daemon.types import Item, MatchSpan


def item(summary: str = "", title: str = "", **kw: object) -> Item:
    """An item with the given texts (feed 'f', no link unless given)."""
    fields: dict[str, object] = {
        "feed": "f",
        "id": "1",
        "title": title,
        "summary": summary,
        "link": None,
        "published": None,
    }
    fields.update(kw)
    return Item(**fields)  # type: ignore[arg-type]


def compiled(query: str, aliases: Mapping[str, str] | None = None) -> Query:
    return compile_text(query, AliasTable(aliases or {}))


def doc_for(q: Query, it: Item) -> Doc:
    return Doc(it, build_automaton(q.keys))


def matches(
    query: str,
    text: str = "",
    *,
    title: str = "",
    aliases: Mapping[str, str] | None = None,
    **kw: object,
) -> bool:
    """Does ``query`` match an item with summary ``text`` (and ``title``)?"""
    q = compiled(query, aliases)
    return q.matches(doc_for(q, item(text, title, **kw)))


def explain(query: str, text: str = "", *, title: str = "", **kw: object) -> tuple[MatchSpan, ...]:
    q = compiled(query)
    d = doc_for(q, item(text, title, **kw))
    assert q.matches(d)
    return q.explain(d)
