"""The syntax tree of a query: frozen nodes, each remembering where it was written.

``pos``/``end`` are character offsets into the text the node was parsed from (the query, or an
alias definition). They are left out of equality, so ``parse(unparse(q)) == parse(q)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FIELDS = ("title", "summary", "link", "feed", "tag")


def _where() -> Any:
    """A position field: kept on the node, left out of equality."""
    return field(default=0, compare=False)


DEFAULT_FIELDS = ("title", "summary")


@dataclass(frozen=True, slots=True)
class Term:
    """A word, a phrase, a prefix wildcard or a ``{case-sensitive}`` term.

    ``words`` are the normalised words, matched consecutively; if ``prefix`` the last one is a
    prefix. ``exact`` (for ``{…}``) holds the words as written, compared case-sensitively.
    ``forms``: a plain word or phrase also matches its word forms (see ``forms``); False when
    written ``=word`` / ``="a phrase"``. Wildcards and ``{…}`` never use forms.
    ``text`` is the term as written in the query (reported in match explanations).
    """

    text: str
    words: tuple[str, ...]
    prefix: bool = False
    exact: tuple[str, ...] | None = None
    forms: bool = True
    pos: int = _where()
    end: int = _where()

    @property
    def uses_forms(self) -> bool:
        """Whether this term matches word forms (a plain word or phrase, not marked ``=``)."""
        return self.forms and not self.prefix and self.exact is None


@dataclass(frozen=True, slots=True)
class Regex:
    """``/pattern/``: an RE2 regular expression searched in the field text."""

    text: str
    pattern: str
    pos: int = _where()
    end: int = _where()


@dataclass(frozen=True, slots=True)
class AliasRef:
    """``@name``: stands for the query of the alias ``name``."""

    name: str
    pos: int = _where()
    end: int = _where()


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    pos: int = _where()
    end: int = _where()


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    pos: int = _where()
    end: int = _where()


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    pos: int = _where()
    end: int = _where()


@dataclass(frozen=True, slots=True)
class Near:
    """``left NEAR/n right`` (``ordered``: ``ONEAR``, left before right).

    Within ``n`` words: at most ``n`` other words between the two.
    """

    left: Node
    right: Node
    distance: int
    ordered: bool = False
    pos: int = _where()
    end: int = _where()


@dataclass(frozen=True, slots=True)
class Scope:
    """``field:child`` — ``child`` looks only in ``field``."""

    field: str
    child: Node
    pos: int = _where()
    end: int = _where()


@dataclass(frozen=True, slots=True)
class Group:
    """``( … )`` as written; kept so NEAR can tell a parenthesised OR-group from a bare one."""

    child: Node
    pos: int = _where()
    end: int = _where()


Node = Term | Regex | AliasRef | And | Or | Not | Near | Scope | Group


def unparse(node: Node) -> str:
    """Query text for ``node`` that parses back to an equal tree."""
    if isinstance(node, Term | Regex):
        return node.text
    if isinstance(node, AliasRef):
        return "@" + node.name
    if isinstance(node, Group):
        return "(" + unparse(node.child) + ")"
    if isinstance(node, Scope):
        return node.field + ":" + unparse(node.child)
    if isinstance(node, Not):
        return "NOT " + unparse(node.child)
    if isinstance(node, Near):
        op = ("ONEAR" if node.ordered else "NEAR") + f"/{node.distance}"
        return f"{unparse(node.left)} {op} {unparse(node.right)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(unparse(c) for c in node.children)


def walk(node: Node) -> list[Node]:
    """``node`` and every node below it, parents first."""
    out: list[Node] = [node]
    if isinstance(node, And | Or):
        for c in node.children:
            out.extend(walk(c))
    elif isinstance(node, Not | Scope | Group):
        out.extend(walk(node.child))
    elif isinstance(node, Near):
        out.extend(walk(node.left))
        out.extend(walk(node.right))
    return out
