"""Running the parser, and story terms, off the event loop.

feedparser is pure Python and GIL-bound (~10–20 ms for a 50-item feed here), so parsing on the
event loop would stall every fetch, and threads would share one core. ``ParsePool`` runs
``daemon.parse.feed.parse_items`` in worker processes (spawned: they do not inherit the event loop
or its threads) so a cold poll uses every core. ``workers=0`` parses inline, for tools and
tests where a pool's start-up costs more than it saves. ``story_terms`` computes the story
terms of a poll's new items in the same workers (``daemon.stories.terms``).

Workers must not outlive the daemon: if it is SIGKILLed they would linger holding its stdout.
Each worker asks Linux to kill it when its parent dies (``PR_SET_PDEATHSIG``), and elsewhere
watches the parent from a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from daemon.errors import ParseError
from daemon.parse import feed as parse
from daemon.parse.feedlinks import FeedLinks
from daemon.stories.terms import ItemTerms, items_terms
from daemon.types import Item

_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _worker_init(parent: int) -> None:
    """Runs in each worker: die with the daemon."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon handles Ctrl-C and stops us
    armed = False
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent:
        os._exit(0)  # the daemon died before we armed the signal
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


class ParsePool:
    def __init__(self, workers: int | None = None) -> None:
        n = (os.cpu_count() or 1) if workers is None else workers
        self.workers = n
        self._pool: ProcessPoolExecutor | None = None
        if n > 0:
            self._pool = self._new_pool()
        self._slots = asyncio.Semaphore(max(1, n) * 2)

    async def parse(
        self, feed: str, body: bytes, headers: Mapping[str, str], url: str, tags: tuple[str, ...]
    ) -> list[Item]:
        """Items of ``body``; raises ParseError."""
        if self._pool is None:
            return parse.parse_items(feed, body, dict(headers), url, tags)
        async with self._slots:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    self._pool, parse.parse_items, feed, body, dict(headers), url, tags
                )
            except BrokenProcessPool as e:
                # A worker died (out of memory on a hostile feed, killed): replace the pool so
                # the other feeds go on, and report this feed's poll as a parse error.
                self._restart()
                raise ParseError(feed, "parser process died while reading this feed") from e

    async def story_terms(self, texts: Sequence[tuple[str, str]]) -> list[ItemTerms]:
        """The story terms of each (title, text), computed in a worker."""
        if self._pool is None or not texts:
            return items_terms(texts)
        async with self._slots:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._pool, items_terms, list(texts))
            except BrokenProcessPool:
                self._restart()
        return items_terms(texts)  # the worker died: compute them here, lose nothing

    async def parse_links(
        self, feed: str, body: bytes, headers: Mapping[str, str], url: str, tags: tuple[str, ...]
    ) -> tuple[list[Item], FeedLinks]:
        """Items of ``body`` and the feed's WebSub links; raises ParseError."""
        if self._pool is None:
            return parse.parse_items_links(feed, body, dict(headers), url, tags)
        async with self._slots:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    self._pool, parse.parse_items_links, feed, body, dict(headers), url, tags
                )
            except BrokenProcessPool as e:
                self._restart()
                raise ParseError(feed, "parser process died while reading this feed") from e

    def _restart(self) -> None:
        old = self._pool
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
