"""``test-rule`` over a folder (daemon/match/folder.py): day folders of archived items in the
real-news corpus format (written here, synthetic), feed files beside them, problems reported."""

from __future__ import annotations

import io
import json
from pathlib import Path

from daemon.match import testrule
from daemon.match.folder import read_folder
from tests.support.feeds import Entry, rss

RULES = """\
rules:
  - id: kursk
    title: Kursk
    query: Kursk
"""


def entry(n: int, title: str, description: str, date: str) -> dict[str, object]:
    return {
        "source": "https://outlet.example/rss.xml",
        "title": title,
        "description": description,
        "link": f"https://outlet.example/news/{n}",
        "date_published": date,
        "language": "en",
        "page_rating": 0,  # a field of the capturing application
    }


def corpus(tmp_path: Path) -> Path:
    """Two days of one feed (as a list, then as {entries: …}), an item repeated across days,
    an RSS file, a file that is not a feed and one that is broken."""
    root = tmp_path / "news"
    (root / "2023-03-10").mkdir(parents=True)
    (root / "2023-03-11").mkdir()
    day1 = [
        entry(
            1,
            "Drone strike in Kursk",
            "<p>A <b>drone</b> hit a station.</p>",
            "2023-03-10T08:00:00Z",
        ),
        entry(2, "Markets calm", "Stocks flat.", "2023-03-10T09:00:00+00:00"),
    ]
    day2 = {
        "entries": [
            entry(1, "Drone strike in Kursk", "A drone hit a station.", "2023-03-10T08:00:00Z"),
            entry(3, "Weather", "Snow expected in the Kursk region.", "2023-03-11T07:30:00"),
        ]
    }
    (root / "2023-03-10" / "httpsoutletexamplerssxml_entries.json").write_text(json.dumps(day1))
    (root / "2023-03-11" / "httpsoutletexamplerssxml_entries.json").write_text(json.dumps(day2))
    (root / "2023-03-11" / "other.rss").write_bytes(
        rss([Entry("g1", "Kursk governor speaks", "Statement.")])
    )
    (root / "README.md").write_text("not a feed")
    (root / "2023-03-11" / "broken.xml").write_bytes(b"\x00\x01 not xml <<<")
    return root


def test_read_folder(tmp_path: Path) -> None:
    """Corpus files are normalised like feed entries (HTML to text, UTC dates, the link as id),
    an item seen on two days is kept once, feed files are parsed, other files skipped, a
    broken file is a problem."""
    found = read_folder(corpus(tmp_path))
    assert [(i.feed, i.id, i.title) for i in found.items] == [
        ("httpsoutletexamplerssxml", "https://outlet.example/news/1", "Drone strike in Kursk"),
        ("httpsoutletexamplerssxml", "https://outlet.example/news/2", "Markets calm"),
        ("httpsoutletexamplerssxml", "https://outlet.example/news/3", "Weather"),
        ("other", "g1", "Kursk governor speaks"),
    ]
    first = found.items[0]
    assert first.summary == "A drone hit a station."
    assert (
        first.published is not None and first.published.isoformat() == "2023-03-10T08:00:00+00:00"
    )
    assert found.items[2].published is not None and found.items[2].published.hour == 7
    assert (found.files, found.skipped) == (3, 1)
    assert len(found.problems) == 1 and found.problems[0].startswith(
        "2023-03-11/broken.xml: cannot parse"
    )


def test_test_rule_over_a_folder(tmp_path: Path) -> None:
    """``test-rule RULES FOLDER`` matches every item of every day; problems go to err."""
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    out, err = io.StringIO(), io.StringIO()
    code = testrule.test_rule([rules], str(corpus(tmp_path)), as_json=True, out=out, err=err)
    assert code == 0
    matched = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [m["title"] for m in matched] == [
        "Drone strike in Kursk",
        "Weather",
        "Kursk governor speaks",
    ]
    assert "broken.xml: cannot parse" in err.getvalue()
    assert "read 4 items from 3 files" in err.getvalue()


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    """A folder with nothing to read fails with a message."""
    rules = tmp_path / "r.yaml"
    rules.write_text(RULES)
    (tmp_path / "empty").mkdir()
    out = io.StringIO()
    assert testrule.test_rule([rules], str(tmp_path / "empty"), as_json=False, out=out) == 1
    assert "no feed files or archived items" in out.getvalue()
