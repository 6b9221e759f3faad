"""Escalation policies: per tenant and severity, ordered levels "if not acknowledged within N
minutes, notify these channels". Changes are audit ledger entries (``escalation_policy.*``).

What the worker does with them is in :mod:`vigil.incidents.escalation_worker`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.errors import ConflictError, InvalidInputError, NotFoundError
from vigil.incidents.models import EscalationPolicy
from vigil.incidents.schemas import EscalationPolicyCreate, EscalationPolicyUpdate
from vigil.ledger.service import append
from vigil.obs.logging import REQUEST_ID


def _audit(
    session: Session,
    policy: EscalationPolicy,
    *,
    actor: str,
    action: str,
    change: Any,
    now: datetime,
) -> None:
    append(
        session,
        tenant=policy.tenant_id,
        actor=actor,
        action=f"escalation_policy.{action}",
        target=f"escalation_policy:{policy.id}",
        request_id=REQUEST_ID.get(),
        change=change,
        time=now,
    )


def _check_free(session: Session, *, severity: str, except_id: str | None = None) -> None:
    """One policy per tenant and severity (the session is tenant-scoped)."""
    clash = session.scalars(
        select(EscalationPolicy.id).where(EscalationPolicy.severity == severity)
    ).first()
    if clash is not None and clash != except_id:
        raise ConflictError(f"escalation policy {clash} already covers severity {severity}")


def list_policies(session: Session) -> Sequence[EscalationPolicy]:
    return session.scalars(select(EscalationPolicy).order_by(EscalationPolicy.created_at)).all()


def get_policy(session: Session, *, policy_id: str) -> EscalationPolicy:
    policy = session.scalars(
        select(EscalationPolicy).where(EscalationPolicy.id == policy_id)
    ).one_or_none()
    if policy is None:
        raise NotFoundError(f"escalation policy {policy_id} not found")
    return policy


def create_policy(
    session: Session, *, tenant_id: str, data: EscalationPolicyCreate, actor: str, now: datetime
) -> EscalationPolicy:
    _check_free(session, severity=data.severity.value)
    policy = EscalationPolicy(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        name=data.name,
        severity=data.severity.value,
        applies_to=data.applies_to.value,
        enabled=data.enabled,
        levels=[level.model_dump() for level in data.levels],
        created_at=now,
        updated_at=now,
        updated_by=actor,
    )
    session.add(policy)
    session.flush()
    _audit(
        session, policy, actor=actor, action="create", change=data.model_dump(mode="json"), now=now
    )
    return policy


def update_policy(
    session: Session, *, policy_id: str, data: EscalationPolicyUpdate, actor: str, now: datetime
) -> EscalationPolicy:
    policy = get_policy(session, policy_id=policy_id)
    changes = data.model_dump(mode="json", exclude_unset=True)
    for name in ("name", "severity", "applies_to", "enabled", "levels"):
        if name in changes and changes[name] is None:
            raise InvalidInputError(f"{name} cannot be null", field=f"body.{name}")
    if "severity" in changes and changes["severity"] != policy.severity:
        _check_free(session, severity=changes["severity"], except_id=policy.id)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.updated_at = now
    policy.updated_by = actor
    session.flush()
    _audit(session, policy, actor=actor, action="update", change=changes, now=now)
    return policy


def delete_policy(session: Session, *, policy_id: str, actor: str, now: datetime) -> None:
    policy = get_policy(session, policy_id=policy_id)
    _audit(
        session, policy, actor=actor, action="delete", change={"severity": policy.severity}, now=now
    )
    session.delete(policy)
    session.flush()
