"""Syntax tree (aliases expanded) → an executable ``Query``, plus what the prefilter needs.

Field scopes are pushed down to the terms. Every literal becomes an automaton key (see
``daemon.match.query.doc``). ``Query.required`` is a set of keys at least one of which must occur
in an item's title or summary for the query to match — the matcher evaluates the rule only for
items that contain one — or ``None`` when there is no such set (``NOT x``, a regex, a term
scoped to ``link``/``feed``/``tag``), and the rule is evaluated for every item.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from daemon.match.query.ast import (
    DEFAULT_FIELDS,
    AliasRef,
    And,
    Group,
    Near,
    Node,
    Not,
    Or,
    Regex,
    Scope,
    Term,
)
from daemon.match.query.doc import FIELD_NAMES, SUMMARY, TITLE, Doc
from daemon.match.query.errors import QuerySyntaxError
from daemon.match.query.evaluate import (
    AllOf,
    AnyLit,
    AnyOf,
    BoolNode,
    Explanation,
    Lit,
    NoneOf,
    RegexTerm,
    Span,
    SpanNear,
    SpanNode,
    SpanOr,
    TextAnyLit,
    TextFormsLit,
    TextLit,
)
from daemon.match.query.forms import TooManyForms, term_forms
from daemon.match.query.regex import compile_regex
from daemon.types import MatchSpan

Keys = frozenset[str]
_TEXT = (TITLE, SUMMARY)  # where unscoped terms look
_PREFILTERED = frozenset(_TEXT)  # the fields the matcher scans up front

# Words so common that a rule should never be indexed under them if it has anything better.
_COMMON = frozenset(
    "a an and are as at be but by for from had has have he her his in is it its not of on or "
    "said says that the their they this to was were which will with would who new after over "
    "more than been also s".split()
)


def literal_key(words: tuple[str, ...], prefix: bool) -> str:
    """The automaton key of a word run: ``" w1 w2 "``, or ``" w1 w2"`` if the last is a prefix."""
    return " " + " ".join(words) + ("" if prefix else " ")


def key_cost(key: str) -> float:
    """A guess at how often ``key`` occurs in news text (higher = more often)."""
    words = key.split()
    prefix = not key.endswith(" ")
    costs = []
    for i, w in enumerate(words):
        c = 1.0 if w in _COMMON else 4.0 / (len(w) + 1) ** 2
        if prefix and i == len(words) - 1:
            c = min(1.0, c * 4)
        costs.append(c)
    return min(costs) * (0.2 ** (len(words) - 1))


def set_cost(keys: Keys) -> float:
    return sum(key_cost(k) for k in keys)


def lit_cost(lit: Lit) -> float:
    """How often a literal occurs: its own key's guess, a little more for each word form (the
    forms of one word are together about as frequent as the word, not as all of them)."""
    return key_cost(lit.key) * (1 + 0.05 * (len(lit.keys) - 1))


@dataclass(frozen=True, slots=True)
class _Plan:
    node: BoolNode
    required: Keys | None
    keys: Keys
    rank: int  # evaluation order among siblings: cheap first
    cost: float = 0.0  # how often ``required`` occurs (see key_cost)


class Query:
    """A compiled query: ``matches(doc)``, ``explain(doc)``; ``keys`` for the automaton."""

    __slots__ = ("keys", "required", "root", "text")

    def __init__(self, text: str, root: BoolNode, keys: Keys, required: Keys | None) -> None:
        self.text, self.root, self.keys, self.required = text, root, keys, required

    def matches(self, doc: Doc) -> bool:
        return self.root.matches(doc)

    def explain(self, doc: Doc) -> tuple[MatchSpan, ...]:
        """Why ``doc`` matches: strong evidence first (see ``Explanation``)."""
        out = Explanation(self.required or frozenset())
        self.root.explain(doc, out)
        return out.spans()

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def compile_query(node: Node, text: str = "") -> Query:
    """Compile an alias-free tree (``AliasTable.expand``) into a ``Query``."""
    plan = _compile(node, tuple(FIELD_NAMES.index(f) for f in DEFAULT_FIELDS))
    return Query(text, plan.node, plan.keys, plan.required)


def _compile(node: Node, fields: tuple[int, ...]) -> _Plan:
    if isinstance(node, Group):
        return _compile(node.child, fields)
    if isinstance(node, Scope):
        return _compile(node.child, (FIELD_NAMES.index(node.field),))
    if isinstance(node, Term):
        lit = _lit(node, fields)
        req = lit.keyset if _PREFILTERED.issuperset(fields) else None
        return _Plan(lit, req, lit.keyset, 0, lit_cost(lit))
    if isinstance(node, Regex):
        pattern = compile_regex(node.pattern, node.pos, node.end)
        return _Plan(RegexTerm(node.text, pattern, fields), None, frozenset(), 3)
    if isinstance(node, Not):
        inner = _compile(node.child, fields)
        return _Plan(NoneOf(inner.node), None, inner.keys, inner.rank)
    if isinstance(node, Near):
        span = _span(node, fields)
        keys = frozenset(_span_keys(span))
        req, cost = _span_required(span)
        if not _PREFILTERED.issuperset(fields):
            return _Plan(Span(span, fields), None, keys, 2)
        return _Plan(Span(span, fields), req, keys, 2, cost)
    if isinstance(node, AliasRef):  # pragma: no cover - expand() removes these
        raise ValueError(f"alias @{node.name} was not expanded")
    plans = sorted((_compile(c, fields) for c in node.children), key=lambda p: p.rank)
    keys = frozenset().union(*(p.keys for p in plans))
    rank = max(p.rank for p in plans)
    if isinstance(node, And):
        reqs = [p for p in plans if p.required is not None]
        best = min(reqs, key=lambda p: p.cost) if reqs else None
        if best is None:
            return _Plan(AllOf([p.node for p in plans]), None, keys, rank)
        return _Plan(AllOf([p.node for p in plans]), best.required, keys, rank, best.cost)
    any_req: Keys | None = frozenset()
    cost = 0.0
    for p in plans:
        any_req = None if (any_req is None or p.required is None) else any_req | p.required
        cost += p.cost
    lits = [p.node for p in plans if isinstance(p.node, Lit) and p.node.exact is None]
    if len(lits) == len(plans) and all(lit.fields == fields for lit in lits):
        cls = TextAnyLit if fields == _TEXT else AnyLit
        return _Plan(cls(lits, fields), any_req, keys, 1, cost)
    return _Plan(AnyOf([p.node for p in plans]), any_req, keys, rank, cost)


def term_keys(term: Term, fields: tuple[int, ...]) -> list[str]:
    """The automaton keys of ``term``: as written, then its word forms (in the title and
    summary only: links, feed names and tags are not prose)."""
    key = literal_key(term.words, term.prefix)
    if not term.uses_forms or _PREFILTERED.isdisjoint(fields):
        return [key]
    try:
        runs = term_forms(term)
    except TooManyForms as e:  # the parser reports it; a hand-built tree gets it here
        raise QuerySyntaxError(str(e), term.pos, term.end) from None
    return [key, *sorted({literal_key(run, False) for run in runs[1:]} - {key})]


def _lit(term: Term, fields: tuple[int, ...], where: tuple[int, ...] | None = None) -> Lit:
    keys = term_keys(term, fields if where is None else where)
    if fields == _TEXT and term.exact is None:
        cls: type[Lit] = TextLit if len(keys) == 1 else TextFormsLit
    else:
        cls = Lit
    return cls(term.text, keys, len(term.words), term.exact, fields)


def _span(node: Node, where: tuple[int, ...]) -> SpanNode:
    """A NEAR operand (already checked by ``resolve.check_near_operand``) as a span node;
    ``where`` are the fields the NEAR looks in."""
    if isinstance(node, Group):
        return _span(node.child, where)
    if isinstance(node, Term):
        return _lit(node, (), where)
    if isinstance(node, Or):
        return SpanOr([_span(c, where) for c in node.children])
    if isinstance(node, Near):
        return SpanNear(
            _span(node.left, where), _span(node.right, where), node.distance, node.ordered
        )
    raise ValueError(f"not a NEAR operand: {type(node).__name__}")  # pragma: no cover


def _span_keys(span: SpanNode) -> Iterator[str]:
    if isinstance(span, Lit):
        yield from span.keys
    elif isinstance(span, SpanOr):
        for c in span.children:
            yield from _span_keys(c)
    elif isinstance(span, SpanNear):
        yield from _span_keys(span.left)
        yield from _span_keys(span.right)


def _span_required(span: SpanNode) -> tuple[Keys, float]:
    """Keys one of which a NEAR needs, and how often they occur."""
    if isinstance(span, Lit):
        return span.keyset, lit_cost(span)
    if isinstance(span, SpanOr):
        parts = [_span_required(c) for c in span.children]
        return frozenset().union(*(k for k, _ in parts)), sum(c for _, c in parts)
    assert isinstance(span, SpanNear)
    return min(_span_required(span.left), _span_required(span.right), key=lambda kc: kc[1])
