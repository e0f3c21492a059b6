"""The lxml fast path against the feedparser path: the same Items wherever it accepts a body.

Differential: every corpus file in tests/data/corpora (with its declared headers), the fixture
feeds, the benchmark's generated feeds, the demo feeds and a few thousand generated feeds built
from tricky pieces (duplicate fields, media:title, xml:base, guid permalinks, XHTML, mojibake, odd
dates). Wherever ``fast_items`` returns items they must equal ``normalize(parse_feed(...))``,
feedparser's reading. Unit tests: what it must decline, and that ``parse_items`` then still
reads the feed through feedparser.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.feedgen import build_feeds
from daemon.errors import ParseError
from daemon.parse.fast import Decline, read_entries
from daemon.parse.feed import fast_items, parse_feed, parse_items
from daemon.parse.normalize import normalize
from daemon.types import Item
from demo.serve import feed_names, render_feed
from tests.parse.test_corpus import corpus_files, declared_headers

FEEDS = Path(__file__).parent.parent / "data" / "feeds"
URL = "https://news.example.com/feeds/world.xml"
XML = {"content-type": "application/xml"}
URIS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "media": "http://search.yahoo.com/mrss/",
}
NS = " ".join(f'xmlns:{p}="{uri}"' for p, uri in URIS.items())
NS += ' xmlns:atom="http://www.w3.org/2005/Atom"'


def _reference(body: bytes, headers: dict[str, str], url: str) -> list[Item] | str:
    try:
        return normalize(parse_feed("f", body, headers, url), "f")
    except ParseError as e:
        return f"ParseError: {e.message}"


def _fast(body: bytes, headers: dict[str, str] = XML, url: str = URL) -> list[Item] | None:
    """The fast path's items, after checking they equal feedparser's where it accepts."""
    try:
        items = fast_items("f", body, headers, url)
    except ParseError:
        return None
    if items is not None:
        assert items == _reference(body, headers, url)
    return items


def _rss(items: str, channel: str = "", root_attrs: str = "", ns: str = NS) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" {ns}{root_attrs}>'
        f"<channel><title>T</title>{channel}{items}</channel></rss>"
    ).encode()


def _atom(entries: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>T</title>{entries}</feed>"
    ).encode()


# --- differential -------------------------------------------------------------------------


def test_corpus_files_give_feedparsers_items(capsys: pytest.CaptureFixture[str]) -> None:
    """Every corpus file the fast path accepts gives exactly feedparser's items."""
    files = corpus_files()
    accepted = items = 0
    for path in files:
        body = path.read_bytes()
        headers = declared_headers(body)
        try:
            fast = fast_items("f", body, headers, URL)
        except ParseError:
            continue
        if fast is None:
            continue
        assert fast == _reference(body, headers, URL), path
        accepted += 1
        items += len(fast)
    with capsys.disabled():
        print(f"\nfast path: {accepted} of {len(files)} corpus files ({items} items)")
    assert accepted >= 900  # measured: 948 (Atom 0.3/1.0, RSS 0.9x/2.0, RDF with entries)


def test_fixture_feeds() -> None:
    """The fixture RSS, Atom, RDF and windows-1251 feeds take the fast path, same items."""
    for name in ("news.rss", "news.atom", "news.rdf"):
        assert _fast((FEEDS / name).read_bytes()), name
    cyrillic = {"content-type": "application/rss+xml; charset=windows-1251"}
    [item] = _fast((FEEDS / "cyrillic-1251.rss").read_bytes(), cyrillic) or []
    assert "Курск" in item.title + item.summary
    assert _fast((FEEDS / "bozo.rss").read_bytes()) is None  # ill-formed: feedparser's


def test_benchmark_feeds() -> None:
    """bench/feedgen.py's 50-item news feeds all take the fast path, same items."""
    for path, body in build_feeds(6, 50).items():
        items = _fast(body, {"content-type": "application/rss+xml; charset=utf-8"})
        assert items is not None and len(items) == 50, path


def test_demo_feeds() -> None:
    """The demo feeds (RSS and Atom, rendered) take the fast path, same items."""
    now = datetime(2025, 8, 6, 12, tzinfo=UTC)
    for name in feed_names():
        rendered = render_feed(name, now)
        assert _fast(rendered.body, {"content-type": rendered.content_type}), name


_TEXTS = (
    "Plain", "  padded \n text ", "", "A &amp; B", "&lt;b&gt;bold&lt;/b&gt; x", "Text [...]",
    "<![CDATA[<p>one</p><p>two &amp; three</p>]]>", "Ã©tÃ© mojibake", "&#147;c1&#148;",
    "Ünïcödé – it’s", "line one\nline two", "&lt;script&gt;x()&lt;/script&gt;seen", "Text…",
)  # fmt: skip
_LINKS = (
    "https://a.example/1", "/rooted/path", "rel", "  https://pad.example/x ", "",
    "https://a.example/?a=1&amp;b=2", "https://a.example/?a=1&amp;b;=2", "javascript:x()",
    "//proto.example/p", "https:///triple.example/x", "urn:x:1", "tag:a.example,2020:1",
)  # fmt: skip
_DATES = (
    "Tue, 05 Aug 2025 12:00:00 GMT", "Mon, 4 Aug 2025 09:30:00 +0200", "2025-08-05T12:00:00Z",
    "garbage", "", "05 Aug 25 12:00 EST", "2025-08-05", "Wed, 31 Feb 2025 12:00:00 GMT",
)  # fmt: skip
_BASES = ("https://base.example/dir/", "/rooted/", "sub/", "", "javascript:x")


def _random_feed(r: random.Random) -> bytes:
    def t() -> str:
        return r.choice(_TEXTS)

    def base() -> str:
        return f' xml:base="{r.choice(_BASES)}"' if r.random() < 0.15 else ""

    def rss_child() -> str:
        perma = r.choice(("", ' isPermaLink="false"', ' isPermaLink="true"', ' isPermaLink="True"'))
        rel = r.choice(("", ' rel="alternate"', ' rel="self"', ' rel="ALTERNATE"', ' rel=""'))
        return r.choice((
            f"<title{base()}>{t()}</title>",
            f"<description>{t()}</description>",
            f"<content:encoded>{t()}</content:encoded>",
            f"<link{base()}>{r.choice(_LINKS)}</link>",
            f"<guid{perma}{base()}>{r.choice(_LINKS)}</guid>",
            f"<pubDate>{r.choice(_DATES)}</pubDate>",
            f"<dc:date>{r.choice(_DATES)}</dc:date>",
            f"<dc:creator>{t()}</dc:creator>",
            f'<atom:link{rel}{base()} href="{r.choice(_LINKS)}"/>',
            f"<dc:title>{t()}</dc:title>",
            (
                f"<media:group><media:title>{t()}</media:title>"
                f"<media:description>{t()}</media:description></media:group>"
            ),
            f"<media:title>{t()}</media:title>",
            f'<source url="https://s.example/">{t()}</source>',
            f"<atom:summary>{t()}</atom:summary>",
            "<!-- c -->",
            f"<category>{t()}</category>",
        ))  # fmt: skip

    def atom_text(tag: str) -> str:
        kind = r.choice(("", ' type="text"', ' type="html"', ' type="xhtml"', ' type="TEXT/HTML"'))
        if "xhtml" not in kind:
            return f"<{tag}{kind}{base()}>{t()}</{tag}>"
        inner = r.choice(
            ("Just &amp; text", "Line one\nLine two", "<p>a</p>\n<p>b</p>", "<b>x</b>")
        )
        pad = r.choice(("", " ", "\n  "))
        div = f'{pad}<div xmlns="http://www.w3.org/1999/xhtml">{inner}</div>{pad}'
        body = r.choice((div, "plain\nxhtml &amp; text"))
        return f"<{tag}{kind}>{body}</{tag}>"

    def atom_child() -> str:
        rel = r.choice(("", ' rel="alternate"', ' rel="self"', ' rel="related"'))
        kind = r.choice(("", ' type="text/html"', ' type="application/atom+xml"'))
        return r.choice((
            atom_text("title"), atom_text("summary"), atom_text("content"),
            f'<link{rel}{kind}{base()} href="{r.choice(_LINKS)}"/>',
            f"<id{base()}>{r.choice(_LINKS)}</id>", f"<published>{r.choice(_DATES)}</published>",
            f"<updated>{r.choice(_DATES)}</updated>", f"<author><name>{t()}</name></author>",
        ))  # fmt: skip

    n = r.randrange(1, 4)
    if r.random() < 0.5:
        kids = "".join(
            f"<item{base()}>{''.join(rss_child() for _ in range(r.randrange(8)))}</item>"
            for _ in range(n)
        )
        prefixes = list(URIS)
        if r.random() < 0.3:  # bind the standard prefixes to each other's namespaces
            r.shuffle(prefixes)
            for std, doc in zip(URIS, prefixes, strict=True):
                kids = kids.replace(f"<{std}:", f"<_{doc}:").replace(f"</{std}:", f"</_{doc}:")
            kids = kids.replace("<_", "<").replace("</_", "</")
        ns = " ".join(f'xmlns:{doc}="{URIS[std]}"' for std, doc in zip(URIS, prefixes, strict=True))
        return _rss(kids, root_attrs=base(), ns=f'{ns} xmlns:atom="http://www.w3.org/2005/Atom"')
    kids = ("".join(atom_child() for _ in range(r.randrange(8))) for _ in range(n))
    return _atom("".join(f"<entry{base()}>{k}</entry>" for k in kids))


@pytest.mark.parametrize("url", [URL, "", "feed.xml"])
def test_generated_feeds(url: str) -> None:
    """1,500 generated feeds per base URL: same items wherever the fast path accepts."""
    r = random.Random(20251121)
    accepted = sum(_fast(_random_feed(r), XML, url) is not None for _ in range(1500))
    assert accepted >= (400 if url == "" else 1200)  # "" declines every xml:base


# --- what it declines ----------------------------------------------------------------------


def _laughs() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + "\n".join(ents) + "\n]>\n"
        '<rss version="2.0"><channel><item><title>&lol9;</title>'
        "<link>https://x.example/1</link></item></channel></rss>"
    ).encode()


def test_billion_laughs_is_declined_and_still_read() -> None:
    """An internal subset is never seen by the fast path; parse_items defuses it as before."""
    body = _laughs()
    with pytest.raises(Decline):
        read_entries(body, URL)
    assert fast_items("b", body, XML, URL) is None
    [item] = parse_items("b", body, XML, URL)
    assert item.title == "&lol9;"


@pytest.mark.parametrize(
    "body",
    [
        (
            b'<!DOCTYPE rss SYSTEM "http://x.example/rss.dtd"><rss version="2.0"><channel>'
            b"<item><title>a</title></item></channel></rss>"
        ),
        # a "<a" inside a comment ends the textual prolog check early: expat still sees it
        (
            b'<!-- <a --><!DOCTYPE rss [<!ELEMENT rss ANY>]><rss version="2.0"><channel>'
            b"<item><title>a</title></item></channel></rss>"
        ),
    ],
)
def test_any_doctype_is_declined(body: bytes) -> None:
    """DOCTYPEs, with or without an internal subset, are left to the feedparser path."""
    with pytest.raises(Decline):
        read_entries(body, URL)
    assert [i.title for i in parse_items("d", body, XML, URL)] == ["a"]


@pytest.mark.parametrize(
    "body",
    [
        _rss(
            "<item><title>Caf&eacute;&nbsp;au lait</title><link>https://x.example/1</link></item>"
        ),
        _rss("<item><title>bare & ampersand</title><link>https://x.example/1</link></item>"),
        _rss("<item><description><p>markup not escaped</p></description></item>"),
        _rss("<item><x:title>undeclared</x:title><link>https://x.example/1</link></item>"),
    ],
)
def test_malformed_or_unusual_is_declined_and_still_read(body: bytes) -> None:
    """Ill-formed XML and markup inside text fields go to feedparser (loose parser, bozo)."""
    assert _fast(body) is None
    assert parse_items("m", body, XML, URL)


@pytest.mark.parametrize(
    "body",
    [
        _rss("<item><title>t</title></item>", channel="<content:encoded>x</content:encoded>"),
        _rss("<item><title>t</title></item>", root_attrs=' xmlns:c2="urn:a" xmlns:dc2="urn:a"'),
        _rss('<item><enclosure base="https://x.example/"/><title>t</title></item>'),
        _rss("<item><georss:point>1 2</georss:point></item>").replace(
            b"<rss ", b'<rss xmlns:georss="http://www.georss.org/georss" '
        ),
        _atom('<entry><content type="image/png">aGk=</content></entry>'),
        _atom('<entry><content src="https://x.example/a.html"/></entry>'),
        _atom("<entry><source><title>other</title></source></entry>"),
        _rss("", channel="<x/>"),  # no entries
        # "dc" names the content namespace: feedparser renames real dc: elements content_*
        _rss(
            "<item><d:date>2025-08-06T06:30:00Z</d:date><d:title>dc</d:title></item>",
            ns=f'xmlns:dc="{URIS["content"]}" xmlns:d="{URIS["dc"]}"',
        ),
    ],
)
def test_state_it_cannot_replay_is_declined(body: bytes) -> None:
    """Feed-level content, a URI with two prefixes, base attributes, unknown handlers,
    base64 or external content, Atom source: declined."""
    with pytest.raises(Decline):
        read_entries(body, URL)


# --- what it reads -------------------------------------------------------------------------


def test_relative_links_and_xml_base() -> None:
    """Links and permalink guids resolve against xml:base (nested) or the feed URL."""
    body = _rss(
        "<item><title>a</title><link>/world/a</link></item>"
        '<item xml:base="https://cdn.example/x/"><title>b</title><link>b.html</link></item>'
        '<item><title>c</title><guid xml:base="sub/">c.html</guid></item>'
        '<item><title>d</title><guid isPermaLink="false">d-1</guid></item>',
        root_attrs=' xml:base="https://base.example/root/"',
    )
    assert [(i.link, i.id) for i in _fast(body) or []] == [
        ("https://base.example/world/a", "https://base.example/world/a"),
        ("https://cdn.example/x/b.html", "https://cdn.example/x/b.html"),
        ("https://base.example/root/sub/c.html", "https://base.example/root/sub/c.html"),
        (None, "d-1"),
    ]


def test_cdata_html_and_rss_extensions() -> None:
    """CDATA HTML, content:encoded plus description, dc:date and dc:creator."""
    body = _rss(
        "<item><title><![CDATA[Kursk <em>offensive</em>]]></title>"
        "<description>Short &amp; sweet…</description>"
        "<content:encoded><![CDATA[<p>Short &amp; sweet update.</p><p>More.</p>]]>"
        "</content:encoded><dc:creator>Reuters</dc:creator>"
        "<dc:date>2025-08-06T06:30:00+02:00</dc:date><guid>urn:k:1</guid></item>"
    )
    [item] = _fast(body) or []
    assert (item.title, item.summary) == ("Kursk offensive", "Short & sweet update.\nMore.")
    assert item.published == datetime(2025, 8, 6, 4, 30, tzinfo=UTC)


def test_atom_content_types() -> None:
    """Atom text, html and xhtml titles and content read as feedparser does."""
    body = _atom(
        '<entry><id>urn:a:1</id><title type="text">A &amp; B</title>'
        '<content type="html">&lt;p&gt;one&lt;/p&gt;&lt;p&gt;two&lt;/p&gt;</content></entry>'
        '<entry><id>urn:a:2</id><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
        'X <b>&amp;</b> Y</div></title><content type="xhtml">\n  '
        '<div xmlns="http://www.w3.org/1999/xhtml">Line one\nLine two</div>\n</content>'
        '<link href="/a/2"/><link rel="self" href="/self"/></entry>'
    )
    first, second = _fast(body) or []
    assert (first.title, first.summary) == ("A & B", "one\ntwo")
    assert (second.title, second.summary) == ("X & Y", "Line one\nLine two")
    assert second.link == "https://news.example.com/a/2"


def test_missing_dates_and_fallback_to_updated() -> None:
    """No date gives None; updated is used when published is missing or unreadable."""
    body = _rss(
        "<item><guid>urn:1</guid><title>none</title></item>"
        "<item><guid>urn:2</guid><pubDate>nonsense</pubDate>"
        "<dc:date>2024-11-11T14:05:00Z</dc:date><title>dc</title></item>"
    )
    assert [i.published for i in _fast(body) or []] == [
        None,
        datetime(2024, 11, 11, 14, 5, tzinfo=UTC),
    ]


def test_media_title_and_duplicate_fields_follow_feedparsers_rules() -> None:
    """A media:title never replaces the title; a second description becomes content."""
    body = _rss(
        "<item><guid>urn:1</guid><title>Real title</title><media:group><media:title>Media"
        "</media:title></media:group><description>First</description>"
        "<media:description>Second</media:description></item>"
    )
    [item] = _fast(body) or []
    assert (item.title, item.summary) == ("Real title", "Second\nFirst")


def test_duplicate_guids_keep_the_first() -> None:
    """Entries sharing an id are deduplicated exactly as on the feedparser path."""
    body = _rss("<item><guid>urn:1</guid><title>a</title></item>" * 2)
    assert [i.title for i in _fast(body) or []] == ["a"]
