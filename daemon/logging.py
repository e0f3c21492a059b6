"""Structured logging with secret redaction. Contains no business logic.

Call sites log an event name plus fields: ``log(logger, "poll", feed="bbc", outcome="ok")``.
``--log-format text`` renders ``2026-11-21T04:16:52Z INFO poll feed=bbc outcome=ok``;
``json`` renders one JSON object per line. Every value that came from the environment
(``${VAR}`` in the config) is a secret: the handler replaces it with ``***`` in every line,
whatever logger produced it. httpx logs request URLs (webhook URLs are secrets) at INFO, so its
loggers are held at WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

_FIELDS = "fw_fields"


def log(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with structured ``fields``."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: fields}, stacklevel=2)


MAX_VALUE = 1000  # characters of one field value in a text line


def _escape(text: str) -> str:
    """Control characters (ESC, CR, LF, NUL…) as escapes: a log line cannot be forged or
    turned into terminal commands by text from a feed or a request."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _fmt_value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
    if len(s) > MAX_VALUE:
        s = s[:MAX_VALUE] + "…"
    if s == "" or any(c in s for c in ' ="'):
        return _escape(json.dumps(s, ensure_ascii=False))  # JSON escapes what is below 0x20
    return _escape(s)


class _Base(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    def _time(self, record: logging.LogRecord) -> str:
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TextFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, _FIELDS, {}) or {}
        parts = [self._time(record), record.levelname, _escape(record.getMessage())]
        parts += [f"{k}={_fmt_value(v)}" for k, v in fields.items() if v is not None]
        if record.name and not record.name.startswith(("daemon", "alerts")):
            parts.append(f"logger={record.name}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


class JsonFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, _FIELDS, {}) or {}
        obj: dict[str, Any] = {
            "ts": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **fields,
        }
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(obj, default=str, ensure_ascii=False))


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger; returns the handler (tests can inspect it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_feedwatch", False):
            root.removeHandler(h)
    handler._feedwatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler", "asyncio", "aiosmtplib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
