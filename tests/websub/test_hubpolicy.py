"""Which hubs may be contacted (daemon/websub/policy.py): pure, the addresses are given."""

from __future__ import annotations

import pytest

from daemon.websub.policy import address_kind, pinned, refusal

PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(
    ("url", "addresses", "why"),
    [
        ("http://127.0.0.1:8080/hub", ["127.0.0.1"], "127.0.0.1 is a loopback address"),
        ("http://localhost/hub", ["::1", "127.0.0.1"], "localhost resolves to 127.0.0.1, a"),
        ("http://hub.corp/", ["10.1.2.3"], "hub.corp resolves to 10.1.2.3, a private address"),
        ("http://192.168.1.1/", ["192.168.1.1"], "192.168.1.1 is a private address"),
        ("http://172.16.0.9/", ["172.16.0.9"], "172.16.0.9 is a private address"),
        ("http://169.254.169.254/latest/", ["169.254.169.254"], "is a link-local address"),
        ("http://[fe80::1]/", ["fe80::1"], "fe80::1 is a link-local address"),
        ("http://[fc00::5]/", ["fc00::5"], "fc00::5 is a private address"),
        ("http://224.0.0.1/", ["224.0.0.1"], "224.0.0.1 is a multicast address"),
        ("http://0.0.0.0/", ["0.0.0.0"], "0.0.0.0 is an unspecified address"),
        ("http://240.0.0.1/", ["240.0.0.1"], "240.0.0.1 is a reserved address"),
        ("http://100.64.0.1/", ["100.64.0.1"], "100.64.0.1 is not a globally routable address"),
        ("http://[::ffff:127.0.0.1]/", ["::ffff:127.0.0.1"], "a loopback address (IPv4 127."),
        ("http://h.example/", ["2002:7f00:1::"], "2002:7f00:1::, a loopback address (IPv4 127."),
        ("http://nat64.example/", ["64:ff9b::a00:1"], "a private address (IPv4 10.0.0.1)"),
        # One private address among public ones refuses the name (DNS rebinding).
        ("https://mixed.example/", [PUBLIC, "10.0.0.1"], "resolves to 10.0.0.1, a private"),
        ("ftp://hub.example/", [PUBLIC], "ftp scheme (http or https only)"),
        ("file:///etc/passwd", [], "file scheme"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", ["127.0.0.1"], "gopher scheme"),
        ("http:///hub", [PUBLIC], "no host"),
        ("https://void.example/", [], "its host resolves to no address"),
    ],
)
def test_refused(url: str, addresses: list[str], why: str) -> None:
    reason = refusal(url, addresses, allow_private=False)
    assert reason is not None and why in reason, reason


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("https://pubsubhubbub.appspot.com/", ["142.250.74.52"]),
        ("https://hub.example/", [PUBLIC, "2606:4700::1111"]),
        ("http://nat64.example/", ["64:ff9b::5db8:d822"]),  # NAT64 of a public IPv4
        ("http://[2606:4700::1111]:8080/hub", ["2606:4700::1111"]),
    ],
)
def test_allowed(url: str, addresses: list[str]) -> None:
    assert refusal(url, addresses, allow_private=False) is None


def test_allow_private_lifts_the_address_check_only() -> None:
    assert refusal("http://127.0.0.1:9/hub", ["127.0.0.1"], allow_private=True) is None
    assert refusal("http://hub.corp/", ["10.0.0.1", "fe80::1%eth0"], allow_private=True) is None
    assert refusal("ftp://127.0.0.1/", ["127.0.0.1"], allow_private=True) is not None
    assert refusal("http://x.corp/", [], allow_private=True) is not None


def test_address_kind() -> None:
    assert address_kind(PUBLIC) is None
    assert address_kind("::1") == "a loopback address"
    assert address_kind("not an address") == "not an IP address"


def test_pinned_keeps_the_name_in_host_and_sni() -> None:
    p = pinned("https://user:pw@hub.example:8443/sub?x=1", PUBLIC)
    assert p.url == f"https://user:pw@{PUBLIC}:8443/sub?x=1"
    assert p.headers == {"Host": "hub.example:8443"}
    assert p.extensions == {"sni_hostname": "hub.example"}
    v6 = pinned("http://hub.example/", "2606:4700::1111")
    assert v6.url == "http://[2606:4700::1111]/" and v6.headers == {"Host": "hub.example"}
    assert v6.extensions == {}  # http: no TLS
    literal = pinned("http://127.0.0.1:8080/hub", "127.0.0.1")
    assert (literal.url, literal.headers) == ("http://127.0.0.1:8080/hub", {})
