"""The sentence around a match, for an alert's ``excerpt``. Pure; contains no business logic.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` followed by white space (closing quotes and
brackets stay with their sentence), or at a line break. A period after a known abbreviation
(``Mr.``, ``Gen.``) or a lone capital (``U.S.``, ``J. Smith``) does not end a sentence. A
sentence longer than ``limit`` is cut at word boundaries around the match and marked with ``…``.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"([.!?\u2026])[\"'\u201d\u2019)\]]*[ \t]+|\s*\n\s*")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr vs etc gen lt col sgt maj capt gov sen rep prof no inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec approx e.g i.e".split()
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")
ELLIPSIS = "\u2026"


def _ends_sentence(text: str, m: re.Match[str]) -> bool:
    if m.group(1) != ".":
        return True  # a line break, "!", "?" or "…"
    before = _WORD_BEFORE.search(text, 0, m.start(1))
    if before is None:
        return True
    word = before.group(1)
    last = word.rsplit(".", 1)[-1]
    if len(last) == 1 and last.isupper():
        return False  # "U.S.", "J. Smith"
    return word.lower() not in _ABBREVIATIONS


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """``[s, e)`` of the sentence(s) containing ``text[start:end]``."""
    s, e = 0, len(text)
    for m in _BOUNDARY.finditer(text):
        if not _ends_sentence(text, m):
            continue
        if m.end() <= start:
            s = m.end()
        elif m.start() >= end:
            e = m.end(1) if m.group(1) else m.start()
            break
    return s, e


def excerpt(text: str, start: int, end: int, *, limit: int = 300) -> str:
    """The sentence around ``text[start:end]``, whitespace collapsed, cut to about ``limit``
    characters (at word boundaries, with ``…`` where cut) keeping the match in view.
    """
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    s, e = sentence_bounds(text, start, end)
    s = max(s, 0)
    left = text[s:start]
    middle = text[start:end]
    right = text[end:e]
    if len(left) + len(middle) + len(right) > limit:
        room = max(0, limit - len(middle))
        keep_left = min(len(left), max(room // 3, room - len(right)))
        keep_right = max(0, room - keep_left)
        if keep_left < len(left):
            cut = left[len(left) - keep_left :]
            space = cut.find(" ")
            left = ELLIPSIS + (cut[space + 1 :] if 0 <= space < len(cut) - 1 else cut)
        if keep_right < len(right):
            cut = right[:keep_right]
            space = cut.rfind(" ")
            right = (cut[:space] if space > 0 else cut) + ELLIPSIS
        if len(middle) > limit:
            middle = middle[:limit] + ELLIPSIS
    return " ".join((left + middle + right).split())
