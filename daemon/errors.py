"""Every error feedwatch raises, rooted in one base class.

The tree::

    FeedwatchError                      root of everything feedwatch raises on purpose
    ├── ConfigError(problems)           config or rule files are invalid; carries every Problem
    ├── FeedError(feed)                 one feed failed; carried as a *value* in a poll result
    │   ├── FetchError(kind, status, retry_after)
    │   │                               transport, HTTP status, size cap, deadline, redirects
    │   └── ParseError                  the body is not a feed feedparser can read, or is refused
    ├── StoreError                      Redis was unreachable or answered an error
    ├── RedisUrlError                   a ``redis:`` URL is malformed (message without password)
    ├── NotifyError(recoverable, reason, retry_after)
    │                                   a notifier could not deliver; ``recoverable`` drives retries
    └── PluginError
        ├── PluginNotFoundError(kind, available)
        └── PluginLoadError(kind, target)

Third-party exceptions are wrapped at the module edges and chained (``raise ... from e``), so
the original cause is never lost. ``NotModified`` and "unchanged" are results, not errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


class FeedwatchError(Exception):
    """Root of every error feedwatch raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (ParseError comes back from the parse pool). The
        # default pickling calls ``cls(*self.args)``, which fails for every subclass whose
        # __init__ takes other arguments than its message; rebuild without calling __init__.
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(
    cls: type[FeedwatchError], args: tuple[Any, ...], state: dict[str, Any]
) -> FeedwatchError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config or rule file, located as precisely as we can.

    Renders as ``file:line:column: where: message`` followed by optional detail lines
    (for example the query echoed with a caret under the bad position).
    ``line`` and ``column`` are 1-based; 0 means unknown.
    """

    file: str
    line: int
    column: int
    where: str
    message: str
    detail: tuple[str, ...] = field(default=())

    def render(self) -> str:
        head = f"{self.file}:{self.line}:{self.column}: {self.where}: {self.message}"
        return "\n".join([head, *(f"    {d}" for d in self.detail)])

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.where)


class ConfigError(FeedwatchError):
    """Config or rule files are invalid. ``problems`` lists every problem found, sorted."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=Problem.sort_key))
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class FeedError(FeedwatchError):
    """One feed failed. Carried as a value in a poll result; never stops the loop."""

    kind: str = "feed"

    def __init__(self, feed: str, message: str) -> None:
        self.feed = feed
        self.message = message
        super().__init__(f"{feed}: {message}")


class FetchError(FeedError):
    """The feed could not be fetched.

    ``kind`` is a short machine-readable label used in logs and metrics, one of:
    ``connect``, ``dns``, ``timeout``, ``deadline``, ``http``, ``too_large``, ``redirects``,
    ``transport``, ``decode``.
    """

    def __init__(
        self,
        feed: str,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(feed, message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class ParseError(FeedError):
    """The body could not be read as a feed, or was refused (e.g. entity declarations)."""

    kind = "parse"


class StoreError(FeedwatchError):
    """Redis was unreachable or answered with an error."""


class RedisUrlError(FeedwatchError):
    """A ``redis:`` URL cannot be used (``daemon.redis.url``). The message never holds the
    password; the config layer locates it (``file:line:column``)."""


class NotifyError(FeedwatchError):
    """A notifier could not deliver an alert.

    ``recoverable``: retrying may succeed (timeouts, 5xx, 429). Permanent errors (4xx other than
    429, bad configuration) go to the dead-letter stream at once.
    ``reason``: one of ``client``, ``server``, ``auth``, ``rate_limited``, ``timeout``,
    ``transport``, ``config``; used in logs and metrics.
    ``retry_after``: seconds the target asked us to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        recoverable: bool,
        reason: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.recoverable = recoverable
        self.reason = reason
        self.retry_after = retry_after


class PluginError(FeedwatchError):
    """A notifier plugin could not be found or loaded."""


class PluginNotFoundError(PluginError):
    def __init__(self, kind: str, available: Sequence[str]) -> None:
        self.kind = kind
        self.available = tuple(sorted(available))
        super().__init__(
            f"unknown notifier type {kind!r} (available: {', '.join(self.available) or 'none'})"
        )


class PluginLoadError(PluginError):
    def __init__(self, kind: str, target: str, reason: str) -> None:
        self.kind = kind
        self.target = target
        super().__init__(f"notifier type {kind!r} ({target}) could not be loaded: {reason}")
