"""Story clustering on real news: how many stories each labelled event became, and how pure.

For each day of ``../shared/corpora/real-news/`` that has a label file in ``eval/labels/stories/``
(or each ``--day``), this script

1. writes one RSS feed per captured feed of that day, the dates shifted so that the newest item
   is five minutes old (relative times kept), and serves them on 127.0.0.1;
2. runs the real daemon once over them (``feedwatch run --once``: fetch, parse, new?, match,
   stories, publish, deliver) with a rule that matches every item and a ``console`` notifier
   writing JSON, in a fresh state folder with its embedded Redis;
3. reads each item's story from its alert (every item raises one: the story's first alert or a
   follow-up) and prints, per day and in all, for all items and for English items alone:
   - **events**: labelled events (one development reported by >= 3 publishers that day);
   - **stories per event**: distinct stories among an event's items (mean, worst); 1 is ideal;
   - **pair precision**: of the pairs of items put in one story, the share that are one event.
     A pair of two events, or of an event's item and an item labelled nowhere (background), is
     wrong; a pair with an item labelled ``related`` to that event does not count, nor does a
     pair of two background items (unknown);
   - **pair recall**: of the pairs of one event's items, the share put in one story.

The publishers' text is read from the corpus folder and never written anywhere but the temporary
feeds. It exits 0 with a message when the corpus is absent (``--corpus`` names another place).

    python eval/stories.py [--day 2023-02-24 ...] [--json eval/results/stories.json]
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import combinations
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "real-news"
LABELS = ROOT / "eval" / "labels" / "stories"
EVERYTHING = "rules:\n  - id: everything\n    title: Every item\n    query: '/./'\n"


@dataclass(frozen=True, slots=True)
class Entry:
    feed: str
    link: str
    title: str
    description: str
    published: datetime
    language: str


@dataclass
class Day:
    name: str
    feeds: dict[str, list[Entry]] = field(default_factory=dict)

    @property
    def entries(self) -> list[Entry]:
        return [e for es in self.feeds.values() for e in es]


def read_day(folder: Path) -> Day:
    """Every feed file of one day, each entry with a link and a date."""
    day = Day(folder.name)
    for i, path in enumerate(sorted(folder.glob("*.json"))):
        data = json.loads(path.read_text(encoding="utf-8"))
        raw = data.get("entries", []) if isinstance(data, dict) else data
        name = f"f{i:03d}-" + re.sub(r"[^a-z0-9]+", "-", path.stem.lower())[:40].strip("-")
        seen: set[str] = set()
        entries = []
        for e in raw:
            link, when = e.get("link"), e.get("date_published")
            if not link or not when or link in seen:
                continue
            seen.add(link)
            published = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
            if published.tzinfo is None:
                published = published.replace(tzinfo=UTC)
            entries.append(
                Entry(
                    name,
                    link,
                    str(e.get("title") or ""),
                    str(e.get("description") or ""),
                    published,
                    str(e.get("language") or "")[:2].lower(),
                )
            )
        if entries:
            day.feeds[name] = entries
    return day


def rss(feed: str, entries: list[Entry], shift: timedelta) -> bytes:
    """An RSS 2.0 document of ``entries``, dates moved by ``shift``."""
    items = "".join(
        "<item>"
        f"<title>{html.escape(e.title)}</title>"
        f"<link>{html.escape(e.link)}</link>"
        f'<guid isPermaLink="false">{html.escape(e.link)}</guid>'
        f"<description>{html.escape(e.description)}</description>"
        f"<pubDate>{format_datetime(e.published + shift, usegmt=True)}</pubDate>"
        "</item>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{feed}</title><link>http://127.0.0.1/{feed}</link>{items}</channel></rss>"
    ).encode()


def serve(bodies: dict[str, bytes]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.get(self.path.lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run_daemon(day: Day, work: Path) -> tuple[dict[str, str], float]:
    """Run ``feedwatch run --once`` over the day's feeds: link → story id, and seconds taken."""
    newest = max(e.published for e in day.entries)
    shift = datetime.now(UTC) - timedelta(minutes=5) - newest
    bodies = {name: rss(name, es, shift) for name, es in day.feeds.items()}
    server, base = serve(bodies)
    try:
        (work / "rules").mkdir()
        (work / "rules" / "everything.yaml").write_text(EVERYTHING, encoding="utf-8")
        feeds = "".join(
            f"  - {{name: {json.dumps(n)}, url: {json.dumps(f'{base}/{n}')}}}\n" for n in bodies
        )
        config = work / "feedwatch.yaml"
        config.write_text(
            f"state_dir: {json.dumps(str(work / 'state'))}\n"
            f"rules: [{json.dumps(str(work / 'rules'))}]\n"
            "defaults: {notify: [console], backfill: all}\n"
            "notifiers: {console: {type: console, format: json}}\n"
            "log: {level: warning}\n"
            f"feeds:\n{feeds}",
            encoding="utf-8",
        )
        script = Path(sys.executable).with_name("feedwatch")
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(script), "run", "--once", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        seconds = time.perf_counter() - t0
    finally:
        server.shutdown()
    if done.returncode != 0:
        raise SystemExit(f"feedwatch exited {done.returncode}:\n{done.stderr[-3000:]}")
    story: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            alert = json.loads(line)
            if alert.get("link") and alert.get("story_id"):
                story.setdefault(alert["link"], alert["story_id"])
    return story, seconds


@dataclass
class Score:
    events: int = 0
    stories: list[int] = field(default_factory=list)
    right: int = 0
    wrong: int = 0
    joined: int = 0
    pairs: int = 0
    missing: int = 0

    def add(self, other: Score) -> None:
        self.events += other.events
        self.stories += other.stories
        self.right += other.right
        self.wrong += other.wrong
        self.joined += other.joined
        self.pairs += other.pairs
        self.missing += other.missing

    def figures(self) -> dict[str, float | int]:
        n = len(self.stories)
        return {
            "events": self.events,
            "stories_per_event_mean": round(sum(self.stories) / n, 2) if n else 0.0,
            "stories_per_event_worst": max(self.stories, default=0),
            "pair_precision": round(self.right / (self.right + self.wrong), 3)
            if self.right + self.wrong
            else 1.0,
            "pair_recall": round(self.joined / self.pairs, 3) if self.pairs else 1.0,
            "right_pairs": self.right,
            "wrong_pairs": self.wrong,
            "labelled_items_without_alert": self.missing,
        }


def score(labels: dict[str, Any], story: dict[str, str], keep: set[str]) -> Score:
    """The figures for the labelled events, over the items whose link is in ``keep``."""
    event_of: dict[str, str] = {}
    related: dict[str, set[str]] = defaultdict(set)
    s = Score()
    for ev in labels["events"]:
        links = [x for x in ev["links"] if x in keep]
        for x in links:
            event_of[x] = ev["id"]
        for x in ev.get("related") or []:
            related[x].add(ev["id"])
        if len(links) < 1:
            continue
        s.events += 1
        s.missing += sum(1 for x in links if x not in story)
        assigned = [story[x] for x in links if x in story]
        if assigned:
            s.stories.append(len(set(assigned)))
        for a, b in combinations([x for x in links if x in story], 2):
            s.pairs += 1
            s.joined += story[a] == story[b]
    members: dict[str, list[str]] = defaultdict(list)
    for link, sid in story.items():
        if link in keep:
            members[sid].append(link)
    for links in members.values():
        for a, b in combinations(links, 2):
            ea, eb = event_of.get(a), event_of.get(b)
            if ea is None and eb is None:
                continue  # two background items: unknown
            if ea == eb:
                s.right += 1
            elif (ea is not None and ea in related.get(b, ())) or (
                eb is not None and eb in related.get(a, ())
            ):
                continue  # loosely related: neither right nor wrong
            else:
                s.wrong += 1
    return s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--day", action="append", help="only these days (default: all labelled)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"stories eval skipped: no real-news corpus at {args.corpus}")
        return 0
    label_files = {p.stem: p for p in sorted(args.labels.glob("*.yaml"))}
    days = args.day or sorted(label_files)
    if not days:
        print(f"stories eval skipped: no label files in {args.labels}")
        return 0
    yaml = YAML(typ="safe")
    totals = {"all": Score(), "en": Score()}
    report: dict[str, Any] = {"days": {}}
    for name in days:
        if name not in label_files:
            print(f"{name}: no labels in {args.labels}; skipped")
            continue
        labels = yaml.load(label_files[name].read_text(encoding="utf-8"))
        day = read_day(args.corpus / name)
        work = Path(tempfile.mkdtemp(prefix=f"fw-eval-{name}-"))
        try:
            story, seconds = run_daemon(day, work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        every = {e.link for e in day.entries}
        english = {e.link for e in day.entries if e.language == "en"}
        figures = {}
        for lang, keep in (("all", every), ("en", english)):
            s = score(labels, story, keep)
            totals[lang].add(s)
            figures[lang] = s.figures()
        report["days"][name] = {
            "items": len(every),
            "stories": len(set(story.values())),
            "seconds": round(seconds, 1),
            **figures,
        }
        _print(name, report["days"][name])
    report["total"] = {lang: s.figures() for lang, s in totals.items()}
    _print("all days", report["total"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


def _print(name: str, figures: dict[str, Any]) -> None:
    head = f"{name}:"
    if "items" in figures:
        head += (
            f" {figures['items']} items → {figures['stories']} stories in {figures['seconds']} s"
        )
    print(head)
    for lang in ("all", "en"):
        f = figures[lang]
        print(
            f"  {lang:3} {f['events']:3} events: {f['stories_per_event_mean']:.2f} stories per "
            f"event (worst {f['stories_per_event_worst']}), pair precision "
            f"{f['pair_precision']:.3f} ({f['wrong_pairs']} wrong), pair recall "
            f"{f['pair_recall']:.3f}"
            + (
                f", {f['labelled_items_without_alert']} labelled items without an alert"
                if f["labelled_items_without_alert"]
                else ""
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
