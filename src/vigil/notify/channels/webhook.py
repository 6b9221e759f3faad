"""Webhook channel: POST the event envelope as JSON, signed (:mod:`vigil.notify.signing`).

Config (returned by the API): ``url``. Secrets (write-only): ``signing_secret`` (generated at
creation unless supplied; shown once; rotate with ``POST .../rotate-secret``) and ``headers``
(extra request headers such as an ``Authorization`` the receiver wants).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from vigil import __version__
from vigil.notify import signing
from vigil.notify.channels import http
from vigil.notify.channels.base import OutgoingMessage, SendResult, rejected
from vigil.notify.channels.netguard import AddressPolicy
from vigil.notify.models import ChannelType

USER_AGENT = f"Vigil-Webhook/{__version__}"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
#: Headers a channel may not set: Vigil owns them (or the HTTP stack does).
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"}
)


def check_http_url(value: str) -> str:
    value = value.strip()
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise ValueError("URL scheme must be http or https")
    if not url.host:
        raise ValueError("URL has no host")
    if url.fragment:
        raise ValueError("URL must not have a #fragment")
    return value


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="Receiver URL (http or https).")

    _url = field_validator("url")(check_http_url)


def _printable_secret(value: str) -> str:
    if not value.isprintable() or value != value.strip():
        raise ValueError("signing secret must be printable text without surrounding spaces")
    return value


SigningSecret = Annotated[
    str,
    StringConstraints(min_length=signing.MIN_SECRET_LENGTH, max_length=200),
    AfterValidator(_printable_secret),
]


class WebhookSecretsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signing_secret: SigningSecret | None = Field(
        default=None, description="HMAC key; generated when omitted at creation."
    )
    headers: dict[str, str] | None = Field(
        default=None, max_length=20, description="Extra request headers (values are secret)."
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        for name, val in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith("x-vigil-"):
                raise ValueError(f"header {name} is set by Vigil")
            if "\r" in val or "\n" in val or len(val) > 4096:
                raise ValueError(f"invalid value for header {name}")
        return value


def signing_secrets(secrets: Mapping[str, Any], *, now: float) -> list[str]:
    """The secrets to sign with: the current one, plus the previous one during its grace."""
    out: list[str] = []
    current = secrets.get("signing_secret")
    if isinstance(current, str):
        out.append(current)
    previous = secrets.get("previous_signing_secret")
    until = secrets.get("previous_valid_until")
    if isinstance(previous, str) and isinstance(until, int | float) and until > now:
        out.append(previous)
    return out


class WebhookNotifier:
    channel_type = ChannelType.WEBHOOK

    def __init__(
        self,
        client: httpx.Client,
        policy: AddressPolicy,
        *,
        max_redirects: int = 3,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.policy = policy
        self.max_redirects = max_redirects
        # Signature timestamps are real time: receivers compare them with their own clocks.
        self.wall_clock = wall_clock

    def send(self, message: OutgoingMessage) -> SendResult:
        url = message.config.get("url")
        if not isinstance(url, str):
            return rejected("webhook channel has no url")
        now = self.wall_clock()
        keys = signing_secrets(message.secrets, now=now)
        if not keys:
            return rejected("webhook channel has no signing secret")
        headers = dict(message.secrets.get("headers") or {})
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                signing.EVENT_ID_HEADER: str(message.event.event_id),
                signing.EVENT_TYPE_HEADER: message.event.event_type,
                signing.DELIVERY_ID_HEADER: message.delivery_id,
                signing.ATTEMPT_HEADER: str(message.attempt),
                signing.SIGNATURE_HEADER: signing.sign(keys, message.body, timestamp=int(now)),
            }
        )
        return http.post(
            self.client,
            self.policy,
            url,
            content=message.body,
            headers=headers,
            max_redirects=self.max_redirects,
        )
