"""Words of a text, normalised the same way for queries and for items. Contains no business logic.

A *word* is a run of letters, digits and combining marks (``_`` and punctuation separate words,
so ``Pyongyang's`` is ``pyongyang`` + ``s`` and ``long-range`` is ``long`` + ``range``). Han,
hiragana and katakana characters are one word each, since those scripts do not separate words
with spaces. A word is normalised with NFKC, casefolded, and its nonspacing (combining) marks are
dropped: ``Kursk``, ``KURSK`` and ``Kúrsk`` are all ``kursk``; ``Курськ`` is ``курськ``.

``index_text`` turns a field's text into the string the Aho-Corasick automaton scans:
``" word word word "`` — normalised words separated by single spaces, with a space at each end,
so the key ``" kursk "`` is the whole word, ``" troop"`` a prefix and ``" north korean "`` a
phrase. ``IndexedText.char_span`` maps words of ``norm`` back to character offsets in the
original text, computed only when a match needs explaining.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache

# Combining marks of the Basic Multilingual Plane (categories Mn, Mc, Me): part of a word, not a
# separator. Computed once (~20 ms); marks beyond the BMP (rare historic scripts) separate words.
_MARK_RANGES: list[tuple[int, int]] = []


def _mark_class() -> str:
    start: int | None = None
    for cp in range(0x10000):
        is_mark = unicodedata.category(chr(cp))[0] == "M"
        if is_mark and start is None:
            start = cp
        elif not is_mark and start is not None:
            _MARK_RANGES.append((start, cp - 1))
            start = None
    return "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in _MARK_RANGES)


_MARKS = _mark_class()
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"

# Most news text: every word character is ASCII, so lower() is the whole normalisation. Then a
# byte translation does it all (non-ASCII characters, all separators here, become "?" first).
_ASCII_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_SEPARATOR_RUN = re.compile(rb"  +")
_span = re.Match.span
# Anything that forces the general path: a non-ASCII word character or a combining mark.
_NON_ASCII_WORD = re.compile(r"[^\W\x00-\x7f]")
_ANY_MARK = re.compile(f"[{_MARKS}]")
# General path: runs of word characters and marks (fast: one character class) …
_WORD = re.compile(f"[\\w{_MARKS}]+")
# … unless the text has ``_`` or CJK, which need splitting out (slower: a look-ahead per char).
_NEEDS_SPLIT = re.compile(f"[_{_CJK}]")
_WORD_SPLIT = re.compile(f"[{_CJK}]|(?:(?![{_CJK}_])[\\w{_MARKS}])+")


@lru_cache(maxsize=65536)
def normalize_word(word: str) -> str:
    """One word, normalised: NFKC, casefolded, nonspacing marks dropped (``Kúrsk`` → ``kursk``)."""
    if word.isascii():
        return word.lower()
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", word).casefold())
    stripped = "".join(c for c in folded if unicodedata.category(c) != "Mn")
    # A compatibility form can expand to several words (e.g. U+FDFA): keep it one word.
    return "".join(unicodedata.normalize("NFC", stripped).split())


def words(text: str) -> list[tuple[str, int, int]]:
    """Every word of ``text``: (normalised word, start, end) with character offsets into ``text``.

    Words that normalise to nothing (a lone combining mark) are skipped.
    """
    pattern = _WORD_SPLIT if _NEEDS_SPLIT.search(text) else _WORD
    out: list[tuple[str, int, int]] = []
    for m in pattern.finditer(text):
        norm = normalize_word(m.group())
        if norm:
            out.append((norm, m.start(), m.end()))
    return out


def _ascii_words(text: str) -> bool:
    """True if every word character of ``text`` is ASCII (so the fast path is exact)."""
    if text.isascii():
        return True
    return _NON_ASCII_WORD.search(text) is None and _ANY_MARK.search(text) is None


class IndexedText:
    """One field of one item, ready for matching: ``norm`` is ``" w1 w2 … "``.

    ``char_span(a, b)`` maps the words occupying ``norm[a:b]`` back to character offsets in
    ``text``, computed only when a match needs explaining. ``spans()`` lists every word's
    (start, end) in ``text``: the i-th span belongs to the i-th word of ``norm``.
    """

    __slots__ = ("_bounds", "_deltas", "_spans", "norm", "text")

    def __init__(self, text: str, norm: str, spans: list[tuple[int, int]] | None) -> None:
        self.text = text
        self.norm = norm
        self._spans = spans  # known for the general path; None on the ASCII fast path
        self._bounds: list[int] | None = None
        self._deltas: list[int] = []

    def spans(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = list(map(_span, _ASCII_WORD.finditer(self.text)))
        return self._spans

    def char_span(self, a: int, b: int) -> tuple[int, int]:
        """Offsets in ``text`` of the words in ``norm[a:b]`` (``a`` starts a word, ``b`` ends
        one)."""
        if self._spans is not None:
            spans, norm = self._spans, self.norm
            return spans[norm.count(" ", 0, a) - 1][0], spans[norm.count(" ", 0, b) - 1][1]
        # ASCII fast path: ``norm`` is the translated text with each run of separators shrunk
        # to one space, so a word's text offset is its norm offset plus what was shrunk before
        # it. Only runs of 2+ separators (", ", ". ") and the leading run move offsets.
        if self._bounds is None:
            self._ascii_offsets()
        bounds, deltas = self._bounds, self._deltas
        assert bounds is not None
        return a + deltas[bisect_right(bounds, a) - 1], b + deltas[bisect_right(bounds, b - 1) - 1]

    def _ascii_offsets(self) -> None:
        t = self.text.encode("ascii", "replace").translate(_ASCII_TABLE)
        lead = len(t) - len(t.lstrip(b" "))
        bounds, deltas = [0], [lead - 1]
        delta = lead - 1
        for m in _SEPARATOR_RUN.finditer(t, lead):
            start, end = m.span()
            delta += end - start - 1
            bounds.append(end - delta)
            deltas.append(delta)
        self._bounds, self._deltas = bounds, deltas


def index_text(text: str) -> IndexedText:
    """Normalise ``text`` once for matching (see the module docstring)."""
    if _ascii_words(text):
        inner = b" ".join(text.encode("ascii", "replace").translate(_ASCII_TABLE).split())
        return IndexedText(text, f" {inner.decode('ascii')} " if inner else " ", None)
    found = words(text)
    if not found:
        return IndexedText(text, " ", [])
    norm = " " + " ".join(w for w, _, _ in found) + " "
    return IndexedText(text, norm, [(s, e) for _, s, e in found])
