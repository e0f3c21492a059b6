"""``jsonl``: a third-party feedwatch notifier that appends each alert's wire JSON to a file.

Config::

    notifiers:
      archive: {type: jsonl, path: /var/lib/feedwatch/alerts.jsonl}
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alerts.base import Notifier, NotifierOptions
from alerts.wire import Alert
from daemon.errors import NotifyError


class JsonlOptions(NotifierOptions):
    path: str


class JsonlNotifier(Notifier):
    """Appends ``alert.to_json()`` and a newline to ``path`` (created if missing)."""

    Options = JsonlOptions

    async def send(self, alert: Alert) -> None:
        assert isinstance(self.options, JsonlOptions)
        line = alert.to_json() + "\n"
        try:
            await asyncio.to_thread(_append, Path(self.options.path), line)
        except OSError as e:
            raise NotifyError(
                f"cannot append to the alert file: {e.strerror}", recoverable=True, reason="io"
            ) from e


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
