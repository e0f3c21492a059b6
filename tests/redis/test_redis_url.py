"""``redis:`` URLs: what each form names, the clients built for them, and clear errors that
never show the password (also through the config layer, located ``file:line:column``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from daemon.config.load import ConfigError, load_config
from daemon.errors import RedisUrlError
from daemon.redis.url import describe, open_client, parse

PASSWORD = "pa55-W0rd"


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://localhost",
        "rediss://user:pw@cache:6380/2?ssl_cert_reqs=none",
        "unix:///run/redis.sock?db=1",
        "redis://h/0?socket_timeout=2.5&health_check_interval=10&client_name=fw",
    ],
)
def test_single_server_urls_are_left_to_redis_py(url: str) -> None:
    """One-server URLs keep redis-py's own reading (and options); only checked here."""
    target = parse(url)
    assert target.kind == "single" and target.url == url


def test_sentinel_url_names_sentinels_service_db_and_credentials() -> None:
    """Several sentinels (default port 26379, IPv6 in brackets), the service and the db; the
    userinfo is the master's, sentinel credentials come from the query."""
    t = parse(
        f"redis+sentinel://app:{PASSWORD}@s1:26380,s2,[::1]:26381/mymaster/3"
        "?sentinel_password=sp&socket_timeout=2"
    )
    assert t.kind == "sentinel"
    assert t.nodes == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (t.service, t.db, t.username, t.password) == ("mymaster", 3, "app", PASSWORD)
    assert t.sentinel_auth == {"password": "sp"} and t.options == {"socket_timeout": 2.0}
    assert not t.tls
    assert parse("redis+sentinel://s1/mymaster/").db == 0
    assert parse("rediss+sentinel://s1/m?ssl_cert_reqs=none").tls


def test_cluster_url_names_startup_nodes() -> None:
    """Any reachable nodes (default port 6379); database 0 only, so /0 is all a path may say."""
    t = parse(f"redis+cluster://:{PASSWORD}@n1:7000,n2,n3:7002")
    assert t.kind == "cluster" and t.nodes == (("n1", 7000), ("n2", 6379), ("n3", 7002))
    assert (t.username, t.password, t.db) == (None, PASSWORD, 0)
    assert parse("redis+cluster://n1/0").nodes == (("n1", 6379),)
    assert parse("rediss+cluster://n1:7000").tls


def test_percent_encoded_credentials_are_decoded() -> None:
    t = parse("redis+cluster://u%40x:p%2Fw%3Fd@n1")
    assert (t.username, t.password) == ("u@x", "p/w?d")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:6379", "expected a Redis URL starting with redis://"),
        ("redis+sentinel://s1:26379", "must name the master's service"),
        ("redis+sentinel://s1:26379/", "must name the master's service"),
        ("redis+sentinel://s1/m/x", "expected a database number after the service name"),
        ("redis+sentinel://s1/m/1/2", "expected /service_name or /service_name/db"),
        ("redis+sentinel:///m", "needs at least one host"),
        ("redis+cluster://n1/1", "Redis Cluster has database 0 only"),
        ("redis+cluster://n1:70000", "bad port in 'n1:70000'"),
        ("redis+cluster://n1:x", "bad port in 'n1:x'"),
        ("redis+cluster://n1,,n2", "empty host in the host list"),
        ("redis+cluster://:7000", "no host name in ':7000'"),
        ("redis+cluster://::1:7000", "put an IPv6 address in [brackets]"),
        ("redis+cluster://[::1:7000", "not a valid URL"),
        ("redis+cluster://n1?db=2", "unknown option 'db' for a cluster URL"),
        ("redis+cluster://n1?ssl_ca_certs=/x", "TLS options need rediss+…://"),
        ("redis+sentinel://s1/m?socket_timeout=soon", "socket_timeout must be a number"),
        ("rediss+cluster://n1?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of"),
        ("redis://h:abc/0", "the port must be a number"),
        ("redis://h/zero", "expected a database number after the host, got 'zero'"),
        ("redis://h/0?socket_timeout=x", "Invalid value for 'socket_timeout'"),
        ("redis://h/0?sokcet_timeout=1", "unknown Redis URL option 'sokcet_timeout'"),
        ("unix://", "needs the socket's path"),
        ("redis://h/0#frag", "takes no '#fragment'"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(RedisUrlError) as info:
        parse(url)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://:{PASSWORD}@s1:bad/m",
        f"redis+cluster://user:{PASSWORD}@n1,,n2",
        f"redis+cluster://user:{PASSWORD}@n1?x=1",
        f"redis+sentinel://:{PASSWORD}@/m",
        f"redis://:{PASSWORD}@h:port/0",
        f"redis://:{PASSWORD}@h/db",
        f"redis://:{PASSWORD}@h/0?socket_timeout=x",
        # reserved characters left unencoded in the password would split the URL inside it
        "redis+cluster://:pa/ss@n1",
        "redis://:pa#ss@h/0",
        "redis+sentinel://:pa?ss@s1/m",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(RedisUrlError) as info:
        parse(url)
    text = str(info.value)
    assert PASSWORD not in text and "pa/ss" not in text and "ss@" not in text
    assert "pa#" not in text and "pa?" not in text


def test_unencoded_reserved_characters_are_named() -> None:
    with pytest.raises(RedisUrlError, match="percent-encode them"):
        parse("redis+cluster://:pa/ss@n1")


def test_describe_has_no_credentials() -> None:
    assert (
        describe(parse(f"redis+sentinel://u:{PASSWORD}@s1,s2:1/m/2?sentinel_password=x"))
        == "redis+sentinel://s1:26379,s2:1/m/2"
    )
    assert describe(parse(f"rediss+cluster://:{PASSWORD}@[::1]:7000")) == (
        "rediss+cluster://[::1]:7000"
    )
    assert describe(parse(f"redis://:{PASSWORD}@h:6379/1")) == "redis://h:6379/1"
    target = parse(f"redis+cluster://:{PASSWORD}@n1")
    assert PASSWORD not in repr(target)


async def test_clients_built_for_each_form() -> None:
    """Sentinel: a master client whose pool asks the sentinels (with their own credentials);
    Cluster: a RedisCluster seeded with every node, without a read timeout (BLOCKing reads).
    Nothing connects here."""
    single = open_client(parse("redis://h:1/2"), health_check_interval=30)
    assert isinstance(single.client, aioredis.Redis)
    assert single.client.connection_pool.connection_kwargs["db"] == 2
    await single.aclose()

    s = open_client(
        parse(f"redis+sentinel://:{PASSWORD}@s1:1,s2:2/svc/4?sentinel_password=spw"),
        socket_connect_timeout=5,
    )
    pool = s.client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "svc"
    assert pool.connection_kwargs["password"] == PASSWORD and pool.connection_kwargs["db"] == 4
    assert s.sentinel is not None
    sentinel_kwargs = s.sentinel.sentinels[0].connection_pool.connection_kwargs
    assert sentinel_kwargs["password"] == "spw" and sentinel_kwargs["socket_connect_timeout"] == 5
    assert [c.connection_pool.connection_kwargs["port"] for c in s.sentinel.sentinels] == [1, 2]
    await s.aclose()

    c = open_client(parse(f"redis+cluster://:{PASSWORD}@n1:1,n2:2"), socket_connect_timeout=5)
    assert isinstance(c.client, RedisCluster)
    nodes = c.client.nodes_manager.startup_nodes
    assert sorted(nodes) == ["n1:1", "n2:2"]
    kwargs = nodes["n1:1"].connection_kwargs
    assert kwargs["password"] == PASSWORD and kwargs["socket_timeout"] is None
    await c.aclose()


def test_config_layer_locates_the_problem_without_the_password(tmp_path: Path) -> None:
    """A bad URL is a located config problem; a password from ${VAR} is never shown."""
    path = tmp_path / "feedwatch.yaml"
    path.write_text("state_dir: s\nredis: 'redis+sentinel://:${PW}@s1:26379'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"PW": PASSWORD})
    rendered = info.value.render()
    assert rendered.startswith(f"{path}:2:8: redis: a redis+sentinel:// URL must name")
    assert PASSWORD not in rendered

    path.write_text("redis: 'redis+cluster://a:7000,b:7001'\n")
    assert load_config(path, env={}).redis == "redis+cluster://a:7000,b:7001"
