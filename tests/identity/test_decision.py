"""The policy decision point: RBAC, allow/deny rules on subject, resource and environment,
tenant guard, decision cache and the access_denied event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from vigil.api.deps import RequestInfo
from vigil.bus.outbox import read_after
from vigil.errors import PermissionDeniedError
from vigil.identity.authn import Invalidation
from vigil.identity.decision import Effect, PolicyDecisionPoint, Rule, decide
from vigil.identity.models import AccessRule, Tenant
from vigil.identity.principal import BUILTIN_ROLES, Principal, system_principal
from vigil.store import session_scope

ANALYST = Principal(
    tenant_id="t1",
    subject_id="u1",
    kind="user",
    roles=frozenset({"security"}),
    permissions=BUILTIN_ROLES["security"],
    attributes={"user_id": "u1", "team": "ir"},
)
VIEWER = Principal(
    tenant_id="t1",
    subject_id="u2",
    kind="user",
    roles=frozenset({"viewer"}),
    permissions=BUILTIN_ROLES["viewer"],
    attributes={"user_id": "u2", "team": "soc"},
)
NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday


def _req(address: str = "10.1.2.3") -> RequestInfo:
    return RequestInfo(headers={}, client_host=address, method="GET", path="/v1/alerts")


def test_rbac_alone() -> None:
    assert decide(ANALYST, "alerts:write", []).allowed
    d = decide(VIEWER, "alerts:write", [])
    assert not d.allowed and d.reason == "missing permission alerts:write"
    assert decide(system_principal("t1"), "users:manage", []).allowed


def test_other_tenants_resource_is_denied_even_with_the_permission() -> None:
    d = decide(ANALYST, "alerts:read", [], resource={"tenant_id": "t2", "type": "alert"})
    assert not d.allowed


def test_deny_rule_on_resource_severity_wins_over_role() -> None:
    rule = Rule(
        name="no-critical-for-soc",
        effect=Effect.DENY,
        permissions=("alerts:*",),
        subject={"roles": ["security"]},
        resource={"min_severity": "high"},
    )
    high = {"tenant_id": "t1", "severity": "critical"}
    low = {"tenant_id": "t1", "severity": "low"}
    assert not decide(ANALYST, "alerts:write", [rule], resource=high).allowed
    assert decide(ANALYST, "alerts:write", [rule], resource=low).allowed
    # route level (no resource): resource rules do not apply
    assert decide(ANALYST, "alerts:write", [rule]).allowed


def test_allow_rule_grants_conditionally_by_team_tags_and_owner() -> None:
    rule = Rule(
        name="soc-own-tagged",
        effect=Effect.ALLOW,
        permissions=("alerts:write",),
        subject={"teams": ["soc"]},
        resource={"tags": ["team:soc"], "owner": "self"},
    )
    mine = {"tenant_id": "t1", "tags": ["team:soc"], "owner": "u2"}
    theirs = {"tenant_id": "t1", "tags": ["team:soc"], "owner": "u9"}
    untagged = {"tenant_id": "t1", "tags": [], "owner": "u2"}
    assert decide(VIEWER, "alerts:write", [rule], resource=mine).allowed
    assert not decide(VIEWER, "alerts:write", [rule], resource=theirs).allowed
    assert not decide(VIEWER, "alerts:write", [rule], resource=untagged).allowed
    assert not decide(VIEWER, "users:manage", [rule], resource=mine).allowed


def test_team_sees_only_its_tag_through_not_tags() -> None:
    rule = Rule(
        name="soc-only-soc",
        effect=Effect.DENY,
        permissions=("alerts:*",),
        subject={"teams": ["soc"]},
        resource={"types": ["alert"], "not_tags": ["team:soc"]},
    )
    ours = {"tenant_id": "t1", "type": "alert", "tags": ["x", "team:soc"]}
    other = {"tenant_id": "t1", "type": "alert", "tags": ["team:ir"]}
    assert decide(VIEWER, "alerts:read", [rule], resource=ours).allowed
    assert not decide(VIEWER, "alerts:read", [rule], resource=other).allowed
    assert decide(ANALYST, "alerts:read", [rule], resource=other).allowed  # another team
    assert decide(VIEWER, "alerts:read", [rule]).allowed  # route level: no resource


@pytest.mark.parametrize(
    ("owner", "mine"),
    [
        ("u2", True),
        ("user:u2", True),
        (" Viewer@Acme.Test ", True),
        ("u20", False),
        ("user:u9", False),
        (None, False),
        ("", False),
    ],
)
def test_owner_names_the_user_by_id_actor_or_email(owner: str | None, mine: bool) -> None:
    viewer = Principal(
        tenant_id="t1",
        subject_id="k1",
        kind="key",
        roles=VIEWER.roles,
        permissions=VIEWER.permissions,
        attributes={"user_id": "u2", "email": "viewer@acme.test"},
    )
    rule = Rule(
        name="not-others",
        effect=Effect.DENY,
        permissions=("alerts:read",),
        resource={"owner": "other"},
    )
    resource = {"tenant_id": "t1", "owner": owner}
    assert decide(viewer, "alerts:read", [rule], resource=resource).allowed is mine


@pytest.mark.parametrize(
    ("env", "address", "when", "denied"),
    [
        ({"not_cidrs": ["10.0.0.0/8"]}, "10.1.2.3", NOON, False),
        ({"not_cidrs": ["10.0.0.0/8"]}, "192.0.2.7", NOON, True),
        ({"cidrs": ["192.0.2.0/24"]}, "192.0.2.7", NOON, True),
        ({"hours_utc": [22, 6]}, "10.1.2.3", NOON, False),
        ({"hours_utc": [22, 6]}, "10.1.2.3", NOON.replace(hour=23), True),
        ({"hours_utc": [22, 6]}, "10.1.2.3", NOON.replace(hour=3), True),
        ({"weekdays": [5, 6]}, "10.1.2.3", NOON, False),
        ({"weekdays": [0]}, "10.1.2.3", NOON, True),
    ],
)
def test_environment_conditions(
    env: dict[str, object], address: str, when: datetime, denied: bool
) -> None:
    rule = Rule(name="env", effect=Effect.DENY, permissions=("*",), environment=env)
    d = decide(ANALYST, "alerts:read", [rule], request=_req(address), now=when)
    assert d.allowed is not denied


def _tenant(factory: sessionmaker[Session]) -> Tenant:
    from vigil.identity import service

    with session_scope(factory) as s:
        return service.create_tenant(s, name="acme", actor="system:test")


def test_denials_are_emitted_and_rules_load_per_tenant(factory: sessionmaker[Session]) -> None:
    tenant = _tenant(factory)
    pdp = PolicyDecisionPoint(sessions=factory, cache_ttl_s=60)
    analyst = Principal(
        tenant_id=tenant.id,
        subject_id="u1",
        kind="key",
        roles=frozenset({"security"}),
        permissions=BUILTIN_ROLES["security"],
    )
    pdp.authorize(analyst, "alerts:write", request=_req())
    with session_scope(factory) as s:
        s.add(
            AccessRule(
                id="r1",
                tenant_id=tenant.id,
                name="keys-read-only",
                effect="deny",
                permissions=["*:write"],
                conditions={"subject": {"kinds": ["key"]}},
                priority=10,
                enabled=True,
                created_at=datetime.now(UTC),
            )
        )
    # cached decision until the rules change is announced
    pdp.authorize(analyst, "alerts:write", request=_req())
    pdp.invalidate(Invalidation(tenant_ids=(tenant.id,)))
    with pytest.raises(PermissionDeniedError, match="denied by policy"):
        pdp.authorize(analyst, "alerts:write", request=_req())
    with pytest.raises(PermissionDeniedError, match="missing permission users:manage"):
        pdp.authorize(analyst, "users:manage", request=_req())
    with session_scope(factory) as s:
        items = [i for i in read_after(s, after_seq=0) if i.event.event_type == "access_denied"]
    assert len(items) == 2
    first = items[0].event
    assert first.details["rule"] == "keys-read-only"
    assert first.details["client_address"] == "10.1.2.3"
    assert first.metadata.tenant_id == tenant.id
