"""Who a story's source is: a publisher, not a feed.

Two BBC feeds, or an aggregator's copy of a BBC report, are one source: ``min_sources``
counts publishers and an alert's ``sources`` lists them. ``publisher`` decides, in order:

1. the feed's ``publisher:`` key, when the config sets one;
2. for an item carrying a ``<source>`` element (an aggregator's item, Google News and similar:
   RSS 2.0 ``<source url="https://www.bbc.co.uk">BBC News</source>``, or an Atom ``<source>``
   with its own link; ``Item.source_url``) whose URL is an absolute http(s) URL: the
   registrable domain of that URL, so the aggregator's copy counts as the original outlet;
3. the registrable domain of the item's link (``bbc.co.uk`` for ``feeds.bbci.co.uk``'s items
   linking to ``www.bbc.co.uk``);
4. the feed's name, for an item with no usable link.

Registrable domains come from the Public Suffix List that the ``publicsuffixlist`` package
bundles (nothing is fetched at run time).
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


def publisher(
    configured: str | None, link: str | None, feed: str, *, source_url: str | None = None
) -> str:
    """The source an item counts as (see the module docstring): ``configured``, else the domain
    of ``source_url`` (the item's ``<source>`` element), else of ``link``, else ``feed``."""
    return configured or _source_domain(source_url) or registrable_domain(link) or feed


def _source_domain(url: str | None) -> str | None:
    """The registrable domain of an absolute http(s) ``url``; None for anything else."""
    url = (url or "").strip()
    try:
        web = urlsplit(url).scheme.lower() in ("http", "https")
    except ValueError:
        return None
    return registrable_domain(url) if web else None
