"""Load and validate ``feedwatch.yaml``: ``load_config(path) -> Config`` or ``ConfigError``.

Steps: safe YAML with marks (``daemon._yaml``) → ``${VAR}`` interpolation on every string value
→ each section validated by its pydantic model (``daemon.config_models``) → notifier options
validated by their plugin's ``Options`` → cross checks (unique feed names, known notifiers).
Every problem found is collected, located at ``file:line:column`` with a dotted key path, and
raised at once as ``ConfigError``. Values taken from the environment are collected into
``Config.secrets`` and are never written into a problem.

Interpolation: ``${VAR}`` is replaced by the variable's value (a problem if it is not set),
``${VAR:-default}`` by the value or, when unset or empty, by ``default``; ``$${`` is a literal
``${``. Only values are interpolated, never keys.

Defaults that depend on other keys: an omitted (or null) ``notifiers`` means one ``console``
notifier; an omitted ``defaults.notify`` means ``[console]`` if a notifier of that name exists,
else ``[]``. Feed names are unique; ``feeds[i]`` in problems counts from 0. Omitted
``min_interval``/``max_interval`` come from ``defaults``, else are the feed's ``interval``
(fixed); ``min_interval <= interval <= max_interval`` is checked per feed and in ``defaults``.

A ``feeds`` entry ``{opml: PATH, interval?, min_interval?, max_interval?, tags?, backfill?}``
brings every feed of an OPML file (``daemon.opml``; PATH relative to the config file), each
with the entry's overrides and its tags followed by the OPML categories. Its names share the
uniqueness check with inline feeds.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml.constructor import DuplicateKeyError

from alerts import registry
from alerts.base import NotifierOptions
from alerts.digest import supports_digest
from daemon import _yaml
from daemon.config_models import (
    NOTIFIER_KEYS,
    Config,
    Defaults,
    DeliveryConfig,
    FeedConfig,
    FetchConfig,
    HttpConfig,
    LogConfig,
    NotifierConfig,
    PollingConfig,
    RawFeed,
    RawNotifierHead,
    RawOpmlEntry,
    RawTop,
    WebSubConfig,
    message_for,
    redact,
    show,
    unknown_key,
)
from daemon.durations import format_duration
from daemon.errors import ConfigError, PluginError, Problem
from daemon.opml import read_opml

__all__ = [
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

Loc = tuple[str | int, ...]

M = TypeVar("M", bound=BaseModel)

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
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
        root = _yaml.load_yaml(p, display)
    except ConfigError as e:
        if not isinstance(e.__cause__, DuplicateKeyError):
            raise
        # ruamel's message (kept in the chain) echoes both values: drop the chain.
        raise ConfigError(_duplicate_key_problems(e, e.__cause__)) from None
    source = Path(os.path.abspath(p))
    return _build(root, _Ctx(display, root, located=True, env=env), source.parent, source)


def config_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    display: str = "<dict>",
) -> Config:
    """Validate an in-memory config (tests, programmatic use). Problems are located at 0:0."""
    ctx = _Ctx(display, data, located=False, env=env)
    return _build(data, ctx, Path(os.path.abspath(Path(base_dir).expanduser())), None)


# -- context: where things are, what was found ------------------------------------------------


@dataclass
class _Ctx:
    display: str
    root: Any
    located: bool
    env: Mapping[str, str] | None
    problems: list[Problem] = field(default_factory=list)
    secrets: dict[Loc, set[str]] = field(default_factory=dict)  # env values used, by location
    tainted: set[Loc] = field(default_factory=set)  # locations holding env values
    broken: set[Loc] = field(default_factory=set)  # locations whose interpolation failed

    def add(
        self, loc: Loc, message: str, *, at_key: bool = False, detail: tuple[str, ...] = ()
    ) -> None:
        if any(loc[: len(b)] == b for b in self.broken):
            return  # already reported; don't pile a validation error on top
        if any(t[: len(loc)] == loc or loc[: len(t)] == t for t in self.tainted):
            message = redact(message, self.all_secrets())
            detail = tuple(redact(d, self.all_secrets()) for d in detail)
        if not self.located:
            line, col = 0, 0
        elif at_key:
            line, col = _yaml.key_position(self.root, loc)
        else:
            line, col = _yaml.position(self.root, loc)
        self.problems.append(Problem(self.display, line, col, _where(loc), message, detail))

    def all_secrets(self) -> frozenset[str]:
        return frozenset(s for values in self.secrets.values() for s in values)

    def secrets_under(self, prefix: Loc) -> frozenset[str]:
        return frozenset(
            s
            for loc, values in self.secrets.items()
            if loc[: len(prefix)] == prefix
            for s in values
        )


def _where(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "config"


def _duplicate_key_problems(err: ConfigError, cause: DuplicateKeyError) -> list[Problem]:
    """ruamel's duplicate-key message echoes both values (maybe secrets): name the key only."""
    m = _DUP_KEY.search(str(cause.problem or ""))
    key = f" {m.group(1)!r}" if m else ""
    return [Problem(p.file, p.line, p.column, p.where, f"duplicate key{key}") for p in err.problems]


# -- interpolation ----------------------------------------------------------------------------


def _interpolate(node: Any, loc: Loc, ctx: _Ctx) -> Any:
    """Plain data (dicts, lists, scalars) with ``${VAR}`` replaced in every string value."""
    if isinstance(node, Mapping):
        return {str(k): _interpolate(v, (*loc, str(k)), ctx) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_interpolate(v, (*loc, i), ctx) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _substitute(str(node), loc, ctx)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _substitute(text: str, loc: Loc, ctx: _Ctx) -> str:
    if "${" not in text:
        return text
    env = os.environ if ctx.env is None else ctx.env
    errors: list[str] = []

    def replace(m: re.Match[str]) -> str:
        written = m.group(0)
        if written == "$${":
            return "${"
        if m.group(1) is None:
            errors.append("unclosed '${' (write '$${' for a literal '${')")
            return written
        ref = _VAR.fullmatch(m.group(1))
        if ref is None:
            errors.append(f"malformed variable reference {written!r} (write '$${{' for a literal)")
            return written
        name, default = ref.group(1), ref.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                errors.append(f"environment variable {name} is not set")
                return written
            return default
        ctx.tainted.add(loc)
        if value:
            ctx.secrets.setdefault(loc, set()).add(value)
        return value

    result = _REF.sub(replace, text)
    for message in errors:
        ctx.add(loc, message)
    if errors:
        ctx.broken.add(loc)
    return result


# -- validation -------------------------------------------------------------------------------


def _validate(model: type[M], data: Any, loc: Loc, ctx: _Ctx) -> M | None:
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as e:
        _report(e, loc, ctx, candidates=list(model.model_fields))
        return None


def _report(err: ValidationError, prefix: Loc, ctx: _Ctx, candidates: Sequence[str]) -> None:
    for detail in err.errors(include_url=False):
        loc = (*prefix, *detail["loc"])
        if detail["type"] == "extra_forbidden":
            key = str(detail["loc"][-1]) if detail["loc"] else "?"
            known = candidates if len(detail["loc"]) == 1 else ()
            ctx.add(loc, unknown_key(key, known), at_key=True)
        else:
            ctx.add(loc, message_for(detail))


# -- assembling -------------------------------------------------------------------------------


def _build(root: Any, ctx: _Ctx, base_dir: Path, source: Path | None) -> Config:
    if root is None:
        root = {}
    if not isinstance(root, Mapping):
        line, col = _yaml.position(root, ()) if ctx.located else (0, 0)
        message = f"expected a mapping of settings at the top level, got {show(root)}"
        raise ConfigError([Problem(ctx.display, line, col, "config", message)])
    data: dict[str, Any] = _interpolate(root, (), ctx)
    top = _validate(RawTop, data, (), ctx)
    defaults = _validate(Defaults, data.get("defaults"), ("defaults",), ctx)
    fetch = _validate(FetchConfig, data.get("fetch"), ("fetch",), ctx)
    polling = _validate(PollingConfig, data.get("polling"), ("polling",), ctx)
    delivery = _validate(DeliveryConfig, data.get("delivery"), ("delivery",), ctx)
    log = _validate(LogConfig, data.get("log"), ("log",), ctx)
    http = None if data.get("http") is None else _validate(HttpConfig, data["http"], ("http",), ctx)
    websub = _validate(WebSubConfig, data.get("websub"), ("websub",), ctx)
    notifiers = _notifiers(data, ctx)
    if defaults is not None:
        defaults = _resolve_notify(defaults, data, notifiers, ctx)
        _intervals(defaults, defaults, ("defaults",), ctx)
    feeds = _feeds(data.get("feeds"), defaults or Defaults(), base_dir, ctx)
    if (
        ctx.problems
        or top is None
        or defaults is None
        or fetch is None
        or polling is None
        or delivery is None
        or log is None
        or websub is None
    ):
        raise ConfigError(ctx.problems)
    return Config(
        source=source,
        base_dir=base_dir,
        redis=top.redis,
        prefix=top.prefix,
        state_dir=_path(top.state_dir, base_dir),
        rules=tuple(_path(r, base_dir) for r in top.rules),
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
    )


def _path(text: str, base_dir: Path) -> Path:
    p = Path(text).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else base_dir / p))


def _feeds(raw: Any, defaults: Defaults, base_dir: Path, ctx: _Ctx) -> tuple[FeedConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.add(("feeds",), f"expected a list of feeds, got {show(raw)}")
        return ()
    feeds: list[FeedConfig] = []
    first: dict[str, str] = {}  # feed name → where it was first defined
    for i, entry in enumerate(raw):
        if isinstance(entry, dict) and "opml" in entry:
            feeds += _opml_feeds(entry, i, defaults, base_dir, first, ctx)
            continue
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            if name in first:
                ctx.add(
                    ("feeds", i, "name"), f"feed name {name!r} is already used by {first[name]}"
                )
            else:
                first[name] = f"feeds[{i}]"
        feed = _validate(RawFeed, entry, ("feeds", i), ctx)
        if feed is None:
            continue
        given = feed.model_fields_set
        interval, lo, hi = _intervals(feed, defaults, ("feeds", i), ctx)
        feeds.append(
            FeedConfig(
                name=feed.name,
                url=feed.url,
                interval=interval,
                tags=feed.tags,
                backfill=feed.backfill if "backfill" in given else defaults.backfill,
                secrets=ctx.secrets_under(("feeds", i)),
                min_interval=lo,
                max_interval=hi,
            )
        )
    return tuple(feeds)


def _opml_feeds(
    entry: dict[str, Any],
    i: int,
    defaults: Defaults,
    base_dir: Path,
    first: dict[str, str],
    ctx: _Ctx,
) -> list[FeedConfig]:
    """The feeds an ``{opml: PATH}`` entry brings; problems are located at its ``opml`` key."""
    loc: Loc = ("feeds", i)
    spec = _validate(RawOpmlEntry, entry, loc, ctx)
    if spec is None:
        return []
    path = _path(spec.opml, base_dir)
    relative = not Path(spec.opml).expanduser().is_absolute()
    shown = str(Path(ctx.display).parent / spec.opml) if ctx.located and relative else str(path)
    try:
        doc = read_opml(path, shown)
    except ConfigError as e:
        (head, *rest) = e.problems
        if head.line == 0 and not rest:
            ctx.add((*loc, "opml"), f"OPML file {spec.opml!r}: {head.message}")
        else:
            detail = tuple(p.render() for p in e.problems)
            ctx.add((*loc, "opml"), f"OPML file {spec.opml!r} is not usable", detail=detail)
        return []
    if doc.skipped:
        detail = tuple(p.render() for p in doc.skipped)
        ctx.add((*loc, "opml"), f"OPML file {spec.opml!r} lists unusable feeds", detail=detail)
    given = spec.model_fields_set
    interval, lo, hi = _intervals(spec, defaults, loc, ctx)
    out: list[FeedConfig] = []
    for feed in doc.feeds:
        place = f"feeds[{i}].opml ({shown}:{feed.line})"
        if feed.name in first:
            ctx.add(
                (*loc, "opml"),
                f"feed name {feed.name!r} from {shown}:{feed.line} "
                f"is already used by {first[feed.name]}",
            )
            continue
        first[feed.name] = place
        out.append(
            FeedConfig(
                name=feed.name,
                url=feed.url,
                interval=interval,
                tags=tuple(dict.fromkeys((*spec.tags, *feed.tags))),
                backfill=spec.backfill if "backfill" in given else defaults.backfill,
                secrets=ctx.secrets_under(loc),
                min_interval=lo,
                max_interval=hi,
            )
        )
    return out


def _intervals(
    entry: RawFeed | RawOpmlEntry | Defaults, defaults: Defaults, loc: Loc, ctx: _Ctx
) -> tuple[float, float | None, float | None]:
    """``(interval, min_interval, max_interval)`` of a feed entry (or of ``defaults`` itself),
    each omitted one taken from ``defaults``; a problem unless min <= interval <= max."""
    given = entry.model_fields_set

    def pick(key: str) -> tuple[Any, str]:
        if key in given or entry is defaults:
            return getattr(entry, key), ""
        return getattr(defaults, key), " (from defaults)"

    (interval, _), (lo, lo_from), (hi, hi_from) = map(
        pick, ("interval", "min_interval", "max_interval")
    )
    if entry is not defaults and not given & {"interval", "min_interval", "max_interval"}:
        return interval, lo, hi  # all from defaults, checked there
    shown = format_duration(interval)
    if lo is not None and lo > interval:
        where = (*loc, "min_interval") if not lo_from else (*loc, "interval")
        ctx.add(
            where,
            f"min_interval {format_duration(lo)}{lo_from} is longer than interval {shown}",
        )
    if hi is not None and hi < interval:
        where = (*loc, "max_interval") if not hi_from else (*loc, "interval")
        ctx.add(
            where,
            f"max_interval {format_duration(hi)}{hi_from} is shorter than interval {shown}",
        )
    return interval, lo, hi


def _notifiers(data: dict[str, Any], ctx: _Ctx) -> dict[str, NotifierConfig]:
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
        head = _validate(RawNotifierHead, head_data, loc, ctx)
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
    ctx: _Ctx,
    generic: Sequence[str] = NOTIFIER_KEYS,
) -> NotifierOptions | None:
    data = {k: v for k, v in entry.items() if k not in NOTIFIER_KEYS}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        _report(e, loc, ctx, candidates=[*generic, *model.model_fields])
    except (ValueError, TypeError) as e:  # a plugin validator that raised outside pydantic
        ctx.add(loc, f"invalid options: {e}")
    return None


def _resolve_notify(
    defaults: Defaults, data: dict[str, Any], notifiers: dict[str, NotifierConfig], ctx: _Ctx
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
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"configured: {', '.join(known) or 'none'}"
            )
            ctx.add(("defaults", "notify", i), f"unknown notifier {name!r} ({hint})")
    return defaults
