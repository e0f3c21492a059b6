"""feedwatch's query language: words, phrases, wildcards, ``{Case}``, AND/OR/NOT, NEAR/n,
ONEAR/n, field scopes, ``/regex/`` and ``@aliases``. Pure: no I/O.

    parse(text)                     → syntax tree (daemon.match.query.ast), or QuerySyntaxError
    AliasTable({name: text})        → aliases parsed and expanded once; .errors per bad alias
    compile_text(text, aliases)     → Query (matches / explain against a Doc)

The reference for analysts is ``rules/README.md``.
"""

from __future__ import annotations

from daemon.match.query.ast import DEFAULT_FIELDS, FIELDS, Node, unparse
from daemon.match.query.compile import Query, compile_query, literal_key
from daemon.match.query.doc import Doc
from daemon.match.query.errors import QuerySyntaxError
from daemon.match.query.parser import parse
from daemon.match.query.resolve import AliasTable, BrokenAliasError

__all__ = [
    "DEFAULT_FIELDS",
    "FIELDS",
    "AliasTable",
    "BrokenAliasError",
    "Doc",
    "Node",
    "Query",
    "QuerySyntaxError",
    "compile_query",
    "compile_text",
    "literal_key",
    "parse",
    "unparse",
]

_NO_ALIASES = AliasTable({})


def compile_text(text: str, aliases: AliasTable | None = None) -> Query:
    """Parse, expand aliases and compile ``text``. Raises QuerySyntaxError / BrokenAliasError."""
    table = _NO_ALIASES if aliases is None else aliases
    return compile_query(table.expand(parse(text)), text)
