"""The ``/websub/`` route of a process's HTTP server.

``websub_routes``: the subscriber's callback (``WebSubService.handle``, its head screened by
``WebSubService.check`` before the body is read), or, in a role that takes no pushes
(``notifier``) while ``http.public_url`` is set, ``elsewhere``: 503 with ``Retry-After`` to
every request (never 404: to a verification it means "cancel that subscription", and some
hubs drop a subscription after 404s to pushes), with a warning at start naming the mistake.
"""

from __future__ import annotations

import logging

from daemon.logging import log
from daemon.ops.http import Handler, Prefix, Request, Response
from daemon.websub.service import PREFIX, WebSubService, retry_later

logger = logging.getLogger("daemon.websub")


def websub_routes(
    websub: WebSubService | None, public_url: str | None, role: str
) -> dict[str, Handler | Prefix]:
    """The ``/websub/`` route of a process's HTTP server: the subscriber's callback, or, when
    ``public_url`` is set in a role that takes no pushes, ``elsewhere``; none without it."""
    if websub is not None:
        return {PREFIX: Prefix(websub.handle, websub.check)}
    if public_url is None:
        return {}
    return {PREFIX: elsewhere(role)}


def elsewhere(role: str) -> Handler:
    """Answer every WebSub request 503 with ``Retry-After`` (the hub retries, maybe at a
    process that takes pushes), warning now and at the first request (later ones at debug)."""
    log(
        logger,
        "websub",
        level=logging.WARNING,
        role=role,
        status=503,
        note=f"http.public_url is set but role {role} takes no WebSub pushes: route "
        f"{PREFIX} to processes with --role all or poller",
    )
    warned = False

    async def handle(request: Request) -> Response:
        nonlocal warned
        action = "push" if request.method == "POST" else "verify"
        level = logging.DEBUG if warned else logging.WARNING
        log(logger, "websub", level=level, action=action, status=503, role=role)
        warned = True
        return retry_later(f"role {role} takes no WebSub requests\n".encode())

    return handle
