"""``${VAR}`` interpolation of config values, recording which values came from the environment.

``${VAR}`` is replaced by the variable's value (a problem if it is not set), ``${VAR:-default}``
by the value or, when unset or empty, by ``default``; ``$${`` is a literal ``${``. Only values
are interpolated, never keys. Every location that received an env value is marked tainted and
its non-empty values kept as secrets in the ``Ctx``, so problems there are redacted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from daemon.config.context import Ctx, Loc

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def interpolate(node: Any, loc: Loc, ctx: Ctx) -> Any:
    """Plain data (dicts, lists, scalars) with ``${VAR}`` replaced in every string value."""
    if isinstance(node, Mapping):
        return {str(k): interpolate(v, (*loc, str(k)), ctx) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [interpolate(v, (*loc, i), ctx) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _substitute(str(node), loc, ctx)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _substitute(text: str, loc: Loc, ctx: Ctx) -> str:
    if "${" not in text:
        return text
    env = os.environ if ctx.env is None else ctx.env
    errors: list[str] = []

    def replace(m: re.Match[str]) -> str:
        written = m.group(0)
        if written == "$${":
            return "${"
        if m.group(1) is None:
            errors.append("unclosed '${' (write '$${' for a literal '${')")
            return written
        ref = _VAR.fullmatch(m.group(1))
        if ref is None:
            errors.append(f"malformed variable reference {written!r} (write '$${{' for a literal)")
            return written
        name, default = ref.group(1), ref.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                errors.append(f"environment variable {name} is not set")
                return written
            return default
        ctx.tainted.add(loc)
        if value:
            ctx.secrets.setdefault(loc, set()).add(value)
        return value

    result = _REF.sub(replace, text)
    for message in errors:
        ctx.add(loc, message)
    if errors:
        ctx.broken.add(loc)
    return result
