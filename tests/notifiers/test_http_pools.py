"""Notifier HTTP clients: requests spread over small pools, slots given back, proxies kept."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from alerts.httperrors import PoolsTransport, notifier_client
from tests.notifiers.fakeservice import FakeService, Slow

POOLS = 4
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def pools() -> PoolsTransport:
    return PoolsTransport(POOLS, verify=httpx.create_ssl_context())


def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_requests_in_flight_spread_over_the_pools(service: FakeService) -> None:
    """Held requests go one per pool (least busy first); each slot is freed by the response."""
    service.will(*(Slow() for _ in range(POOLS)))
    transport = pools()
    async with httpx.AsyncClient(transport=transport) as client:
        tasks = [
            asyncio.create_task(client.post(service.url("/hook"), content=b"{}"))
            for _ in range(POOLS)
        ]
        async with asyncio.timeout(5):
            while len(service.requests) < POOLS:  # noqa: ASYNC110 - the server runs in a thread
                await asyncio.sleep(0.01)
        assert transport.in_flight() == (1,) * POOLS
        service.release()
        async with asyncio.timeout(5):
            responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200] * POOLS
    assert transport.in_flight() == (0,) * POOLS


async def test_a_quiet_client_uses_the_first_pool(service: FakeService) -> None:
    """One request at a time: every request is answered and no slot stays taken."""
    transport = pools()
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            r = await client.post(service.url("/hook"), content=b"{}")
            assert r.status_code == 200 and r.text == "ok"
            assert transport.in_flight() == (0,) * POOLS
    assert len(service.requests) == 3


async def test_a_failed_request_frees_its_slot() -> None:
    """Connection refused: httpx raises as usual and the pool's slot is given back."""
    transport = pools()
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{closed_port()}/hook", content=b"{}")
    assert transport.in_flight() == (0,) * POOLS


async def test_notifier_client_posts_directly_without_a_proxy(
    service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No proxy in the environment: the pooled client reaches the service, with our UA."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    async with notifier_client() as client:
        r = await client.post(service.url("/hook"), content=b"{}", follow_redirects=False)
    assert r.status_code == 200
    [req] = service.requests
    assert req.path == "/hook" and req.headers["user-agent"].startswith("feedwatch/")


async def test_notifier_client_honours_an_environment_proxy(
    service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY set: the request goes to the proxy (absolute URL), as httpx always did."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", service.url(""))
    async with notifier_client() as client:
        r = await client.post("http://hooks.example/feedwatch", content=b"{}")
    assert r.status_code == 200
    [req] = service.requests
    assert req.path == "http://hooks.example/feedwatch"


async def test_notifier_client_has_room_for_its_connections(
    service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connections=6: six requests held by the server are all on the wire at once."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    service.will(*(Slow() for _ in range(6)))
    async with notifier_client(connections=6) as client:
        tasks = [
            asyncio.create_task(client.post(service.url("/hook"), content=b"{}", timeout=10))
            for _ in range(6)
        ]
        async with asyncio.timeout(5):
            while len(service.requests) < 6:  # noqa: ASYNC110 - the server runs in a thread
                await asyncio.sleep(0.01)
        service.release()
        async with asyncio.timeout(5):
            responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200] * 6
