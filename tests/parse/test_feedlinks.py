"""WebSub discovery: hub and self links from the Link header and from the feed document."""

from __future__ import annotations

import json

from daemon.parse.feed import _prepare, fast_items, parse_feed, parse_items, parse_items_links
from daemon.parse.feedlinks import FeedLinks, body_links, header_links
from tests.parse.test_corpus import corpus_files, declared_headers

URL = "https://news.example.org/feed.xml"
HUB = "https://hub.example.net/"
ATOM_NS = 'xmlns:atom="http://www.w3.org/2005/Atom"'


def _rss(channel: str, items: str = "<item><guid>1</guid><title>T</title></item>") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {ATOM_NS}><channel>'
        f"<title>N</title><link>https://news.example.org/</link>{channel}{items}</channel></rss>"
    ).encode()


def test_rss_atom_links_in_channel() -> None:
    body = _rss(f'<atom:link rel="hub" href="{HUB}"/><atom:link rel="self" href="/feed.xml"/>')
    items, links = parse_items_links("f", body, {}, URL)
    assert links == FeedLinks((HUB,), URL)
    assert items == parse_items("f", body, {}, URL)


def test_atom_feed_links_and_entry_links_ignored() -> None:
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>N</title><id>x</id>'
        f'<link rel="hub" href="{HUB}"/><link rel="hub" href="https://h2.example/"/>'
        f'<link rel="hub" href="{HUB}"/><link rel="self" href="{URL}"/>'
        '<entry><id>e</id><title>T</title><link rel="hub" href="https://entry.example/"/>'
        "</entry></feed>"
    ).encode()
    _items, links = parse_items_links("f", body, {}, URL)
    assert links == FeedLinks((HUB, "https://h2.example/"), URL)
    assert links.usable


def test_rdf_channel_links() -> None:
    body = (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        f'xmlns="http://purl.org/rss/1.0/" {ATOM_NS}><channel rdf:about="x"><title>N</title>'
        f'<atom:link rel="hub" href="{HUB}"/><atom:link rel="self" href="{URL}"/></channel>'
        '<item rdf:about="https://news.example.org/1"><title>T</title></item></rdf:RDF>'
    ).encode()
    assert parse_items_links("f", body, {}, URL)[1] == FeedLinks((HUB,), URL)


def test_link_header_wins_field_by_field() -> None:
    body = _rss(f'<atom:link rel="hub" href="{HUB}"/><atom:link rel="self" href="{URL}"/>')
    header = '<https://other-hub.example/>; rel="hub", <https://cdn.example/f>; rel=self'
    assert parse_items_links("f", body, {"Link": header}, URL)[1] == FeedLinks(
        ("https://other-hub.example/",), "https://cdn.example/f"
    )
    only_hub = '<https://other-hub.example/>; rel="hub"'
    assert parse_items_links("f", body, {"link": only_hub}, URL)[1] == FeedLinks(
        ("https://other-hub.example/",), URL
    )


def test_header_parsing() -> None:
    assert header_links(None, URL) == FeedLinks()
    value = (
        '</hub>; rel="hub"; title="a, b", <https://x.example/feed>; type="x"; rel="self", '
        '<https://y.example/>; rel="alternate", garbage, <https://z.example/>; rel="hub self"'
    )
    assert header_links(value, URL) == FeedLinks(
        ("https://news.example.org/hub", "https://z.example/"), "https://x.example/feed"
    )
    assert header_links('<javascript:x>; rel="hub"', URL) == FeedLinks()
    assert header_links("<unterminated; rel=hub", URL) == FeedLinks()


def test_no_links_broken_xml_and_json_feed() -> None:
    assert parse_items_links("f", _rss(""), {}, URL)[1] == FeedLinks()
    assert not FeedLinks((HUB,), None).usable
    assert body_links(b"<rss><channel><atom:link", URL) == FeedLinks()
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "feed_url": URL,
        "hubs": [{"type": "WebSub", "url": HUB}],
        "items": [{"id": "1", "content_text": "x"}],
    }
    body = json.dumps(doc).encode()
    headers = {"content-type": "application/feed+json"}
    assert parse_items_links("f", body, headers, URL)[1] == FeedLinks((HUB,), URL)


def test_feedparser_path_gives_links_too() -> None:
    """A feed the fast path declines (an entity-declaring DOCTYPE is defused first)."""
    rss = _rss(f'<atom:link rel="hub" href="{HUB}"/><atom:link rel="self" href="{URL}"/>')
    body = b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "x">]>' + rss.split(b"?>", 1)[1]
    assert fast_items("f", body, {}, URL) is None
    items, links = parse_items_links("f", body, {}, URL)
    assert links == FeedLinks((HUB,), URL) and len(items) == 1


def test_corpus_links_equal_feedparsers() -> None:
    """Wherever lxml reads the body, its links are feedparser's (hubs and self)."""
    compared = with_links = 0
    for path in corpus_files():
        body = path.read_bytes()
        headers = declared_headers(body)
        try:
            reference = parse_feed("f", body, headers, URL)
            prepared = _prepare("f", body, headers, URL)
        except Exception:  # unreadable files are test_corpus's business
            continue
        if not hasattr(prepared, "fast") or not prepared.fast:
            continue
        links = body_links(prepared.data, prepared.base)  # type: ignore[union-attr]
        assert (links.hubs, links.self_url) == (reference.hubs, reference.self_url), path
        compared += 1
        with_links += bool(links.hubs or links.self_url)
    assert compared > 1000 and with_links >= 5
