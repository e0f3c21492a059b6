"""parse_feed / parse_items / normalize over fixture feeds: golden items, bozo policy, refusals."""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.errors import ParseError
from daemon.parse.feed import REFUSED, fast_items, parse_feed, parse_items
from daemon.parse.normalize import entry_item, entry_text, normalize
from daemon.parse.parsed import ParsedFeed
from daemon.types import Item

FEEDS = Path(__file__).parent.parent / "data" / "feeds"
RSS_URL = "https://news.example.com/feeds/world.rss"
RSS_HEADERS = {"Content-Type": "application/rss+xml"}


def _read(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _rows(items: list[Item]) -> list[tuple[str, str, str, str | None, datetime | None]]:
    return [(i.id, i.title, i.summary, i.link, i.published) for i in items]


# --- golden fixtures ------------------------------------------------------------------------

RSS_LAST = (
    "Kyiv claims that approximately 38,000 Russian troops have been killed or wounded in the "
    "region since the operation began in August 2024 …"
)
RSS_ITEMS = [
    (
        "urn:news:kursk-0806",
        "Russia accuses West of sending mercenaries to Kursk",
        (
            "Moscow accused multiple foreign countries of supplying mercenaries to aid a "
            "Ukrainian offensive into Russia's Kursk region.\nUkrainian officials issued renewed "
            "appeals to the United States for more weapons shipments."
        ),
        "https://news.example.com/world/2025/08/06/kursk-mercenaries?utm_source=rss&utm_medium=feed",
        _utc(2025, 8, 6, 6, 30),
    ),
    (
        "https://news.example.com/world/2024/11/11/kursk-50000",
        "Zelenskyy: nearly “50,000 enemy troops” in Kursk",
        (
            "Russia is trying to push Ukrainian forces from its western Kursk region with tens of "
            "thousands of soldiers, Ukraine’s president says."
        ),
        "https://news.example.com/world/2024/11/11/kursk-50000",
        _utc(2024, 11, 11, 14, 5),
    ),
    (
        "https://news.example.com/world/2024/12/16/north-korea-kursk",
        "North Korean troops deployed to Kursk & Belgorod",
        (
            "Western countries, South Korea and Ukraine have all said North Korea has sent "
            "soldiers to Russia.\nRussia has neither confirmed nor denied the presence of North "
            "Korean soldiers on its territory."
        ),
        "https://news.example.com/world/2024/12/16/north-korea-kursk/amp/",
        _utc(2024, 12, 16, 7, 0),
    ),
    (_sha("\n" + RSS_LAST), "", RSS_LAST, None, None),
]


def test_rss_items_golden() -> None:
    """RSS 2.0: guid ids, canonical-link ids, hashed ids, text, absolute links, UTC dates."""
    items = parse_items("world", _read("news.rss"), RSS_HEADERS, RSS_URL, ("europe",))
    assert _rows(items) == RSS_ITEMS
    assert {(i.feed, i.tags) for i in items} == {("world", ("europe",))}


def test_rss_feed_level() -> None:
    """RSS 2.0: feed title, link, kind, self and hub links (resolved), no bozo."""
    parsed = parse_feed("world", _read("news.rss"), RSS_HEADERS, RSS_URL)
    assert (parsed.title, parsed.link, parsed.kind, parsed.version) == (
        "World Desk & Wires",
        "https://news.example.com/world/",
        "rss",
        "rss20",
    )
    assert parsed.hubs == ("https://websub.example.net/",)
    assert parsed.self_url == "https://news.example.com/feeds/world.rss"
    assert parsed.bozo is None
    assert len(parsed.entries) == 5  # the duplicate guid is dropped by normalize, not here


def test_rss_duplicate_guid_keeps_first() -> None:
    """Two entries with one guid give one item: the first."""
    items = parse_items("world", _read("news.rss"), RSS_HEADERS, RSS_URL)
    dupes = [i for i in items if i.id == "urn:news:kursk-0806"]
    assert [i.title for i in dupes] == ["Russia accuses West of sending mercenaries to Kursk"]


def test_atom_items_golden() -> None:
    """Atom 1.0: xml:base-relative links, html titles, xhtml content, updated as fallback."""
    parsed = parse_feed(
        "wire",
        _read("news.atom"),
        {"content-type": "application/atom+xml"},
        "https://wire.example.org/feeds/europe",
    )
    assert (parsed.title, parsed.link, parsed.kind) == (
        "Europe & Eurasia wire",
        "https://wire.example.org/europe/",
        "atom",
    )
    assert parsed.hubs == ("https://hub.example.org/",)
    assert parsed.self_url == "https://wire.example.org/europe/atom.xml"
    assert _rows(normalize(parsed, "wire")) == [
        (
            "tag:wire.example.org,2024:kursk-escalation",
            "Ukraine escalates Kursk offensive: war “brought back to Russia”",
            (
                "Ukraine has escalated its military offensive in Russia's Kursk region.\n"
                "Kyiv claims that approximately 38,000 Russian troops have been killed or wounded."
            ),
            "https://wire.example.org/europe/2024/12/kursk-escalation",
            _utc(2024, 12, 16, 7, 15),
        ),
        (
            "tag:wire.example.org,2024:north-korean-troops",
            "Russia deploys North Korean soldiers in Kursk",
            (
                "The Russian Defense Ministry claimed two Ukrainian assaults in Kursk were "
                "repelled.\nBerdin\nTetkino"
            ),
            "https://wire.example.org/europe/2024/12/nk-troops",
            _utc(2024, 12, 15, 18, 0),
        ),
        (
            "tag:wire.example.org,2024:sudzha",
            "Tactical advances northeast of Sudzha",
            (
                'Ukrainian forces have made "tactical advances" northeast of Sudzha, according to '
                "the Institute for the Study of War, a Washington-based think tank."
            ),
            "https://wire.example.org/europe/2024/12/sudzha",
            _utc(2024, 12, 14, 7, 0),
        ),
    ]


def test_rdf_items_golden() -> None:
    """RSS 1.0 (RDF): dc:date, ids from links."""
    items = parse_items(
        "aid",
        _read("news.rdf"),
        {"content-type": "application/rdf+xml"},
        "https://aid.example.com/rss",
    )
    assert parse_feed("aid", _read("news.rdf"), {}, "https://aid.example.com/rss").kind == "rdf"
    assert _rows(items) == [
        (
            "https://aid.example.com/2025/08/us-weapons",
            "Ukraine pleads for more US weapons",
            (
                "Ukrainian officials issued urgent appeals to the United States for an immediate "
                "increase in weapons shipments."
            ),
            "https://aid.example.com/2025/08/us-weapons",
            _utc(2025, 8, 6, 7, 0),
        ),
        (
            "https://aid.example.com/2024/11/treaty",
            "Putin signs treaty with Pyongyang",
            "The treaty on strategic partnership includes a mutual defence provision.",
            "https://aid.example.com/2024/11/treaty",
            _utc(2024, 11, 9, 16, 20),
        ),
    ]


def test_json_feed_golden() -> None:
    """JSON Feed 1.1: content_html + summary, content_text, external_url, numeric id, no id."""
    url = "https://briefs.example.net/feed.json"
    parsed = parse_feed(
        "briefs", _read("news.json"), {"content-type": "application/feed+json"}, url
    )
    assert (parsed.title, parsed.link, parsed.kind, parsed.version) == (
        "Frontline briefs",
        "https://briefs.example.net/",
        "json",
        "json11",
    )
    assert (parsed.hubs, parsed.self_url) == (("https://hub.example.net/",), url)
    assert _rows(normalize(parsed, "briefs")) == [
        (
            "brief-101",
            "Dam damaged near the front line in Donetsk",
            (
                "Russian attacks damaged a dam near the front line in the eastern Donetsk region.\n"
                "Villages could be threatened by rising water levels."
            ),
            "https://briefs.example.net/101",
            _utc(2024, 11, 11, 6, 0),
        ),
        (
            "102",
            "Closing in on Kurakhove",
            "Moscow's army is rapidly advancing in the Donetsk region.",
            "https://elsewhere.example.org/kurakhove",
            _utc(2024, 11, 12, 10, 30),
        ),
        (
            "https://briefs.example.net/103",
            "Pokrovsk and Kurakhove fronts",
            "Zelenskyy said Ukraine would strengthen its positions.",
            "https://briefs.example.net/103?utm_campaign=x",
            None,
        ),
    ]


def test_json_feed_detected_without_content_type() -> None:
    """A body starting with '{' is read as JSON Feed even when served as text/plain."""
    items = parse_items("briefs", _read("news.json"), {"content-type": "text/plain"}, "")
    assert [i.id for i in items] == ["brief-101", "102", "https://briefs.example.net/103"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1", "items": [', "invalid JSON"),
        (b'{"name": "not a feed"}', "not a JSON Feed"),
        (b"[1, 2, 3]", "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "no 'items' list"),
    ],
)
def test_bad_json_is_parse_error(body: bytes, message: str) -> None:
    """Malformed or foreign JSON raises ParseError naming the problem."""
    with pytest.raises(ParseError, match=message) as info:
        parse_feed("j", body, {"content-type": "application/json"}, "https://x.example/")
    assert info.value.feed == "j"


# --- encodings ------------------------------------------------------------------------------


def test_windows_1251_declared_only_by_http_header() -> None:
    """A Cyrillic feed in windows-1251 whose only charset declaration is the HTTP header."""
    body = _read("cyrillic-1251.rss")
    assert b"encoding=" not in body
    items = parse_items(
        "ru", body, {"Content-Type": "text/xml; charset=windows-1251"}, "https://ru.example.com/rss"
    )
    assert _rows(items) == [
        (
            "https://ru.example.com/kursk/1",
            "ВСУ продвигаются в Курской области",
            "Бои идут у Суджи.",
            "https://ru.example.com/kursk/1",
            _utc(2024, 8, 12, 7, 0),
        )
    ]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_byte_order_marks(codec: str) -> None:
    """UTF-16/32 bodies (with a BOM or a NUL-interleaved '<') read like the UTF-8 original."""
    text = _read("news.rss").decode("utf-8").replace('encoding="utf-8"', "")
    items = parse_items("world", text.encode(codec), RSS_HEADERS, RSS_URL)
    assert _rows(items) == RSS_ITEMS


def test_no_content_type_means_utf8_not_latin1() -> None:
    """Headers without Content-Type do not turn an undeclared UTF-8 feed into mojibake."""
    body = _read("news.atom").replace(b' encoding="utf-8"', b"")
    items = parse_items("wire", body, {"ETag": '"x"'}, "https://wire.example.org/feeds/europe")
    assert items[0].title == "Ukraine escalates Kursk offensive: war “brought back to Russia”"


# --- the bozo policy and unreadable bodies --------------------------------------------------


def test_ill_formed_but_readable_is_used_with_bozo() -> None:
    """Unescaped '&' and a missing </rss>: items are used and bozo says why."""
    parsed = parse_feed("b", _read("bozo.rss"), RSS_HEADERS, "https://broken.example.com/rss")
    assert parsed.bozo is not None and "not well-formed" in parsed.bozo
    assert _rows(normalize(parsed, "b")) == [
        (
            "https://broken.example.com/kursk",
            "Kursk offensive & aid",
            "Unescaped ampersands & an unclosed tag.",
            "https://broken.example.com/kursk",
            None,
        ),
        (
            "https://broken.example.com/second",
            "Second item",
            "",
            "https://broken.example.com/second",
            None,
        ),
    ]


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (_read("page.html"), {"content-type": "text/html; charset=utf-8"}, "HTML page"),
        (_read("page.html"), {}, "HTML page"),
        (b"", {}, "empty body"),
        (b"  \r\n\t ", RSS_HEADERS, "empty body"),
        (b"\x00\x01\x02 garbage \xff\xfe", {}, "not a feed"),
        (b"Service Unavailable", {"content-type": "text/plain"}, "not a feed"),
        (b"<note><to>someone</to></note>", {"content-type": "application/xml"}, "not a feed"),
    ],
)
def test_unreadable_bodies_raise_parse_error(
    body: bytes, headers: dict[str, str], message: str
) -> None:
    """HTML pages, empty bodies and garbage are ParseErrors for that feed."""
    with pytest.raises(ParseError, match=message) as info:
        parse_items("bad", body, headers, "https://x.example/feed")
    assert (info.value.feed, info.value.kind) == ("bad", "parse")


def test_body_is_never_a_path_or_url(tmp_path: Path) -> None:
    """A body that spells a file path or a URL is parsed as text, never opened or fetched."""
    feed_file = tmp_path / "feed.rss"
    feed_file.write_bytes(_read("news.rss"))
    for body in (str(feed_file).encode(), b"http://127.0.0.1:9/feed.rss"):
        with pytest.raises(ParseError, match="not a feed"):
            parse_feed("p", body, {}, "")


# --- entity declarations --------------------------------------------------------------------


def _laughs(levels: int = 9) -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + "\n".join(ents) + "\n]>\n"
        f'<rss version="2.0"><channel><title>t</title><item><title>&lol{levels};</title>'
        "<link>https://x.example/1</link></item></channel></rss>"
    ).encode()


@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-32-be"])
def test_billion_laughs_is_defused(codec: str) -> None:
    """Entity declarations are stripped: the reference stays literal, the item is kept."""
    body = _laughs().decode().encode(codec)
    parsed = parse_feed("bomb", body, {"content-type": "application/rss+xml"}, "")
    assert parsed.bozo is not None and "entity declarations removed" in parsed.bozo
    [item] = normalize(parsed, "bomb")
    assert item.title == "&lol9;"


def test_quadratic_blowup_runs_in_little_memory() -> None:
    """A 0.14 MB body that would expand to 1.5 GB parses under a 1 GB address-space limit."""
    code = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from daemon.parse.feed import parse_items
        # One declaration per line: the layout feedparser's own entity regex picks up.
        body = ('<?xml version="1.0"?>\\n<!DOCTYPE rss [\\n<!ENTITY a "' + 'A' * 50000
                + '">\\n]>\\n<rss version="2.0"><channel><item><title>' + '&a;' * 30000
                + '</title><link>https://x.example/1</link></item></channel></rss>').encode()
        [item] = parse_items("q", body, {}, "")
        print(len(item.title))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) == len("&a;") * 30000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'<!DOCTYPE rss [<!ENTITY a "x"> <rss><channel/></rss>', "unterminated"),
        (b'<!DOCTYPE rss [<!ENTITY a "x]>"><rss><channel/></rss>', "unterminated"),
        (b'<!DOCTYPE rss>\n<!ENTITY a "big">\n<rss version="2.0"><channel/></rss>', "outside"),
        # feedparser's prolog regex reads declarations even inside a comment: a real blow-up
        (b'<!DOCTYPE rss>\n<!--\n<!ENTITY a "big">\n-->\n<rss version="2.0"/>', "outside"),
        (b'<?pi <!ENTITY a "big"> ?>\n<rss version="2.0"/>', "outside"),
    ],
)
def test_unsafe_entity_declarations_are_refused(body: bytes, message: str) -> None:
    """Declarations that cannot be cut out cleanly make the feed a ParseError."""
    with pytest.raises(ParseError, match=REFUSED) as info:
        parse_feed("e", body, {}, "")
    assert message in info.value.message


def test_doctype_without_entities_is_kept() -> None:
    """A Netscape DOCTYPE and an entity-free internal subset are left to feedparser."""
    body = (
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        b'<rss version="0.91"><channel><item><title>t</title></item></channel></rss>'
    )
    parsed = parse_feed("n", body, {}, "")
    assert (parsed.version, parsed.bozo) == ("rss091n", None)
    subset = b'<!DOCTYPE rss [ <!-- ]> "quoted" --> <!ELEMENT rss ANY> ]>\n<rss version="2.0"/>'
    parsed = parse_feed("s", subset, {}, "")
    assert parsed.version == "rss20"
    assert "entity declarations removed" not in (parsed.bozo or "")


def test_entity_subset_after_a_comment_with_markup_is_stripped() -> None:
    """A "<b>" in a comment before the DOCTYPE does not end the prolog scan."""
    body = (
        b'<?xml version="1.0"?>\n<!-- <b>bold</b> -->\n<!DOCTYPE rss [\n<!ENTITY a "x">\n]>\n'
        b'<rss version="2.0"><channel><item><title>&a;</title></item></channel></rss>'
    )
    parsed = parse_feed("c", body, {}, "")
    assert parsed.bozo is not None and "entity declarations removed" in parsed.bozo
    assert parsed.entries[0]["title"] == "&a;"


def test_entity_subset_with_markup_and_quotes_is_stripped_whole() -> None:
    """Quotes, comments and '<b>' inside the subset do not end it early."""
    body = (
        b'<!DOCTYPE rss [\n<!-- a ] in a comment --><!ENTITY x "<b>]>">\n'
        b"<!ENTITY y '\"'>\n]>\n"
        b'<rss version="2.0"><channel><item><title>&x;&y;ok</title>'
        b"<link>https://x.example/1</link></item></channel></rss>"
    )
    [item] = parse_items("m", body, {}, "")
    assert item.title == "&x;&y;ok"


# --- normalisation details ------------------------------------------------------------------


def test_long_guid_is_hashed_and_whitespace_stripped() -> None:
    """Ids over 512 characters become sha256 digests; surrounding whitespace never counts."""
    long_id = "urn:x:" + "k" * 600
    assert entry_item({"id": long_id, "title": "t"}, "f", "").id == _sha(long_id)  # type: ignore[union-attr]
    assert entry_item({"id": "  g1 \n", "title": "t"}, "f", "").id == "g1"  # type: ignore[union-attr]


def test_entries_without_anything_are_skipped() -> None:
    """An entry with no id, link, title or text (only an image) yields no item."""
    assert entry_item({"summary": "<img src='x.jpg'>", "updated_parsed": None}, "f", "") is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"summary": "<p>Only a summary</p>"}, "Only a summary"),
        (
            {"content": [{"value": "<p>Full text here.</p>"}], "summary": "Full text"},
            "Full text here.",
        ),
        (
            {"content": [{"value": "Full text here, and more."}], "summary": "Full text here, …"},
            "Full text here, and more.",
        ),
        (
            {"content": [{"value": "Full text here, and more."}], "summary": "Full text [...]"},
            "Full text here, and more.",
        ),
        (
            {"content": [{"value": "Body."}], "summary": "A different dek."},
            "Body.\nA different dek.",
        ),
        ({"content": [{"value": "Same"}, {"value": "<b>Same</b>"}]}, "Same"),
        ({"content": [{"value": "Short"}], "summary": "Short but longer"}, "Short but longer"),
        ({"content": "not a list", "summary": None}, ""),
    ],
)
def test_entry_text_avoids_duplicates(entry: dict[str, object], expected: str) -> None:
    """Content first; the summary only if it adds text; copies and truncations dropped."""
    assert entry_text(entry) == expected


def test_dates_prefer_published_and_survive_nonsense() -> None:
    """published_parsed wins over updated_parsed; unrepresentable dates become None."""
    pub = time.struct_time((2024, 8, 12, 7, 0, 0, 0, 225, 0))
    upd = time.struct_time((2024, 8, 13, 7, 0, 0, 0, 226, 0))
    old = time.struct_time((1900, 1, 1, 0, 0, 0, 0, 1, 0))
    bad = time.struct_time((2024, 13, 40, 0, 0, 0, 0, 1, 0))
    cases = [
        ({"published_parsed": pub, "updated_parsed": upd}, _utc(2024, 8, 12, 7, 0)),
        ({"updated_parsed": upd}, _utc(2024, 8, 13, 7, 0)),
        ({"published_parsed": bad, "updated_parsed": upd}, _utc(2024, 8, 13, 7, 0)),
        ({"published_parsed": old}, _utc(1900, 1, 1)),
        ({"published_parsed": "garbage"}, None),
        ({}, None),
    ]
    for extra, expected in cases:
        item = entry_item({"id": "x", **extra}, "f", "")
        assert item is not None and item.published == expected, extra


def test_ids_are_stable_across_runs() -> None:
    """Parsing the same body twice gives identical items (ids included)."""
    body = _read("news.rss")
    assert parse_items("w", body, RSS_HEADERS, RSS_URL) == parse_items(
        "w", body, RSS_HEADERS, RSS_URL
    )


def test_content_location_is_the_base() -> None:
    """A Content-Location header (resolved against the URL) is the base for relative links."""
    headers = {**RSS_HEADERS, "Content-Location": "/mirror/world.rss"}
    parsed = parse_feed("w", _read("news.rss"), headers, "https://cdn.example.net/x")
    assert parsed.base == "https://cdn.example.net/mirror/world.rss"
    links = [i.link for i in normalize(parsed, "w")]
    assert "https://cdn.example.net/world/2024/11/11/kursk-50000" in links


def test_normalize_accepts_a_hand_built_parsed_feed() -> None:
    """normalize works on any ParsedFeed (e.g. one built by a test or a plugin)."""
    parsed = ParsedFeed(
        title="t",
        link=None,
        kind="rss",
        base="https://b.example/",
        entries=({"link": "/a?utm_source=x", "title": "A"},),
    )
    [item] = normalize(parsed, "f", ("x",))
    assert (item.id, item.link, item.tags) == (
        "https://b.example/a",
        "https://b.example/a?utm_source=x",
        ("x",),
    )


# --- aggregator source elements -------------------------------------------------------------

GNEWS_URL = "https://news.google.com/rss/search?q=kursk"
GNEWS_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Kursk - Google News</title>
<link>https://news.google.com/search?q=kursk</link>
<item><title>Troops advance in Kursk - BBC News</title>
<link>https://news.google.com/rss/articles/CBMiAWE?oc=5</link>
<guid isPermaLink="false">CBMiAWE</guid>
<pubDate>Wed, 06 Aug 2025 06:30:00 GMT</pubDate>
<source url="https://www.bbc.co.uk">BBC News</source></item>
<item><title>No source element</title><link>https://news.google.com/rss/articles/B</link></item>
<item><title>Relative source</title><link>https://news.google.com/rss/articles/C</link>
<source url="/outlets/bbc">BBC News</source></item>
<item><title>Script source</title><link>https://news.google.com/rss/articles/D</link>
<source url="javascript:alert(1)">BBC News</source></item>
<item><title>Source without a url</title><link>https://news.google.com/rss/articles/E</link>
<source>BBC News</source></item>
<item><title>Padded source</title><link>https://news.google.com/rss/articles/F</link>
<source url="  https://www.reuters.com/world/ ">Reuters</source></item>
</channel></rss>"""


def test_rss_source_url_is_read_on_both_paths() -> None:
    """RSS 2.0 <source url=...>: an absolute http(s) url is the item's source_url; relative,
    non-web or missing ones give None. The fast path and feedparser agree."""
    items = parse_items("gnews", GNEWS_RSS, RSS_HEADERS, GNEWS_URL)
    assert [(i.title, i.link, i.source_url) for i in items] == [
        (
            "Troops advance in Kursk - BBC News",
            "https://news.google.com/rss/articles/CBMiAWE?oc=5",
            "https://www.bbc.co.uk",
        ),
        ("No source element", "https://news.google.com/rss/articles/B", None),
        ("Relative source", "https://news.google.com/rss/articles/C", None),
        ("Script source", "https://news.google.com/rss/articles/D", None),
        ("Source without a url", "https://news.google.com/rss/articles/E", None),
        (
            "Padded source",
            "https://news.google.com/rss/articles/F",
            "https://www.reuters.com/world/",
        ),
    ]
    assert fast_items("gnews", GNEWS_RSS, RSS_HEADERS, GNEWS_URL) == items
    assert normalize(parse_feed("gnews", GNEWS_RSS, RSS_HEADERS, GNEWS_URL), "gnews") == items
    assert pickle.loads(pickle.dumps(items)) == items  # what the parse worker pool returns


def test_atom_source_link_is_read() -> None:
    """An Atom <source> with its own link: the alternate link is the source_url (not the
    source feed's self link, not a tag: id)."""
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Aggregated</title>
<id>tag:agg.example,2025:feed</id><updated>2025-08-06T07:00:00Z</updated>
<entry><id>tag:agg.example,2025:1</id><title>Troops advance in Kursk</title>
<link href="https://agg.example/r/1"/><updated>2025-08-06T06:30:00Z</updated>
<source><id>tag:bbc.co.uk,2025:news</id><title>BBC News</title>
<link rel="self" href="https://feeds.bbci.co.uk/news/atom.xml"/>
<link rel="alternate" type="text/html" href="https://www.bbc.co.uk/news"/>
<updated>2025-08-06T06:00:00Z</updated></source></entry>
<entry><id>tag:agg.example,2025:2</id><title>Only an id and a self link</title>
<link href="https://agg.example/r/2"/><updated>2025-08-06T06:30:00Z</updated>
<source><id>tag:bbc.co.uk,2025:news</id>
<link rel="self" href="https://feeds.bbci.co.uk/news/atom.xml"/></source></entry>
<entry><id>tag:agg.example,2025:3</id><title>No source</title>
<link href="https://agg.example/r/3"/><updated>2025-08-06T06:30:00Z</updated></entry>
</feed>"""
    headers = {"content-type": "application/atom+xml"}
    items = parse_items("agg", body, headers, "https://agg.example/feed.atom")
    assert [(i.link, i.source_url) for i in items] == [
        ("https://agg.example/r/1", "https://www.bbc.co.uk/news"),
        ("https://agg.example/r/2", None),
        ("https://agg.example/r/3", None),
    ]


def test_feeds_without_source_elements_have_no_source_url() -> None:
    """The fixture feeds (RSS, Atom, RDF, JSON Feed) carry no <source>: source_url is None."""
    for name in ("news.rss", "news.atom", "news.rdf", "news.json"):
        items = parse_items("f", _read(name), {}, RSS_URL)
        assert items and {i.source_url for i in items} == {None}, name


# --- the process pool -----------------------------------------------------------------------


def test_parse_items_runs_in_a_fresh_worker_process() -> None:
    """parse_items and its results and errors cross a spawn-started process pool intact."""
    body = _read("news.rss")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        remote = pool.submit(parse_items, "w", body, RSS_HEADERS, RSS_URL, ("t",)).result(60)
        failed = pool.submit(parse_items, "w", b"", {}, RSS_URL).exception(60)
    assert remote == parse_items("w", body, RSS_HEADERS, RSS_URL, ("t",))
    assert isinstance(failed, ParseError)
    assert (failed.feed, failed.message) == ("w", "empty body")
