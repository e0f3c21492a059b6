"""``ParsedFeed``: a feed as read, before normalisation; what every reader of a format returns.

Its own module so that the readers (``feed``, ``fast``, ``jsonfeed``) and ``normalize`` all
depend on it and not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A feed as read, before normalisation.

    ``entries`` are feedparser's entry dicts (JSON Feed entries are built in the same shape).
    ``kind`` is ``rss``, ``atom``, ``rdf``, ``cdf``, ``json`` or ``unknown``; ``version`` is
    feedparser's finer label (``rss20``, ``atom10``, ``json11``…). ``hubs`` and ``self_url``
    are the ``rel="hub"`` / ``rel="self"`` links (for WebSub). ``bozo`` describes an
    ill-formedness that was tolerated. ``base`` is the URL relative links resolve against.
    """

    title: str
    link: str | None
    entries: tuple[dict[str, Any], ...]
    kind: str
    version: str = ""
    hubs: tuple[str, ...] = ()
    self_url: str | None = None
    bozo: str | None = None
    base: str = ""
