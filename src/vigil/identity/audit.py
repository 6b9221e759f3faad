"""Authentication and identity events: one audit ledger entry and one security event each,
written in the caller's transaction (so they exist exactly when the change does).

The changes that end or narrow cached credentials (:data:`REVOKING`) also move the revocation
epoch in the same transaction (:mod:`vigil.identity.revocations`), whoever makes them: the API,
the CLI or a future caller, so a running server cannot miss one."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from vigil.bus.outbox import emit
from vigil.events.envelope import Severity, vigil_event
from vigil.identity import revocations
from vigil.identity.invalidation import Invalidation
from vigil.ledger import service as ledger
from vigil.obs.logging import REQUEST_ID


class IdentityAction(StrEnum):
    """Audit actions (``identity.<verb>``); the security event type is the same name with
    underscores (``identity_login_failed``)."""

    TENANT_CREATED = "identity.tenant_created"
    TENANT_UPDATED = "identity.tenant_updated"
    USER_CREATED = "identity.user_created"
    USER_UPDATED = "identity.user_updated"
    USER_ROLES_CHANGED = "identity.user_roles_changed"
    USER_STATUS_CHANGED = "identity.user_status_changed"
    USER_UNLOCKED = "identity.user_unlocked"
    PASSWORD_CHANGED = "identity.password_changed"
    ROLE_CREATED = "identity.role_created"
    ROLE_UPDATED = "identity.role_updated"
    ROLE_DELETED = "identity.role_deleted"
    KEY_CREATED = "identity.key_created"
    KEY_ROTATED = "identity.key_rotated"
    KEY_REVOKED = "identity.key_revoked"
    LOGIN_SUCCEEDED = "identity.login_succeeded"
    LOGIN_FAILED = "identity.login_failed"
    LOCKOUT = "identity.lockout"
    LOGOUT = "identity.logout"
    REFRESH_REUSED = "identity.refresh_token_reused"
    MFA_ENROLMENT_STARTED = "identity.mfa_enrolment_started"
    MFA_ENROLLED = "identity.mfa_enrolled"
    MFA_DISABLED = "identity.mfa_disabled"
    RECOVERY_CODE_USED = "identity.recovery_code_used"
    ACCESS_RULE_CHANGED = "identity.access_rule_changed"


_SEVERITY: dict[IdentityAction, Severity] = {
    IdentityAction.LOGIN_FAILED: Severity.LOW,
    IdentityAction.LOCKOUT: Severity.HIGH,
    IdentityAction.REFRESH_REUSED: Severity.HIGH,
    IdentityAction.KEY_REVOKED: Severity.MEDIUM,
    IdentityAction.USER_ROLES_CHANGED: Severity.MEDIUM,
    IdentityAction.MFA_DISABLED: Severity.MEDIUM,
    IdentityAction.RECOVERY_CODE_USED: Severity.MEDIUM,
    IdentityAction.ACCESS_RULE_CHANGED: Severity.MEDIUM,
    # An administrator overriding brute-force protection is worth a look.
    IdentityAction.USER_UNLOCKED: Severity.MEDIUM,
}

#: action → what it invalidates, from the target ``kind:id`` (``tenant`` = the whole tenant).
REVOKING: dict[IdentityAction, str] = {
    IdentityAction.KEY_REVOKED: "key",
    IdentityAction.KEY_ROTATED: "key",
    IdentityAction.USER_ROLES_CHANGED: "user",
    IdentityAction.USER_STATUS_CHANGED: "user",
    IdentityAction.USER_UPDATED: "user",  # team: an attribute access rules match
    IdentityAction.PASSWORD_CHANGED: "user",
    IdentityAction.REFRESH_REUSED: "session",
    IdentityAction.ROLE_UPDATED: "tenant",
    IdentityAction.ROLE_DELETED: "tenant",
    IdentityAction.TENANT_UPDATED: "tenant",
    IdentityAction.ACCESS_RULE_CHANGED: "tenant",
}


def invalidation_for(action: IdentityAction, *, tenant_id: str, target: str) -> Invalidation | None:
    scope = REVOKING.get(action)
    kind, _, ident = target.partition(":")
    if scope is None:
        return None
    if scope == "tenant":
        return Invalidation(tenant_ids=(tenant_id,))
    if kind != scope or not ident:
        # The target does not name what the action invalidates: drop the tenant's entries.
        return Invalidation(tenant_ids=(tenant_id,))
    if scope == "key":
        return Invalidation(key_ids=(ident,))
    if scope == "user":
        return Invalidation(user_ids=(ident,))
    return Invalidation(session_ids=(ident,))


def record(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    action: IdentityAction,
    target: str,
    change: dict[str, Any] | None = None,
    client_address: str | None = None,
) -> None:
    """Append the ledger entry and emit the security event. ``change`` must hold no secret."""
    details: dict[str, Any] = {"action": action.value, "actor": actor, "target": target}
    if change:
        details["change"] = change
    if client_address:
        details["client_address"] = client_address
    ledger.append(
        session,
        tenant=tenant_id,
        actor=actor,
        action=action.value,
        target=target,
        request_id=REQUEST_ID.get(),
        change=details,
    )
    emit(
        session,
        tenant_id=tenant_id,
        event=vigil_event(
            tenant_id=tenant_id,
            event_type=action.value.replace(".", "_"),
            severity=_SEVERITY.get(action, Severity.INFO),
            details=details,
            correlation_id=REQUEST_ID.get(),
        ),
    )
    invalidation = invalidation_for(action, tenant_id=tenant_id, target=target)
    if invalidation is not None:
        revocations.note(session, invalidation)
