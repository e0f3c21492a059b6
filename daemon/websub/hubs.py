"""Looking up WebSub hubs before contacting them: the I/O half of ``daemon.websub.policy``.

``HubGate.check`` resolves a hub's host off the event loop (``getaddrinfo`` runs in the
loop's executor; the resolver can be injected) and lets ``hubpolicy.refusal`` judge every
address. Results are kept per host until ``forget`` (the subscriber forgets at each upkeep
pass), so a pass over many feeds of one hub resolves its name once. A name that cannot be
resolved is neither allowed nor refused: ``error`` says why, and the request is retried later.
The subscriber then sends its request to one of the checked ``addresses`` (``hubpolicy.pinned``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from daemon.websub.policy import refusal, url_refusal

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
RESOLVE_TIMEOUT = 10.0


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, from the system resolver, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class HubCheck:
    """``refused``: why the hub must not be contacted; ``error``: why we could not tell;
    neither: contact it at one of ``addresses``."""

    url: str
    addresses: tuple[str, ...] = ()
    refused: str | None = None
    error: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refused is None and self.error is None


class HubGate:
    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolve: Resolver = system_resolve,
        timeout: float = RESOLVE_TIMEOUT,
    ) -> None:
        self.allow_private = allow_private
        self.resolve = resolve
        self.timeout = timeout
        self._hosts: dict[str, tuple[tuple[str, ...], str | None]] = {}

    def forget(self) -> None:
        self._hosts.clear()

    async def check(self, url: str) -> HubCheck:
        bad = url_refusal(url)
        if bad is not None:
            return HubCheck(url, refused=bad)
        u = httpx.URL(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        addresses, error = await self._lookup(u.host, port)
        if error is not None:
            return HubCheck(url, error=error)
        why = refusal(url, addresses, allow_private=self.allow_private)
        return HubCheck(url, addresses, refused=why)

    async def _lookup(self, host: str, port: int) -> tuple[tuple[str, ...], str | None]:
        known = self._hosts.get(host)
        if known is not None:
            return known
        try:
            async with asyncio.timeout(self.timeout):
                found: tuple[tuple[str, ...], str | None] = (
                    tuple(await self.resolve(host, port)),
                    None,
                )
        except TimeoutError:
            found = ((), f"cannot resolve {host}: no answer within {self.timeout:g}s")
        except (OSError, UnicodeError) as e:
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            found = ((), f"cannot resolve {host}: {detail}"[:200])
        self._hosts[host] = found
        return found
