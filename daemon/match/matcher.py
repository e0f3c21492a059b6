"""Every rule of a RuleSet against one item at a time, pure: ``Matcher(ruleset).match(item)``.

How it stays fast with thousands of rules:

1. All rules' literals (words, prefixes, phrases; normalised) are keys of one Aho-Corasick
   automaton (pyahocorasick). Each field of an item is normalised and tokenised once
   (``" w1 w2 … "``) and scanned once; the keys found are a set, and positions are derived from
   the same scan only when NEAR, ``{}`` or an explanation needs them.
2. Each rule is indexed under its *required keys*: a set of literals at least one of which must
   be in the title or summary for the rule to match (for ``A AND B`` the rarer side, for
   ``A OR B`` both). Only rules indexed under a key the item contains are evaluated, plus the
   few with no such set (``NOT x``, regex-only, link/feed/tag-only), which are always evaluated.

So the cost per item grows with the item's words, not with the number of rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ahocorasick

from daemon.match.query.doc import Doc
from daemon.types import Item, MatchSpan

if TYPE_CHECKING:
    from daemon.match.rules import Rule, RuleSet


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule matched an item; ``spans`` explain why (terms as written, field, offsets)."""

    rule: Rule
    spans: tuple[MatchSpan, ...]


def build_automaton(keys: set[str] | frozenset[str]) -> Any:
    """An Aho-Corasick automaton whose value for each key is the key itself (None if no keys)."""
    if not keys:
        return None
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
    for key in sorted(keys):
        automaton.add_word(key, key)
    automaton.make_automaton()
    return automaton


class Matcher:
    """All rules of ``ruleset`` compiled into one matcher. Immutable after construction.

    ``prefilter=False`` evaluates every enabled rule for every item (same results, slower; used
    by tests to check the prefilter).
    """

    def __init__(self, ruleset: RuleSet, *, prefilter: bool = True) -> None:
        self.ruleset = ruleset
        self._keys: frozenset[str] = frozenset().union(*(r.compiled.keys for r in ruleset.rules))
        self._automaton = build_automaton(self._keys)
        self._rules: tuple[Rule, ...] = tuple(r for r in ruleset.rules if r.enabled)
        self._roots = tuple(r.compiled.root for r in self._rules)
        index: dict[str, list[int]] = {}
        always: list[int] = []
        for i, rule in enumerate(self._rules):
            required = rule.compiled.required
            if required is None or not prefilter:
                always.append(i)
            else:
                for key in required:
                    index.setdefault(key, []).append(i)
        self._index = {k: tuple(v) for k, v in index.items()}
        self._index_keys = frozenset(index)
        self._always = tuple(always)

    @property
    def rule_count(self) -> int:
        return len(self._rules)

    def candidates(self, doc: Doc) -> list[int]:
        """Positions (in enabled-rule order) of the rules worth evaluating for ``doc``."""
        index = self._index
        keys = doc.in_text() & self._index_keys
        chosen = set(self._always)
        chosen.update(*[index[key] for key in keys])
        return sorted(chosen)

    def match(self, item: Item) -> list[RuleMatch]:
        """Every enabled rule that matches ``item`` and whose ``feeds`` admit it, in rule order."""
        doc = Doc(item, self._automaton)
        out: list[RuleMatch] = []
        rules, roots = self._rules, self._roots
        for i in self.candidates(doc):
            if roots[i].matches(doc):
                rule = rules[i]
                if not rule.feeds or rule.wants_feed(item.feed, item.tags):
                    out.append(RuleMatch(rule, rule.compiled.explain(doc)))
        return out

    def evaluate(self, rule: Rule, item: Item) -> RuleMatch | None:
        """``rule``'s query alone against ``item`` (``enabled`` and ``feeds`` are not consulted).

        ``rule`` must belong to this matcher's ruleset.
        """
        if not rule.compiled.keys <= self._keys:
            raise ValueError(f"rule {rule.id!r} is not part of this matcher's ruleset")
        doc = Doc(item, self._automaton)
        if not rule.compiled.matches(doc):
            return None
        return RuleMatch(rule, rule.compiled.explain(doc))
