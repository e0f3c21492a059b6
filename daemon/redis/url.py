"""The ``redis:`` URL: which kind of Redis it names, and the redis-py asyncio client for it.

Accepted forms (``[user:password@]`` is optional everywhere; ``rediss`` means TLS)::

    redis://[user:pw@]host[:6379][/db]        one server (redis-py's own URL, all its options)
    rediss://…                                the same over TLS
    unix:///run/redis.sock[?db=N]             a local socket
    redis+sentinel://[user:pw@]h1[:26379][,h2[:26379]…]/service[/db]
    rediss+sentinel://…                       Sentinel: the master of ``service``, found
                                              through the sentinels, followed across failovers
    redis+cluster://[user:pw@]h1[:6379][,h2[:6379]…]
    rediss+cluster://…                        Redis Cluster: any reachable nodes, the others
                                              are discovered; database 0 only

The user and password are the data node's; sentinels that require their own authentication
take ``?sentinel_username=…&sentinel_password=…``. Other query options of the multi-host forms:
``socket_timeout``, ``socket_connect_timeout`` (seconds), ``client_name`` and, with TLS,
``ssl_cert_reqs`` (none, optional, required), ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_check_hostname``.

Every feedwatch key carries one hash tag (``daemon.redis.keys``), so on a cluster all of them live
in one slot and Lua scripts and MULTI over several keys stay legal.

``parse`` is pure and raises ``RedisUrlError`` with a message that never contains the
password; ``open_client`` builds the client (what its errors mean is decided once, in
``daemon.redis.errors``: a cluster that cannot be reached raises ``RedisClusterException``,
which is no ``RedisError``, and is a store error all the same). ``describe``
and ``unreachable`` render a target without credentials, for logs and errors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel

from daemon.errors import RedisUrlError

Kind = Literal["single", "sentinel", "cluster"]

SCHEMES: dict[str, Kind] = {
    "redis": "single",
    "rediss": "single",
    "unix": "single",
    "redis+sentinel": "sentinel",
    "rediss+sentinel": "sentinel",
    "redis+cluster": "cluster",
    "rediss+cluster": "cluster",
}
DEFAULT_PORT = {"single": 6379, "sentinel": 26379, "cluster": 6379}
# One process's connections to a single server: 64 polls in flight, 16 deliveries, the
# consumer's blocking read and background tasks fit; beyond, a command waits up to
# POOL_TIMEOUT s for a free connection.
POOL_SIZE = 128
POOL_TIMEOUT = 20.0

# redis-py's own URL options that take a string (the others are in URL_QUERY_ARGUMENT_PARSERS).
_SINGLE_STRING_OPTIONS = frozenset(
    {
        "client_name",
        "username",
        "password",
        "lib_name",
        "lib_version",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_ca_data",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_ciphers",
    }
)
_SECONDS = ("socket_timeout", "socket_connect_timeout")
_TLS_OPTIONS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")
_CERT_REQS = ("none", "optional", "required")


@dataclass(frozen=True)
class RedisTarget:
    """What a ``redis:`` URL names. ``options`` are extra client keyword arguments."""

    kind: Kind
    url: str = field(repr=False)  # as written (may hold a password); used for "single"
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_auth: dict[str, str] = field(default_factory=dict, repr=False)
    options: dict[str, Any] = field(default_factory=dict)


def parse(url: str) -> RedisTarget:
    """Check ``url`` and say what it names. Raises ``RedisUrlError`` (password never shown)."""
    _check_userinfo(url)
    try:
        parts = urlsplit(url)
    except ValueError as e:  # e.g. an unbalanced '[' in the host
        raise RedisUrlError(f"not a valid URL: {_safe(e, url)}") from None
    scheme = parts.scheme.lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        got = f", got {scheme + '://'!r}" if scheme else ""
        raise RedisUrlError(
            "expected a Redis URL starting with redis://, rediss://, unix://, "
            f"redis+sentinel:// or redis+cluster:// (rediss+… for TLS){got}"
        )
    if parts.fragment:
        raise RedisUrlError("a Redis URL takes no '#fragment'")
    if kind == "single":
        return _single(url, scheme)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, password = _userinfo(userinfo) if userinfo else (None, None)
    nodes = _nodes(hostlist, DEFAULT_PORT[kind], scheme)
    tls = scheme.startswith("rediss")
    options, sentinel_auth = _options(parts.query, kind=kind, tls=tls)
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if path and path[-1] == "":
        path.pop()  # a trailing slash
    if kind == "cluster":
        if path not in ([], ["0"]):
            raise RedisUrlError(
                "a redis+cluster:// URL names nodes only (Redis Cluster has database 0 only): "
                "redis+cluster://host:port[,host:port…]"
            )
        return RedisTarget(
            kind, url, nodes, None, 0, tls, username, password, sentinel_auth, options
        )
    if not path or not path[0]:
        raise RedisUrlError(
            "a redis+sentinel:// URL must name the master's service: "
            "redis+sentinel://host:port[,host:port…]/service_name[/db]"
        )
    if len(path) > 2:
        raise RedisUrlError("expected /service_name or /service_name/db after the sentinels")
    db = _db(path[1]) if len(path) == 2 else 0
    return RedisTarget(
        kind, url, nodes, path[0], db, tls, username, password, sentinel_auth, options
    )


def describe(target: RedisTarget) -> str:
    """The target without credentials or options, e.g. ``redis+sentinel://s1:26379/mymaster/0``."""
    scheme = urlsplit(target.url).scheme.lower()
    if target.kind == "single":
        p = urlsplit(target.url)
        host = p.netloc.rpartition("@")[2]
        return f"{scheme}://{host}{p.path}"
    hosts = ",".join(_hostport(h, p) for h, p in target.nodes)
    tail = f"/{target.service}/{target.db}" if target.kind == "sentinel" else ""
    return f"{scheme}://{hosts}{tail}"


def unreachable(target: RedisTarget, error: BaseException) -> str:
    """One line saying that ``target`` does not answer, and why (no credentials)."""
    if isinstance(error, MasterNotFoundError):  # its text holds a whole client repr
        why = f"no sentinel gave the address of master {target.service!r}"
    else:
        why = f"{type(error).__name__}: {_safe(error, target.url)[:300]}"
    return f"Redis at {describe(target)} does not answer: {why}"


@dataclass
class RedisHandle:
    """A client and what must be closed with it (the sentinel connections)."""

    target: RedisTarget
    client: aioredis.Redis
    sentinel: Sentinel | None = None

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.aclose()
        if self.sentinel is not None:
            for s in self.sentinel.sentinels:
                with contextlib.suppress(Exception):
                    await s.aclose()


def open_client(target: RedisTarget, **common: Any) -> RedisHandle:
    """The redis-py asyncio client for ``target``; ``common`` are client keyword arguments
    (``health_check_interval``, ``socket_connect_timeout``…) that the URL's options override.

    A cluster client is typed as ``aioredis.Redis``: feedwatch uses the subset of commands
    that ``RedisCluster`` also implements (tests/e2e/test_topologies.py runs them on a real
    cluster). No connection is made here.
    """
    if target.kind == "single":
        # A blocking pool: at its size a command waits for a connection (redis-py's default
        # pool raises "Too many connections" at 100 instead).
        pooled = {"max_connections": POOL_SIZE, "timeout": POOL_TIMEOUT, **common}
        pool = aioredis.BlockingConnectionPool.from_url(target.url, **pooled)
        return RedisHandle(target, aioredis.Redis.from_pool(pool))
    kwargs: dict[str, Any] = {**common, **target.options}
    if target.username is not None:
        kwargs["username"] = target.username
    if target.password is not None:
        kwargs["password"] = target.password
    if target.tls:
        kwargs["ssl"] = True
    if target.kind == "cluster":
        kwargs.setdefault("socket_timeout", None)  # BLOCKing reads: like a single client
        startup = [ClusterNode(host, port) for host, port in target.nodes]
        cluster = RedisCluster(startup_nodes=startup, **kwargs)
        return RedisHandle(target, cast(aioredis.Redis, cluster))
    sentinel_kwargs: dict[str, Any] = {
        k: kwargs[k] for k in ("socket_connect_timeout", "socket_timeout") if k in kwargs
    }
    sentinel_kwargs.setdefault("socket_timeout", 5.0)
    sentinel_kwargs.update(target.sentinel_auth)
    if target.tls:
        sentinel_kwargs.update(ssl=True, **{k: v for k, v in kwargs.items() if k in _TLS_OPTIONS})
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs, **kwargs)
    assert target.service is not None  # parse() guarantees it
    client = sentinel.master_for(target.service, redis_class=aioredis.Redis, db=target.db)
    return RedisHandle(target, client, sentinel)


# -- parsing helpers ---------------------------------------------------------------------------


def _safe(e: BaseException, url: str) -> str:
    """An exception's text, with anything that looks like the URL's credentials removed."""
    text = str(e)
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    if userinfo:
        text = text.replace(userinfo, "***")
        for piece in userinfo.split(":"):
            if piece:
                text = text.replace(piece, "***")
    return text


def _check_userinfo(url: str) -> None:
    """An '@' after the first '/', '?' or '#' means a password holding one of those
    characters unencoded: the URL would split inside the password and echo part of it."""
    rest = url.partition("://")[2]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    if "@" in rest[cut:]:
        raise RedisUrlError(
            "the user or password holds '/', '?', '#' or '@': percent-encode them "
            "(%2F, %3F, %23, %40)"
        )


def _single(url: str, scheme: str) -> RedisTarget:
    from redis.asyncio.connection import parse_url

    parts = urlsplit(url)
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name not in URL_QUERY_ARGUMENT_PARSERS and name not in _SINGLE_STRING_OPTIONS:
            raise RedisUrlError(f"unknown Redis URL option {name!r}")
    if scheme != "unix":
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise RedisUrlError("the port must be a number from 0 to 65535") from None
        path = unquote(parts.path).strip("/")
        if path and not path.isdigit():
            raise RedisUrlError(f"expected a database number after the host, got {path!r}")
    elif not parts.path:
        raise RedisUrlError("a unix:// URL needs the socket's path: unix:///path/to/redis.sock")
    try:
        parse_url(url)
    except ValueError as e:
        raise RedisUrlError(_safe(e, url)) from None
    return RedisTarget("single", url)


def _userinfo(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # redis-py's reading of "redis://name@host": a user name, no password
        return unquote(user) or None, None
    return unquote(user) or None, unquote(password)


def _nodes(hostlist: str, default_port: int, scheme: str) -> tuple[tuple[str, int], ...]:
    if not hostlist:
        raise RedisUrlError(f"a {scheme}:// URL needs at least one host: {scheme}://host:port")
    nodes: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            raise RedisUrlError("empty host in the host list (two commas, or one at an end)")
        if item.startswith("["):  # [IPv6]:port
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise RedisUrlError(f"bad IPv6 host {item!r}: expected [address]:port")
            port_text = rest[1:]
        else:
            host, _, port_text = item.partition(":")
            if ":" in port_text:
                raise RedisUrlError(f"bad host {item!r}: put an IPv6 address in [brackets]")
        if not host:
            raise RedisUrlError(f"no host name in {item!r}")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise RedisUrlError(f"bad port in {item!r}: expected a number from 1 to 65535")
            port = int(port_text)
        else:
            port = default_port
        nodes.append((unquote(host), port))
    return tuple(nodes)


def _options(query: str, *, kind: Kind, tls: bool) -> tuple[dict[str, Any], dict[str, str]]:
    known = ["socket_timeout", "socket_connect_timeout", "client_name"]
    if tls:
        known += _TLS_OPTIONS
    if kind == "sentinel":
        known += _SENTINEL_AUTH
    options: dict[str, Any] = {}
    auth: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in known:
            hint = " (TLS options need rediss+…://)" if name in _TLS_OPTIONS else ""
            raise RedisUrlError(
                f"unknown option {name!r} for a {kind} URL{hint}; known: {', '.join(known)}"
            )
        if name in _SENTINEL_AUTH:
            auth[name.removeprefix("sentinel_")] = value
        elif name in _SECONDS:
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not seconds > 0:
                raise RedisUrlError(f"{name} must be a number of seconds > 0, got {value!r}")
            options[name] = seconds
        elif name == "ssl_check_hostname":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise RedisUrlError(f"ssl_check_hostname must be true or false, got {value!r}")
            options[name] = value.lower() in ("true", "1", "yes")
        elif name == "ssl_cert_reqs" and value not in _CERT_REQS:
            raise RedisUrlError(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}")
        else:
            options[name] = value
    return options, auth


def _db(text: str) -> int:
    if not text.isdigit():
        raise RedisUrlError(f"expected a database number after the service name, got {text!r}")
    return int(text)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
