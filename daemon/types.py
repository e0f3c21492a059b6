"""Frozen data passed between the stages of the pipeline. Contains no business logic.

Every stage after fetching is a pure function over these values:
fetch → ``FetchResult`` → parse+normalise → ``list[Item]`` → decide → match → ``Alert``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Item:
    """One feed entry, normalised.

    ``id`` is stable within its feed: the entry's guid, else its canonical link, else a hash of
    its content. ``summary`` is the plain text of the entry's summary and content (HTML stripped,
    entities decoded, whitespace collapsed). ``published`` is timezone-aware UTC or None.
    ``tags`` are the *feed's* configured tags (rules can scope on them). ``source_url`` is the
    URL of the entry's ``<source>`` element (an aggregator's pointer to the original outlet: RSS
    2.0 ``<source url=…>``, Atom ``<source>``'s link), absolute http(s) only, else None.
    """

    feed: str
    id: str
    title: str
    summary: str
    link: str | None
    published: datetime | None
    tags: tuple[str, ...] = field(default=())
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class Caching:
    """What a server told us last time, for the next conditional GET."""

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A successful fetch.

    ``not_modified`` is True for a 304 (``body`` is then empty). ``caching`` carries the
    validators to store for next time (and the hash of the body). ``retry_after`` /
    ``max_age`` are what the server asked of our next poll, in seconds, if anything.
    """

    url: str
    status: int
    body: bytes
    headers: dict[str, str]
    caching: Caching
    not_modified: bool = False
    elapsed: float = 0.0
    max_age: float | None = None


@dataclass(frozen=True, slots=True)
class MatchSpan:
    """Where a term of a rule matched: character offsets into ``field``'s plain text."""

    term: str
    field: str
    start: int
    end: int
