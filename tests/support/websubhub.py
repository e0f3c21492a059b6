"""A WebSub hub for tests, served by a ``FeedServer`` (real HTTP on 127.0.0.1).

It does what a hub does, one step at a time so a test decides when::

    hub = Hub(feed_server)                 # the hub endpoint is feed_server.url("/hub")
    ...                                    # the subscriber POSTs hub.mode=subscribe
    req = hub.wait_request()               # the form it sent (mode, topic, callback, secret…)
    status, body = hub.verify(req)         # GET callback?hub.mode=…&hub.challenge=…
    hub.publish(topic, body)               # POST to every verified callback, HMAC-signed

``auto_verify=True`` verifies every request from a thread right after answering 202, like
a real hub. Verification and publishing are blocking calls (httpx): from async code run
them with ``asyncio.to_thread`` when the callback is served by the same event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl

import httpx

from tests.support.httpserver import FeedServer, Request, Response


@dataclass
class Subscriber:
    topic: str
    callback: str
    secret: str
    lease: int


class Hub:
    def __init__(
        self,
        server: FeedServer,
        path: str = "/hub",
        *,
        auto_verify: bool = False,
        lease_seconds: int | None = None,
        status: int = 202,
    ) -> None:
        self.server = server
        self.path = path
        self.url = server.url(path)
        self.auto_verify = auto_verify
        self.lease_seconds = lease_seconds  # granted lease; None: what was asked
        self.status = status  # how the hub answers subscription requests
        self.requests: list[dict[str, str]] = []
        self.verifications: list[tuple[dict[str, str], int, str]] = []
        self.subscribers: dict[tuple[str, str], Subscriber] = {}
        self._lock = threading.Condition()
        server.set_handler(path, self._handle)

    def _handle(self, req: Request) -> Response:
        if req.method != "POST":
            return Response(405, b"", content_type="text/plain")
        form = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
        with self._lock:
            self.requests.append(form)
            self._lock.notify_all()
        if self.status // 100 == 2 and self.auto_verify:
            threading.Thread(target=self.verify, args=(form,), daemon=True).start()
        return Response(self.status, b"", content_type="text/plain")

    def wait_request(self, n: int = 1, timeout: float = 30.0) -> dict[str, str]:
        """The ``n``-th subscription request (1-based), waiting for it."""
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.requests) >= n, timeout), self.requests
            return self.requests[n - 1]

    def verify(
        self, form: dict[str, str], *, mode: str | None = None, topic: str | None = None
    ) -> tuple[int, str]:
        """Verify the intent of a request (or send ``mode=denied``); returns the callback's
        status and body. A request verified with its challenge echoed takes effect."""
        mode = mode or form["hub.mode"]
        topic = topic or form["hub.topic"]
        challenge = secrets.token_hex(16)
        params = {"hub.mode": mode, "hub.topic": topic}
        if mode == "denied":
            params["hub.reason"] = "not today"
        else:
            params["hub.challenge"] = challenge
        lease = self.lease_seconds or int(form.get("hub.lease_seconds") or 0)
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        resp = httpx.get(form["hub.callback"], params=params, timeout=10)
        ok = resp.status_code // 100 == 2 and resp.text == challenge
        with self._lock:
            self.verifications.append((params, resp.status_code, resp.text))
            key = (topic, form["hub.callback"])
            if ok and mode == "subscribe":
                self.subscribers[key] = Subscriber(
                    topic, form["hub.callback"], form.get("hub.secret", ""), lease
                )
            elif ok and mode == "unsubscribe":
                self.subscribers.pop(key, None)
            self._lock.notify_all()
        return resp.status_code, resp.text

    def wait_verified(self, n: int = 1, timeout: float = 30.0) -> None:
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.verifications) >= n, timeout)

    def publish(
        self,
        topic: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        algorithm: str = "sha256",
        secret: str | None = None,
        sign: bool = True,
    ) -> list[int]:
        """POST ``body`` to every verified subscriber of ``topic``, signed with its secret
        (or ``secret``); returns the statuses."""
        with self._lock:
            targets = [s for s in self.subscribers.values() if s.topic == topic]
        statuses = []
        for sub in targets:
            headers = {
                "Content-Type": content_type,
                "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"',
            }
            if sign:
                key = (sub.secret if secret is None else secret).encode()
                digest = hmac.new(key, body, getattr(hashlib, algorithm)).hexdigest()
                headers["X-Hub-Signature"] = f"{algorithm}={digest}"
            resp = httpx.post(sub.callback, content=body, headers=headers, timeout=10)
            statuses.append(resp.status_code)
        return statuses
