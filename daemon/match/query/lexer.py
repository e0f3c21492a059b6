"""Query text → tokens, each with its position.

Token kinds: ``(`` ``)`` ``AND`` ``OR`` ``NOT`` ``NEAR`` (with ``distance``/``ordered``),
``WORD`` (a bare word, maybe ending in ``*``, maybe starting with ``=``), ``PHRASE`` (``"…"``
or ``="…"``), ``EXACT`` (``{…}``),
``REGEX`` (``/…/``), ``ALIAS`` (``@name``), ``FIELD`` (``title:`` …) and ``EOF``.
Operators are upper-case; ``and`` is a word.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from daemon.match.query.ast import FIELDS
from daemon.match.query.errors import QuerySyntaxError

DEFAULT_NEAR = 10
MAX_NEAR = 1000

_BARE = re.compile(r'[^\s()"{}]+')
_FIELD = re.compile(r"([A-Za-z]+):")
_NEAR = re.compile(r"(O?NEAR)(?:/(.*))?")
_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
ALIAS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str  # as written (for a phrase/exact/regex: including the delimiters)
    pos: int
    end: int
    value: str = ""  # phrase/exact contents, regex pattern, alias or field name
    distance: int = 0
    ordered: bool = False


def did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _delimited(text: str, i: int, close: str, what: str) -> tuple[str, int]:
    """Contents of ``text[i]…close`` (``\\`` escapes ``close`` and itself) and the end offset."""
    out: list[str] = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\" and j + 1 < len(text) and text[j + 1] in (close, "\\"):
            # In a regex, ``\\`` must stay as written (it means a literal backslash to RE2).
            out.append(text[j + 1] if (text[j + 1] == close or close != "/") else "\\\\")
            j += 2
            continue
        if c == close:
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise QuerySyntaxError(f"unterminated {what}: missing closing {close!r}", i, i + 1)


def tokenize_query(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an ``EOF`` token. Raises QuerySyntaxError."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            tokens.append(Token("EOF", "", n, n))
            return tokens
        c = text[i]
        if c in "()":
            tokens.append(Token(c, c, i, i + 1))
            i += 1
        elif c == '"' or (c == "=" and text.startswith('"', i + 1)):
            # ``="…"``: the phrase's exact forms only (see rules/README.md, word forms).
            quote = i + (c == "=")
            value, end = _delimited(text, quote, '"', "phrase")
            tokens.append(Token("PHRASE", text[i:end], i, end, value))
            i = end
        elif c == "{":
            value, end = _delimited(text, i, "}", "case-sensitive term")
            tokens.append(Token("EXACT", text[i:end], i, end, value))
            i = end
        elif c == "}":
            raise QuerySyntaxError("unexpected '}'", i, i + 1)
        elif c == "/":
            value, end = _delimited(text, i, "/", "regular expression")
            if not value:
                raise QuerySyntaxError("empty regular expression", i, end)
            tokens.append(Token("REGEX", text[i:end], i, end, value))
            i = end
        elif c == "@":
            m = _ALIAS.match(text, i + 1)
            if m is None:
                raise QuerySyntaxError("expected an alias name after '@'", i, i + 1)
            tokens.append(Token("ALIAS", text[i : m.end()], i, m.end(), m.group()))
            i = m.end()
        else:
            i = _bare(text, i, tokens)


def _bare(text: str, i: int, tokens: list[Token]) -> int:
    """Lex a field scope, an operator or a bare word at ``i``; return the next offset."""
    field = _FIELD.match(text, i)
    if field is not None:
        name, after = field.group(1), field.end()
        nxt = text[after] if after < len(text) else ""
        if name in FIELDS:
            if nxt == "" or nxt.isspace() or nxt == ")":
                raise QuerySyntaxError(f"expected a term after '{name}:'", after, after)
            tokens.append(Token("FIELD", text[i:after], i, after, name))
            return after
        # ``https://…`` is a word; ``titel:Kursk`` is a typo for a field.
        if not text.startswith("//", after) and nxt and not nxt.isspace():
            hint = did_you_mean(name.lower(), FIELDS)
            raise QuerySyntaxError(
                f"unknown field {name!r}{hint}; fields are {', '.join(FIELDS)}"
                " (to search for a word with a colon, put it in quotes)",
                i,
                field.end() - 1,
            )
    m = _BARE.match(text, i)
    assert m is not None  # the caller skipped whitespace and delimiters
    word, end = m.group(), m.end()
    if word in ("AND", "OR", "NOT"):
        tokens.append(Token(word, word, i, end))
        return end
    near = _NEAR.fullmatch(word)
    if near is not None:
        op, arg = near.group(1), near.group(2)
        if arg is None:
            distance = DEFAULT_NEAR
        elif arg.isdigit() and arg.isascii():
            distance = int(arg)
            if distance > MAX_NEAR:
                raise QuerySyntaxError(f"{op} distance must be at most {MAX_NEAR}", i, end)
        else:
            raise QuerySyntaxError(
                f"expected a number of words after '{op}/', e.g. {op}/5", i + len(op) + 1, end
            )
        tokens.append(Token("NEAR", word, i, end, distance=distance, ordered=op == "ONEAR"))
        return end
    tokens.append(Token("WORD", word, i, end, word))
    return end
