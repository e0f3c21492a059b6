"""The ``email`` notifier: one ``multipart/alternative`` mail per alert, sent with aiosmtplib.

The message itself is built by the pure :func:`alerts.mailfmt.build_message`. ``send_digest``
sends one mail listing several alerts (``digest:``, see ``alerts.digest``). One SMTP session
per ``send`` or ``send_digest`` (one attempt; retries are the dispatcher's job). Error mapping::

    4xx reply, connection refused/lost, timeout     recoverable (server / transport / timeout)
    5xx reply (550 mailbox unavailable…)            permanent, reason client
    authentication refused (535…)                   permanent, reason auth (454: recoverable)
    STARTTLS/AUTH not offered, TLS certificate bad  permanent, reason config

The SMTP password never appears in a message or log line; the options' repr masks it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Literal

import aiosmtplib
import httpx
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from alerts.base import Notifier, NotifierOptions
from alerts.escape import one_line, truncate
from alerts.mailfmt import build_message
from alerts.wire import Alert
from daemon.errors import NotifyError

log = logging.getLogger(__name__)


def _check_address(value: str) -> str:
    if value != one_line(value) or "@" not in parseaddr(value)[1]:
        raise ValueError(f"not an email address: {value!r}")
    return value


class EmailOptions(NotifierOptions):
    model_config = ConfigDict(hide_input_in_errors=True)

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str
    to: list[str] = Field(min_length=1)
    subject_prefix: str = "[feedwatch]"
    timeout: float = Field(default=30.0, gt=0)
    ca_file: str | None = None

    @field_validator("from_addr")
    @classmethod
    def _from(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        return [_check_address(v) for v in value]

    @model_validator(mode="after")
    def _credentials(self) -> EmailOptions:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.password is not None and self.security == "none":
            raise ValueError("refusing to send SMTP credentials unencrypted (security: none)")
        return self

    @property
    def effective_port(self) -> int:
        """``port``, else 465 for implicit TLS and 587 otherwise."""
        if self.port is not None:
            return self.port
        return 465 if self.security == "tls" else 587


def _reply(e: aiosmtplib.SMTPResponseException) -> str:
    return truncate(one_line(f"{e.code} {e.message}"), 200)


def error_for_smtp(exc: BaseException, host: str) -> NotifyError:
    """The ``NotifyError`` for an exception raised while talking to ``host``."""
    where = f"SMTP server {host}"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        temporary = 400 <= exc.code < 500
        return NotifyError(
            f"{where} refused authentication: {_reply(exc)}", recoverable=temporary, reason="auth"
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(_reply(r) for r in exc.recipients[:3])
        temporary = bool(codes) and all(400 <= c < 500 for c in codes)
        return NotifyError(
            f"{where} refused every recipient: {detail}",
            recoverable=temporary,
            reason="server" if temporary else "client",
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if 500 <= exc.code < 600:
            return NotifyError(
                f"{where} answered {_reply(exc)}", recoverable=False, reason="client"
            )
        return NotifyError(f"{where} answered {_reply(exc)}", recoverable=True, reason="server")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return NotifyError(f"{where} timed out", recoverable=True, reason="timeout")
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        exc.__cause__, ssl.SSLCertVerificationError
    ):
        return NotifyError(
            f"{where}: TLS certificate not trusted", recoverable=False, reason="config"
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        # aiosmtplib raises a bare SMTPException when STARTTLS/AUTH is not offered
        type(exc) is aiosmtplib.SMTPException and "extension not supported" in str(exc)
    ):
        return NotifyError(
            f"{where}: {truncate(one_line(str(exc)), 200)}", recoverable=False, reason="config"
        )
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return NotifyError(
            f"{where} connection failed: {truncate(one_line(str(exc)), 200)}",
            recoverable=True,
            reason="transport",
        )
    if isinstance(exc, ValueError):
        return NotifyError(
            f"{where}: bad SMTP settings: {truncate(one_line(str(exc)), 200)}",
            recoverable=False,
            reason="config",
        )
    return NotifyError(f"{where}: {type(exc).__name__}", recoverable=True, reason="transport")


class EmailNotifier(Notifier):
    Options = EmailOptions

    def __init__(
        self,
        name: str,
        options: NotifierOptions,
        *,
        http: httpx.AsyncClient,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(name, options, http=http)
        assert isinstance(options, EmailOptions)
        self.opts = options
        self._now = now

    def message(self, alert: Alert) -> EmailMessage:
        """The mail of one alert."""
        return self.digest_message([alert])

    def digest_message(self, alerts: Sequence[Alert]) -> EmailMessage:
        """One mail listing ``alerts`` (at least one); its Date comes from the injected clock."""
        return build_message(
            alerts,
            from_addr=self.opts.from_addr,
            to=self.opts.to,
            subject_prefix=self.opts.subject_prefix,
            now=self._now(),
        )

    async def send(self, alert: Alert) -> None:
        await self.send_message(self.message(alert))
        log.debug("email %s: delivered alert %s", self.name, alert.id)

    async def send_digest(self, alerts: Sequence[Alert]) -> None:
        """Deliver ``alerts`` as one mail, or raise NotifyError (the digest capability)."""
        await self.send_message(self.digest_message(alerts))
        log.debug("email %s: delivered a digest of %d alert(s)", self.name, len(alerts))

    async def send_message(self, msg: EmailMessage) -> None:
        """Deliver a built message in one SMTP session, or raise NotifyError."""
        o = self.opts
        try:
            async with asyncio.timeout(o.timeout):
                refused, _ = await aiosmtplib.send(
                    msg,
                    sender=parseaddr(o.from_addr)[1],
                    recipients=[parseaddr(t)[1] for t in o.to],
                    hostname=o.host,
                    port=o.effective_port,
                    username=o.username,
                    password=o.password.get_secret_value() if o.password else None,
                    use_tls=o.security == "tls",
                    start_tls=o.security == "starttls",
                    cert_bundle=o.ca_file,
                    timeout=o.timeout,
                )
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as e:
            raise error_for_smtp(e, o.host) from e
        if refused:
            # Some recipients got it: retrying would duplicate it for them. Report, succeed.
            log.warning(
                "email %s: %d recipient(s) refused: %s",
                self.name,
                len(refused),
                "; ".join(f"{addr}: {r.code}" for addr, r in sorted(refused.items())),
            )
