"""Value types of ``feedwatch.yaml``: durations, sizes, names, URLs, listen addresses.

Each ``Annotated`` type (``Duration``, ``Interval``, ``Size``, ``Name``, ...) checks and converts
one kind of value and raises ``PydanticCustomError`` with a message written for people; values
that may hold secrets (Redis and feed URLs) are never echoed. The ``check_*`` functions are the
building blocks of these types and of the few one-off fields in ``daemon.config.models``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator
from pydantic_core import PydanticCustomError

from alerts.digest import MAX_WINDOW, MIN_WINDOW
from daemon.config.messages import show
from daemon.durations import parse_duration, parse_size
from daemon.errors import RedisUrlError
from daemon.redis import url as redis_url

MIN_INTERVAL = 1.0
MIN_LEASE_TTL = 3.0

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]+")


def _duration(value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise PydanticCustomError("duration", "a duration cannot be negative")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        seconds = None
    else:
        try:
            seconds = parse_duration(value)
        except ValueError:
            seconds = None
    if seconds is None:
        raise PydanticCustomError(
            "duration", "expected a duration like '90s' or '5m', got {got}", {"got": show(value)}
        )
    if seconds < minimum:
        raise PydanticCustomError("duration", f"must be at least {minimum:g}s")
    return seconds


def check_story_window(value: Any) -> float:
    return _duration(value, minimum=60.0)


def check_lease_ttl(value: Any) -> float:
    return _duration(value, minimum=MIN_LEASE_TTL)


def _interval(value: Any) -> float:
    return _duration(value, minimum=MIN_INTERVAL)


def check_quiet_factor(value: float) -> float:
    if value != 0 and not 1 <= value <= 1000:
        raise PydanticCustomError(
            "quiet_factor",
            "expected 0 (never) or a factor from 1 to 1000, got {got}",
            {"got": show(value)},
        )
    return value


def _digest(value: Any) -> float:
    try:
        seconds = _duration(value)
    except PydanticCustomError:
        raise PydanticCustomError(
            "digest", "expected a duration like '15m' or '1h', got {got}", {"got": show(value)}
        ) from None
    if not MIN_WINDOW <= seconds <= MAX_WINDOW:
        raise PydanticCustomError(
            "digest", "a digest window must be between 1m and 24h, got {got}", {"got": show(value)}
        )
    return seconds


def _backfill(value: Any) -> float | None:
    if isinstance(value, str) and value.strip().lower() in ("all", "none"):
        return None if value.strip().lower() == "all" else 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError(
            "backfill",
            "expected a duration like '24h', 'all' or 'none', got {got}",
            {"got": show(value)},
        )
    try:
        return _duration(value)
    except PydanticCustomError:
        raise PydanticCustomError(
            "backfill",
            "expected a duration like '24h', 'all' or 'none', got {got}",
            {"got": show(value)},
        ) from None


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise PydanticCustomError("size", "a size cannot be negative")
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return parse_size(value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "size", "expected a size like '10MB' or '512KiB', got {got}", {"got": show(value)}
    )


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise PydanticCustomError(
            "name",
            "a name may contain only letters, digits, '_', '.' and '-', got {got}",
            {"got": show(value)},
        )
    return value


def check_prefix(value: str) -> str:
    if not _PREFIX.fullmatch(value):
        raise PydanticCustomError(
            "prefix", "a key prefix may contain only letters, digits, '-', '_', '.' and ':'"
        )
    return value


def check_redis_url(value: str) -> str:
    # The URL may hold a password: never echo it (daemon.redis.url's messages do not).
    try:
        redis_url.parse(value)
    except RedisUrlError as e:
        raise PydanticCustomError("redis_url", str(e)) from None
    return value


def check_feed_url(value: str) -> str:
    # Feed URLs may carry tokens: show the scheme at most.
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        got = f", got scheme {parts.scheme!r}" if parts.scheme else ""
        raise PydanticCustomError("feed_url", f"expected an http:// or https:// URL{got}")
    if not parts.hostname:
        raise PydanticCustomError("feed_url", "the URL has no host name")
    return value


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` → ``("127.0.0.1", 9464)``; ``"[::1]:0"`` → ``("::1", 0)``.
    Raises ValueError."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(value)
    return host, int(port)


def check_listen(value: str) -> str:
    try:
        split_listen(value)
    except ValueError:
        raise PydanticCustomError(
            "listen",
            "expected HOST:PORT like '127.0.0.1:9464' (port 0: any free port), got {got}",
            {"got": show(value)},
        ) from None
    return value.strip()


def check_public_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("public_url", "expected an http:// or https:// URL with a host")
    return value


def one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def not_bool(expected: str) -> BeforeValidator:
    """pydantic reads ``true`` as 1; in a config file that is always a mistake."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError("bool", f"expected {expected}, got {show(value)}")
        return value

    return BeforeValidator(check)


def lowercase(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def check_lease(value: Any) -> float:
    return _duration(value, minimum=3600.0)


def is_name(value: str) -> bool:
    """True if ``value`` is a valid feed or notifier name."""
    return _NAME.fullmatch(value) is not None


Duration = Annotated[float, PlainValidator(_duration)]
Interval = Annotated[float, PlainValidator(_interval)]
Backfill = Annotated[float | None, PlainValidator(_backfill)]
DigestWindow = Annotated[float, PlainValidator(_digest)]
Size = Annotated[int, PlainValidator(_size)]
Name = Annotated[str, AfterValidator(_name)]
Int = Annotated[int, not_bool("a whole number")]
Count = Annotated[int, Field(ge=1), not_bool("a whole number")]
Fraction = Annotated[float, not_bool("a number")]
Severity = Literal["info", "low", "medium", "high", "critical"]
