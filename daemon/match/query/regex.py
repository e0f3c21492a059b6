"""``/pattern/`` terms: compiled by RE2 (google-re2), which runs in time linear in the text.

RE2 has no backtracking, so no pattern can stall the daemon; the price is that look-arounds and
back-references are not supported (RE2 rejects them when the rule is loaded).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from daemon.match.query.errors import QuerySyntaxError


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # we report the error ourselves, with its position
    return re2.compile(pattern, options)


def compile_regex(pattern: str, pos: int = 0, end: int | None = None) -> Any:
    """The compiled RE2 pattern; raises QuerySyntaxError at ``pos`` if RE2 rejects it."""
    try:
        return _compile(pattern)
    except re2.error as e:
        reason = e.args[0] if e.args else e
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise QuerySyntaxError(f"invalid regular expression: {reason}", pos, end) from e
