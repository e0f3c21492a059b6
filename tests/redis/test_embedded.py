"""The embedded Redis is a real server: streams, Lua and persistence work."""

from __future__ import annotations

from pathlib import Path

import redis

from daemon.redis.embedded import EmbeddedRedis


def test_real_server_supports_streams_and_lua(redis_url: str) -> None:
    """XADD/XAUTOCLAIM and EVAL work, so no fake could stand in for it."""
    r = redis.Redis.from_url(redis_url)
    r.xgroup_create("s", "g", id="0", mkstream=True)
    r.xadd("s", {"a": "1"})
    assert r.xreadgroup("g", "c1", {"s": ">"}, count=10)[0][1][0][1] == {b"a": b"1"}
    claimed = r.xautoclaim("s", "g", "c2", min_idle_time=0)
    assert len(claimed[1]) == 1
    assert r.eval("return redis.call('SET', KEYS[1], ARGV[1], 'NX')", 1, "k", "v") == b"OK"
    r.close()


def test_persistent_server_keeps_data_and_is_shared(tmp_path: Path) -> None:
    """Data survives a stop/start; a second user of the same state_dir reuses the server."""
    first = EmbeddedRedis(tmp_path)
    url = first.start()
    second = EmbeddedRedis(tmp_path)
    assert second.start() == url and not second.owned
    r = redis.Redis.from_url(url)
    r.set("kept", "yes")
    r.close()
    first.stop()  # the second still uses it: it keeps running
    assert redis.Redis.from_url(url).ping()
    second.stop()  # the last user: shut down, its data flushed
    again = EmbeddedRedis(tmp_path)
    url2 = again.start()
    r = redis.Redis.from_url(url2)
    assert r.get("kept") == b"yes"
    r.close()
    again.stop()
