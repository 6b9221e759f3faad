"""Settings of the identity domain (nested in :class:`vigil.config.Settings` as ``identity``).

Environment: ``VIGIL_IDENTITY__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class IdentitySettings(BaseModel):
    # --- sessions --------------------------------------------------------------------------------
    jwt_secret: str | None = Field(
        default=None,
        min_length=32,
        description="HS256 secret for access tokens; default: a per-install secret created "
        "under home/keys/jwt.secret (mode 0600).",
    )
    secret: str | None = Field(
        default=None,
        min_length=32,
        description="Secret from which the TOTP seal key and the recovery-code pepper are "
        "derived; default: home/keys/identity.secret. Replicas must share it (and jwt_secret).",
    )
    jwt_audience: str = Field(default="vigil-api", description="`aud` of access tokens.")
    jwt_issuer: str = Field(default="vigil", description="`iss` of access tokens.")
    access_token_ttl_s: int = Field(default=900, gt=0, le=3600)
    refresh_token_ttl_s: int = Field(default=14 * 86400, gt=0)
    # --- API keys ---------------------------------------------------------------------------------
    key_cache_ttl_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a verified key is trusted without a database look-up (revocation "
        "in this process is immediate; other replicas learn it from the revocation broadcast, "
        "at the latest after this long).",
    )
    revocation_check_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="How often a serving process reads the revocation epoch (one indexed "
        "look-up) to notice revocations made elsewhere, e.g. by the CLI (0: every request).",
    )
    key_rotation_grace_s: int = Field(default=86400, ge=0, le=30 * 86400)
    # --- passwords and brute force ----------------------------------------------------------------
    password_min_length: int = Field(default=12, ge=8)
    lockout_threshold: int = Field(
        default=5, ge=1, description="Failures per account before back-off starts."
    )
    lockout_base_s: float = Field(default=30.0, gt=0, description="First back-off period.")
    lockout_max_s: float = Field(default=3600.0, gt=0, description="Longest back-off period.")
    address_threshold: int = Field(
        default=20, ge=1, description="Failures per source address before it is blocked."
    )
    failure_window_s: float = Field(
        default=3600.0, gt=0, description="Failures older than this are forgotten."
    )
    # --- rate limiting ----------------------------------------------------------------------------
    rate_limit_enabled: bool = True
    rate_limit_requests: int = Field(default=1000, gt=0)
    rate_limit_window_s: int = Field(default=60, gt=0)
    # --- policy decision point --------------------------------------------------------------------
    decision_cache_ttl_s: float = Field(default=5.0, ge=0)
    decision_cache_size: int = Field(default=10_000, ge=0)
