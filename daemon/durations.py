"""Durations and sizes written by people: ``90s``, ``5m``, ``1h30m``, ``2d``, ``10MB``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 10**6,
    "mib": 2**20,
    "gb": 10**9,
    "gib": 2**30,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(text: str | float) -> float:
    """Seconds in ``text``: a number (seconds) or parts like ``1h30m``. Raises ValueError."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like '90s' or '5m', got {text!r}")
    s = text.strip().lower().replace(" ", "")
    if not s:
        raise ValueError("empty duration")
    try:
        return parse_duration(float(s))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"expected a duration like '90s', '5m', '1h30m' or '2d', got {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest readable form: ``90`` → ``1m30s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = [], int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def parse_size(text: str | int) -> int:
    """Bytes in ``text``: an integer or ``10MB``, ``512KiB``. Raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a size cannot be negative")
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a size like '10MB', got {text!r}")
    m = _SIZE.fullmatch(text.strip().lower())
    if not m or m.group(2) not in _SIZE_UNITS:
        raise ValueError(f"expected a size like '10MB' or '512KiB', got {text!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
