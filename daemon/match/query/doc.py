"""One item prepared for matching: each field normalised once and scanned once.

A field's text becomes ``" w1 w2 … "`` (``index_text``) and is scanned by the matcher's
Aho-Corasick automaton, which knows every literal of every rule as a key (``" kursk "`` a word,
``" troop"`` a prefix, ``" north korean "`` a phrase): ``Field.found`` is the set of keys
present. Where a key occurs is looked up with ``str.find`` only when a NEAR, a ``{}`` term or
an explanation asks, and mapped back to character offsets only for an explanation.
"""

from __future__ import annotations

import unicodedata
from operator import itemgetter
from typing import Any

from daemon.match.query.tokenize import IndexedText, index_text, words
from daemon.types import Item

FIELD_NAMES = ("title", "summary", "link", "feed", "tag")
_second = itemgetter(1)
TITLE, SUMMARY, LINK, FEED, TAG = range(5)


def field_text(item: Item, field: int) -> str:
    """The plain text of ``field`` (the ``tag`` field is the tags joined by ``", "``)."""
    if field == TITLE:
        return item.title
    if field == SUMMARY:
        return item.summary
    if field == LINK:
        return item.link or ""
    if field == FEED:
        return item.feed
    return ", ".join(item.tags)


class Field:
    """One field of one item: its normalised words and the automaton keys found in them."""

    __slots__ = ("_occurrences", "found", "indexed")

    def __init__(self, text: str, automaton: Any) -> None:
        self.indexed: IndexedText = index_text(text)
        self.found: set[str] = (
            set(map(_second, automaton.iter(self.indexed.norm))) if automaton is not None else set()
        )
        self._occurrences: dict[str, list[tuple[int, int, int]]] = {}

    def occurrences(self, key: str) -> list[tuple[int, int, int]]:
        """Every occurrence of ``key``: (index of its first word, norm start, norm end).

        Norm start/end delimit the words (without the surrounding spaces; for a prefix key,
        to the end of the word). Found by ``str.find`` on the normalised text: exact, and
        only done for the keys a NEAR or an explanation asks about.
        """
        got = self._occurrences.get(key)
        if got is not None:
            return got
        norm, out = self.indexed.norm, []
        prefix = not key.endswith(" ")
        at, word = 0, 0
        i = norm.find(key)
        while i >= 0:
            word += norm.count(" ", at, i)
            at = i
            end = norm.find(" ", i + len(key)) if prefix else i + len(key) - 1
            out.append((word, i + 1, end))
            i = norm.find(key, i + 1)
        self._occurrences[key] = out
        return out

    def raw_words(self, a: int, b: int) -> tuple[str, ...]:
        """The words of ``norm[a:b]`` as written in the text (NFC), for case-sensitive terms."""
        start, end = self.indexed.char_span(a, b)
        piece = self.indexed.text[start:end]
        return tuple(unicodedata.normalize("NFC", piece[s:e]) for _, s, e in words(piece))


class Doc:
    """An item prepared for matching; fields are indexed on first use."""

    __slots__ = ("automaton", "fields", "item", "text_keys")

    def __init__(self, item: Item, automaton: Any) -> None:
        self.item = item
        self.automaton = automaton
        self.fields: list[Field | None] = [None, None, None, None, None]
        self.text_keys: set[str] | None = None

    def in_text(self) -> set[str]:
        """The keys found in the title or the summary (where unscoped terms look)."""
        keys = self.text_keys
        if keys is None:
            keys = self.text_keys = self.field(TITLE).found | self.field(SUMMARY).found
        return keys

    def field(self, f: int) -> Field:
        got = self.fields[f]
        if got is None:
            got = self.fields[f] = Field(field_text(self.item, f), self.automaton)
        return got
