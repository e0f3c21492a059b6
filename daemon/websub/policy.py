"""Which WebSub hubs feedwatch may contact. Pure: no I/O; the caller resolves the host.

Hub URLs come from feed documents, so a hostile feed could make feedwatch POST subscription
requests into the network it runs in (SSRF). ``refusal`` says why a hub URL, whose host
resolved to ``addresses``, must not be contacted (None: it may):

* the scheme is not http or https, or there is no host;
* a resolved address is loopback, private, link-local, multicast, unspecified, reserved or
  otherwise not globally routable — unless ``allow_private`` (``websub.allow_private_hubs``).
  One bad address refuses the host: a name that resolves to both a public and a private
  address is a rebinding trick more often than a real hub. IPv6 forms that carry an IPv4
  address (``::ffff:a.b.c.d``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) are judged by it.

``pinned`` rewrites a request to go to the very address that was checked (the name stays in
the ``Host`` header and the TLS server name), so the name cannot resolve elsewhere between
the check and the connection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def url_refusal(url: str) -> str | None:
    """Why ``url`` cannot be a hub whatever its host resolves to (scheme, no host), or None."""
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "not a valid URL"
    if u.scheme not in ("http", "https"):
        return f"{u.scheme or 'no'} scheme (http or https only)"
    if not u.host:
        return "no host"
    return None


def address_kind(address: str) -> str | None:
    """What makes ``address`` unfit for a hub (``a loopback address``, ``a private address``…),
    or None if it is a globally routable unicast address."""
    try:
        ip: IPAddress = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            kind = address_kind(str(embedded))
            return f"{kind} (IPv4 {embedded})" if kind else None
    for kind, hit in (
        ("an unspecified address", ip.is_unspecified),
        ("a loopback address", ip.is_loopback),
        ("a link-local address", ip.is_link_local),
        ("a multicast address", ip.is_multicast),
        ("a reserved address", ip.is_reserved),
        ("a private address", ip.is_private),
        ("not a globally routable address", not ip.is_global),
    ):
        if hit:
            return kind
    return None


def refusal(url: str, addresses: Sequence[str], *, allow_private: bool) -> str | None:
    """Why the hub at ``url`` must not be contacted, its host having resolved to
    ``addresses`` (all of them), or None if it may."""
    bad_url = url_refusal(url)
    if bad_url is not None:
        return bad_url
    if not addresses:
        return "its host resolves to no address"
    if allow_private:
        return None
    host = httpx.URL(url).host
    for address in sorted(addresses):  # the same reason whatever order the resolver gives
        kind = address_kind(address)
        if kind is not None:
            if _same_address(host, address):
                return f"{address} is {kind}"
            return f"{host} resolves to {address}, {kind}"
    return None


def _same_address(host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request to ``url`` (its host replaced by the checked address) with these headers
    and httpx extensions."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


def pinned(url: str, address: str) -> Pinned:
    """``url`` sent to ``address``: ``Host`` keeps the name (and port), https keeps the name
    for SNI and certificate checks. An address literal host is sent as it is."""
    u = httpx.URL(url)
    if _same_address(u.host, address) or "%" in address:  # a scoped address: no URL form
        return Pinned(str(u), {}, {})
    headers = {"Host": u.netloc.decode("ascii").rpartition("@")[2]}
    extensions = {"sni_hostname": u.host} if u.scheme == "https" else {}
    return Pinned(str(u.copy_with(host=address)), headers, extensions)
