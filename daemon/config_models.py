"""The shape of ``feedwatch.yaml``: pydantic models for the sections, frozen results.

Every model rejects unknown keys. Custom value types (durations, sizes, names, URLs) raise
``PydanticCustomError`` with a message written for people; ``daemon.config`` turns every
validation error into a located ``Problem``.

Results hold env-derived values (``secrets``) only so that their ``repr`` can hide them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from alerts.base import NotifierOptions
from alerts.digest import MAX_WINDOW, MIN_WINDOW
from daemon import redis_url
from daemon.durations import parse_duration, parse_size
from daemon.errors import RedisUrlError

SEVERITIES = ("info", "low", "medium", "high", "critical")
REDIS_SCHEMES = tuple(redis_url.SCHEMES)
MIN_INTERVAL = 1.0
NOTIFIER_KEYS = ("type", "min_severity", "max_attempts", "digest")

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]+")


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


# -- value types ------------------------------------------------------------------------------


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


def _story_window(value: Any) -> float:
    return _duration(value, minimum=60.0)


def _interval(value: Any) -> float:
    return _duration(value, minimum=MIN_INTERVAL)


def _quiet_factor(value: float) -> float:
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


def _prefix(value: str) -> str:
    if not _PREFIX.fullmatch(value):
        raise PydanticCustomError(
            "prefix", "a key prefix may contain only letters, digits, '-', '_', '.' and ':'"
        )
    return value


def _redis_url(value: str) -> str:
    # The URL may hold a password: never echo it (daemon.redis_url's messages do not).
    try:
        redis_url.parse(value)
    except RedisUrlError as e:
        raise PydanticCustomError("redis_url", str(e)) from None
    return value


def _feed_url(value: str) -> str:
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


def _listen(value: str) -> str:
    try:
        split_listen(value)
    except ValueError:
        raise PydanticCustomError(
            "listen",
            "expected HOST:PORT like '127.0.0.1:9464' (port 0: any free port), got {got}",
            {"got": show(value)},
        ) from None
    return value.strip()


def _public_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("public_url", "expected an http:// or https:// URL with a host")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _not_bool(expected: str) -> BeforeValidator:
    """pydantic reads ``true`` as 1; in a config file that is always a mistake."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError("bool", f"expected {expected}, got {show(value)}")
        return value

    return BeforeValidator(check)


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Duration = Annotated[float, PlainValidator(_duration)]
Interval = Annotated[float, PlainValidator(_interval)]
Backfill = Annotated[float | None, PlainValidator(_backfill)]
DigestWindow = Annotated[float, PlainValidator(_digest)]
Size = Annotated[int, PlainValidator(_size)]
Name = Annotated[str, AfterValidator(_name)]
Int = Annotated[int, _not_bool("a whole number")]
Count = Annotated[int, Field(ge=1), _not_bool("a whole number")]
Fraction = Annotated[float, _not_bool("a number")]
Severity = Literal["info", "low", "medium", "high", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sections used as they are ----------------------------------------------------------------


class Defaults(_Strict):
    """Per-feed and per-rule defaults. ``backfill`` None means "all", 0.0 means "none"."""

    interval: Interval = 600.0
    # Adaptive polling bounds (daemon/rhythm.py); None: the interval (fixed, as before).
    min_interval: Interval | None = None
    max_interval: Interval | None = None
    backfill: Backfill = 86400.0
    notify: tuple[Name, ...] = ()
    jitter: Fraction = Field(default=0.1, ge=0.0, le=0.5)


class FetchConfig(_Strict):
    deadline: Duration = 30.0
    connect_timeout: Duration = 10.0
    max_bytes: Size = 10_000_000
    max_redirects: Int = Field(default=5, ge=0)
    user_agent: str | None = None
    concurrency: Count = 32
    per_host: Count = 4


class PollingConfig(_Strict):
    max_backoff: Duration = 6 * 3600.0
    shutdown_grace: Duration = 10.0
    parse_workers: Int = Field(default=0, ge=0)  # 0 = one per CPU
    # How long a story is remembered after its first item (daemon/story_store.py).
    story_window: Annotated[float, PlainValidator(_story_window)] = 48 * 3600.0
    # A feed failing this long raises a feed-health alert (daemon/feed_health.py); 0: never.
    alert_after: Duration = 6 * 3600.0
    # A feed silent for quiet_factor x its usual gap (and at least quiet_min) raises a
    # feed-health alert (daemon/rhythm.py); 0: never.
    quiet_factor: Annotated[float, AfterValidator(_quiet_factor), _not_bool("a number")] = 4.0
    quiet_min: Duration = 12 * 3600.0


class DeliveryConfig(_Strict):
    max_attempts: Count = 5
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 300.0
    claim_after: Duration = 60.0
    stream_maxlen: Count = 100_000
    send_timeout: Duration = 30.0
    concurrency: Count = 16
    delivered_ttl: Duration = 7 * 86400.0


class HttpConfig(_Strict):
    """The health and metrics endpoint (``daemon.http``). ``public_url``: how others reach it
    (WebSub callbacks: ``<public_url>/websub/…``; set it to turn WebSub on)."""

    listen: Annotated[str, AfterValidator(_listen)]
    public_url: Annotated[str, AfterValidator(_public_url)] | None = None

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


def _lease(value: Any) -> float:
    return _duration(value, minimum=3600.0)


class WebSubConfig(_Strict):
    """WebSub (``daemon.websub``), active when ``http.public_url`` is set. ``lease``: the
    lease asked of hubs (they may grant another); ``fallback_interval``: how often a feed
    with an active subscription is still polled (at least its own interval);
    ``allow_private_hubs``: contact hubs on loopback, private, link-local… addresses (hub URLs
    come from feeds: off, such a hub is refused)."""

    lease: Annotated[float, PlainValidator(_lease)] = 7 * 86400.0
    fallback_interval: Interval = 3600.0
    allow_private_hubs: Annotated[bool, Field(strict=True)] = False


class LogConfig(_Strict):
    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower)
    ] = "info"
    format: Literal["text", "json"] = "text"


# -- raw input, resolved by daemon.config -----------------------------------------------------


class RawTop(_Strict):
    """Top-level keys. Sections are ``Any`` here and validated one by one."""

    redis: Annotated[str, AfterValidator(_redis_url)] | None = None
    prefix: Annotated[str, AfterValidator(_prefix)] = "feedwatch"
    state_dir: str = ".feedwatch"
    rules: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = ("rules",)
    defaults: Any = None
    feeds: Any = None
    notifiers: Any = None
    fetch: Any = None
    polling: Any = None
    delivery: Any = None
    log: Any = None
    http: Any = None
    websub: Any = None


def _without_nulls(data: Any, keep: tuple[str, ...]) -> Any:
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None or k in keep}
    return data


class RawFeed(_Strict):
    """One ``feeds`` entry. Omitted (or null) overrides take the value from ``defaults``."""

    name: Name
    url: Annotated[str, AfterValidator(_feed_url)]
    interval: Interval = MIN_INTERVAL
    min_interval: Interval | None = None
    max_interval: Interval | None = None
    tags: tuple[str, ...] = ()
    backfill: Backfill = None

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return _without_nulls(data, ("name", "url"))


class RawOpmlEntry(_Strict):
    """A ``feeds`` entry bringing every feed of an OPML file; its overrides apply to each."""

    opml: Annotated[str, Field(min_length=1)]
    interval: Interval = MIN_INTERVAL
    min_interval: Interval | None = None
    max_interval: Interval | None = None
    tags: tuple[str, ...] = ()
    backfill: Backfill = None

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return _without_nulls(data, ("opml",))


def is_name(value: str) -> bool:
    """True if ``value`` is a valid feed or notifier name."""
    return _NAME.fullmatch(value) is not None


class RawNotifierHead(_Strict):
    """The keys every notifier entry has; all the others are the plugin's options."""

    type: str
    min_severity: Severity = "info"
    max_attempts: Count | None = None
    digest: DigestWindow | None = None


# -- messages -------------------------------------------------------------------------------


def unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
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


# -- results ----------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (as written and as ``repr`` escapes it) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***").replace(repr(secret)[1:-1], "***")
    return text


class _Redacted:
    """A dataclass ``repr`` with the object's ``secrets`` masked."""

    secrets: frozenset[str]

    def __repr__(self) -> str:
        items = fields(self)  # type: ignore[arg-type]
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in items if f.repr)
        return redact(f"{type(self).__name__}({shown})", self.secrets)


@dataclass(frozen=True, repr=False)
class FeedConfig(_Redacted):
    """One feed. Durations in seconds; ``backfill`` None = "all", 0.0 = "none"."""

    name: str
    url: str
    interval: float
    tags: tuple[str, ...] = ()
    backfill: float | None = 86400.0
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    min_interval: float | None = None  # None: the interval (see ``bounds``)
    max_interval: float | None = None

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lo, hi)`` the effective interval stays in; ``lo == hi``: a fixed interval."""
        lo = self.interval if self.min_interval is None else min(self.min_interval, self.interval)
        hi = self.interval if self.max_interval is None else max(self.max_interval, self.interval)
        return lo, hi


@dataclass(frozen=True, repr=False)
class NotifierConfig(_Redacted):
    """One configured notifier instance; ``options`` is a validated ``Options`` of its plugin.

    ``digest``: seconds of the digest window (alerts gathered into one message), or None.
    """

    name: str
    type: str
    min_severity: str
    max_attempts: int | None
    options: NotifierOptions
    digest: float | None = None
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


@dataclass(frozen=True, repr=False)
class Config(_Redacted):
    """The whole validated configuration. Paths are absolute.

    ``secrets`` holds every non-empty value that came from the environment, so logging can
    redact them; ``repr`` never shows them.
    """

    source: Path | None
    base_dir: Path
    redis: str | None
    prefix: str
    state_dir: Path
    rules: tuple[Path, ...]
    defaults: Defaults
    feeds: tuple[FeedConfig, ...]
    notifiers: dict[str, NotifierConfig]
    fetch: FetchConfig
    polling: PollingConfig
    delivery: DeliveryConfig
    log: LogConfig
    http: HttpConfig | None = None  # None: no HTTP endpoint
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    websub: WebSubConfig = field(default_factory=WebSubConfig)

    def feed(self, name: str) -> FeedConfig:
        """The feed called ``name``; KeyError if there is none."""
        for f in self.feeds:
            if f.name == name:
                return f
        raise KeyError(name)
