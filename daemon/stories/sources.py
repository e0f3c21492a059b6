"""Who a story's source is: a publisher, not a feed.

Two BBC feeds, or an aggregator's copy of a BBC report, are one source: ``min_sources``
counts publishers and an alert's ``sources`` lists them. ``publisher`` decides, in order:

1. the feed's ``publisher:`` key, when the config sets one;
2. the registrable domain of the item's link (``bbc.co.uk`` for ``feeds.bbci.co.uk``'s items
   linking to ``www.bbc.co.uk``), from the Public Suffix List that the ``publicsuffixlist``
   package bundles (nothing is fetched at run time);
3. the feed's name, for an item with no usable link.

Not done yet: an aggregator item's RSS ``<source url=…>`` (Google News and similar) is not
read, so such an item counts as the aggregator's link's domain.
Pure: no I/O after the list is loaded (once per process).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@lru_cache(maxsize=4096)
def registrable_domain(url: str | None) -> str | None:
    """``bbc.co.uk`` for ``https://www.bbc.co.uk/news/x``; None for no usable host."""
    if not url:
        return None
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if not host or host.replace(".", "").isdigit() or ":" in host:
        return host or None  # an IP address is its own "domain"
    return _psl().privatesuffix(host) or host


def publisher(configured: str | None, link: str | None, feed: str) -> str:
    """The source an item counts as (see the module docstring)."""
    return configured or registrable_domain(link) or feed
