"""Every corpus file, served over HTTP with its headers, through fetch → parse → normalise.

The corpora (tests/data/corpora, see its README: feedparser's 2,123 test feeds and Miniflux's
22 encoding and parser fixtures, with their licences) are served by a real HTTP server on
127.0.0.1, each file with the HTTP headers its leading comment declares (``Header:
Content-type: text/xml; charset=...`` lines, which feedparser's own harness sends; see
feedparser-tests/INVENTORY.md) and no Content-Type at all when it declares none. ``Fetcher``
fetches them all, and ``parse_items`` runs on each response in a process pool (2 workers, as
in production), under a per-file time limit.

What must hold:
- nothing raises anything but ParseError, nothing hangs, and no ParseError hides a crash inside
  feedparser (``feedparser failed: ...``);
- fetched over HTTP, every file gives the same outcome as parsing its bytes directly with its
  declared headers (the fetcher adds headers and changes nothing that matters);
- the floor: of the files in which feedparser itself (default settings) finds an entry with an
  id, a link or a title with text, we yield at least one item from every one (measured: 280
  of 280). The corpus is mostly unit tests of feed-level elements and of the HTML sanitiser,
  so "files with items" alone (591 of 2,145) says little; entries that carry only an image, an
  author or an enclosure are skipped on purpose (nothing to identify or match). The absolute
  floor below is just under what was measured (591 files, 860 items).

Measured here: ~13 s fetching (the test server answers headers and body in two writes, so
Nagle's algorithm and delayed ACKs cost ~40 ms per response and connection), ~4 s parsing.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import FrameType

import feedparser
import pytest

from daemon.errors import FetchError, ParseError
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.parse.feed import parse_items
from daemon.parse.text import html_to_text
from tests.conftest import ROOT
from tests.support.httpserver import FeedServer, Request, Response

CORPORA = ROOT / "tests" / "data" / "corpora"
CORPUS_FILES = 2145  # feedparser-tests and miniflux-testdata, licences and inventories aside
PER_FILE_SECONDS = 10
_SKIP = re.compile(r"^(LICENSE|INVENTORY|README)", re.IGNORECASE)
_HEADER = re.compile(rb"^[ \t]*Header:[ \t]*([^:\r\n]+):[ \t]*(.*?)[ \t\r]*$", re.MULTILINE)

# (outcome, items, message): outcome is "items", "parse_error", "timeout" or "crash".
Outcome = tuple[str, int, str]


def corpus_files() -> list[Path]:
    """Every corpus file except licences, inventories and READMEs, sorted."""
    return sorted(p for p in CORPORA.rglob("*") if p.is_file() and not _SKIP.match(p.name))


def declared_headers(data: bytes) -> dict[str, str]:
    """The ``Header: Name: value`` lines of the file's leading comment."""
    end = data.find(b"-->")
    head = data[: end if end >= 0 else 4096]
    return {k.strip().decode("latin-1"): v.decode("latin-1") for k, v in _HEADER.findall(head)}


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError(f"over {PER_FILE_SECONDS}s")


def _outcome(body: bytes, headers: dict[str, str], url: str) -> Outcome:
    try:
        return "items", len(parse_items("corpus", body, headers, url)), ""
    except ParseError as e:
        return "parse_error", 0, e.message
    except TimeoutError as e:
        return "timeout", 0, str(e)
    except Exception as e:  # the test reports these: they are the bugs it looks for
        return "crash", 0, f"{type(e).__name__}: {e}"


def check_file(
    path: str, body: bytes, headers: dict[str, str], url: str
) -> tuple[Outcome, Outcome, bool]:
    """(outcome over HTTP, outcome from the file directly, feedparser finds a usable entry).

    Runs in a worker process, under SIGALRM so a hang becomes a "timeout" outcome.
    """
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, PER_FILE_SECONDS)
    try:
        fetched = _outcome(body, headers, url)
        data = Path(path).read_bytes()
        declared = declared_headers(data)
        direct = _outcome(data, declared, url)
        d = feedparser.parse(
            io.BytesIO(data), response_headers={k.lower(): v for k, v in declared.items()}
        )
        usable = any(
            e.get("id") or e.get("link") or html_to_text(e.get("title") or "") for e in d.entries
        )
    except TimeoutError as e:
        return ("timeout", 0, str(e)), ("timeout", 0, str(e)), False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return fetched, direct, usable


def _serve(data: bytes, headers: dict[str, str]) -> Callable[[Request], Response]:
    def answer(req: Request) -> Response:
        return Response(200, data, headers=dict(headers), content_type=None)

    return answer


async def fetch_all(
    server: FeedServer, files: list[Path]
) -> list[tuple[bytes, dict[str, str], str]]:
    """Fetch every file from ``server``: (body, response headers, final URL) in file order."""
    settings = FetchSettings(concurrency=16, per_host=16, clients=2, pool_per_client=8)
    async with Fetcher(settings) as fetcher:

        async def one(path: Path) -> tuple[bytes, dict[str, str], str]:
            url = server.url("/" + path.relative_to(CORPORA).as_posix())
            result = await fetcher.fetch("corpus", url)
            return result.body, result.headers, result.url

        return await asyncio.gather(*(one(p) for p in files))


def test_corpus_through_fetch_parse_normalise() -> None:
    """Every corpus file fetched over HTTP parses to items or a ParseError, like its bytes do."""
    files = corpus_files()
    assert len(files) == CORPUS_FILES  # a missing copy would weaken every assertion below
    t0 = time.perf_counter()
    with FeedServer() as server:
        for path in files:
            data = path.read_bytes()
            route = "/" + path.relative_to(CORPORA).as_posix()
            server.set_handler(route, _serve(data, declared_headers(data)))
        try:
            responses = asyncio.run(fetch_all(server, files))
        except FetchError as e:
            pytest.fail(f"fetching the corpus failed: {e}")
        assert not server.errors
    t1 = time.perf_counter()

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = [
            pool.submit(check_file, str(p), body, headers, url)
            for p, (body, headers, url) in zip(files, responses, strict=True)
        ]
        results = [f.result(timeout=PER_FILE_SECONDS * 3) for f in futures]

    t2 = time.perf_counter()
    print(f"fetch {t1 - t0:.1f}s parse {t2 - t1:.1f}s")
    names = [p.relative_to(CORPORA).as_posix() for p in files]
    fetched = [r[0] for r in results]
    with_items = sum(1 for o in fetched if o[1] > 0)
    total_items = sum(o[1] for o in fetched)
    parse_errors = [(n, o[2]) for n, o in zip(names, fetched, strict=True) if o[0] == "parse_error"]
    usable = [n for n, r in zip(names, results, strict=True) if r[2]]
    usable_with_items = [n for n, r in zip(names, results, strict=True) if r[2] and r[0][1] > 0]
    print(
        f"\ncorpus: {len(files)} files, {with_items} with items, {total_items} items, "
        f"{len(parse_errors)} parse errors; feedparser finds usable entries in {len(usable)} "
        f"files, we yield items for {len(usable_with_items)}"
    )
    for name, message in parse_errors:
        print(f"  parse error  {name}: {message}")

    bad = [(n, o) for n, o in zip(names, fetched, strict=True) if o[0] in ("crash", "timeout")]
    assert bad == []
    hidden = [(n, m) for n, m in parse_errors if m.startswith("feedparser failed")]
    assert hidden == []
    differ = [(n, r[0], r[1]) for n, r in zip(names, results, strict=True) if r[0] != r[1]]
    assert differ == []
    assert sorted(set(usable) - set(usable_with_items)) == []
    assert with_items >= 580 and total_items >= 850  # measured: 591 files, 860 items
