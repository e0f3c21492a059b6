"""The email notifier against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import socket
import ssl
import subprocess
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts import registry
from alerts.email import EmailNotifier
from alerts.escape import header_text
from alerts.mailfmt import build_message
from alerts.mailhtml import html_part
from daemon.errors import NotifyError
from tests.notifiers.conftest import HOSTILE_TITLE, assert_no_secret, make_alert

PASSWORD = "smtp-pass-7e1d9f"
NOW = datetime(2024, 8, 13, 10, 0, tzinfo=UTC)


@dataclass
class Handler:
    """Stores envelopes; can be told to refuse recipients or data with a given reply."""

    envelopes: list[Any] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def message(self, i: int = 0) -> EmailMessage:
        raw = self.envelopes[i].content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


def body(msg: EmailMessage, subtype: str) -> str:
    """The decoded text of the message's text/<subtype> part."""
    part = msg.get_body((subtype,))
    assert part is not None
    return str(part.get_content())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    """A server-side TLS context with the test certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Handler]]:
    """A plain SMTP server (no TLS, no AUTH)."""
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def smtp_starttls(cert: tuple[Path, Path]) -> Iterator[tuple[Controller, Handler]]:
    """An SMTP server that requires STARTTLS and AUTH."""
    handler = Handler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context(cert),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    yield controller, handler
    controller.stop()


def notifier(controller: Controller, **options: Any) -> EmailNotifier:
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", controller.port)
    options.setdefault("security", "none")
    options.setdefault("from_addr", "Feedwatch <feedwatch@alerts.example.org>")
    options.setdefault("to", ["analyst@example.org", "Desk <desk@example.org>"])
    options.setdefault("timeout", 5)
    opts = EmailNotifier.Options.model_validate(options)
    return EmailNotifier("desk-mail", opts, http=httpx.AsyncClient(), now=lambda: NOW)


def test_registered_as_entry_point() -> None:
    """The built-in is discovered through the feedwatch.notifiers entry point."""
    assert registry.load("email") is EmailNotifier


async def test_delivers_multipart_alternative(smtp: tuple[Controller, Handler]) -> None:
    """The mail arrives with From/To/Subject/Date/Message-ID and a text and an HTML part."""
    controller, handler = smtp
    await notifier(controller).send(make_alert())
    [env] = handler.envelopes
    assert env.mail_from == "feedwatch@alerts.example.org"
    assert env.rcpt_tos == ["analyst@example.org", "desk@example.org"]
    msg = handler.message()
    assert msg["From"] == "Feedwatch <feedwatch@alerts.example.org>"
    assert msg["To"] == "analyst@example.org, Desk <desk@example.org>"
    # A value that fits on one continuation line is folded as "Subject:\r\n <value>"; the
    # stdlib parser keeps that fold's space, mail clients strip it.
    assert msg["Subject"].strip() == (
        "[feedwatch] [HIGH] Kursk offensive: Ukraine says its forces advanced in Kursk"
    )
    assert msg["Date"] == "Tue, 13 Aug 2024 10:00:00 +0000"
    assert msg["Message-ID"].startswith("<feedwatch.")
    assert msg["Message-ID"].endswith("@alerts.example.org>")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    plain, markup = text.get_content(), html.get_content()
    assert "Ukraine says its forces advanced in Kursk" in plain
    assert "https://news.example.org/kursk?a=1&b=2" in plain
    assert "Matched: kursk, ukrain*" in plain
    assert '<a href="https://news.example.org/kursk?a=1&amp;b=2" style=' in markup
    assert re.search(r"<mark [^>]*>Ukrainian</mark> troops", markup)
    assert re.search(r"<mark [^>]*>Kursk</mark> region", markup)
    assert "<style" not in markup and "<link" not in markup and "<img" not in markup


async def test_send_digest_sends_one_mail_listing_every_alert(
    smtp: tuple[Controller, Handler],
) -> None:
    """send_digest: one SMTP message for all the alerts, built like build_message builds it."""
    controller, handler = smtp
    alerts = [
        make_alert(id="d-1", title="Ukraine says its forces advanced in Kursk"),
        make_alert(id="d-2", severity="critical", title="Sudzha crossing closed"),
        make_alert(id="d-3", severity="low", title="Kursk governor speaks"),
    ]
    await notifier(controller).send_digest(alerts)
    [env] = handler.envelopes
    assert env.rcpt_tos == ["analyst@example.org", "desk@example.org"]
    msg = handler.message()
    assert msg["Subject"].strip() == "[feedwatch] 3 alerts, highest [CRITICAL]"
    assert msg["Date"] == "Tue, 13 Aug 2024 10:00:00 +0000"  # the injected clock
    expected = build_message(
        alerts,
        from_addr="Feedwatch <feedwatch@alerts.example.org>",
        to=["analyst@example.org", "Desk <desk@example.org>"],
        now=NOW,
    )
    assert msg["Message-ID"] == expected["Message-ID"]
    assert msg["X-Feedwatch-Alert-Id"] is None  # only a single-alert mail names its alert
    plain = body(msg, "plain")
    assert [plain.count(a.item.title) for a in alerts] == [1, 1, 1]


async def test_send_digest_maps_smtp_errors_like_send(smtp: tuple[Controller, Handler]) -> None:
    """A digest refused with a 5xx reply raises the same permanent NotifyError as send."""
    controller, handler = smtp
    handler.data_reply = "554 5.6.0 Message rejected"
    with pytest.raises(NotifyError) as info:
        await notifier(controller).send_digest([make_alert(id="d-1"), make_alert(id="d-2")])
    assert (info.value.recoverable, info.value.reason) == (False, "client")
    assert "554" in info.value.message
    assert handler.envelopes == []


async def test_hostile_title_cannot_inject_headers_or_html(
    smtp: tuple[Controller, Handler],
) -> None:
    """CR/LF, encoded-word Bcc (CVE-2024-6923) and <script> in feed text stay inert."""
    controller, handler = smtp
    alert = make_alert(
        title=HOSTILE_TITLE + " padding" * 12,  # long enough that the Subject gets folded
        link="javascript:alert(1)",
        excerpt="<script>alert(2)</script> & <b>bold</b>",
        feed='"><img src=x onerror=alert(3)>',
    )
    await notifier(controller).send(alert)
    [env] = handler.envelopes
    assert env.rcpt_tos == ["analyst@example.org", "desk@example.org"]
    msg = handler.message()
    assert msg["Bcc"] is None and msg.get_all("Bcc") is None
    assert not any(k.lower() == "bcc" for k in msg.keys())
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    head = env.content.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"\nBcc:" not in head
    markup = body(msg, "html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "&lt;script&gt;alert(2)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in markup
    assert "&quot;&gt;&lt;img src=x onerror=alert(3)&gt;" in markup
    assert "<script" not in markup and "<img" not in markup and "javascript:" not in markup
    assert "javascript:" not in body(msg, "plain")


def test_this_python_needs_the_encoded_word_defusing() -> None:
    """Without header_text, the stdlib turns an encoded-word into a Bcc header (if unpatched)."""
    raw = EmailMessage(policy=email.policy.SMTP)
    raw["Subject"] = "x =?UTF-8?Q?=0A?=Bcc: evil@x " + "long " * 20
    raw.set_content("hi")
    if b"\nBcc: evil@x" not in raw.as_bytes():
        pytest.skip("this Python has the CVE-2024-6923 fix")
    safe = EmailMessage(policy=email.policy.SMTP)
    safe["Subject"] = header_text("x =?UTF-8?Q?=0A?=Bcc: evil@x " + "long " * 20)
    safe.set_content("hi")
    assert b"\nBcc" not in safe.as_bytes()
    assert safe["Subject"].startswith("x = ?UTF-8?Q?=0A?=Bcc: evil@x long")


def test_build_message_is_pure_and_reusable() -> None:
    """Same alert, same Message-ID; other alerts differ; a list gives one combined message."""
    a, b = make_alert(id="a"), make_alert(id="b", severity="critical", title="Other story")
    kw: dict[str, Any] = {"from_addr": "fw@x.example", "to": ["t@x.example"], "now": NOW}
    assert build_message([a], **kw)["Message-ID"] == build_message([a], **kw)["Message-ID"]
    assert build_message([a], **kw)["Message-ID"] != build_message([b], **kw)["Message-ID"]
    both = build_message([a, b], **kw)
    assert both["Subject"] == "[feedwatch] 2 alerts, highest [CRITICAL]"
    plain = body(both, "plain")
    assert "Ukraine says" in plain and "Other story" in plain
    assert build_message([a], **{**kw, "from_addr": "fw"})["Message-ID"].endswith(
        "@feedwatch.invalid>"
    )
    with pytest.raises(ValueError):
        build_message([], **kw)


def test_subject_is_truncated_and_single_line() -> None:
    """A huge title gives a Subject of at most 200 characters ending with "…"."""
    msg = build_message(
        [make_alert(title="Kursk\t\x1b[31m" * 200)], from_addr="a@b.example", to=["c@d.example"]
    )
    subject = str(msg["Subject"])
    assert len(subject) <= 200 and subject.endswith("…") and "\x1b" not in subject


@pytest.mark.parametrize(
    ("rcpt", "data", "recoverable", "reason", "code"),
    [
        ("550 5.1.1 Mailbox unavailable", None, False, "client", "550"),
        ("450 4.2.1 Mailbox busy", None, True, "server", "450"),
        (None, "554 5.6.0 Message rejected", False, "client", "554"),
        (None, "451 4.3.0 Try again later", True, "server", "451"),
    ],
)
async def test_smtp_replies_map_to_errors(
    smtp: tuple[Controller, Handler],
    rcpt: str | None,
    data: str | None,
    recoverable: bool,
    reason: str,
    code: str,
) -> None:
    """4xx replies are recoverable, 5xx replies are permanent."""
    controller, handler = smtp
    handler.rcpt_reply, handler.data_reply = rcpt, data
    with pytest.raises(NotifyError) as info:
        await notifier(controller).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (recoverable, reason)
    assert code in info.value.message
    assert handler.envelopes == []


async def test_connection_refused_is_recoverable() -> None:
    """Nothing listening on the port gives a recoverable transport error."""
    port = free_port()
    opts = EmailNotifier.Options(
        host="127.0.0.1", port=port, security="none", from_addr="a@b.example", to=["c@d.example"]
    )
    with pytest.raises(NotifyError) as info:
        await EmailNotifier("m", opts, http=httpx.AsyncClient()).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (True, "transport")


async def test_silent_server_times_out_recoverably() -> None:
    """A server that accepts the connection but never greets gives a recoverable timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        opts = EmailNotifier.Options(
            host="127.0.0.1",
            port=listener.getsockname()[1],
            security="none",
            from_addr="a@b.example",
            to=["c@d.example"],
            timeout=0.3,
        )
        with pytest.raises(NotifyError) as info:
            await EmailNotifier("m", opts, http=httpx.AsyncClient()).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (True, "timeout")


async def test_starttls_and_auth(
    smtp_starttls: tuple[Controller, Handler],
    cert: tuple[Path, Path],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """STARTTLS with a trusted CA and the right password delivers; the password never logs."""
    controller, handler = smtp_starttls
    n = notifier(
        controller,
        security="starttls",
        ca_file=str(cert[0]),
        username="feedwatch",
        password=PASSWORD,
    )
    await n.send(make_alert())
    assert len(handler.envelopes) == 1
    assert_no_secret(PASSWORD, repr(n.opts), str(n.opts), debug_logs.text)


async def test_wrong_password_is_permanent_auth_error(
    smtp_starttls: tuple[Controller, Handler],
    cert: tuple[Path, Path],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """535 authentication failed is permanent with reason auth, and names no password."""
    controller, handler = smtp_starttls
    wrong = "wrong-pass-31c4a8"
    n = notifier(
        controller, security="starttls", ca_file=str(cert[0]), username="feedwatch", password=wrong
    )
    with pytest.raises(NotifyError) as info:
        await n.send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (False, "auth")
    assert "535" in info.value.message
    rendered = "".join(traceback.format_exception(info.value))
    assert_no_secret(wrong, str(info.value), rendered, debug_logs.text)
    assert handler.envelopes == []


async def test_untrusted_certificate_is_a_config_error(
    smtp_starttls: tuple[Controller, Handler],
) -> None:
    """A self-signed certificate we were not told to trust is refused (permanent, config)."""
    controller, _ = smtp_starttls
    n = notifier(controller, security="starttls", username="feedwatch", password=PASSWORD)
    with pytest.raises(NotifyError) as info:
        await n.send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (False, "config")


async def test_starttls_required_but_not_offered(smtp: tuple[Controller, Handler]) -> None:
    """security: starttls against a server without STARTTLS never sends in clear text."""
    controller, handler = smtp
    with pytest.raises(NotifyError) as info:
        await notifier(controller, security="starttls").send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (False, "config")
    assert handler.envelopes == []


async def test_implicit_tls(cert: tuple[Path, Path]) -> None:
    """security: tls speaks TLS from the first byte (port 465 style)."""
    handler = Handler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), ssl_context=server_context(cert)
    )
    controller.start()
    try:
        await notifier(controller, security="tls", ca_file=str(cert[0])).send(make_alert())
    finally:
        controller.stop()
    assert len(handler.envelopes) == 1


def test_options_validation() -> None:
    """Credentials need TLS and each other; addresses are checked; the password is masked."""
    base: dict[str, Any] = {"host": "mail", "from_addr": "a@b.example", "to": ["c@d.example"]}
    opts = EmailNotifier.Options.model_validate({**base, "username": "u", "password": PASSWORD})
    assert opts.effective_port == 587 and opts.security == "starttls"
    assert EmailNotifier.Options.model_validate({**base, "security": "tls"}).effective_port == 465
    assert_no_secret(PASSWORD, repr(opts), str(opts))
    bad: list[dict[str, Any]] = [
        {**base, "username": "u"},
        {**base, "password": PASSWORD},
        {**base, "username": "u", "password": PASSWORD, "security": "none"},
        {**base, "to": []},
        {**base, "to": ["not-an-address"]},
        {**base, "from_addr": "a@b.example\r\nBcc: x@evil"},
        {**base, "smtp_host": "x"},
    ]
    for options in bad:
        with pytest.raises(pydantic.ValidationError) as info:
            EmailNotifier.Options.model_validate(options)
        assert_no_secret(PASSWORD, str(info.value))


def test_the_html_template_is_inline_only_and_groups_a_digest_by_story() -> None:
    """Mail clients drop <style> and block remote content: every style is inline, nothing is
    loaded; a digest is one card per story with its follow-ups inside, severities labelled."""
    first = replace(make_alert(id="a", severity="critical"), extra={"story_id": "s"})
    follow = replace(
        make_alert(id="b", kind="update", feed="wire", title="Second outlet"),
        extra={"story_id": "s", "sources": ["x", "wire"], "source_count": 2},
    )
    other = replace(make_alert(id="c", title="Another story"), extra={"story_id": "t"})
    markup = html_part([first, follow, other])
    for forbidden in ("<style", "<link", "<img", "<script", "url(", "@import", "<b>"):
        assert forbidden not in markup
    assert "feedwatch digest: 3 alerts" in markup
    assert markup.count("border-radius:8px") == 2  # two story cards
    assert markup.index("Second outlet") < markup.index("Another story")
    assert "↪ Also reported by <strong>wire</strong> — 2 sources" in markup
    assert "background:#7f1d1d" in markup and ">CRITICAL</span>" in markup
