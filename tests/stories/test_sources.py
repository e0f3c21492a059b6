"""Who a source is (daemon/stories/sources.py): the feed's publisher, else the registrable
domain of the item's <source> element's URL, else of the item's link, else the feed."""

from __future__ import annotations

import pytest

from daemon.stories.sources import publisher, registrable_domain


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.bbc.co.uk/news/world-1", "bbc.co.uk"),
        ("https://feeds.bbci.co.uk/news/rss.xml", "bbci.co.uk"),
        ("http://rss.cnn.com/~r/rss/cnn_topstories/~3/x", "cnn.com"),
        ("https://edition.cnn.com/2023/03/10/x.html", "cnn.com"),
        ("https://www.abc.net.au/news/x", "abc.net.au"),
        ("https://someone.github.io/blog/x", "someone.github.io"),
        ("https://WWW.Reuters.COM./world/", "reuters.com"),
        ("http://203.0.113.7/feed", "203.0.113.7"),
        ("not a url", None),
        ("", None),
        (None, None),
    ],
)
def test_registrable_domain(url: str | None, domain: str | None) -> None:
    assert registrable_domain(url) == domain


def test_the_configured_publisher_wins_then_the_link_then_the_feed() -> None:
    assert publisher("BBC", "https://www.bbc.co.uk/x", "bbc-world") == "BBC"
    assert publisher(None, "https://www.bbc.co.uk/x", "bbc-world") == "bbc.co.uk"
    assert publisher(None, None, "bbc-world") == "bbc-world"


GNEWS_LINK = "https://news.google.com/rss/articles/CBMiAWE?oc=5"


def test_an_aggregator_item_counts_as_its_source_elements_outlet() -> None:
    """A Google-News-like item (link on news.google.com) with <source url=bbc> is bbc.co.uk,
    the same source as the BBC's own feeds."""
    bbc = "https://www.bbc.co.uk"
    assert publisher(None, GNEWS_LINK, "gnews", source_url=bbc) == "bbc.co.uk"
    assert publisher(None, GNEWS_LINK, "gnews", source_url=" https://www.bbc.co.uk/news ") == (
        "bbc.co.uk"
    )
    own = publisher(None, "https://www.bbc.co.uk/news/world-1", "bbc-world")
    assert own == publisher(None, GNEWS_LINK, "gnews", source_url=bbc)
    assert publisher(None, GNEWS_LINK, "gnews") == "google.com"  # no source element


def test_the_configured_publisher_wins_over_the_source_element() -> None:
    assert publisher("Aggregated", GNEWS_LINK, "gnews", source_url="https://www.bbc.co.uk") == (
        "Aggregated"
    )


@pytest.mark.parametrize(
    "source_url",
    ["/news/world-1", "www.bbc.co.uk/news", "javascript:alert(1)", "ftp://www.bbc.co.uk/x",
     "https://", "http://[::1", "not a url", "", None],
)  # fmt: skip
def test_an_unusable_source_url_falls_back_to_the_link_then_the_feed(
    source_url: str | None,
) -> None:
    assert publisher(None, GNEWS_LINK, "gnews", source_url=source_url) == "google.com"
    assert publisher(None, None, "gnews", source_url=source_url) == "gnews"
