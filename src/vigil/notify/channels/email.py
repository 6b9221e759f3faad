"""Email channel: SMTP with a plain-text and an HTML part summarising the event.

Config (returned by the API): ``to``, ``cc``, ``subject_prefix`` and, to use a server other than
the one in settings (``VIGIL_NOTIFY__SMTP_*``), ``host``, ``port``, ``security`` (none, starttls,
ssl), ``username``, ``from_address``, ``verify_tls``. Secret (write-only): ``password``.

Runs in a sender thread with blocking :mod:`smtplib`. A channel's own SMTP host is subject to the
network policy (:mod:`.netguard`); the host from settings is the operator's and is trusted.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vigil.notify.channels.base import OutgoingMessage, SendResult, clip, failed, rejected
from vigil.notify.channels.netguard import AddressPolicy, BlockedDestinationError
from vigil.notify.channels.render import html_body, plain_text, subject, summarise
from vigil.notify.config import NotifySettings, SmtpSecurity
from vigil.notify.models import AttemptOutcome, ChannelType

# Deliberately simple: ASCII local@domain, no display names, no SMTPUTF8.
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
DEFAULT_PORTS = {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.SSL: 465}


def check_address(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not _ADDRESS.match(value):
        raise ValueError(f"{value!r} is not an email address (ASCII local@domain)")
    return value


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(min_length=1, max_length=50)
    cc: list[str] = Field(default_factory=list, max_length=50)
    subject_prefix: str = Field(default="[Vigil]", max_length=50)
    host: str | None = Field(default=None, max_length=255, description="Default: settings.")
    port: int | None = Field(default=None, ge=1, le=65535)
    security: SmtpSecurity | None = None
    username: str | None = Field(default=None, max_length=255)
    from_address: str | None = Field(default=None, max_length=254)
    verify_tls: bool = True

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [check_address(v) for v in value]

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9.:\[\]-]+$", value):
            raise ValueError("invalid host name")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("subject prefix must be one line")
        return value


class EmailSecretsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, max_length=1000)


class _Guarded:
    """Connect only to an address the policy allows; TLS still verifies the host *name*."""

    policy: AddressPolicy | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        if self.policy is not None:
            host = self.policy.resolve(host, port)[0]
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        return sock


class GuardedSMTP(_Guarded, smtplib.SMTP):
    def __init__(self, host: str, port: int, *, policy: AddressPolicy | None, timeout: float):
        self.policy = policy  # before connecting: the base constructor connects
        super().__init__(host, port, timeout=timeout)


class GuardedSMTPSSL(_Guarded, smtplib.SMTP_SSL):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        policy: AddressPolicy | None,
        timeout: float,
        context: ssl.SSLContext,
    ):
        self.policy = policy
        super().__init__(host, port, timeout=timeout, context=context)


def build_message(message: OutgoingMessage, config: EmailConfig, from_address: str) -> EmailMessage:
    summary = summarise(message.event)
    msg = EmailMessage()
    msg["Subject"] = subject(summary, config.subject_prefix)
    msg["From"] = from_address
    msg["To"] = ", ".join(config.to)
    if config.cc:
        msg["Cc"] = ", ".join(config.cc)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=message.delivery_id, domain="vigil.local")
    msg["X-Vigil-Event-Id"] = str(message.event.event_id)
    msg["X-Vigil-Event-Type"] = message.event.event_type
    msg["X-Vigil-Severity"] = message.event.severity.value
    # RFC 3834: no vacation auto-replies to a machine sender.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(plain_text(summary))
    msg.add_alternative(html_body(summary), subtype="html")
    return msg


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return clip(f"{code} {raw}") or str(code)


def _classify(code: int, text: bytes | str, what: str) -> SendResult:
    reply = _reply(code, text)
    if 400 <= code < 500:
        return failed(f"SMTP {what} refused: {reply}", status_code=code, reply=reply)
    return rejected(f"SMTP {what} refused: {reply}", status_code=code, reply=reply)


class EmailNotifier:
    channel_type = ChannelType.EMAIL

    def __init__(self, settings: NotifySettings, policy: AddressPolicy) -> None:
        self.settings = settings
        self.policy = policy

    def _server(self, cfg: EmailConfig, secrets: dict[str, Any]) -> dict[str, Any] | None:
        s = self.settings
        if cfg.host:
            security = cfg.security or SmtpSecurity.STARTTLS
            return {
                "host": cfg.host,
                "port": cfg.port or DEFAULT_PORTS[security],
                "security": security,
                "username": cfg.username,
                "password": secrets.get("password"),
                "from": cfg.from_address or s.smtp_from,
                "policy": self.policy,
            }
        if not s.smtp_host:
            return None
        security = cfg.security or s.smtp_security
        return {
            "host": s.smtp_host,
            "port": cfg.port or s.smtp_port,
            "security": security,
            "username": cfg.username or s.smtp_username,
            "password": secrets.get("password") or s.smtp_password,
            "from": cfg.from_address or s.smtp_from,
            "policy": None,  # the operator's own relay
        }

    def send(self, message: OutgoingMessage) -> SendResult:
        try:
            cfg = EmailConfig.model_validate(dict(message.config))
        except ValueError as exc:
            return rejected(f"invalid email channel config: {exc}")
        server = self._server(cfg, dict(message.secrets))
        if server is None:
            return rejected("no SMTP server: set the channel's host or VIGIL_NOTIFY__SMTP_HOST")
        if not server["from"]:
            return rejected("no From address: set from_address or VIGIL_NOTIFY__SMTP_FROM")
        email = build_message(message, cfg, server["from"])
        try:
            return self._deliver(server, cfg, email)
        except BlockedDestinationError as exc:
            return rejected(str(exc))
        except smtplib.SMTPAuthenticationError as exc:
            return _classify(exc.smtp_code, exc.smtp_error, "authentication")
        except smtplib.SMTPNotSupportedError as exc:
            return rejected(f"SMTP server does not support a needed extension: {exc}")
        except smtplib.SMTPResponseException as exc:
            return _classify(exc.smtp_code, exc.smtp_error, "command")
        except (smtplib.SMTPException, OSError) as exc:
            return failed(f"SMTP {type(exc).__name__}: {exc}")

    def _deliver(self, server: dict[str, Any], cfg: EmailConfig, email: EmailMessage) -> SendResult:
        timeout = self.settings.smtp_timeout_s
        context = ssl.create_default_context()
        if not cfg.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        security: SmtpSecurity = server["security"]
        host, port, policy = server["host"], server["port"], server["policy"]
        smtp: smtplib.SMTP
        if security is SmtpSecurity.SSL:
            smtp = GuardedSMTPSSL(host, port, policy=policy, timeout=timeout, context=context)
        else:
            smtp = GuardedSMTP(host, port, policy=policy, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if security is SmtpSecurity.STARTTLS:
                smtp.starttls(context=context)
                smtp.ehlo()
            if server["username"]:
                smtp.login(server["username"], server["password"] or "")
            code, text = smtp.mail(server["from"])
            if code != 250:
                return _classify(code, text, "MAIL FROM")
            accepted: list[str] = []
            refused: list[str] = []
            last: tuple[int, bytes] = (0, b"")
            for rcpt in [*cfg.to, *cfg.cc]:
                code, text = smtp.rcpt(rcpt)
                if code in (250, 251):
                    accepted.append(rcpt)
                else:
                    refused.append(f"{rcpt}: {_reply(code, text)}")
                    last = (code, text)
            if not accepted:
                smtp.rset()
                return _classify(last[0], last[1], "every recipient")
            code, text = smtp.data(email.as_bytes(policy=SMTP_POLICY))
            if code != 250:
                return _classify(code, text, "DATA")
            reply = _reply(code, text)
            error = f"recipients refused: {'; '.join(refused)}" if refused else None
            return SendResult(
                outcome=AttemptOutcome.DELIVERED, status_code=code, reply=reply, error=clip(error)
            )
