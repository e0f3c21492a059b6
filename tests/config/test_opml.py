"""OPML feed lists: parsing fixtures, ``{opml: PATH}`` config entries, ``feedwatch feeds``.

Fixtures in ``tests/data/opml``: ``reader-export.opml`` (folders, a nested folder, a feed in two
folders, non-ASCII titles, colliding titles, a ``feed://`` URL, a link outline, a ``category``
attribute), ``opml1-latin1.opml`` (OPML 1.0 in ISO-8859-1), ``entity-bomb.opml`` (billion
laughs) and ``broken.opml`` (not well-formed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from ruamel.yaml import YAML

from daemon.cli import main
from daemon.config.load import ConfigError, config_from_dict, load_config
from daemon.config.opml import parse_opml, read_opml, slug, unique_name
from daemon.config.opml_io import insert_feeds
from daemon.config.values import is_name

DATA = Path(__file__).resolve().parent.parent / "data" / "opml"
READER = DATA / "reader-export.opml"

READER_FEEDS = [
    ("kyiv-independent", "https://kyivindependent.com/feed/", ("ukraine", "russia")),
    ("ukrayinska-pravda", "https://www.pravda.com.ua/rss/", ("ukraine",)),
    ("ukrinform", "https://www.ukrinform.net/rss/block-lastnews", ("ukraine",)),
    (
        "isw-russian-offensive-campaign-assessment",
        "https://www.understandingwar.org/feeds/russian-offensive-campaign-update.xml",
        ("ukraine", "front-line"),
    ),
    ("deepstate", "https://deepstatemap.example/feed.atom", ("ukraine", "front-line")),
    ("meduza-english", "https://meduza.io/rss/en/all", ("russia",)),
    ("novaya-gazeta-evropa", "https://novayagazeta.eu/feed/rss", ("russia",)),
    ("le-monde-a-la-une", "https://www.lemonde.fr/rss/une.xml", ("world-news", "europe")),
    (
        "zeit-online-ausland-aussenpolitik",
        "https://newsfeed.zeit.de/politik/ausland/index",
        ("world-news", "europe"),
    ),
    (
        "reuters",
        "https://www.reutersagency.com/feed/?best-regions=europe&post_type=best",
        ("world-news", "europe"),
    ),
    (
        "reuters-2",
        "https://www.reutersagency.com/feed/?taxonomy=best-sectors&post_type=best",
        ("world-news",),
    ),
    (
        "aljazeera.net",
        (
            "https://www.aljazeera.net/aljazeerarss/a7c186be-1baa-4bd4-9d80-a84db769f779/"
            "73d0e1b4-532f-45ef-b135-bfdff8b8cab9"
        ),
        ("world-news",),
    ),
    ("nhk", "https://www3.nhk.or.jp/rss/news/cat0.xml", ("world-news",)),
    (
        "bbc-news-world",
        "http://feeds.bbci.co.uk/news/world/rss.xml",
        ("world-news", "breaking", "uk", "public-broadcaster"),
    ),
    ("war-on-the-rocks", "https://warontherocks.com/feed/", ()),
]


def _opml(body: str) -> bytes:
    return f'<?xml version="1.0"?>\n<opml version="2.0"><body>\n{body}\n</body></opml>\n'.encode()


def _config(tmp_path: Path, text: str, *opml: Path) -> Path:
    for path in opml:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "feedwatch.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "feedwatch.yaml"


# -- parsing ----------------------------------------------------------------------------------


def test_reader_export_gives_feeds_with_folder_tags() -> None:
    """Folders (nested too) and ``category`` become tags; duplicates merge; titles become slugs."""
    doc = read_opml(READER)
    assert [(f.name, f.url, f.tags) for f in doc.feeds] == READER_FEEDS
    assert doc.title == "Subscriptions of desk@example.org" and doc.merged == 1
    assert doc.skipped == ()
    assert doc.feeds[1].title == "Українська правда" and doc.feeds[0].line == 12


def test_opml_1_0_in_latin1_reads() -> None:
    """OPML 1.0 with a declared ISO-8859-1 encoding, ``title`` only and a lowercase ``xmlurl``."""
    doc = read_opml(DATA / "opml1-latin1.opml")
    assert [(f.name, f.url, f.title) for f in doc.feeds] == [
        ("scripting-news", "http://www.scripting.com/rss.xml", "Scripting News"),
        ("cafe-babel-europe", "https://www.cafebabel.example/rss", "Café Babel · Europe"),
        ("old-exporter", "http://old.example/index.rdf", "Old exporter"),
    ]


def test_colliding_titles_get_numbered_names() -> None:
    """Titles alike give ``x``, ``x-2``, ``x-3``; a title with no letters falls back to the host."""
    body = "\n".join(
        f'<outline text="{t}" xmlUrl="https://www.site{i}.example/rss"/>'
        for i, t in enumerate(["Daily news", "Daily  News!", "DAILY NEWS", "", "★"])
    )
    names = [f.name for f in parse_opml(_opml(body), "x.opml").feeds]
    assert names == ["daily-news", "daily-news-2", "daily-news-3", "site3.example", "site4.example"]
    assert unique_name("a", {"a", "a-2"}) == "a-3"


def test_outline_with_a_non_http_url_is_skipped_and_located() -> None:
    """An ftp:// or host-less URL skips that outline; the problem names the line, not the URL."""
    body = (
        '<outline text="ok" xmlUrl="https://ok.example/rss"/>\n'
        '<outline text="Secret ftp" xmlUrl="ftp://user:tok3n@files.example/rss"/>\n'
        '<outline text="No host" xmlUrl="https:///rss"/>'
    )
    doc = parse_opml(_opml(body), "x.opml")
    assert [f.name for f in doc.feeds] == ["ok"]
    assert [p.render() for p in doc.skipped] == [
        "x.opml:4:0: outline 'Secret ftp': expected an http:// or https:// URL, got scheme 'ftp'",
        "x.opml:5:0: outline 'No host': the URL has no host name",
    ]


@pytest.mark.parametrize(
    ("data", "rendered"),
    [
        (
            (DATA / "broken.opml").read_bytes(),
            (
                "x.opml:7:10: opml: not well-formed XML: Opening and ending tag mismatch: "
                "outline line 5 and body"
            ),
        ),
        (b"<html><body/></html>", "x.opml:1:0: opml: expected an <opml> document, got <html>"),
        (b'<opml version="2.0"><head/></opml>', "x.opml:1:0: opml: no <body>"),
        (b"", "x.opml:1:1: opml: not well-formed XML: Document is empty"),
    ],
    ids=["broken", "html", "no-body", "empty"],
)
def test_unusable_documents_are_located_problems(data: bytes, rendered: str) -> None:
    """Malformed XML, a non-OPML root or a missing body raise ConfigError with a position."""
    with pytest.raises(ConfigError) as info:
        parse_opml(data, "x.opml")
    assert [p.render() for p in info.value.problems] == [rendered]


@pytest.mark.timeout(10)
def test_entity_bomb_is_refused_before_parsing() -> None:
    """Billion laughs is refused at its first ``<!ENTITY``, nothing is expanded."""
    with pytest.raises(ConfigError) as info:
        read_opml(DATA / "entity-bomb.opml", "bomb.opml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 3)
    assert "declares entities" in problem.message


@pytest.mark.timeout(10)
@pytest.mark.parametrize("harmless", [False, True])
def test_entities_in_utf16_are_refused_too(harmless: bool) -> None:
    """In UTF-16 (which the byte scan cannot see) a bomb or even one harmless entity is refused."""
    text = (DATA / "entity-bomb.opml").read_text(encoding="utf-8")
    if harmless:
        text = (
            '<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY a "x">]>\n'
            + _opml('<outline text="&a;" xmlUrl="https://a.example/"/>').decode().split("\n", 1)[1]
        )
    data = text.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    with pytest.raises(ConfigError) as info:
        parse_opml(data.encode("utf-16"), "x.opml")
    (problem,) = info.value.problems
    assert problem.where == "opml" and "entit" in problem.message.lower()
    assert not harmless or "declares entities" in problem.message


@given(st.text())
def test_slugs_are_valid_names_and_stable(text: str) -> None:
    """A slug is empty or a valid feed name, and slugging it again changes nothing."""
    s = slug(text)
    assert s == "" or (is_name(s) and s == s.lower() and len(s) <= 60)
    assert slug(s) == s


# -- the config ---------------------------------------------------------------------------------


def test_config_opml_entry_brings_feeds_with_its_overrides(tmp_path: Path) -> None:
    """``{opml:}`` feeds get the entry's interval/backfill; its tags come before the categories."""
    path = _config(
        tmp_path,
        "defaults: {interval: 10m, backfill: 2h}\n"
        "feeds:\n"
        "  - name: inline\n    url: https://inline.example/rss\n"
        "  - opml: reader-export.opml\n    interval: 5m\n    tags: [reader, ukraine]\n"
        "  - {opml: opml1-latin1.opml, backfill: none}\n",
        READER,
        DATA / "opml1-latin1.opml",
    )
    cfg = load_config(path, env={})
    assert [f.name for f in cfg.feeds] == [
        "inline",
        *(name for name, _, _ in READER_FEEDS),
        "scripting-news",
        "cafe-babel-europe",
        "old-exporter",
    ]
    kyiv, war = cfg.feed("kyiv-independent"), cfg.feed("war-on-the-rocks")
    assert kyiv.tags == ("reader", "ukraine", "russia") and war.tags == ("reader", "ukraine")
    assert (kyiv.interval, kyiv.backfill) == (300.0, 7200.0)
    old = cfg.feed("old-exporter")
    assert (old.interval, old.backfill, old.tags) == (600.0, 0.0, ())


def test_config_from_dict_resolves_opml_against_base_dir(tmp_path: Path) -> None:
    """With ``config_from_dict`` the OPML path is relative to ``base_dir``."""
    shutil.copy(READER, tmp_path / "subs.opml")
    cfg = config_from_dict({"feeds": [{"opml": "subs.opml"}]}, base_dir=tmp_path)
    assert [(f.name, f.url, f.tags) for f in cfg.feeds] == READER_FEEDS


def test_name_clash_between_inline_and_opml_names_both_places(tmp_path: Path) -> None:
    """A name used inline and in an OPML file is a problem naming the entry and the OPML line."""
    path = _config(
        tmp_path,
        "feeds:\n"
        "  - name: reuters\n    url: https://inline.example/a\n"
        "  - opml: reader-export.opml\n"
        "  - name: nhk\n    url: https://inline.example/b\n",
        READER,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    shown = str(tmp_path / "reader-export.opml")
    first = f"{path}:4:11: feeds[1].opml: feed name 'reuters' from {shown}:29 is already used"
    second = f"{path}:5:11: feeds[2].name: feed name 'nhk' is already used by feeds[1].opml"
    assert [p.render() for p in info.value.problems] == [
        f"{first} by feeds[0]",
        f"{second} ({shown}:33)",
    ]


def test_missing_or_broken_opml_file_is_a_problem_at_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing file is one line at the ``opml`` value; a broken one adds its own location."""
    _config(
        tmp_path,
        "feeds:\n  - opml: nowhere.opml\n  - opml: lists/broken.opml\n    interval: 2m\n",
    )
    (tmp_path / "lists").mkdir()
    shutil.copy(DATA / "broken.opml", tmp_path / "lists")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("feedwatch.yaml", env={})
    assert info.value.render() == (
        "feedwatch.yaml:2:11: feeds[0].opml: OPML file 'nowhere.opml': not found\n"
        "feedwatch.yaml:3:11: feeds[1].opml: OPML file 'lists/broken.opml' is not usable\n"
        "    lists/broken.opml:7:10: opml: not well-formed XML: Opening and ending tag mismatch: "
        "outline line 5 and body"
    )


def test_opml_entry_keys_are_checked(tmp_path: Path) -> None:
    """An opml entry accepts only opml/interval (and bounds)/tags/backfill, with the usual
    messages."""
    data = {"feeds": [{"opml": "x.opml", "name": "n", "interval": "soon"}]}
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, base_dir=tmp_path, display="api")
    assert [p.render() for p in info.value.problems] == [
        "api:0:0: feeds[0].interval: expected a duration like '90s' or '5m', got 'soon'",
        (
            "api:0:0: feeds[0].name: unknown key 'name' "
            "(known keys: opml, interval, min_interval, max_interval, tags, backfill)"
        ),
    ]


# -- the command line ---------------------------------------------------------------------------


def test_cli_import_prints_a_feeds_block_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``feeds import FILE`` prints a ``feeds:`` block which, as a config, gives the same feeds."""
    assert main(["feeds", "import", str(READER), "--interval", "15m"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("feeds:\n  - name: kyiv-independent\n")
    assert "    tags: [ukraine, russia]\n" in out and "15 feeds read" in err
    cfg = load_config(_config(tmp_path, out), env={})
    assert [(f.name, f.url, f.tags) for f in cfg.feeds] == READER_FEEDS
    assert {f.interval for f in cfg.feeds} == {900.0}


def test_cli_import_rejects_a_bad_interval(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid ``--interval`` is a usage error (exit 2) and nothing is printed to stdout."""
    assert main(["feeds", "import", str(READER), "--interval", "0.5s"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "at least 1s" in err


def test_cli_import_appends_keeping_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--append-to inserts after the last feed, keeps every line, skips known URLs, renames."""
    original = (
        "# desk config\n"
        "defaults:\n  interval: 10m   # aligned comment\n"
        "feeds:\n"
        "  - name: reuters            # ours\n"
        "    url: https://inline.example/reuters\n"
        "  - name: kyiv\n    url: https://kyivindependent.com/feed/\n"
        "    tags: [mine]\n"
        "\n# notifiers below\n"
        'notifiers:\n  console: {type: console, format: "text"}\n'
    )
    path = _config(tmp_path, original)
    assert main(["feeds", "import", str(READER), "--append-to", str(path)]) == 0
    err = capsys.readouterr().err
    assert "renamed: reuters -> reuters-2 (the name is taken)\n" in err
    assert "renamed: reuters-2 -> reuters-3 (the name is taken)\n" in err
    assert "1 feeds already configured" in err
    text = path.read_text(encoding="utf-8")
    head, tail = original.split("\n\n# notifiers")
    assert text.startswith(head + "\n  - name: ukrayinska-pravda\n")
    assert text.endswith("\n\n# notifiers" + tail)
    cfg = load_config(path, env={})
    assert len(cfg.feeds) == 2 + 14 and cfg.feed("kyiv").tags == ("mine",)
    assert cfg.feed("reuters-2").tags == ("world-news", "europe")
    assert cfg.feed("reuters-3").url.endswith("best-sectors&post_type=best")


def test_cli_import_does_not_write_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config that does not load is left as it was; the problems are printed, exit 1."""
    path = _config(tmp_path, "feeds:\n  - name: a\n    url: ftp://a.example/\n")
    before = path.read_text(encoding="utf-8")
    assert main(["feeds", "import", str(READER), "--append-to", str(path)]) == 1
    assert "feeds[0].url" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["feedwatch.yaml"]


@pytest.mark.parametrize(
    ("original", "kept"),
    [
        ("redis: redis://r:6379/0", "redis: redis://r:6379/0\nfeeds:\n"),
        ("feeds: []   # none yet\nlog: {level: info}\n", "feeds:  # none yet\n"),
        ("feeds:\n\nlog: {level: info}\n", "feeds:\n  - name: a-1\n"),
        (
            "feeds:\n- name: z\n  url: https://z.example/\nlog: {}\n",
            "  url: https://z.example/\n- ",
        ),
        ("feeds: [{name: z, url: 'https://z.example/'}]  # flow\n", "# flow"),
    ],
    ids=["no-key", "empty-flow", "null", "unindented", "flow-fallback"],
)
def test_insert_feeds_handles_every_shape_of_feeds(original: str, kept: str) -> None:
    """Missing, empty, null, unindented and flow-style ``feeds`` all end up loading."""
    feeds = parse_opml(
        _opml('<outline text="A 1" category="/x" xmlUrl="https://a.example/?q=${HOME}"/>'), "x"
    ).feeds
    text = insert_feeds(original, feeds, interval="5m")
    assert kept in text
    cfg = config_from_dict(YAML(typ="rt").load(text), base_dir=Path("/"))
    added = cfg.feed("a-1")
    assert (added.url, added.tags, added.interval) == ("https://a.example/?q=${HOME}", ("x",), 300)


def test_cli_export_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``feeds export`` groups by first tag; importing the export gives the same URLs and tags."""
    path = _config(tmp_path, "feeds:\n  - opml: reader-export.opml\n", READER)
    assert main(["feeds", "export", "--config", str(path)]) == 0
    exported = capsys.readouterr().out
    root = etree.fromstring(exported.encode())
    assert root.get("version") == "2.0"
    folders = [o.get("text") for o in root.iterfind("body/outline") if o.get("xmlUrl") is None]
    assert folders == ["ukraine", "russia", "world-news"]
    (tmp_path / "out.opml").write_text(exported, encoding="utf-8")
    assert main(["feeds", "import", str(tmp_path / "out.opml")]) == 0
    block = capsys.readouterr().out
    cfg = load_config(_config(tmp_path, block), env={})
    assert [(f.url, f.tags) for f in cfg.feeds] == [(u, t) for _, u, t in READER_FEEDS]

    assert main(["feeds", "export", "-c", str(path), "-o", str(tmp_path / "file.opml")]) == 0
    assert (tmp_path / "file.opml").read_text(encoding="utf-8") == exported


def test_cli_export_leaves_out_urls_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feed whose URL uses ``${VAR}`` is not written (it may hold a token); a warning says so."""
    monkeypatch.setenv("FW_TEST_TOKEN", "s3cr3t-t0ken")
    path = _config(
        tmp_path,
        "feeds:\n  - {name: plain, url: 'https://a.example/rss'}\n"
        "  - {name: private, url: 'https://b.example/rss?token=${FW_TEST_TOKEN}'}\n",
    )
    assert main(["feeds", "export", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "a.example" in out and "s3cr3t" not in out + err
    assert "left out: private" in err
