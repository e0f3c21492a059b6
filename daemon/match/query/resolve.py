"""Aliases (``@name``) expanded, and NEAR operands checked, before a query is compiled.

An alias is a named query defined once (in any rule file) and usable in every rule and in other
aliases. A reference to an unknown alias, and a cycle (``@a`` uses ``@b`` uses ``@a``), is an
error. NEAR accepts words, phrases, wildcards, ``{}`` terms, and parenthesised OR-groups of them
(or of other NEARs), directly or through an alias.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from daemon.match.query.ast import AliasRef, And, Group, Near, Node, Not, Or, Regex, Scope, Term
from daemon.match.query.errors import QuerySyntaxError
from daemon.match.query.lexer import did_you_mean
from daemon.match.query.parser import parse

NEAR_OPERANDS = "words, phrases, wildcards, {} terms, or (… OR …) groups of them"


class BrokenAliasError(Exception):
    """A query uses an alias whose own definition is wrong (that problem is reported there)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


Lookup = Callable[[AliasRef], Node]


class AliasTable:
    """Every alias, parsed and expanded once. ``errors`` holds the problem of each bad alias,
    located in that alias's own text; aliases that only depend on a bad one are broken silently.
    """

    def __init__(self, definitions: Mapping[str, str]) -> None:
        self.texts = dict(definitions)
        self.errors: dict[str, QuerySyntaxError] = {}
        self._parsed: dict[str, Node] = {}
        self._resolved: dict[str, Node] = {}
        self._broken: set[str] = set()
        for name, text in self.texts.items():
            try:
                self._parsed[name] = parse(text)
            except QuerySyntaxError as e:
                self.errors[name] = e
        for name in self._parsed:
            try:
                self._resolve(name, [])
            except BrokenAliasError:
                pass  # recorded in ``errors`` (or depends on an alias that is)

    def _resolve(self, name: str, stack: list[str]) -> Node:
        if name in self._resolved:
            return self._resolved[name]
        if name in self.errors or name in self._broken:
            raise BrokenAliasError(name)
        stack.append(name)

        def lookup(ref: AliasRef) -> Node:
            if ref.name in stack:
                cycle = [*stack[stack.index(ref.name) :], ref.name]
                self._broken.update(cycle)
                raise QuerySyntaxError(
                    "alias cycle: " + " → ".join("@" + n for n in cycle), ref.pos, ref.end
                )
            self._known(ref)
            return self._resolve(ref.name, stack)

        try:
            node = expand(self._parsed[name], lookup)
        except QuerySyntaxError as e:
            self.errors[name] = e
            raise BrokenAliasError(name) from e
        except BrokenAliasError:
            self._broken.add(name)
            raise
        finally:
            stack.pop()
        self._resolved[name] = node
        return node

    def _known(self, ref: AliasRef) -> None:
        if ref.name not in self.texts:
            hint = did_you_mean(ref.name, sorted(self.texts)).replace(" '", " '@")
            raise QuerySyntaxError(f"unknown alias '@{ref.name}'{hint}", ref.pos, ref.end)

    def _lookup(self, ref: AliasRef) -> Node:
        self._known(ref)
        return self._resolve(ref.name, [])

    def expand(self, node: Node) -> Node:
        """``node`` with every ``@alias`` replaced by its definition; NEAR operands checked.

        Raises QuerySyntaxError (positions in the query) or BrokenAliasError.
        """
        return expand(node, self._lookup)


def expand(node: Node, lookup: Lookup) -> Node:
    if isinstance(node, Term | Regex):
        return node
    if isinstance(node, AliasRef):
        return Group(lookup(node), pos=node.pos, end=node.end)
    if isinstance(node, Group):
        return Group(expand(node.child, lookup), pos=node.pos, end=node.end)
    if isinstance(node, Scope):
        return Scope(node.field, expand(node.child, lookup), pos=node.pos, end=node.end)
    if isinstance(node, Not):
        return Not(expand(node.child, lookup), pos=node.pos, end=node.end)
    if isinstance(node, Near):
        for operand in (node.left, node.right):
            check_near_operand(operand, lookup)
        return Near(
            expand(node.left, lookup),
            expand(node.right, lookup),
            node.distance,
            node.ordered,
            pos=node.pos,
            end=node.end,
        )
    children = tuple(expand(c, lookup) for c in node.children)
    if isinstance(node, And):
        return And(children, pos=node.pos, end=node.end)
    return Or(children, pos=node.pos, end=node.end)


def check_near_operand(node: Node, lookup: Lookup, via: AliasRef | None = None) -> None:
    """Raise QuerySyntaxError unless ``node`` can be an operand of NEAR."""
    if isinstance(node, Term):
        return
    if isinstance(node, Group):
        check_near_operand(node.child, lookup, via)
        return
    if isinstance(node, Or):
        for c in node.children:
            check_near_operand(c, lookup, via)
        return
    if isinstance(node, Near):
        check_near_operand(node.left, lookup, via)
        check_near_operand(node.right, lookup, via)
        return
    if isinstance(node, AliasRef):
        check_near_operand(lookup(node), lookup, via or node)
        return
    if isinstance(node, Scope):
        why = (
            f"a field scope ({node.field}:) cannot be used inside NEAR;"
            " scope the whole expression instead, e.g. title:(A NEAR/5 B)"
        )
    elif isinstance(node, Regex):
        why = "a /regex/ cannot be an operand of NEAR"
    else:
        op = "AND" if isinstance(node, And) else "NOT"
        why = f"inside NEAR, terms can only be combined with OR, not {op}"
    if via is not None:
        raise QuerySyntaxError(
            f"@{via.name} cannot be used with NEAR: {why} (NEAR takes {NEAR_OPERANDS})",
            via.pos,
            via.end,
        )
    raise QuerySyntaxError(f"{why} (NEAR takes {NEAR_OPERANDS})", node.pos, node.end)
