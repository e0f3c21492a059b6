"""Notifiers for tests, shipped for plugin authors and for feedwatch's own tests.

They are ordinary ``Notifier`` subclasses: construct them directly (``http`` is optional here)
or register them under the ``feedwatch.notifiers`` entry-point group of a test package::

    rec = RecordingNotifier("rec")
    flaky = FailingNotifier("flaky", FailingNotifier.Options(fail_times=2))
    await flaky.send(alert)  # raises NotifyError twice, then records the alert

Each keeps ``sent`` (alerts delivered, in order) and ``calls`` (every ``send`` call); set
``gate`` to an ``asyncio.Event`` to hold deliveries in flight until it is set, and
``await wait_for(n)`` to wait for the n-th delivery.
"""

from __future__ import annotations

import asyncio
import random
from functools import cache
from typing import Generic, TypeVar, cast

import httpx
from pydantic import Field

from alerts.base import Notifier, NotifierOptions
from alerts.wire import Alert
from daemon.errors import NotifyError

_O = TypeVar("_O", bound=NotifierOptions)


@cache
def _idle_client() -> httpx.AsyncClient:
    """One never-used client shared by test notifiers built without ``http`` (opens no socket)."""
    return httpx.AsyncClient()


class _Recorder(Notifier, Generic[_O]):
    """A notifier whose ``opts`` are its ``options`` typed as its own ``Options`` model."""

    def __init__(
        self,
        name: str,
        options: NotifierOptions | None = None,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(name, options or self.Options(), http=http or _idle_client())
        assert isinstance(self.options, self.Options)
        self.opts = cast(_O, self.options)
        self.sent: list[Alert] = []
        self.calls = 0
        self.closed = False
        self.gate: asyncio.Event | None = None
        """When set to an Event, every successful send first waits for it (hold in flight)."""
        self._changed = asyncio.Condition()

    async def _record(self, alert: Alert) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(alert)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[Alert]:
        """Wait until at least ``count`` alerts were delivered (bound it with a timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.sent) >= count)
        return self.sent

    async def aclose(self) -> None:
        self.closed = True


class RecordingNotifier(_Recorder[NotifierOptions]):
    """Delivers every alert by appending it to ``sent``. Options: none."""

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        await self._record(alert)


class FailingOptions(NotifierOptions):
    fail_times: int = Field(default=1_000_000, ge=0)
    recoverable: bool = True
    reason: str = "server"
    retry_after: float | None = None


class FailingNotifier(_Recorder[FailingOptions]):
    """Raises ``NotifyError`` on its first ``fail_times`` calls, then delivers like a recorder."""

    Options = FailingOptions

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        if self.calls <= self.opts.fail_times:
            raise NotifyError(
                f"simulated failure {self.calls}",
                recoverable=self.opts.recoverable,
                reason=self.opts.reason,
                retry_after=self.opts.retry_after,
            )
        await self._record(alert)


class FlakyOptions(NotifierOptions):
    ratio: float = Field(default=0.3, ge=0.0, le=1.0)
    seed: int = 0
    reason: str = "server"


class FlakyNotifier(_Recorder[FlakyOptions]):
    """Fails (recoverably) a ``ratio`` of its calls at random, reproducibly from ``seed``."""

    Options = FlakyOptions

    def __init__(
        self,
        name: str,
        options: NotifierOptions | None = None,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(name, options, http=http)
        self.failures = 0
        self._random = random.Random(self.opts.seed)

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        if self._random.random() < self.opts.ratio:
            self.failures += 1
            raise NotifyError(
                f"simulated flake {self.failures}", recoverable=True, reason=self.opts.reason
            )
        await self._record(alert)
