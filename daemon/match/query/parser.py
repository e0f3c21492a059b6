"""Query text → syntax tree, by recursive descent.

Grammar (precedence NOT > AND > OR; NEAR binds its two neighbours tightest)::

    query   := or EOF
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*          two terms side by side mean AND
    unary   := "NOT" unary | near
    near    := primary (NEAR primary)*         NEAR, NEAR/n, ONEAR, ONEAR/n; left-associative
    primary := WORD | PHRASE | EXACT | REGEX | ALIAS | FIELD primary | "(" or ")"

Which operands NEAR accepts is checked after aliases are expanded (``daemon.match.query.resolve``).
"""

from __future__ import annotations

import unicodedata

from daemon.match.query.ast import AliasRef, And, Group, Near, Node, Not, Or, Regex, Scope, Term
from daemon.match.query.errors import QuerySyntaxError
from daemon.match.query.forms import TooManyForms, term_forms
from daemon.match.query.lexer import Token, tokenize_query
from daemon.match.query.regex import compile_regex
from daemon.match.query.tokenize import words

_STARTS = frozenset({"WORD", "PHRASE", "EXACT", "REGEX", "ALIAS", "FIELD", "(", "NOT"})
MIN_PREFIX = 3


def parse(text: str) -> Node:
    """The syntax tree of ``text``. Raises QuerySyntaxError with the offending position."""
    return _Parser(text).parse()


def _describe(tok: Token) -> str:
    if tok.kind == "EOF":
        return "end of query"
    return repr(tok.text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize_query(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise QuerySyntaxError("empty query", 0, 0)
        node = self.or_()
        tok = self.peek()
        if tok.kind == ")":
            raise QuerySyntaxError("unmatched ')'", tok.pos, tok.end)
        if tok.kind != "EOF":  # pragma: no cover - and_() consumes everything that can follow
            raise QuerySyntaxError(f"unexpected {_describe(tok)}", tok.pos, tok.end)
        return node

    def expect_term(self, after: Token) -> None:
        tok = self.peek()
        if tok.kind not in _STARTS:
            raise QuerySyntaxError(
                f"expected a term after {after.text}, got {_describe(tok)}", tok.pos, tok.end
            )

    def or_(self) -> Node:
        children = [self.and_()]
        while self.peek().kind == "OR":
            op = self.take()
            self.expect_term(op)
            children.append(self.and_())
        if len(children) == 1:
            return children[0]
        return Or(tuple(children), pos=children[0].pos, end=children[-1].end)

    def and_(self) -> Node:
        children = [self.unary()]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                op = self.take()
                self.expect_term(op)
            elif kind not in _STARTS:
                break
            children.append(self.unary())
        if len(children) == 1:
            return children[0]
        return And(tuple(children), pos=children[0].pos, end=children[-1].end)

    def unary(self) -> Node:
        if self.peek().kind == "NOT":
            op = self.take()
            self.expect_term(op)
            child = self.unary()
            return Not(child, pos=op.pos, end=child.end)
        return self.near()

    def near(self) -> Node:
        left = self.primary()
        while self.peek().kind == "NEAR":
            op = self.take()
            tok = self.peek()
            if tok.kind not in _STARTS or tok.kind == "NOT":
                raise QuerySyntaxError(
                    f"expected a term after {op.text}, got {_describe(tok)}", tok.pos, tok.end
                )
            right = self.primary()
            left = Near(left, right, op.distance, op.ordered, pos=left.pos, end=right.end)
        return left

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "WORD":
            self.take()
            return word_term(tok)
        if tok.kind in ("PHRASE", "EXACT"):
            self.take()
            return quoted_term(tok)
        if tok.kind == "REGEX":
            self.take()
            compile_regex(tok.value, tok.pos, tok.end)  # reject a bad pattern here, with position
            return Regex(tok.text, tok.value, pos=tok.pos, end=tok.end)
        if tok.kind == "ALIAS":
            self.take()
            return AliasRef(tok.value, pos=tok.pos, end=tok.end)
        if tok.kind == "FIELD":
            self.take()
            nxt = self.peek()
            if nxt.kind not in _STARTS or nxt.kind in ("NOT", "FIELD"):
                raise QuerySyntaxError(
                    f"expected a term or '(' after {tok.text}, got {_describe(nxt)}",
                    nxt.pos,
                    nxt.end,
                )
            child = self.primary()
            return Scope(tok.value, child, pos=tok.pos, end=child.end)
        if tok.kind == "(":
            self.take()
            if self.peek().kind == ")":
                raise QuerySyntaxError("empty parentheses", tok.pos, self.peek().end)
            self.expect_term(tok)
            inner = self.or_()
            close = self.peek()
            if close.kind != ")":
                raise QuerySyntaxError(
                    f"expected ')' to close the '(' at column {tok.pos + 1},"
                    f" got {_describe(close)}",
                    close.pos,
                    close.end,
                )
            self.take()
            return Group(inner, pos=tok.pos, end=close.end)
        if tok.kind == "EOF":
            raise QuerySyntaxError("expected a term, got end of query", tok.pos, tok.end)
        raise QuerySyntaxError(f"expected a term, got {_describe(tok)}", tok.pos, tok.end)


def word_term(tok: Token) -> Term:
    """A bare word: ``Kursk``, ``troop*``; ``long-range`` is the phrase ``long range``."""
    raw = tok.value
    prefix = raw.endswith("*")
    body = raw[:-1] if prefix else raw
    exact_form = body.startswith("=")
    body = body[1:] if exact_form else body
    star = body.find("*")
    if star >= 0:
        raise QuerySyntaxError(
            "'*' is only allowed at the end of a word",
            tok.pos + exact_form + star,
            tok.pos + exact_form + star + 1,
        )
    found = words(body)
    if not found:
        raise QuerySyntaxError(f"{raw!r} has no letters or digits to match", tok.pos, tok.end)
    if prefix:
        _check_prefix(found, body, tok.end - 1)
    words_ = tuple(w for w, _, _ in found)
    return _checked(Term(raw, words_, prefix, None, not exact_form, pos=tok.pos, end=tok.end))


def quoted_term(tok: Token) -> Term:
    """``"a phrase"`` (the last word may end in ``*``) or ``{Case Sensitive}``."""
    exact = tok.kind == "EXACT"
    body = tok.value.strip()
    what = "case-sensitive term" if exact else "phrase"
    if not body:
        raise QuerySyntaxError(f"empty {what}", tok.pos, tok.end)
    prefix = body.endswith("*") and not exact
    if prefix:
        body = body[:-1]
    star = body.find("*")
    if star >= 0:
        at = tok.pos + tok.text.startswith("=") + 1 + tok.value.find("*")
        where = "inside {}" if exact else "inside a phrase except at the end of its last word"
        raise QuerySyntaxError(f"'*' is not allowed {where}", at, at + 1)
    found = words(body)
    if not found:
        raise QuerySyntaxError(f"{tok.text} has no letters or digits to match", tok.pos, tok.end)
    if prefix:
        _check_prefix(found, body, tok.end - 2)
    raw = tuple(unicodedata.normalize("NFC", body[s:e]) for _, s, e in found) if exact else None
    words_ = tuple(w for w, _, _ in found)
    forms = not tok.text.startswith("=")
    return _checked(Term(tok.text, words_, prefix, raw, forms, pos=tok.pos, end=tok.end))


def _checked(term: Term) -> Term:
    """``term``, after checking that its word forms are not too many (they are computed here
    once and cached, so the error points at the term, in the query or alias that has it)."""
    try:
        term_forms(term)
    except TooManyForms as e:
        raise QuerySyntaxError(str(e), term.pos, term.end) from None
    return term


def _check_prefix(found: list[tuple[str, int, int]], body: str, star_at: int) -> None:
    last, _, last_end = found[-1]
    if last_end != len(body):
        raise QuerySyntaxError("'*' must directly follow a letter or digit", star_at, star_at + 1)
    if len(last) < MIN_PREFIX:
        raise QuerySyntaxError(
            f"a wildcard needs at least {MIN_PREFIX} letters before '*'", star_at, star_at + 1
        )
