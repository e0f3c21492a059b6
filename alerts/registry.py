"""Notifier discovery through the entry-point group ``feedwatch.notifiers``.

Built-in notifiers are registered in feedwatch's own ``pyproject.toml`` the same way a third
party registers theirs, so there is one code path (APScheduler 3.x does the same for its
triggers and executors).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from alerts.base import Notifier
from daemon.errors import PluginLoadError, PluginNotFoundError

GROUP = "feedwatch.notifiers"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of every notifier type installed."""
    return sorted(_entry_points())


def refresh() -> None:
    """Forget what was discovered (after installing a plugin in a running interpreter)."""
    _entry_points.cache_clear()
    load.cache_clear()


@cache
def load(kind: str) -> type[Notifier]:
    """The notifier class registered as ``kind``.

    Raises PluginNotFoundError (listing what is available) or PluginLoadError (chained).
    """
    eps = _entry_points()
    ep = eps.get(kind)
    if ep is None:
        raise PluginNotFoundError(kind, list(eps))
    try:
        obj = ep.load()
    except Exception as e:
        raise PluginLoadError(kind, ep.value, f"{type(e).__name__}: {e}") from e
    if not (isinstance(obj, type) and issubclass(obj, Notifier)):
        raise PluginLoadError(kind, ep.value, "not a subclass of alerts.base.Notifier")
    return obj
