"""Settings of the notify domain (nested in :class:`vigil.config.Settings` as ``notify``).

Environment: ``VIGIL_NOTIFY__<FIELD>`` (lists as JSON, e.g.
``VIGIL_NOTIFY__BLOCKED_NETWORKS='["10.0.0.0/8"]'``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected."""

    NONE = "none"  # plain SMTP (a local relay on a trusted network)
    STARTTLS = "starttls"  # plain connect, then STARTTLS (submission port 587)
    SSL = "ssl"  # TLS from the first byte (port 465)


class NotifySettings(BaseModel):
    # --- delivery: retries, circuit breaker ---------------------------------------------------
    retry_base_s: float = Field(
        default=5.0, gt=0, description="Backoff base: attempt n waits up to base * 2**(n-1)."
    )
    retry_cap_s: float = Field(default=900.0, gt=0, description="Longest wait between attempts.")
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts before a delivery goes to dead letters."
    )
    retry_after_max_s: float = Field(
        default=3600.0,
        ge=0,
        description="A receiver's Retry-After is honoured up to this many seconds.",
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive failures that open a channel's circuit."
    )
    circuit_cooldown_s: float = Field(
        default=60.0, gt=0, description="How long an open circuit waits before a probe."
    )
    delivery_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Delivered, cancelled and failed-test deliveries are purged from the "
        "delivery log after this long; dead letters stay until retried or their channel goes.",
    )
    lease_s: float = Field(
        default=120.0,
        gt=0,
        description="A delivery being sent by a process that died is retried after this long.",
    )

    # --- workers --------------------------------------------------------------------------------
    poll_interval_s: float = Field(default=1.0, gt=0, description="Idle poll interval of workers.")
    leader_lease_s: float = Field(
        default=15.0,
        gt=0,
        description="PostgreSQL: one worker process at a time dispatches and sends "
        "notifications, holding a lease of this length (renewed every third of it); when it "
        "dies or freezes another takes over after this long.",
    )
    dispatch_batch: int = Field(default=200, ge=1, le=5000, description="Outbox events per step.")
    sender_threads: int = Field(default=4, ge=1, le=64, description="Concurrent sends.")

    # --- network --------------------------------------------------------------------------------
    http_connect_timeout_s: float = Field(default=5.0, gt=0)
    http_timeout_s: float = Field(default=10.0, gt=0, description="Read/write timeout.")
    max_redirects: int = Field(
        default=3, ge=0, le=10, description="Same-origin 307/308 redirects followed."
    )
    allow_private_networks: bool = Field(
        default=True,
        description="Allow receivers on loopback/private/link-local addresses (self-hosted "
        "receivers usually are). Cloud metadata addresses are always refused.",
    )
    blocked_networks: list[str] = Field(
        default_factory=list, description="Extra CIDR ranges never contacted."
    )

    # --- email defaults (a channel's own SMTP settings win) ----------------------------------
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str | None = Field(default=None, description="Default From: address.")
    smtp_timeout_s: float = Field(default=15.0, gt=0)

    # --- secrets at rest ------------------------------------------------------------------------
    secret_keys: list[str] = Field(
        default_factory=list,
        description="Fernet keys encrypting channel secrets; the first encrypts, all decrypt "
        "(rotation). Default: a key file under $VIGIL_HOME/keys created on first use.",
    )
