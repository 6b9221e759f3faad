"""Who is asking: the authenticated subject every request and service call carries.

The identity domain authenticates (API keys, sessions) and produces a :class:`Principal`; every
other domain only reads it. Permissions are plain ``resource:verb`` strings; the built-in roles
come from the platform's design and are sets of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Permission(StrEnum):
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    INCIDENTS_READ = "incidents:read"
    INCIDENTS_WRITE = "incidents:write"
    EVENTS_WRITE = "events:write"
    RULES_READ = "rules:read"
    RULES_WRITE = "rules:write"
    NOTIFY_READ = "notify:read"
    NOTIFY_WRITE = "notify:write"
    AUDIT_READ = "audit:read"
    KEYS_MANAGE = "keys:manage"
    USERS_MANAGE = "users:manage"
    USAGE_READ = "usage:read"
    TENANT_MANAGE = "tenant:manage"
    QUEUE_READ = "queue:read"
    QUEUE_WRITE = "queue:write"


ALL_PERMISSIONS: frozenset[str] = frozenset(p.value for p in Permission)

_READS = frozenset(p.value for p in Permission if p.value.endswith(":read"))

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "admin": ALL_PERMISSIONS,
    "security": frozenset(
        {
            Permission.ALERTS_READ,
            Permission.ALERTS_WRITE,
            Permission.INCIDENTS_READ,
            Permission.INCIDENTS_WRITE,
            Permission.EVENTS_WRITE,
            Permission.RULES_READ,
            Permission.RULES_WRITE,
            Permission.NOTIFY_READ,
            Permission.QUEUE_READ,
        }
    ),
    "auditor": _READS,
    "viewer": frozenset({Permission.ALERTS_READ, Permission.INCIDENTS_READ, Permission.RULES_READ}),
    # A log shipper's key: sends events and nothing else.
    "ingest": frozenset({Permission.EVENTS_WRITE}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated subject, scoped to one tenant."""

    tenant_id: str
    subject_id: str
    kind: str  # "user", "key" or "system"
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """How the audit ledger names this subject: ``user:<id>`` or ``key:<id>``."""
        return f"{self.kind}:{self.subject_id}"

    def has(self, permission: str) -> bool:
        return permission in self.permissions


def system_principal(tenant_id: str, name: str = "vigil") -> Principal:
    """The platform itself acting for a tenant (workers, escalation)."""
    return Principal(
        tenant_id=tenant_id,
        subject_id=name,
        kind="system",
        roles=frozenset({"system"}),
        permissions=ALL_PERMISSIONS,
    )
