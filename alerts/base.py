"""The notifier plugin API.

A notifier is one configured destination (the ``analysts-slack`` instance of type ``slack``).
Its class declares an ``Options`` model (pydantic, unknown keys rejected at config load),
implements ``async send(alert)`` and may implement ``aclose()``. ``send`` raises
``NotifyError(recoverable=..., reason=...)`` on failure; anything else it raises is treated as
a recoverable failure with reason ``unexpected``.

Plugins are found through the entry-point group ``feedwatch.notifiers``; the built-ins are
registered the same way in feedwatch's own ``pyproject.toml``::

    [project.entry-points."feedwatch.notifiers"]
    mynotifier = "mypackage.module:MyNotifier"
"""

from __future__ import annotations

import abc
from typing import ClassVar

import httpx
from pydantic import BaseModel, ConfigDict

from alerts.threads import ThreadStore
from alerts.wire import Alert


class NotifierOptions(BaseModel):
    """Base of every notifier's options model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Notifier(abc.ABC):
    """Base class of every notifier plugin."""

    Options: ClassVar[type[NotifierOptions]] = NotifierOptions

    def __init__(self, name: str, options: NotifierOptions, *, http: httpx.AsyncClient) -> None:
        self.name = name
        self.options = options
        self.http = http
        # Set by the daemon after construction: where this notifier's story threads are kept
        # (alerts/threads.py). None in a process without Redis (tests, test-rule).
        self.threads: ThreadStore | None = None

    @abc.abstractmethod
    async def send(self, alert: Alert) -> None:
        """Deliver one alert or raise ``NotifyError``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release resources. Called once at shutdown."""
