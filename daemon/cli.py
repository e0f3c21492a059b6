"""The ``feedwatch`` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from daemon import __version__
from daemon.errors import ConfigError, FeedwatchError, Problem

if TYPE_CHECKING:
    from daemon.config.load import Config

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        help="config file (default: $FEEDWATCH_CONFIG or ./feedwatch.yaml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedwatch",
        description="Poll news feeds, match items against rules, deliver explained alerts.",
    )
    parser.add_argument("--version", action="version", version=f"feedwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground")
    _config_arg(run)
    run.add_argument(
        "--once", action="store_true", help="poll every feed once, deliver the alerts raised, exit"
    )
    run.add_argument(
        "--role",
        choices=["all", "poller", "notifier"],
        default="all",
        help="run both halves (default) or only one",
    )
    run.add_argument("--log-format", choices=["text", "json"], help="override log.format")
    run.add_argument("--log-level", help="override log.level (debug, info, warning, error)")

    check = sub.add_parser("check", help="validate config and rules, run rule examples")
    _config_arg(check)

    tr = sub.add_parser("test-rule", help="evaluate rule files against a feed file or URL")
    tr.add_argument("rules", type=Path, help="a rule file or a folder of them")
    tr.add_argument(
        "feed",
        help="a feed file, an http(s) URL, or a folder of feed files or archived items "
        "(the real-news corpus format)",
    )
    tr.add_argument("--json", action="store_true", help="one JSON object per match")

    bt = sub.add_parser(
        "backtest", help="what rule files would have matched over the items archived in Redis"
    )
    _config_arg(bt)
    bt.add_argument("rules", type=Path, help="a rule file or a folder of them")
    bt.add_argument(
        "--since", default="7d", metavar="DURATION", help="items first seen this long ago (7d)"
    )
    bt.add_argument("--json", action="store_true", help="one JSON document")

    status = sub.add_parser("status", help="feeds, delivery and instances, read from Redis")
    _config_arg(status)
    status.add_argument("--json", action="store_true", help="one JSON document")

    health = sub.add_parser(
        "health", help="exit 0 if a feedwatch process on this host has a fresh heartbeat"
    )
    _config_arg(health)
    health.add_argument(
        "--any-host",
        action="store_true",
        help="accept a heartbeat from any host, not only this one",
    )

    dlq = sub.add_parser("dlq", help="inspect and replay dead-lettered alerts")
    _config_arg(dlq)
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    dl = dsub.add_parser("list", help="list dead letters")
    dl.add_argument("--json", action="store_true")
    dl.add_argument("--count", type=int, default=100)
    ds = dsub.add_parser("show", help="show one dead letter with its alert")
    ds.add_argument("id")
    dr = dsub.add_parser("replay", help="send dead letters back to delivery")
    dr.add_argument("ids", nargs="*")
    dr.add_argument("--all", action="store_true")
    dd = dsub.add_parser("drop", help="delete dead letters")
    dd.add_argument("ids", nargs="+")

    sil = sub.add_parser("silence", help="silence a rule's alerts for a while")
    _config_arg(sil)
    ssub = sil.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    sa = ssub.add_parser("add", help="silence RULE_ID for a duration")
    sa.add_argument("rule_id")
    sa.add_argument("--for", dest="duration", required=True, metavar="DURATION", help="2h, 30m")
    sa.add_argument("--comment", default="")
    sl = ssub.add_parser("list", help="active silences")
    sl.add_argument("--json", action="store_true")
    sl.add_argument("--expired", action="store_true", help="recently expired ones too")
    se = ssub.add_parser("expire", help="end a silence now")
    se.add_argument("id")
    for action in (sa, sl, se):  # --config after the action too
        action.add_argument("--config", "-c", metavar="PATH", default=argparse.SUPPRESS)

    feeds = sub.add_parser("feeds", help="import feeds from OPML, export them as OPML")
    fsub = feeds.add_subparsers(dest="feeds_command", metavar="ACTION", required=True)
    fi = fsub.add_parser("import", help="print a feeds: block from OPML, or append it to a config")
    fi.add_argument("file", type=Path, help="an OPML file (a feed reader's export)")
    fi.add_argument("--append-to", type=Path, metavar="CONFIG", help="add the feeds to CONFIG")
    fi.add_argument("--interval", metavar="DURATION", help="an interval for every feed (10m)")
    fe = fsub.add_parser("export", help="write the configured feeds as OPML 2.0")
    _config_arg(fe)
    fe.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    return parser


def _print_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        print(p.render(), file=sys.stderr)
    n = len(problems)
    print(f"{n} problem{'s' if n != 1 else ''} found", file=sys.stderr)


def _load(path: str | None) -> Config:
    from daemon.config.load import load_config
    from daemon.runtime import config_path

    return load_config(config_path(path))


def cmd_check(args: argparse.Namespace) -> int:
    from daemon.match.examples import check_rules

    config = _load(args.config)
    ruleset, problems = check_rules(list(config.rules), notifiers=set(config.notifiers))
    if problems:
        _print_problems(sorted(problems, key=Problem.sort_key))
        return EXIT_PROBLEMS
    print(
        f"ok: {len(config.feeds)} feeds, {len(ruleset.rules)} rules, "
        f"{len(config.notifiers)} notifiers"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.logging import setup_logging
    from daemon.runtime import run_daemon

    config = _load(args.config)
    setup_logging(
        args.log_level or config.log.level, args.log_format or config.log.format, config.secrets
    )
    try:
        return asyncio.run(run_daemon(config, role=args.role, once=args.once))
    except KeyboardInterrupt:
        return 130


def cmd_test_rule(args: argparse.Namespace) -> int:
    from daemon.match.testrule import test_rule

    return test_rule([args.rules], args.feed, as_json=args.json, out=sys.stdout, err=sys.stderr)


def cmd_backtest(args: argparse.Namespace) -> int:
    """``feedwatch backtest RULES [--since 7d] [--json]``: the rules over the item archive."""
    import json
    import time

    from daemon.durations import parse_duration
    from daemon.match.backtest import Archived, backtest, render_text, report_json
    from daemon.match.matcher import Matcher
    from daemon.match.rules import load_rules
    from daemon.poll.archive import Archive
    from daemon.redis.keys import Keys
    from daemon.runtime import RedisConnection

    try:
        since = parse_duration(args.since)
    except ValueError as e:
        print(f"--since: {e}", file=sys.stderr)
        return EXIT_USAGE
    config = _load(args.config)
    matcher = Matcher(load_rules([args.rules]))  # ConfigError: every problem, located
    if not config.archive.enabled:
        print("warning: archive: is off in the config; reading what is there", file=sys.stderr)
    settings, now = config.archive, time.time()

    async def go() -> list[Archived]:
        async with RedisConnection(config) as r:
            archive = Archive(
                r, Keys(config.prefix), keep=settings.keep, max_bytes=settings.max_bytes
            )
            return await archive.read(now - since, now)

    report = backtest(matcher, asyncio.run(go()), since=now - since, until=now)
    if args.json:
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    else:
        print(render_text(report), end="")
    return EXIT_OK


def cmd_dlq(args: argparse.Namespace) -> int:
    from alerts import dlq
    from daemon.redis.keys import Keys
    from daemon.runtime import RedisConnection

    config = _load(args.config)
    keys = Keys(config.prefix)

    async def go() -> int:
        async with RedisConnection(config) as r:
            if args.dlq_command == "list":
                items = await dlq.dlq_list(r, keys, count=args.count)
                print(dlq.format_dead_letters(items, as_json=args.json))
            elif args.dlq_command == "show":
                item = await dlq.dlq_show(r, keys, args.id)
                if item is None:
                    print(f"no dead letter {args.id}", file=sys.stderr)
                    return EXIT_PROBLEMS
                print(dlq.format_dead_letters([item], as_json=True, full=True))
            elif args.dlq_command == "replay":
                if not args.ids and not args.all:
                    print("name dead-letter ids or --all", file=sys.stderr)
                    return EXIT_USAGE
                n = await dlq.dlq_replay(r, keys, None if args.all else args.ids)
                print(f"replayed {n}")
            elif args.dlq_command == "drop":
                n = await dlq.dlq_drop(r, keys, args.ids)
                print(f"dropped {n}")
        return EXIT_OK

    return asyncio.run(go())


def cmd_silence(args: argparse.Namespace) -> int:
    """``feedwatch silence add|list|expire``: wrappers of ``daemon.publish.silence.Silences``."""
    import getpass
    import socket
    import time

    from daemon.durations import parse_duration
    from daemon.publish.silence import Silences, format_silences
    from daemon.redis.keys import Keys
    from daemon.runtime import RedisConnection

    try:
        config = _load(args.config)
    except ConfigError as e:
        _print_problems(e.problems)
        return EXIT_PROBLEMS
    seconds = 0.0
    if args.silence_command == "add":
        try:
            seconds = parse_duration(args.duration)
        except ValueError as e:
            print(f"--for: {e}", file=sys.stderr)
            return EXIT_USAGE
        if seconds <= 0:
            print("--for: a silence must last longer than 0s", file=sys.stderr)
            return EXIT_USAGE
        if args.rule_id not in _rule_ids(config):
            print(f"warning: no rule {args.rule_id!r} is loaded now", file=sys.stderr)

    async def go() -> int:
        async with RedisConnection(config) as r:
            silences, now = Silences(r, Keys(config.prefix)), time.time()
            if args.silence_command == "add":
                by = f"{getpass.getuser()}@{socket.gethostname()}"
                sid = await silences.add(
                    args.rule_id, seconds, now=now, comment=args.comment, created_by=by
                )
                print(sid)
            elif args.silence_command == "list":
                found = await silences.list(now, expired=args.expired)
                print(format_silences(found, now, as_json=args.json))
            elif not await silences.expire(args.id, now):
                print(f"no active silence {args.id}", file=sys.stderr)
                return EXIT_PROBLEMS
            else:
                print(f"expired {args.id}")
        return EXIT_OK

    return asyncio.run(go())


def _rule_ids(config: Config) -> set[str]:
    from daemon.match.rules import load_rules

    try:
        return {r.id for r in load_rules(list(config.rules)).rules}
    except ConfigError:
        return set()


def cmd_health(args: argparse.Namespace) -> int:
    """Docker HEALTHCHECK: is there a live heartbeat key (it expires ~30 s after the last beat)?

    Never starts an embedded Redis: with no server running there is no healthy daemon.
    """
    import socket

    from daemon.redis import url as redis_url
    from daemon.redis.embedded import EmbeddedRedis
    from daemon.redis.errors import STORE_ERRORS
    from daemon.redis.keys import Keys

    config = _load(args.config)
    url = config.redis or EmbeddedRedis(config.state_dir).running_url()
    if url is None:
        print("unhealthy: the embedded Redis is not running", file=sys.stderr)
        return EXIT_PROBLEMS
    host = "*" if args.any_host else socket.gethostname()
    pattern = Keys(config.prefix).heartbeat(f"{host}-*")

    async def scan() -> list[bytes]:
        handle = redis_url.open_client(
            redis_url.parse(url), socket_connect_timeout=3, socket_timeout=3
        )
        try:
            return [k async for k in handle.client.scan_iter(match=pattern, count=1000)]
        finally:
            await handle.aclose()

    try:
        alive = asyncio.run(scan())
    except STORE_ERRORS + (OSError,) as e:
        print(f"unhealthy: Redis unreachable: {type(e).__name__}", file=sys.stderr)
        return EXIT_PROBLEMS
    if not alive:
        print("unhealthy: no fresh heartbeat", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"healthy: {len(alive)} instance(s)")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from daemon.ops import status
    from daemon.runtime import RedisConnection

    config = _load(args.config)

    async def go() -> dict[str, object]:
        async with RedisConnection(config) as r:
            return await status.gather(r, config)

    result = asyncio.run(go())
    print(json.dumps(result, indent=2, default=str) if args.json else status.format_table(result))
    return EXIT_OK


def cmd_feeds(args: argparse.Namespace) -> int:
    from daemon.config import opml_io as opml_config

    if args.feeds_command == "import":
        return opml_config.run_import(args.file, append_to=args.append_to, interval=args.interval)
    return opml_config.run_export(_load(args.config), output=args.output)


COMMANDS = {
    "run": cmd_run,
    "status": cmd_status,
    "health": cmd_health,
    "check": cmd_check,
    "test-rule": cmd_test_rule,
    "backtest": cmd_backtest,
    "dlq": cmd_dlq,
    "feeds": cmd_feeds,
    "silence": cmd_silence,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except ConfigError as e:  # config or rules invalid: every problem, located
        _print_problems(e.problems)
        return EXIT_PROBLEMS
    except FeedwatchError as e:
        print(f"feedwatch: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
