"""Pydantic models of the identity API (requests and responses). Secrets appear only in the
``*Created`` / token responses, once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from vigil.identity.config import IdentitySettings
from vigil.identity.models import UserStatus
from vigil.identity.principal import ALL_PERMISSIONS
from vigil.identity.service import EMAIL_PATTERN, RESERVED_ROLE_NAMES, ROLE_NAME_PATTERN
from vigil.metering.service import QUOTA_METRICS


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]

# The service checks these (with its own messages); the schema publishes them so that input
# the schema allows is accepted. A password's floor is the default `password_min_length` (an
# installation may raise it).
EMAIL: dict[str, Any] = {"pattern": EMAIL_PATTERN}
PASSWORD: dict[str, Any] = {
    "minLength": IdentitySettings.model_fields["password_min_length"].default,
    "description": "At least `identity.password_min_length` characters (12 by default).",
}
#: A permission a role or key scope may name (the service says which one is unknown).
PermissionName = Annotated[str, Field(json_schema_extra={"enum": sorted(ALL_PERMISSIONS)})]
ROLE_NAME: dict[str, Any] = {
    "pattern": ROLE_NAME_PATTERN,
    "not": {"enum": sorted(RESERVED_ROLE_NAMES)},
    "description": "Lower-case letters, digits, '_' or '-'; not a built-in role's name.",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- sessions -------------------------------------------------------------------------------------


class LoginRequest(_Strict):
    tenant: str = Field(min_length=1, max_length=100)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16, description="6-digit TOTP code.")
    recovery_code: str | None = Field(default=None, max_length=64)


class RefreshRequest(_Strict):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(_Strict):
    refresh_token: str | None = Field(default=None, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    mfa_pending: bool = Field(
        description="The tenant requires MFA and the user has not enrolled: the access token "
        "only allows enrolling (POST /v1/auth/mfa/totp)."
    )


class MeRead(BaseModel):
    tenant_id: str
    tenant: str | None
    kind: str
    subject_id: str
    email: str | None
    roles: list[str]
    permissions: list[str]
    mfa_pending: bool = False


class PasswordChange(_Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024, json_schema_extra=PASSWORD)


class TotpEnrolmentRead(BaseModel):
    secret: str = Field(description="Base32 seed (shown once).")
    otpauth_uri: str


class TotpConfirm(_Strict):
    code: str = Field(min_length=6, max_length=8)


class RecoveryCodesRead(BaseModel):
    recovery_codes: list[str] = Field(description="Each usable once; shown only now.")


class TotpDisable(_Strict):
    password: str = Field(min_length=1, max_length=1024)


# --- users and roles ------------------------------------------------------------------------------


class UserCreate(_Strict):
    email: str = Field(min_length=3, max_length=320, json_schema_extra=EMAIL)
    password: str = Field(min_length=1, max_length=1024, json_schema_extra=PASSWORD)
    roles: list[str] = Field(default_factory=list, max_length=20)
    team: str | None = Field(default=None, max_length=100)


class UserUpdate(_Strict):
    roles: list[str] | None = Field(default=None, max_length=20)
    status: UserStatus | None = None
    team: str | None = Field(default=None, max_length=100)


class PasswordReset(_Strict):
    new_password: str = Field(min_length=1, max_length=1024, json_schema_extra=PASSWORD)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    status: UserStatus
    roles: list[str]
    team: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    last_login_at: UtcDatetime | None
    mfa_enabled: bool = False


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: str | None = None


class RoleCreate(_Strict):
    name: str = Field(min_length=1, max_length=64, json_schema_extra=ROLE_NAME)
    permissions: list[PermissionName] = Field(max_length=100)
    description: str = Field(default="", max_length=1000)


class RoleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str | None
    name: str
    description: str
    permissions: list[str]
    builtin: bool = False


# --- API keys -------------------------------------------------------------------------------------


class KeyCreate(_Strict):
    name: str = Field(min_length=1, max_length=100)
    roles: list[str] | None = Field(
        default=None,
        max_length=20,
        description="Roles the key acts with (default: the caller's own roles). A key never "
        "exceeds its creator's permissions.",
    )
    scopes: list[PermissionName] | None = Field(
        default=None, max_length=100, description="Narrow the key to these permissions."
    )
    expires_in_s: int | None = Field(default=None, gt=0, le=5 * 365 * 86400)
    rate_limit_requests: int | None = Field(
        default=None, gt=0, le=1_000_000, description="Requests per window (default: tenant's)."
    )


class KeyRotate(_Strict):
    grace_s: int | None = Field(
        default=None, ge=0, le=30 * 86400, description="How long the old key keeps working."
    )


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    user_id: str | None
    roles: list[str]
    scopes: list[str] | None
    rate_limit_requests: int | None
    created_at: UtcDatetime
    created_by: str
    expires_at: UtcDatetime | None
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None
    replaced_by: str | None


class KeyCreated(KeyRead):
    key: str = Field(description="The API key. Shown once: store it now.")


class KeyPage(BaseModel):
    items: list[KeyRead]


# --- tenant and access rules ----------------------------------------------------------------------


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    created_at: UtcDatetime
    require_mfa: bool
    rate_limit_requests: int | None
    rate_limit_window_s: int | None
    quotas: dict[str, int]


class TenantUpdate(_Strict):
    require_mfa: bool | SkipJsonSchema[None] = None  # true or false, never null
    rate_limit_requests: int | None = Field(default=None, gt=0, le=10_000_000)
    rate_limit_window_s: int | None = Field(default=None, gt=0, le=86400)
    quotas: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        description='Per-day limits by metric, e.g. {"events": 5000000}.',
        json_schema_extra={"propertyNames": {"enum": list(QUOTA_METRICS)}},
    )


class SubjectConditions(_Strict):
    roles: list[str] | None = Field(default=None, max_length=50)
    teams: list[str] | None = Field(default=None, max_length=50)
    kinds: list[Literal["user", "key"]] | None = None


class ResourceConditions(_Strict):
    types: list[str] | None = Field(default=None, max_length=50)
    severities: list[Literal["critical", "high", "medium", "low", "info"]] | None = None
    min_severity: Literal["critical", "high", "medium", "low", "info"] | None = None
    tags: list[str] | None = Field(default=None, max_length=100, description="Any of these.")
    not_tags: list[str] | None = Field(
        default=None, max_length=100, description="None of these (e.g. a team sees only Y)."
    )
    owner: Literal["self", "other"] | None = None


class EnvironmentConditions(_Strict):
    cidrs: list[IPvAnyNetwork] | None = Field(default=None, max_length=100)
    not_cidrs: list[IPvAnyNetwork] | None = Field(default=None, max_length=100)
    hours_utc: (
        tuple[Annotated[int, Field(ge=0, le=24)], Annotated[int, Field(ge=0, le=24)]] | None
    ) = None
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] | None = None


class RuleConditions(_Strict):
    subject: SubjectConditions | None = None
    resource: ResourceConditions | None = None
    environment: EnvironmentConditions | None = None


# An allow rule is consulted only where the caller's roles lack the permission, i.e. at the
# route, where no resource is known: one with resource conditions would never match anything.
# Refused rather than stored as a silent no-op; "team X sees only Y" is a deny with not_tags.
_ALLOW_WITHOUT_RESOURCE: JsonDict = {
    "if": {"properties": {"effect": {"const": "allow"}}, "required": ["effect"]},
    "then": {"properties": {"conditions": {"properties": {"resource": {"type": "null"}}}}},
}


class AccessRuleCreate(_Strict):
    model_config = ConfigDict(json_schema_extra=_ALLOW_WITHOUT_RESOURCE)

    name: str = Field(min_length=1, max_length=100)
    effect: Literal["allow", "deny"]
    permissions: list[str] = Field(
        min_length=1, max_length=50, description="Permission patterns, e.g. alerts:*"
    )
    conditions: RuleConditions = Field(
        default_factory=RuleConditions,
        description=(
            "An allow rule takes subject and environment conditions only: resource conditions "
            "belong on deny rules (an allow is consulted at the route, before any resource)."
        ),
    )
    priority: int = Field(default=100, ge=0, le=10_000)
    enabled: bool = True

    @field_validator("conditions")
    @classmethod
    def _allow_has_no_resource(cls, value: RuleConditions, info: ValidationInfo) -> RuleConditions:
        if info.data.get("effect") == "allow" and value.resource is not None:
            raise ValueError(
                "an allow rule cannot have resource conditions (it is decided at the route, "
                "where no resource is known, so it would never match); use a deny rule, "
                'e.g. {"effect": "deny", "conditions": {"resource": {"not_tags": [...]}}}'
            )
        return value


class AccessRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    effect: str
    permissions: list[str]
    conditions: dict[str, Any]
    priority: int
    enabled: bool
    created_at: UtcDatetime
