"""The daemon: one async context manager owns every resource; two-stage shutdown.

``Daemon`` opens, in order, the Redis connection (starting the embedded server when no URL is
configured), the fetcher, the parse pool, the notifiers with an HTTP client each, and closes
them in reverse on exit, whatever happened. ``run()`` runs until SIGINT/SIGTERM, then shuts
down in two stages (``daemon/poll/shutdown.py``): the first signal drains what is in flight for
``shutdown_grace`` seconds, a second one cancels it and waits for its shielded final writes.

SIGHUP (and any change to a rule file) reloads the rules; an invalid edit is logged with its
errors and the rules in force stay in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx
import redis.asyncio as aioredis

from alerts import registry
from alerts.consumer import Consumer
from alerts.dispatch import DeliverySettings, Dispatcher, NotifierRuntime
from alerts.httperrors import notifier_client
from alerts.threads import ThreadStore
from daemon import __version__
from daemon.config.load import Config
from daemon.config.values import split_listen
from daemon.errors import ConfigError, Problem, StoreError
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.logging import log
from daemon.match.reload import RuleHolder
from daemon.ops.http import HEALTH_PATHS, HttpServer, endpoints
from daemon.ops.metrics import CONTENT_TYPE, Metrics
from daemon.poll.archive import Archive
from daemon.poll.health import FeedHealth
from daemon.poll.leases import Leases
from daemon.poll.parse_pool import ParsePool
from daemon.poll.peers import Peers, gained
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.scheduling import FeedScheduler
from daemon.poll.shutdown import TwoStage
from daemon.poll.state import FeedStore
from daemon.publish.alerting import StoryStage
from daemon.publish.silence import Silences
from daemon.publish.stream import Publisher
from daemon.redis import url as redis_url
from daemon.redis.embedded import EmbeddedRedis
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.redis.sentinel import StateGuard
from daemon.redis.url import RedisHandle
from daemon.stories.index import StoryStore
from daemon.websub.routes import websub_routes
from daemon.websub.service import QUEUED_BODIES, WebSubService, WebSubSettings
from daemon.websub.store import WebSubStore

logger = logging.getLogger("daemon.runtime")
ROLES = ("all", "poller", "notifier")
HEARTBEAT_EVERY = 10.0
READY_PING_TIMEOUT = 1.0


def identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def delivery_settings(config: Config) -> DeliverySettings:
    d = config.delivery
    return DeliverySettings(
        max_attempts=d.max_attempts,
        backoff_initial=d.backoff_initial,
        backoff_max=d.backoff_max,
        claim_after=d.claim_after,
        stream_maxlen=d.stream_maxlen,
        send_timeout=d.send_timeout,
        concurrency=d.concurrency,
        delivered_ttl=d.delivered_ttl,
    )


def fetch_settings(config: Config) -> FetchSettings:
    f = config.fetch
    kwargs: dict[str, object] = {
        "deadline": f.deadline,
        "connect_timeout": f.connect_timeout,
        "max_bytes": f.max_bytes,
        "max_redirects": f.max_redirects,
        "concurrency": f.concurrency,
        "per_host": f.per_host,
    }
    if f.user_agent:
        kwargs["user_agent"] = f.user_agent
    return FetchSettings(**kwargs)  # type: ignore[arg-type]


class RedisConnection:
    """The Redis client for a config: the configured URL (one server, Sentinel or Cluster:
    ``daemon.redis.url``), or the embedded server. Entering it checks that Redis answers."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.embedded: EmbeddedRedis | None = None
        self.handle: RedisHandle | None = None

    async def __aenter__(self) -> aioredis.Redis:
        url = self.config.redis
        if url is None:
            self.embedded = EmbeddedRedis(self.config.state_dir)
            url = await asyncio.to_thread(self.embedded.start)
        target = redis_url.parse(url)
        self.handle = redis_url.open_client(
            target, health_check_interval=30, socket_connect_timeout=5
        )
        try:
            await self.handle.client.ping()
        except STORE_ERRORS + (OSError,) as e:
            await self.__aexit__()
            raise StoreError(redis_url.unreachable(target, e)) from e
        return self.handle.client

    async def __aexit__(self, *exc: object) -> None:
        if self.handle is not None:
            await self.handle.aclose()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


class Daemon:
    def __init__(self, config: Config, *, role: str = "all") -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        self.config = config
        self.role = role
        self.keys = Keys(config.prefix)
        self.identity = identity()
        self.shutdown = TwoStage(config.polling.shutdown_grace)
        self.stop = self.shutdown.stop
        self.rules = RuleHolder(config)
        self._stack = contextlib.AsyncExitStack()
        self.redis: aioredis.Redis
        self.poller: Poller | None = None
        self.scheduler: FeedScheduler | None = None
        self.consumer: Consumer | None = None
        self.guard: StateGuard | None = None
        self.peers: Peers | None = None
        self.metrics = Metrics(
            feeds=[f.name for f in config.feeds],
            notifiers=list(config.notifiers),
            version=__version__,
            role=role,
        )
        self.http: HttpServer | None = None
        self.websub: WebSubService | None = None
        self._consumer_task: asyncio.Task[None] | None = None

    @property
    def polls(self) -> bool:
        return self.role in ("all", "poller")

    @property
    def delivers(self) -> bool:
        return self.role in ("all", "notifier")

    async def __aenter__(self) -> Daemon:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _open(self) -> None:
        config = self.config
        self.redis = await self._stack.enter_async_context(RedisConnection(config))
        await self.redis.ping()
        if self.polls:
            self.rules.load()  # raises ConfigError before anything runs
            fetcher = await self._stack.enter_async_context(Fetcher(fetch_settings(config)))
            workers = config.polling.parse_workers or None
            parser = ParsePool(workers)
            self._stack.callback(parser.close)
            self.guard = StateGuard(
                self.redis,
                self.keys,
                state_dir=config.state_dir,
                redis_url=config.redis,
                feeds=[f.name for f in config.feeds],
            )
            await self.guard.start()
            publisher = Publisher(
                self.redis, self.keys, stream_maxlen=config.delivery.stream_maxlen
            )
            silences = Silences(self.redis, self.keys)
            stories = StoryStage(
                StoryStore(self.redis, self.keys, window=config.polling.story_window),
                publisher,
                silences,
                terms=parser.story_terms,
            )
            health = FeedHealth.configured(
                self.redis, self.keys, publisher, config.polling, config.defaults.notify, silences
            )
            self.websub = await self._websub()
            self.peers = Peers(self.redis, self.keys, self.identity, ttl=config.polling.lease_ttl)
            self.poller = Poller(
                Pipeline(
                    websub=self.websub,
                    fetcher=fetcher,
                    store=FeedStore(self.redis, self.keys),
                    publisher=publisher,
                    stories=stories,
                    health=health,
                    matcher=self.rules.matcher,
                    parser=parser,
                    default_notify=config.defaults.notify,
                    max_backoff=config.polling.max_backoff,
                    guard=self.guard,
                    archive=Archive.configured(
                        self.redis, self.keys, config.archive, self.metrics.archive_errors.inc
                    ),
                ),
                feeds={f.name: f for f in config.feeds},
                leases=Leases(self.redis, self.keys, self.identity, self.peers),
                # Renewed while a poll runs: a lease outlives its poll by lease_ttl at most,
                # when the process died.
                lease_ttl=config.polling.lease_ttl,
            )
            self.poller.on_result.append(self.metrics.poll)
            if self.websub is not None:
                self.websub.on_push = self.poller.accept_push
            poller = self.poller
            self.metrics.track(
                rules=lambda: self.rules.count,
                reload_ok=lambda: self.rules.last_reload_ok,
                in_flight=lambda: poller.in_flight,
            )
        if self.delivers:
            settings = delivery_settings(config)
            runtimes: dict[str, NotifierRuntime] = {}
            for name, nc in config.notifiers.items():
                cls = registry.load(nc.type)
                # Its own client of small pools, room for every delivery in flight plus a
                # digest (alerts/httperrors.py: one big shared pool costs ~1 ms per request).
                http = await self._stack.enter_async_context(
                    notifier_client(connections=settings.concurrency + 1)
                )
                notifier = cls(name, nc.options, http=http)
                notifier.threads = ThreadStore(self.redis, self.keys, name)
                self._stack.push_async_callback(notifier.aclose)
                runtimes[name] = NotifierRuntime(
                    name=name,
                    notifier=notifier,
                    min_severity=nc.min_severity,
                    max_attempts=nc.max_attempts,
                    digest=nc.digest,
                )
            dispatcher = Dispatcher(
                self.redis, self.keys, runtimes, settings, observer=self.metrics
            )
            self.consumer = Consumer(
                self.redis, self.keys, dispatcher, settings, name=self.identity
            )
            await self.consumer.ensure_group()

    async def _websub(self) -> WebSubService | None:
        """The WebSub subscriber, when ``http.public_url`` says where hubs reach us."""
        http = self.config.http
        if http is None or http.public_url is None:
            return None
        client = await self._stack.enter_async_context(
            httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, connect=10.0),
                follow_redirects=False,
                headers={"User-Agent": fetch_settings(self.config).user_agent},
            )
        )
        return WebSubService(
            WebSubStore(self.redis, self.keys),
            {f.name: f for f in self.config.feeds},
            WebSubSettings(
                public_url=http.public_url,
                lease=self.config.websub.lease,
                fallback_interval=self.config.websub.fallback_interval,
                allow_private_hubs=self.config.websub.allow_private_hubs,
            ),
            client,
            max_queued_bytes=QUEUED_BODIES * self.config.fetch.max_bytes,
        )

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        await self._stack.aclose()

    # -- running -----------------------------------------------------------------------------
    async def run_once(self) -> int:
        """Poll every feed once, deliver what that raised, return."""
        consumer_task: asyncio.Task[None] | None = None
        if self.consumer is not None:
            consumer_task = asyncio.create_task(self.consumer.run(self.stop), name="consumer")
        try:
            published: list[str] = []
            if self.poller is not None:
                results = await self.poller.poll_all()
                published = [i for r in results for i in r.published]
                failed = sum(1 for r in results if r.error)
                log(logger, "once", feeds=len(results), failed=failed, alerts=len(published))
            if self.consumer is not None:
                # Everything in the stream up to now: the alerts this run raised, and any an
                # earlier run left pending (e.g. it was killed before acknowledging them).
                await self.consumer.drain(until_ids=None)
                # Digests too, due or not: a cron run delivers before it exits.
                await self.consumer.flush_digests()
        finally:
            self.stop.set()
            if consumer_task is not None:
                # Drained: nothing is in flight, so do not wait out the consumer's blocking read.
                consumer_task.cancel()
                await self.shutdown.finish(consumer_task, self.shutdown.grace)
        return 0

    async def run(self) -> int:
        """Run until the first SIGINT/SIGTERM, then shut down in two stages."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.shutdown.on_signal, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.rules.reload, "SIGHUP")
        tasks: list[asyncio.Task[None]] = []
        try:
            http = await self._serve_http(tasks)  # first: a port in use stops us before polling
            if self.poller is not None:
                self.scheduler = FeedScheduler(
                    self.poller, self.config.feeds, jitter=self.config.defaults.jitter
                )
                self.scheduler.start()
                if self.peers is not None:
                    self.peers.on_change.append(self._peers_changed)
                tasks.append(asyncio.create_task(self.rules.watch(self.stop), name="rules"))
            if self.peers is not None:
                tasks.append(asyncio.create_task(self.peers.track(self.stop), name="peers"))
            if self.websub is not None:
                tasks.append(asyncio.create_task(self.websub.run(self.stop), name="websub"))
            if self.consumer is not None:
                self._consumer_task = asyncio.create_task(
                    self.consumer.run(self.stop), name="consumer"
                )
                tasks.append(self._consumer_task)
            tasks.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
            log(
                logger,
                "started",
                role=self.role,
                feeds=len(self.config.feeds),
                rules=self.rules.count,
                notifiers=len(self.config.notifiers),
                identity=self.identity,
                version=__version__,
                http=http,
            )
            await self.stop.wait()
            await self._shutdown(tasks)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            for t in tasks:
                t.cancel()
        return 0

    def _peers_changed(self, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        """Another polling process joined or left: tick now the feeds that now prefer us."""
        assert self.peers is not None and self.scheduler is not None
        names = [f.name for f in self.config.feeds]
        mine = gained(names, self.identity, before, after)
        moved = self.scheduler.hurry(mine)
        log(logger, "peers", before=len(before), after=len(after), gained=len(mine), moved=moved)

    async def _serve_http(self, tasks: list[asyncio.Task[None]]) -> str | None:
        """Start the health and metrics endpoint if configured (closed with the daemon's other
        resources), and its health-only listener if ``http.health_listen`` is set; returns
        the main one's "host:port"."""
        http = self.config.http
        if http is None:
            return None
        routes = endpoints(
            ready=self.readiness, metrics=self.metrics.render, metrics_type=CONTENT_TYPE
        )
        handlers = websub_routes(self.websub, http.public_url, self.role)
        server = HttpServer(
            http.host,
            http.port,
            routes,
            handlers=handlers,
            max_body=self.config.fetch.max_bytes,
            on_refuse=self.metrics.refused,
        )
        self.http = await self._listen(server, http.listen, "http.listen")
        if http.health_listen is not None:
            host, port = split_listen(http.health_listen)
            health = {path: routes[path] for path in HEALTH_PATHS}
            probes = HttpServer(host, port, health, on_refuse=self.metrics.refused)
            await self._listen(probes, http.health_listen, "http.health_listen")
            log(logger, "health_listen", address=probes.url.removeprefix("http://"))
        refresh = self.metrics.refresh_loop(self.redis, self.keys, self.stop)
        tasks.append(asyncio.create_task(refresh, name="metrics"))
        return server.url.removeprefix("http://")

    async def _listen(self, server: HttpServer, listen: str, key: str) -> HttpServer:
        """``server`` started and closed with the daemon; a listen problem is a config one."""
        try:
            return await self._stack.enter_async_context(server)
        except OSError as e:  # address in use, not ours, unknown host
            where = str(self.config.source or "config")
            msg = f"cannot listen on {listen}: {e.strerror or e}"
            raise ConfigError([Problem(where, 0, 0, key, msg)]) from e

    async def readiness(self) -> dict[str, bool]:
        """What ``/readyz`` checks: Redis answers, and the parts of this role run (the rules
        are loaded and the scheduler fires; the delivery consumer runs)."""
        checks = {"redis": await self._redis_answers()}
        running = not self.stop.is_set()
        if self.polls:
            checks["rules"] = self.rules.ruleset is not None
            checks["scheduler"] = running and self.scheduler is not None and self.scheduler.running
        if self.delivers:
            task = self._consumer_task
            checks["consumer"] = running and task is not None and not task.done()
        return checks

    async def _redis_answers(self) -> bool:
        try:
            async with asyncio.timeout(READY_PING_TIMEOUT):
                await self.redis.ping()
        except STORE_ERRORS + (OSError,):
            return False
        return True

    async def _shutdown(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown.grace
        if self.poller is not None:
            await self.shutdown.drain(self.poller)
        for t in tasks:
            await self.shutdown.finish(t, max(0.1, deadline - loop.time()))
        log(logger, "stopped", role=self.role)

    async def _heartbeat(self) -> None:
        key = self.keys.heartbeat(self.identity)
        started = time.time()
        while not self.stop.is_set():
            beat = {
                "role": self.role, "version": __version__, "started": started,
                "beat": time.time(), "feeds": len(self.config.feeds), "rules": self.rules.count,
                "rules_reload_ok": self.rules.last_reload_ok,
                "polls_in_flight": self.poller.in_flight if self.poller else 0,
            }  # fmt: skip
            with contextlib.suppress(Exception):
                await self.redis.set(key, json.dumps(beat), ex=int(HEARTBEAT_EVERY * 3))
                if self.guard is not None:
                    await self.guard.check("heartbeat")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), HEARTBEAT_EVERY)
        with contextlib.suppress(Exception):
            await self.redis.delete(key)


async def run_daemon(config: Config, *, role: str = "all", once: bool = False) -> int:
    async with Daemon(config, role=role) as daemon:
        return await (daemon.run_once() if once else daemon.run())


def rules_problems(config: Config) -> list[str]:
    try:
        RuleHolder(config).load()
    except ConfigError as e:
        return [p.render() for p in e.problems]
    return []


def config_path(path: str | None) -> Path:
    return Path(path or os.environ.get("FEEDWATCH_CONFIG") or "feedwatch.yaml")
