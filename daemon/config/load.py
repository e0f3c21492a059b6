"""Load and validate ``feedwatch.yaml``: ``load_config(path) -> Config`` or ``ConfigError``.

Steps: safe YAML (``daemon.config.yamlfile``: libyaml first, marks re-read only to locate a
problem) → ``${VAR}`` interpolation on every string value (``daemon.config.env``) → each section
validated by its pydantic model (``daemon.config.models``) → notifier options validated by their
plugin's ``Options`` → feeds, inline and from OPML files (``daemon.config.feeds``) → cross checks
(unique feed names, known notifiers). Every problem found is collected
(``daemon.config.context``), located at ``file:line:column`` with a dotted key path, and raised
at once as ``ConfigError``. Values taken from the environment are collected into
``Config.secrets`` and are never written into a problem.

Defaults that depend on other keys: an omitted (or null) ``notifiers`` means one ``console``
notifier; an omitted ``defaults.notify`` means ``[console]`` if a notifier of that name exists,
else ``[]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.constructor import DuplicateKeyError

from alerts import registry
from alerts.base import NotifierOptions
from alerts.digest import supports_digest
from daemon.config import yamlfile as _yaml
from daemon.config.context import Ctx, Loc, report, resolve_path, validate
from daemon.config.env import interpolate
from daemon.config.feeds import build_feeds, intervals
from daemon.config.messages import closest, show
from daemon.config.models import (
    NOTIFIER_KEYS,
    ArchiveConfig,
    Config,
    Defaults,
    DeliveryConfig,
    FeedConfig,
    FetchConfig,
    HttpConfig,
    LogConfig,
    NotifierConfig,
    PollingConfig,
    RawNotifierHead,
    RawTop,
    WebSubConfig,
)
from daemon.errors import ConfigError, PluginError, Problem

__all__ = [
    "ArchiveConfig",
    "Config",
    "ConfigError",
    "Defaults",
    "DeliveryConfig",
    "FeedConfig",
    "FetchConfig",
    "HttpConfig",
    "LogConfig",
    "NotifierConfig",
    "PollingConfig",
    "WebSubConfig",
    "config_from_dict",
    "load_config",
]

DEFAULT_PATH = Path("feedwatch.yaml")

_DUP_KEY = re.compile(r'found duplicate key "(.*?)" with value')


def load_config(path: Path | str = DEFAULT_PATH, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate the config file at ``path``.

    Problems name the file as ``path`` was given. Raises ConfigError listing every problem.
    """
    display = str(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError([Problem(display, 0, 0, "file", "config file not found")])
    if p.is_dir():
        raise ConfigError([Problem(display, 0, 0, "file", "is a folder, expected a YAML file")])
    try:
        doc = _yaml.read_yaml(p, display)
    except ConfigError as e:
        if not isinstance(e.__cause__, DuplicateKeyError):
            raise
        # ruamel's message (kept in the chain) echoes both values: drop the chain.
        raise ConfigError(_duplicate_key_problems(e, e.__cause__)) from None
    source = Path(os.path.abspath(p))
    root = doc.data
    if root is not None and not isinstance(root, Mapping):
        root = doc.marked()  # a problem to report: the line-keeping tree, as it is shown
    return _build(root, Ctx(display, doc, located=True, env=env), source.parent, source)


def config_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    display: str = "<dict>",
) -> Config:
    """Validate an in-memory config (tests, programmatic use). Problems are located at 0:0."""
    ctx = Ctx(display, data, located=False, env=env)
    return _build(data, ctx, Path(os.path.abspath(Path(base_dir).expanduser())), None)


def _duplicate_key_problems(err: ConfigError, cause: DuplicateKeyError) -> list[Problem]:
    """ruamel's duplicate-key message echoes both values (maybe secrets): name the key only."""
    m = _DUP_KEY.search(str(cause.problem or ""))
    key = f" {m.group(1)!r}" if m else ""
    return [Problem(p.file, p.line, p.column, p.where, f"duplicate key{key}") for p in err.problems]


# -- assembling -------------------------------------------------------------------------------


def _build(root: Any, ctx: Ctx, base_dir: Path, source: Path | None) -> Config:
    if root is None:
        root = {}
    if not isinstance(root, Mapping):
        line, col = _yaml.position(ctx.root, ()) if ctx.located else (0, 0)
        message = f"expected a mapping of settings at the top level, got {show(root)}"
        raise ConfigError([Problem(ctx.display, line, col, "config", message)])
    data: dict[str, Any] = interpolate(root, (), ctx)
    top = validate(RawTop, data, (), ctx)
    defaults = validate(Defaults, data.get("defaults"), ("defaults",), ctx)
    fetch = validate(FetchConfig, data.get("fetch"), ("fetch",), ctx)
    polling = validate(PollingConfig, data.get("polling"), ("polling",), ctx)
    delivery = validate(DeliveryConfig, data.get("delivery"), ("delivery",), ctx)
    log = validate(LogConfig, data.get("log"), ("log",), ctx)
    http = None if data.get("http") is None else validate(HttpConfig, data["http"], ("http",), ctx)
    websub = validate(WebSubConfig, data.get("websub"), ("websub",), ctx)
    archive = validate(ArchiveConfig, data.get("archive"), ("archive",), ctx)
    notifiers = _notifiers(data, ctx)
    if defaults is not None:
        defaults = _resolve_notify(defaults, data, notifiers, ctx)
        intervals(defaults, defaults, ("defaults",), ctx)
    feeds = build_feeds(data.get("feeds"), defaults or Defaults(), base_dir, ctx)
    if (
        ctx.problems
        or top is None
        or defaults is None
        or fetch is None
        or polling is None
        or delivery is None
        or log is None
        or websub is None
        or archive is None
    ):
        raise ConfigError(ctx.problems)
    return Config(
        source=source,
        base_dir=base_dir,
        redis=top.redis,
        prefix=top.prefix,
        state_dir=resolve_path(top.state_dir, base_dir),
        rules=tuple(resolve_path(r, base_dir) for r in top.rules),
        defaults=defaults,
        feeds=feeds,
        notifiers=notifiers,
        fetch=fetch,
        polling=polling,
        delivery=delivery,
        log=log,
        http=http,
        secrets=ctx.all_secrets(),
        websub=websub,
        archive=archive,
    )


def _notifiers(data: dict[str, Any], ctx: Ctx) -> dict[str, NotifierConfig]:
    raw = data.get("notifiers")
    if raw is None:
        raw = {"console": {"type": "console"}}  # nothing configured: print alerts
    if not isinstance(raw, dict):
        ctx.add(
            ("notifiers",), f"expected a mapping of notifier names to settings, got {show(raw)}"
        )
        return {}
    out: dict[str, NotifierConfig] = {}
    for name, entry in raw.items():
        loc: Loc = ("notifiers", name)
        before = len(ctx.problems)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            ctx.add(
                loc,
                f"a name may contain only letters, digits, '_', '.' and '-', got {name!r}",
                at_key=True,
            )
        if not isinstance(entry, dict):
            ctx.add(loc, f"expected a mapping with at least 'type', got {show(entry)}")
            continue
        head_data = {k: v for k, v in entry.items() if k in NOTIFIER_KEYS}
        head = validate(RawNotifierHead, head_data, loc, ctx)
        kind = entry.get("type")
        if not isinstance(kind, str):
            continue  # reported by the head
        try:
            plugin = registry.load(kind)
        except PluginError as e:
            ctx.add((*loc, "type"), str(e))
            continue
        digests = supports_digest(plugin)
        generic = NOTIFIER_KEYS if digests else tuple(k for k in NOTIFIER_KEYS if k != "digest")
        options = _plugin_options(plugin.Options, entry, loc, ctx, generic)
        if head is not None and head.digest is not None and not digests:
            ctx.add((*loc, "digest"), f"notifier type {kind!r} does not support digest")
        if head is None or options is None or len(ctx.problems) > before:
            continue
        out[name] = NotifierConfig(
            name=name,
            type=head.type,
            min_severity=head.min_severity,
            max_attempts=head.max_attempts,
            options=options,
            digest=head.digest,
            secrets=ctx.secrets_under(loc),
        )
    return out


def _plugin_options(
    model: type[NotifierOptions],
    entry: dict[str, Any],
    loc: Loc,
    ctx: Ctx,
    generic: Sequence[str] = NOTIFIER_KEYS,
) -> NotifierOptions | None:
    data = {k: v for k, v in entry.items() if k not in NOTIFIER_KEYS}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        report(e, loc, ctx, candidates=[*generic, *model.model_fields])
    except (ValueError, TypeError) as e:  # a plugin validator that raised outside pydantic
        ctx.add(loc, f"invalid options: {e}")
    return None


def _resolve_notify(
    defaults: Defaults, data: dict[str, Any], notifiers: dict[str, NotifierConfig], ctx: Ctx
) -> Defaults:
    """Omitted ``defaults.notify`` means ``[console]`` if there is a notifier called console."""
    if "notify" not in defaults.model_fields_set:
        notify = ("console",) if "console" in notifiers else ()
        return defaults.model_copy(update={"notify": notify})
    # Names as written (not only the valid ones), so one bad notifier is reported once.
    raw = data.get("notifiers")
    known = [str(k) for k in raw] if isinstance(raw, dict) else list(notifiers)
    for i, name in enumerate(defaults.notify):
        if name not in known:
            close = closest(name, known)
            hint = (
                f"did you mean {close!r}?" if close else f"configured: {', '.join(known) or 'none'}"
            )
            ctx.add(("defaults", "notify", i), f"unknown notifier {name!r} ({hint})")
    return defaults
