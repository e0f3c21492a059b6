"""The WebSub subscriber's I/O: requests to hubs, the callback endpoint, the upkeep loop.

Decisions are ``daemon.websub.decisions``'s (pure); state is ``daemon.websub.store``'s (Redis). This
module only moves bytes:

* ``discovered`` — the poller reports the hub and self links each successful poll found;
  changed links are written to Redis and wake the upkeep loop.
* ``tick`` — one upkeep pass over the feeds with links or a subscription: subscribe, renew,
  unsubscribe or forget, as ``plan`` says. The record is written before the request is sent
  (in one Redis transaction with the decision), so two processes never both ask.
* ``handle`` — the callback, ``<public_url>/websub/<token>`` (token: 32 random bytes, one
  per subscription, so the path cannot be guessed): GET answers the verification of intent;
  POST is a content distribution. A POST whose ``X-Hub-Signature`` is missing or wrong is
  answered ``202`` like a good one (the recommendation allows 2xx; a forger learns nothing)
  but ignored, with a warning naming the feed and the reason. A good one is handed to the
  poller (``on_push``), which reads it like a poll's body. An unknown callback path answers
  404 to GET and 410 Gone to POST (the hub may then drop that subscription). Whatever cannot
  be handled now (Redis unreachable, shutting down) is 503 with ``Retry-After``: the hub
  retries, here or at another process.
* ``check`` — the callback's head, before its body is read (``daemon.ops.http.Prefix``): a
  POST to an unknown token is 410 at once, its body unread; a push while ``MAX_QUEUED_PER_FEED``
  pushes of that feed, or ``max_queued_bytes`` of pushes in all, wait for the poller is 503 with
  ``Retry-After`` (hubs hold the secret by design, so a hub is not trusted to be gentle).
* ``daemon.websub.routes.websub_routes`` — the ``/websub/`` route of a process.
* ``skip_poll`` — the poller asks, for a scheduled poll, whether the feed's active
  subscription makes it wait for the slower fallback interval.

Hub URLs come from feed documents (hostile): a hub is contacted only if
``daemon.websub.policy`` allows its URL and every address its host resolves to (no loopback,
private, link-local… address unless ``websub.allow_private_hubs``), at the address that was
checked, with a short deadline. A refused hub is left out of the feed's links (another hub
it advertises may serve), recorded beside them and logged once (``action=refuse``); polling
goes on. The secret and the callback token are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

import httpx

from daemon.clock import Clock, utc_now
from daemon.config.load import FeedConfig
from daemon.errors import FeedwatchError
from daemon.fetch.client import safe_url, scrub
from daemon.logging import log
from daemon.ops.http import Request, Response
from daemon.ops.httpwire import bounded_int
from daemon.parse.feedlinks import FeedLinks
from daemon.websub.decisions import (
    Drop,
    Nothing,
    Subscribe,
    Subscription,
    Unsubscribe,
    Verdict,
    check_signature,
    plan,
    request_failed,
    requested,
    skip_poll,
    unsubscribing,
    verify,
)
from daemon.websub.hubs import HubCheck, HubGate, Resolver, system_resolve
from daemon.websub.policy import pinned
from daemon.websub.store import Change, Refusal, WebSubStore

logger = logging.getLogger("daemon.websub")
PREFIX = "/websub/"
TICK_EVERY = 60.0
HUB_TIMEOUT = 30.0
ACCEPTED = Response(202, b"accepted\n")
RETRY_AFTER = 60  # seconds, in the Retry-After of a 503


def retry_later(body: bytes = b"try again later\n") -> Response:
    return Response(503, body, headers=(("Retry-After", str(RETRY_AFTER)),))


PushHandler = Callable[[str, bytes, Mapping[str, str]], "asyncio.Task[object] | object"]
MAX_QUEUED_PER_FEED = 2  # pushes of one feed accepted and not yet processed
QUEUED_BODIES = 4  # pushes in all, in bytes: this many times fetch.max_bytes


@dataclass(frozen=True, slots=True)
class WebSubSettings:
    public_url: str
    lease: float = 7 * 86400.0  # hub.lease_seconds asked for
    fallback_interval: float = 3600.0  # polling while a subscription is active
    allow_private_hubs: bool = False  # contact hubs on loopback/private/link-local addresses


class WebSubService:
    def __init__(
        self,
        store: WebSubStore,
        feeds: Mapping[str, FeedConfig],
        settings: WebSubSettings,
        http: httpx.AsyncClient,
        *,
        clock: Clock = utc_now,
        on_push: PushHandler | None = None,
        resolve: Resolver = system_resolve,
        max_queued_bytes: int = QUEUED_BODIES * 10 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.feeds = dict(feeds)
        self.settings = settings
        self.http = http
        self.clock = clock
        self.on_push = on_push
        self.hubs = HubGate(allow_private=settings.allow_private_hubs, resolve=resolve)
        self._links: dict[str, FeedLinks] = {}
        self._queued: dict[str, int] = {}  # feed -> pushes handed to the poller, not done
        self._queued_bytes = 0
        self.max_queued_bytes = max_queued_bytes  # QUEUED_BODIES times fetch.max_bytes
        self._wake = asyncio.Event()
        self._stop: asyncio.Event | None = None

    def callback(self, token: str) -> str:
        return self.settings.public_url.rstrip("/") + PREFIX + token

    # -- hooks for the poller ----------------------------------------------------------------
    async def discovered(self, feed: str, links: FeedLinks) -> None:
        """Record the links a poll found (only when they changed). Never raises."""
        if self._links.get(feed) == links:
            return
        try:
            if links.usable or (await self.store.links(feed)) != links:
                await self.store.set_links(feed, links)
        except FeedwatchError as e:
            log(logger, "websub", level=logging.WARNING, feed=feed, error=str(e))
            return
        self._links[feed] = links
        self._wake.set()

    async def skip_poll(self, feed: FeedConfig, elapsed: float) -> bool:
        """Whether a scheduled poll made ``elapsed`` s after the last one is skipped because
        an active subscription delivers the feed (polling falls back to the slower interval)."""
        if not skip_poll(elapsed, feed.interval, self.settings.fallback_interval):
            return False
        try:
            sub = await self.store.load(feed.name)
        except FeedwatchError:
            return False
        return sub is not None and sub.active(self.clock().timestamp())

    # -- upkeep ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``TICK_EVERY`` s and whenever a poll found new links, until ``stop``
        (from then on pushes are answered 503: the hub retries them later, here or
        elsewhere)."""
        self._stop = stop
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.tick()
            except FeedwatchError as e:
                log(logger, "websub", level=logging.WARNING, error=str(e))
            except Exception:  # a bug must not end the loop
                logger.exception("websub: upkeep failed")
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=TICK_EVERY, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def tick(self) -> list[tuple[str, str]]:
        """One upkeep pass; returns (feed, what was done) for each request sent or record
        dropped."""
        self.hubs.forget()  # hub names are resolved again at each pass
        done: list[tuple[str, str]] = []
        for feed in await self.store.feeds():
            try:
                what = await self._upkeep(feed)
            except FeedwatchError as e:
                log(logger, "websub", level=logging.WARNING, feed=feed, error=str(e))
                continue
            if what:
                done.append((feed, what))
        return done

    async def _upkeep(self, feed: str) -> str | None:
        links, refused = await self.store.links_and_refusal(feed)
        configured = feed in self.feeds
        if configured and links.usable:
            links = await self._screen(feed, links, refused)
        elif refused is not None:
            await self.store.set_refusal(feed, None)
        now = self.clock().timestamp()
        token, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

        def decide(sub: Subscription | None) -> tuple[tuple[object, Subscription | None], Change]:
            action = plan(sub, links, configured, now)
            if isinstance(action, Subscribe):
                new = requested(
                    sub,
                    action,
                    feed=feed,
                    token=token,
                    secret=secret,
                    callback=self.callback(token),
                    now=now,
                )
                return (action, new), Change(write=new)
            if isinstance(action, Unsubscribe) and sub is not None:
                new = unsubscribing(sub, now)
                return (action, new), Change(write=new)
            if isinstance(action, Drop):
                return (action, sub), Change(delete=True)
            return (Nothing(), sub), Change()

        action, sub = await self.store.transact(feed, decide)
        if isinstance(action, Nothing):
            if sub is None and not (configured and links.usable):
                await self.store.forget(feed, keep_usable=configured)
            return None
        if isinstance(action, Drop):
            log(logger, "websub", feed=feed, action="drop", reason=_drop_reason(configured))
            await self.store.forget(feed, keep_usable=configured)
            return "drop"
        assert sub is not None
        mode = "subscribe" if isinstance(action, Subscribe) else "unsubscribe"
        if isinstance(action, Subscribe) and sub.renewing:
            mode_label = "renew"
        else:
            mode_label = mode
        error = await self._request(sub, mode)
        log(
            logger,
            "websub",
            level=logging.WARNING if error else logging.INFO,
            feed=feed,
            action=mode_label,
            hub=safe_url(sub.hub),
            topic=safe_url(sub.topic),
            lease_s=int(self.settings.lease) if mode == "subscribe" else None,
            error=error,
        )
        if error:
            sent = sub

            def failed(cur: Subscription | None) -> tuple[None, Change]:
                if cur is None or not _same_request(cur, sent):
                    return None, Change()  # verified (or replaced) meanwhile
                return None, Change(write=request_failed(cur, self.clock().timestamp(), error))

            await self.store.transact(feed, failed)
        return mode_label

    async def _screen(self, feed: str, links: FeedLinks, known: Refusal | None) -> FeedLinks:
        """``links`` without the hubs the policy refuses. The first refusal is recorded with
        the links and logged by the one process that recorded it (again only if it changes).
        A hub whose name does not resolve now stays: its request fails and is retried."""
        allowed: list[str] = []
        refused: Refusal | None = None
        for hub in links.hubs:
            check = await self.hubs.check(hub)
            if check.refused is None:
                allowed.append(hub)
            elif refused is None:
                refused = Refusal(safe_url(hub), check.refused)
        if refused != known and await self.store.set_refusal(feed, refused) and refused:
            log(
                logger,
                "websub",
                level=logging.WARNING,
                feed=feed,
                action="refuse",
                hub=refused.hub,
                reason=refused.reason,
                other_hubs=len(allowed),
            )
        return FeedLinks(tuple(allowed), links.self_url)

    async def _request(self, sub: Subscription, mode: str) -> str | None:
        """POST a (un)subscription request to the hub; None if it accepted (2xx), else why."""
        check = await self.hubs.check(sub.hub)
        if check.refused is not None:
            return f"hub refused: {check.refused}"
        if check.error is not None:
            return check.error
        callback = sub.callback or self.callback(sub.token)
        form = {"hub.mode": mode, "hub.topic": sub.topic, "hub.callback": callback}
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(int(self.settings.lease))
            form["hub.secret"] = sub.secret
        try:
            async with asyncio.timeout(HUB_TIMEOUT):
                resp = await self._post(check, form)
        except TimeoutError:
            return f"no answer within {HUB_TIMEOUT:g}s"
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {scrub(str(e))}"[:200]
        if 200 <= resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}"

    async def _post(self, check: HubCheck, form: dict[str, str]) -> httpx.Response:
        """POST to the first of the checked addresses that accepts a connection."""
        last = len(check.addresses) - 1
        for i, address in enumerate(check.addresses):
            target = pinned(check.url, address)
            try:
                return await self.http.post(
                    target.url, data=form, headers=target.headers, extensions=target.extensions
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if i == last:
                    raise
        raise AssertionError("a hub check that allows has addresses")

    # -- the callback ------------------------------------------------------------------------
    async def check(self, request: Request) -> Response | None:
        """The callback's head, before its body is read: an answer now, or None to read it."""
        token = request.path.removeprefix(PREFIX)
        if not token or "/" in token:
            return Response(404, b"not found\n")
        if request.method != "POST":
            return None  # a verification (GET) has no body
        try:
            feed = await self.store.feed_for(token)
        except FeedwatchError as e:
            log(logger, "websub", level=logging.WARNING, error=str(e))
            return retry_later()
        if feed is None or feed not in self.feeds:
            log(logger, "websub", level=logging.DEBUG, action="push", status=410)
            return Response(410, b"gone\n")
        declared = bounded_int(request.headers.get("content-length"), digits=18) or 0
        if not self._room(feed, declared):
            log(logger, "websub", level=logging.WARNING, feed=feed, action="push",
                outcome="refused", reason="queue full", status=503)  # fmt: skip
            return retry_later(b"too many pushes waiting\n")
        return None

    def _room(self, feed: str, size: int) -> bool:
        """Whether a push of ``size`` bytes for ``feed`` may wait for the poller."""
        return (
            self._queued.get(feed, 0) < MAX_QUEUED_PER_FEED
            and self._queued_bytes + size <= self.max_queued_bytes
        )

    def _enqueue(self, feed: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Hand a push to the poller, and count it until the poller is done with it."""
        assert self.on_push is not None
        task = self.on_push(feed, body, headers)
        if not isinstance(task, asyncio.Task):
            return
        size = len(body)
        self._queued[feed] = self._queued.get(feed, 0) + 1
        self._queued_bytes += size

        def done(_: object) -> None:
            self._queued_bytes -= size
            left = self._queued.get(feed, 1) - 1
            if left:
                self._queued[feed] = left
            else:
                self._queued.pop(feed, None)

        task.add_done_callback(done)

    async def handle(self, request: Request) -> Response:
        """``/websub/<token>``: GET verifies intent, POST delivers content."""
        token = request.path.removeprefix(PREFIX)
        if not token or "/" in token:
            return Response(404, b"not found\n")
        try:
            feed = await self.store.feed_for(token)
            if request.method in ("GET", "HEAD"):
                return await self._verify(feed, token, request)
            if request.method == "POST":
                return await self._content(feed, token, request)
        except FeedwatchError as e:
            log(logger, "websub", level=logging.WARNING, error=str(e))
            return retry_later()
        return Response(405, b"method not allowed\n")

    async def _verify(self, feed: str | None, token: str, request: Request) -> Response:
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        mode = query.get("hub.mode", "")
        if feed is None:
            log(logger, "websub", level=logging.DEBUG, action="verify", mode=mode[:20], status=404)
            return Response(404, b"not found\n")
        now = self.clock().timestamp()
        lease = self.settings.lease

        def decide(sub: Subscription | None) -> tuple[Verdict, Change]:
            if sub is None or sub.token != token:
                return Verdict(404, reason="no subscription"), Change()
            verdict = verify(sub, query, now, lease)
            return verdict, Change(write=verdict.update, delete=verdict.delete)

        verdict = await self.store.transact(feed, decide)
        log(
            logger,
            "websub",
            level=logging.INFO if verdict.status == 200 else logging.WARNING,
            feed=feed,
            action="verify",
            mode=mode[:20],
            status=verdict.status,
            outcome=verdict.reason,
            lease_s=int(verdict.update.lease) if verdict.update and mode == "subscribe" else None,
        )
        if verdict.delete:
            await self.store.forget(feed, keep_usable=feed in self.feeds)
        return Response(verdict.status, verdict.body)

    async def _content(self, feed: str | None, token: str, request: Request) -> Response:
        sub = await self.store.load(feed) if feed is not None else None
        if feed is None or sub is None or sub.token != token or feed not in self.feeds:
            log(logger, "websub", level=logging.DEBUG, action="push", status=410)
            return Response(410, b"gone\n")
        if sub.state in ("unsubscribing", "denied"):
            return Response(410, b"gone\n")
        bad = check_signature(request.headers.get("x-hub-signature"), request.body, sub.secret)
        if bad is not None:
            log(
                logger,
                "websub",
                level=logging.WARNING,
                feed=feed,
                action="push",
                outcome="ignored",
                reason=f"signature {bad}",
                bytes=len(request.body),
            )
            return ACCEPTED
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            log(logger, "websub", level=logging.WARNING, feed=feed, action="push",
                outcome="refused", reason=f"Content-Encoding {encoding[:20]}")  # fmt: skip
            return Response(415, b"unsupported content encoding\n")
        if self.on_push is None or (self._stop is not None and self._stop.is_set()):
            return retry_later(b"not accepting content\n")
        if not self._room(feed, len(request.body)):  # a chunked body: its size known now
            return retry_later(b"too many pushes waiting\n")
        headers = {k: v for k, v in request.headers.items() if k != "x-hub-signature"}
        self._enqueue(feed, request.body, headers)
        try:
            await self.store.record_push(feed, token, self.clock().timestamp())
        except FeedwatchError as e:  # bookkeeping for `feedwatch status`: the push goes on
            log(logger, "websub", level=logging.WARNING, feed=feed, action="push", error=str(e))
        return ACCEPTED

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.http.aclose()


def _same_request(cur: Subscription, sent: Subscription) -> bool:
    return (
        cur.token == sent.token
        and cur.state == sent.state
        and cur.requested_at == sent.requested_at
        and cur.renewing == sent.renewing
    )


def _drop_reason(configured: bool) -> str:
    return "feed no longer advertises a hub" if configured else "feed not in the config"
