"""Raw bytes to the HTTP endpoint (daemon.ops.http), for requests no client library would send."""

from __future__ import annotations

import asyncio

from daemon.ops.http import HttpServer


async def exchange(srv: HttpServer, raw: bytes) -> bytes:
    """Send ``raw`` on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection(*srv.address)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data
