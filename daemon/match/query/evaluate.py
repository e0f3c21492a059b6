"""Compiled queries: boolean nodes answer ``matches(doc)`` and ``explain(doc, out)``; span
nodes (the operands of NEAR) answer ``hits(field)``: ``(first word, end word, leaves)``.

Literals are automaton keys (see ``daemon.match.query.doc``), so most nodes are set lookups.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Protocol

from daemon.match.query.doc import FIELD_NAMES, Doc, Field, field_text
from daemon.types import MatchSpan

_first = itemgetter(0)
MAX_SPANS = 100  # per rule and item: enough to highlight, bounded for the alert payload
MAX_HITS = 1000  # per NEAR and field: bounds the work on pathological texts

Leaf = tuple[str, int, int]  # (term as written, start and end offsets in the field's norm)
Hit = tuple[int, int, tuple[Leaf, ...]]


class BoolNode(Protocol):
    def matches(self, doc: Doc) -> bool: ...
    def explain(self, doc: Doc, out: Explanation) -> None: ...


class SpanNode(Protocol):
    def hits(self, fld: Field) -> list[Hit]: ...


class Explanation:
    """The spans explaining a match, strongest evidence first, so that the first summary span
    is the one to build an excerpt around. Three tiers, each in field order then by position:
    terms matched by a NEAR and phrases; the literals the rule is indexed under (its rarest
    required terms); everything else.
    """

    __slots__ = ("indexed", "required", "strong", "weak")

    def __init__(self, required: frozenset[str] = frozenset()) -> None:
        self.required = required
        self.strong: list[MatchSpan] = []
        self.indexed: list[MatchSpan] = []
        self.weak: list[MatchSpan] = []

    def spans(self) -> tuple[MatchSpan, ...]:
        """Unique spans, tier by tier; at most MAX_SPANS."""
        tiers = [t for t in (self.strong, self.indexed, self.weak) if t]
        if len(tiers) == 1:
            return ordered_spans(tiers[0])[:MAX_SPANS]
        out: list[MatchSpan] = []
        seen: set[MatchSpan] = set()
        for tier in (self.strong, self.indexed, self.weak):
            for span in ordered_spans([s for s in tier if s not in seen]):
                seen.add(span)
                out.append(span)
        return tuple(out[:MAX_SPANS])


def _leaf_spans(fld: Field, f: int, leaves: Sequence[Leaf], out: Explanation) -> None:
    name = FIELD_NAMES[f]
    for term, a, b in leaves:
        start, end = fld.indexed.char_span(a, b)
        out.strong.append(MatchSpan(term, name, start, end))


class Lit:
    """A word, phrase or prefix, optionally case-sensitive (``exact``). ``keys`` are its
    automaton keys: the term as written first, then its word forms (all of ``size`` words)."""

    __slots__ = ("exact", "fields", "key", "keys", "keyset", "size", "term")

    def __init__(
        self,
        term: str,
        keys: Sequence[str],
        size: int,
        exact: tuple[str, ...] | None,
        fields: tuple[int, ...],
    ) -> None:
        self.term, self.size, self.exact, self.fields = term, size, exact, fields
        self.keys = tuple(keys)
        self.key = self.keys[0]
        self.keyset = frozenset(self.keys)

    def _occurrences(self, fld: Field) -> list[tuple[int, int, int]]:
        """Where any of the keys occurs in ``fld`` (in text order)."""
        found = fld.found
        if len(self.keys) == 1:
            return fld.occurrences(self.key) if self.key in found else []
        out: list[tuple[int, int, int]] = []
        for key in self.keys:
            if key in found:
                out.extend(fld.occurrences(key))
        out.sort()
        return out

    def hits(self, fld: Field) -> list[Hit]:
        if self.keyset.isdisjoint(fld.found):
            return []
        n, term, exact = self.size, self.term, self.exact
        return [
            (p, p + n, ((term, a, b),))
            for p, a, b in self._occurrences(fld)
            if exact is None or fld.raw_words(a, b) == exact
        ]

    def matches(self, doc: Doc) -> bool:
        keys, fields = self.keyset, doc.fields
        for f in self.fields:
            fld = fields[f] or doc.field(f)
            if not keys.isdisjoint(fld.found) and (self.exact is None or self.hits(fld)):
                return True
        return False

    def explain(self, doc: Doc, out: Explanation) -> None:
        n, term, exact = self.size, self.term, self.exact
        for f in self.fields:
            fld = doc.field(f)
            if self.keyset.isdisjoint(fld.found):
                continue
            name, char_span = FIELD_NAMES[f], fld.indexed.char_span
            if n > 1:
                target = out.strong
            else:
                target = out.weak if self.keyset.isdisjoint(out.required) else out.indexed
            added = 0
            for _, a, b in self._occurrences(fld):
                if exact is None or fld.raw_words(a, b) == exact:
                    target.append(MatchSpan(term, name, *char_span(a, b)))
                    added += 1
                    if added >= MAX_SPANS:
                        break


class TextLit(Lit):
    """A plain (not case-sensitive) one-key literal in the default fields: one set lookup."""

    __slots__ = ()

    def matches(self, doc: Doc) -> bool:
        return self.key in (doc.text_keys or doc.in_text())


class TextFormsLit(Lit):
    """A plain literal with word forms in the default fields: one set intersection."""

    __slots__ = ()

    def matches(self, doc: Doc) -> bool:
        return not self.keyset.isdisjoint(doc.text_keys or doc.in_text())


class AnyLit:
    """Several plain literals OR-ed in the same fields: one set intersection."""

    __slots__ = ("fields", "keys", "lits")

    def __init__(self, lits: Sequence[Lit], fields: tuple[int, ...]) -> None:
        self.lits = tuple(lits)
        self.keys = frozenset().union(*(lit.keyset for lit in lits))
        self.fields = fields

    def matches(self, doc: Doc) -> bool:
        keys, fields = self.keys, doc.fields
        for f in self.fields:
            if not keys.isdisjoint((fields[f] or doc.field(f)).found):
                return True
        return False

    def explain(self, doc: Doc, out: Explanation) -> None:
        for lit in self.lits:
            lit.explain(doc, out)


class TextAnyLit(AnyLit):
    """AnyLit in the default fields."""

    __slots__ = ()

    def matches(self, doc: Doc) -> bool:
        return not self.keys.isdisjoint(doc.text_keys or doc.in_text())


class SpanOr:
    __slots__ = ("children",)

    def __init__(self, children: Sequence[SpanNode]) -> None:
        self.children = tuple(children)

    def hits(self, fld: Field) -> list[Hit]:
        out: list[Hit] = []
        for c in self.children:
            out.extend(c.hits(fld))
        return out


class SpanNear:
    """``left NEAR/n right``: no overlap, at most ``n`` words between (``ordered``: left first)."""

    __slots__ = ("distance", "left", "ordered", "right")

    def __init__(self, left: SpanNode, right: SpanNode, distance: int, ordered: bool) -> None:
        self.left, self.right, self.distance, self.ordered = left, right, distance, ordered

    def _sides(self, fld: Field) -> tuple[list[Hit], list[Hit], list[int]] | None:
        lhits = self.left.hits(fld)
        if not lhits:
            return None
        rhits = self.right.hits(fld)
        if not rhits:
            return None
        rhits.sort(key=_first)
        return lhits, rhits, [h[0] for h in rhits]

    def any(self, fld: Field) -> bool:
        """Whether there is at least one hit: O(L log R), however common the words are."""
        sides = self._sides(fld)
        if sides is None:
            return False
        lhits, rhits, starts = sides
        n = self.distance
        ends = sorted(h[1] for h in rhits)
        for ls, le, _ in lhits:
            if bisect_left(starts, le) < bisect_right(starts, le + n):
                return True  # a right hit starts within n words after the left one
            if not self.ordered and bisect_left(ends, ls - n) < bisect_right(ends, ls):
                return True  # a right hit ends within n words before it
        return False

    def hits(self, fld: Field) -> list[Hit]:
        """Every pair's combined span (at most MAX_HITS, so that two very common words in a
        very long text cannot stall matching); a span reached by several pairs counts once."""
        sides = self._sides(fld)
        if sides is None:
            return []
        lhits, rhits, starts = sides
        widest = max(h[1] - h[0] for h in rhits)
        n, ordered = self.distance, self.ordered
        out: dict[tuple[int, int], Hit] = {}
        for ls, le, lv in lhits:
            # right after left: rs in [le, le + n]
            for k in range(bisect_left(starts, le), bisect_right(starts, le + n)):
                _, re_, rv = rhits[k]
                out.setdefault((ls, max(le, re_)), (ls, max(le, re_), lv + rv))
            if not ordered:
                # right before left: re_ <= ls and ls - re_ <= n
                for k in range(bisect_left(starts, ls - n - widest), bisect_left(starts, ls)):
                    rs, re_, rv = rhits[k]
                    if re_ <= ls and ls - re_ <= n:
                        out.setdefault((rs, le), (rs, le, lv + rv))
            if len(out) >= MAX_HITS:
                break
        return list(out.values())[:MAX_HITS]


class Span:
    """A NEAR expression used as a boolean term, looked for in ``fields``."""

    __slots__ = ("fields", "span")

    def __init__(self, span: SpanNode, fields: tuple[int, ...]) -> None:
        self.span, self.fields = span, fields

    def matches(self, doc: Doc) -> bool:
        span = self.span
        if isinstance(span, SpanNear):
            return any(span.any(doc.field(f)) for f in self.fields)
        return any(span.hits(doc.field(f)) for f in self.fields)

    def explain(self, doc: Doc, out: Explanation) -> None:
        for f in self.fields:
            fld = doc.field(f)
            for _, _, leaves in self.span.hits(fld):
                _leaf_spans(fld, f, leaves, out)


class RegexTerm:
    """``/pattern/`` searched in the text of each of ``fields``."""

    __slots__ = ("fields", "pattern", "term")

    def __init__(self, term: str, pattern: Any, fields: tuple[int, ...]) -> None:
        self.term, self.pattern, self.fields = term, pattern, fields

    def matches(self, doc: Doc) -> bool:
        return any(self.pattern.search(field_text(doc.item, f)) for f in self.fields)

    def explain(self, doc: Doc, out: Explanation) -> None:
        for f in self.fields:
            for i, m in enumerate(self.pattern.finditer(field_text(doc.item, f))):
                if i >= MAX_SPANS:
                    break
                start, end = m.span()
                if end > start:
                    out.weak.append(MatchSpan(self.term, FIELD_NAMES[f], start, end))


class AllOf:
    __slots__ = ("children",)

    def __init__(self, children: Sequence[BoolNode]) -> None:
        self.children = tuple(children)

    def matches(self, doc: Doc) -> bool:
        for c in self.children:
            if not c.matches(doc):
                return False
        return True

    def explain(self, doc: Doc, out: Explanation) -> None:
        for c in self.children:
            c.explain(doc, out)


class AnyOf:
    __slots__ = ("children",)

    def __init__(self, children: Sequence[BoolNode]) -> None:
        self.children = tuple(children)

    def matches(self, doc: Doc) -> bool:
        for c in self.children:
            if c.matches(doc):
                return True
        return False

    def explain(self, doc: Doc, out: Explanation) -> None:
        for c in self.children:
            if c.matches(doc):
                c.explain(doc, out)


class NoneOf:
    """``NOT child``: contributes no spans to an explanation."""

    __slots__ = ("child",)

    def __init__(self, child: BoolNode) -> None:
        self.child = child

    def matches(self, doc: Doc) -> bool:
        return not self.child.matches(doc)

    def explain(self, doc: Doc, out: Explanation) -> None:
        return None


_FIELD_ORDER = {name: i for i, name in enumerate(FIELD_NAMES)}


def _span_order(s: MatchSpan) -> tuple[int, int, int, str]:
    return (_FIELD_ORDER[s.field], s.start, s.end, s.term)


def ordered_spans(spans: list[MatchSpan]) -> tuple[MatchSpan, ...]:
    """Unique spans in field order, then by position; at most MAX_SPANS."""
    if len(spans) <= 1:
        return tuple(spans)
    return tuple(sorted(set(spans), key=_span_order)[:MAX_SPANS])
