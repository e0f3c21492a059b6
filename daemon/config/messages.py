"""Wording of config problems: values shown plainly, pydantic errors in words, secrets masked.

Shared by the config loader (``daemon.config.load``), its value types (``daemon.config.values``)
and the rule loader (``daemon.match.rules``), so a problem reads the same wherever it is found.
Nothing here echoes a secret: ``redact`` masks env-derived values in any text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_core import ErrorDetails


def show(value: Any) -> str:
    """A short, plain description of a value for a problem message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def closest(word: str, known: Sequence[str]) -> str | None:
    """The entry of ``known`` that ``word`` was probably meant to be, if one is close."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key(key: str, known: Sequence[str]) -> str:
    close = closest(key, known)
    if close:
        return f"unknown key {key!r} (did you mean {close!r}?)"
    if known:
        return f"unknown key {key!r} (known keys: {', '.join(known)})"
    return f"unknown key {key!r}"


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be more than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
}


def message_for(detail: ErrorDetails) -> str:
    kind, value, context = detail["type"], detail.get("input"), detail.get("ctx") or {}
    if kind == "missing":
        return "required key missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {show(value)}"
    if kind == "literal_error":
        return f"expected {context.get('expected', 'one of the allowed values')}, got {show(value)}"
    if kind in _BOUNDS:
        name, template = _BOUNDS[kind]
        bound = context.get(name, "?")
        return template.format(f"{bound:g}" if isinstance(bound, float) else bound)
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    msg = detail["msg"]
    return msg[:1].lower() + msg[1:]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (as written and as ``repr`` escapes it) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***").replace(repr(secret)[1:-1], "***")
    return text
