"""canonical_url and absolute_link: one spelling per article link."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.parse.urls import absolute_link, canonical_url

CASES = [
    # scheme, host, port
    ("HTTP://Example.COM", "https://example.com/"),
    ("https://example.com/", "https://example.com/"),
    ("http://example.com:80/a", "https://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("https://example.com./a", "https://example.com/a"),
    ("//example.com/a", "https://example.com/a"),
    ("https://user:secret@example.com/a", "https://example.com/a"),
    ("http://[2001:DB8::1]:8080/a/", "https://[2001:db8::1]:8080/a"),
    # fragments and trailing slashes
    ("https://example.com/a/b/#comments", "https://example.com/a/b"),
    ("https://example.com/a/b//", "https://example.com/a/b"),
    ("https://example.com/#top", "https://example.com/"),
    ("https://example.com/A/Case", "https://example.com/A/Case"),
    # tracking parameters and ordering
    ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
    ("https://example.com/a?b=2&a=1&fbclid=XYZ", "https://example.com/a?a=1&b=2"),
    (
        "https://example.com/a?gclid=1&dclid=2&msclkid=3&mc_cid=4&mc_eid=5&id=7",
        "https://example.com/a?id=7",
    ),
    (
        "https://example.com/a?ocid=1&igshid=2&_ga=3&yclid=4&ref_src=5&cmpid=6&s_cid=7",
        "https://example.com/a",
    ),
    (
        "https://www.bbc.co.uk/news/world-123?at_medium=RSS&at_campaign=KARANGA",
        "https://www.bbc.co.uk/news/world-123",
    ),
    ("https://example.com/a?UTM_Source=x&Page=2", "https://example.com/a?Page=2"),
    ("https://example.com/a?q=kursk%2fregion&p=1", "https://example.com/a?p=1&q=kursk%2Fregion"),
    ("https://example.com/a?flag&x=", "https://example.com/a?flag&x="),
    ("https://example.com/a?&&", "https://example.com/a"),
    # AMP forms
    ("https://example.com/amp/world/story", "https://example.com/world/story"),
    ("https://example.com/world/story/amp", "https://example.com/world/story"),
    ("https://example.com/world/story/amp/", "https://example.com/world/story"),
    ("https://example.com/world/story.amp.html", "https://example.com/world/story.html"),
    ("https://example.com/world/story?amp=1", "https://example.com/world/story"),
    ("https://example.com/world/story?amp", "https://example.com/world/story"),
    ("https://example.com/world/story?outputType=amp&id=3", "https://example.com/world/story?id=3"),
    (
        "https://example.com/world/story?outputType=print",
        "https://example.com/world/story?outputType=print",
    ),
    ("https://amp.example.com/world/story", "https://example.com/world/story"),
    ("https://amp.com/world/story", "https://amp.com/world/story"),
    ("https://example.com/ampere/story", "https://example.com/ampere/story"),
    # percent-escapes
    ("https://example.com/a%2fb%c3%a9", "https://example.com/a%2Fb%C3%A9"),
    # not http(s), not absolute, not parseable: returned stripped
    ("  tag:example.com,2024:kursk  ", "tag:example.com,2024:kursk"),
    ("urn:news:kursk-0806", "urn:news:kursk-0806"),
    ("/relative/path/", "/relative/path/"),
    ("mailto:desk@example.com", "mailto:desk@example.com"),
    ("https://example.com:99999/a", "https://example.com:99999/a"),
    ("http://[::1/a", "http://[::1/a"),
    ("", ""),
]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_canonical_url(url: str, expected: str) -> None:
    """Each spelling maps to its canonical form."""
    assert canonical_url(url) == expected


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_canonical_url_is_idempotent(url: str, expected: str) -> None:
    """The canonical form of a canonical form is itself."""
    assert canonical_url(expected) == expected


_segment = st.text(alphabet="abcAMPp0-_.%2f", min_size=0, max_size=6)
_urls = st.builds(
    lambda scheme, host, port, segs, query, frag: (
        f"{scheme}://{host}{port}/{'/'.join(segs)}{query}{frag}"
    ),
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(["example.com", "amp.example.com", "amp.amp.io", "EXAMPLE.org.", "[::1]"]),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    st.lists(_segment, max_size=4),
    st.sampled_from(["", "?", "?amp=1", "?utm_x=1&b=2&a=1", "?outputType=amp&a=%2f", "?a&&b"]),
    st.sampled_from(["", "#frag", "#"]),
)


@given(_urls)
def test_canonical_url_idempotent_on_generated_urls(url: str) -> None:
    """Canonicalising twice changes nothing, for generated http(s) URLs."""
    once = canonical_url(url)
    assert once.startswith("https://")
    assert canonical_url(once) == once


@given(st.text())
def test_canonical_url_never_raises(text: str) -> None:
    """Arbitrary text never raises and comes back without surrounding whitespace."""
    out = canonical_url(text)
    assert out == out.strip()


@pytest.mark.parametrize(
    ("base", "link", "expected"),
    [
        (
            "https://news.example.com/feeds/world.rss",
            "/world/1",
            "https://news.example.com/world/1",
        ),
        (
            "https://news.example.com/feeds/world.rss",
            "item/2",
            "https://news.example.com/feeds/item/2",
        ),
        (
            "https://news.example.com/feeds/",
            "https://other.example.org/x",
            "https://other.example.org/x",
        ),
        ("https://news.example.com/", "  /padded  ", "https://news.example.com/padded"),
        ("https://news.example.com/", "javascript:alert(1)", None),
        ("https://news.example.com/", "mailto:desk@example.com", None),
        ("", "/no/base", None),
        ("https://news.example.com/", "", None),
        ("https://news.example.com/", None, None),
        ("https://news.example.com/", "http://[::1", None),
    ],
)
def test_absolute_link(base: str, link: object, expected: str | None) -> None:
    """Links resolve against the base; anything but http(s) is dropped."""
    assert absolute_link(base, link) == expected
