"""An item's terms for story clustering: what ``daemon.stories.profile`` weighs and compares.

Real outlets do not rewrite one text: each writes its own headline and a one-to-three-sentence
summary, and two reports of one event share a handful of words — names, numbers, a key noun.
So an item is a small set of *terms*, each with a raw weight (before the stream's document
frequencies weigh it, ``daemon.stories.profile``):

- the *content words* of the title (weight ``TITLE_WEIGHT``) and of the first ``BODY_WORDS``
  content words of the text (weight 1): normalised as the query language does
  (``daemon.match.query.tokenize``: NFKC, casefold, accents dropped), stop words of English,
  Ukrainian and Russian dropped, one-letter words and anything with a digit dropped
  (``daemon.stories.sketch.content_words``), then
  cut to a crude stem (a plural ``s`` dropped, at most ``STEM`` letters) so that "tank" and
  "tanks", "Ukraine" and "Ukrainian" meet;
- *numbers* of two digits or more (thousands separators dropped; years 1900-2099 skipped:
  context, not facts) as anchors (``#31``), weight ``NUMBER_WEIGHT``.

A word counts once (the highest of its weights): a headline repeated in the summary is not
twice as important. Each term is a 32-bit id (keyed BLAKE2b: the same in every process and
Python version, unlike ``hash()``), which is what Redis stores. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b

from daemon.stories.sketch import STOP_WORDS, Fingerprint, content_words, fingerprint, tokens

__all__ = [
    "BODY_WORDS",
    "NUMBER_WEIGHT",
    "STEM",
    "TITLE_WEIGHT",
    "ItemTerms",
    "content_words",
    "item_terms",
    "items_terms",
    "numbers",
    "term_id",
]

BODY_WORDS = 120
TITLE_WEIGHT = 2.0
NUMBER_WEIGHT = 2.0
STEM = 7

_KEY = b"feedwatch.terms.1"
_NUMBER = re.compile(r"\d[\d.,]*\d|\d")
_GROUP_SEP = re.compile(r"[.,](?=\d{3}(?!\d))")
_YEAR = re.compile(r"(?:19|20)\d\d")


@dataclass(frozen=True, slots=True)
class ItemTerms:
    """One item's terms (32-bit ids) and their raw weights, heaviest first; and its rewrite
    sketch (``daemon.stories.sketch``: the other half of story similarity)."""

    ids: tuple[int, ...]
    weights: tuple[float, ...]
    sketch: Fingerprint

    def __len__(self) -> int:
        return len(self.ids)


def numbers(text: str) -> list[str]:
    """Distinct numbers of ``text`` in order: two digits or more, separators dropped, no years."""
    out: dict[str, None] = {}
    for raw in _NUMBER.findall(text):
        s = _GROUP_SEP.sub("", raw).lstrip("0")
        if len(s) < 2 or (len(s) == 4 and _YEAR.fullmatch(s)):
            continue
        out[s] = None
    return list(out)


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:STEM]


@lru_cache(maxsize=1 << 18)
def term_id(term: str) -> int:
    """The 32-bit id of a term (a stem, or ``#`` and a number)."""
    return int.from_bytes(blake2b(term.encode(), digest_size=4, key=_KEY).digest(), "big")


@lru_cache(maxsize=1 << 18)
def _word_id(word: str) -> int:
    return term_id(_stem(word))


def item_terms(title: str, text: str) -> ItemTerms:
    """The terms of an item with this title and plain text (see the module docstring)."""
    text_tokens = tokens(text)
    title_words = content_words(title)
    body = [w for w in text_tokens if w not in STOP_WORDS and w.isalpha()][:BODY_WORDS]
    groups = [
        (TITLE_WEIGHT, [_word_id(w) for w in title_words]),
        (NUMBER_WEIGHT, [term_id("#" + n) for n in numbers(f"{title}\n{text}")]),
        (1.0, [_word_id(w) for w in body]),
    ]
    ids: dict[int, float] = {}
    for weight, found in sorted(groups, key=lambda g: -g[0]):  # a term counts once, heaviest
        for t in found:
            ids.setdefault(t, weight)
    sketch = fingerprint(title, text, title_words=title_words, text_tokens=text_tokens)
    return ItemTerms(tuple(ids), tuple(ids.values()), sketch)


def items_terms(texts: Sequence[tuple[str, str]]) -> list[ItemTerms]:
    """``item_terms`` of each (title, text) pair."""
    return [item_terms(title, text) for title, text in texts]
