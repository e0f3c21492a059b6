"""The ``webhook`` notifier: POST the alert's wire JSON (``Alert.to_json``) to a URL.

Request::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <alert.id>             same alert, same key: receivers can deduplicate
    User-Agent: feedwatch/<version>
    X-Feedwatch-Signature: sha256=<hex>     HMAC-SHA256 of the exact body bytes (if secret set)
    <configured headers>

2xx is success; 429 (with Retry-After, seconds or HTTP-date), 5xx, timeouts and transport
errors are recoverable; other 4xx and redirects are permanent (see ``alerts.httperrors``).
The URL, the HMAC secret and configured header values are secrets: never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

import httpx
from pydantic import ConfigDict, Field, SecretStr, field_validator

from alerts.base import Notifier, NotifierOptions
from alerts.escape import safe_link
from alerts.httperrors import post, protect
from alerts.wire import Alert
from daemon import __version__

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Feedwatch-Signature"
USER_AGENT = f"feedwatch/{__version__}"
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "idempotency-key",
        "user-agent",
        SIGNATURE_HEADER.lower(),
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class WebhookOptions(NotifierOptions):
    model_config = ConfigDict(hide_input_in_errors=True)

    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    secret: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if safe_link(value.get_secret_value()) is None:
            raise ValueError("must be an absolute http(s) URL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, v in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by feedwatch and cannot be configured")
            if _BAD_VALUE.search(v.get_secret_value()):
                raise ValueError(f"header {name!r} has a control character in its value")
        return value


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` is :func:`sign` of ``body`` (constant-time; for receivers)."""
    return hmac.compare_digest(sign(secret, body), signature)


def idempotency_key(alert_id: str) -> str:
    """The alert id, or a hash of it if it is not a visible-ASCII header value."""
    if alert_id and alert_id.isascii() and alert_id.isprintable() and " " not in alert_id:
        return alert_id
    return "sha256-" + hashlib.sha256(alert_id.encode()).hexdigest()


class WebhookNotifier(Notifier):
    Options = WebhookOptions

    def __init__(self, name: str, options: NotifierOptions, *, http: httpx.AsyncClient) -> None:
        super().__init__(name, options, http=http)
        assert isinstance(options, WebhookOptions)
        self.opts = options
        protect(options.url.get_secret_value())
        if options.secret is not None:
            protect(options.secret.get_secret_value())
        for value in options.headers.values():
            protect(value.get_secret_value())

    def request(self, alert: Alert) -> tuple[bytes, dict[str, str]]:
        """The exact body bytes and headers one delivery of ``alert`` sends."""
        body = alert.to_json().encode()
        headers = {name: v.get_secret_value() for name, v in self.opts.headers.items()}
        headers.update(
            {
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key(alert.id),
                "User-Agent": USER_AGENT,
            }
        )
        if self.opts.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.opts.secret.get_secret_value(), body)
        return body, headers

    async def send(self, alert: Alert) -> None:
        body, headers = self.request(alert)
        secrets = [v.get_secret_value() for v in self.opts.headers.values()]
        if self.opts.secret is not None:
            secrets.append(self.opts.secret.get_secret_value())
        await post(
            self.http,
            "Webhook",
            self.opts.url.get_secret_value(),
            content=body,
            headers=headers,
            request_timeout=self.opts.timeout,
            secrets=secrets,
        )
        log.debug("webhook %s: delivered alert %s", self.name, alert.id)
