"""A rule's examples run against its query: what ``feedwatch check`` adds to the load problems.

``check_rules`` is the whole check: every problem of every rule file (``rules.compile_rules``)
and the examples of every rule that compiled, even when other rules of the same file did not.
A rule file's ``examples.match`` must match and ``examples.no_match`` must not; each example that
misbehaves is one ``Problem`` at the example's position.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from daemon.config import yamlfile as _yaml
from daemon.errors import ConfigError, Problem
from daemon.match.matcher import Matcher
from daemon.match.rule_spec import ExampleItem
from daemon.match.rules import RuleSet, compile_rules, where
from daemon.types import Item


def check_rules(
    paths: Sequence[Path], *, notifiers: Collection[str] | None = None
) -> tuple[RuleSet, list[Problem]]:
    """What ``feedwatch check`` reports: every problem of every file, and the examples of
    every rule that compiled, even when other rules (of the same file or another) did not."""
    ruleset, problems = compile_rules(paths, notifiers=notifiers)
    return ruleset, problems + check_examples(ruleset)


def example_item(example: str | ExampleItem, n: int = 0) -> Item:
    """The item an example stands for: a plain text is the summary of an untitled item."""
    if isinstance(example, str):
        return Item(
            feed="example", id=f"example-{n}", title="", summary=example, link=None, published=None
        )
    return Item(
        feed=example.feed,
        id=f"example-{n}",
        title=example.title,
        summary=example.summary,
        link=example.link,
        published=None,
        tags=example.tags,
    )


def check_examples(ruleset: RuleSet) -> list[Problem]:
    """Run every rule's ``examples`` (the query alone: ``enabled`` and ``feeds`` are ignored).

    One Problem per example that does not behave, at the example's position.
    """
    matcher = Matcher(ruleset)
    roots: dict[str, Any] = {}
    problems: list[Problem] = []
    for rule in ruleset.rules:
        for kind in ("match", "no_match"):
            for i, example in enumerate(getattr(rule.examples, kind)):
                found = matcher.evaluate(rule, example_item(example, i))
                if (found is not None) == (kind == "match"):
                    continue
                if found is None:
                    msg = f"rule {rule.id!r} does not match this example, but should"
                else:
                    terms = ", ".join(dict.fromkeys(f"{s.term} ({s.field})" for s in found.spans))
                    msg = f"rule {rule.id!r} matches this example, but should not ({terms})"
                loc = ("rules", rule.index, "examples", kind, i)
                if rule.file not in roots:
                    try:
                        roots[rule.file] = _yaml.load_yaml(rule.file)
                    except ConfigError:
                        roots[rule.file] = None
                line, col = _yaml.position(roots[rule.file], loc) if roots[rule.file] else (0, 0)
                problems.append(Problem(rule.file, line, col, where(loc), msg))
    return problems
