"""The policy decision point: role-based permissions plus attribute-based allow/deny rules.

A request for ``permission`` (optionally on one ``resource``) is decided in this order:

1. the platform itself (``system`` principals) is allowed;
2. a resource of another tenant is denied (defence in depth behind the tenant-scoped session);
3. a matching **deny** rule denies (deny always wins);
4. holding the permission through a role allows;
5. a matching **allow** rule allows (a conditional grant, e.g. team "ir" may read the audit log
   from the office network; allow rules never carry resource conditions — the API refuses
   them with a 422 — because this step is reached only when the roles lack the permission, at
   the route, where no resource is known: restrict with deny rules instead, e.g. ``not_tags``);
6. otherwise deny.

Rule conditions (all given parts must hold; within a list, any value matches):

* ``subject``: ``roles`` (any of), ``teams``, ``kinds`` (user, key);
* ``resource``: ``severities``, ``min_severity``, ``tags`` (any of), ``not_tags`` (none of),
  ``owner`` ("self" or "other": whether the resource's owner or assignee names the caller's
  user, see :func:`is_owner`), ``types``;
* ``environment``: ``cidrs`` / ``not_cidrs`` (source address), ``hours_utc`` [start, end)
  and ``weekdays`` (0 = Monday).

A rule with resource conditions only matches where a resource is known (``authorize_resource``
or ``visible`` in a view), never at route level. Route-level decisions are cached per (subject,
permission, address, minute) for ``decision_cache_ttl_s``; per-object decisions are evaluated
each time against the cached rules. Rules are re-read after the same time or at once when they
change (in this process, or anywhere through the revocation epoch). Every denial through
``authorize`` is counted and emitted as an ``access_denied`` security event; ``allows_each`` (list
filtering) decides without recording.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vigil.api.deps import RequestInfo
from vigil.bus.outbox import emit
from vigil.errors import PermissionDeniedError
from vigil.events.envelope import EventType, Severity, vigil_event
from vigil.identity.invalidation import Invalidation
from vigil.identity.models import AccessRule
from vigil.identity.principal import Principal
from vigil.obs.logging import REQUEST_ID
from vigil.obs.metrics import ACCESS_DENIED
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.identity.access")


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    effect: Effect
    permissions: tuple[str, ...]
    subject: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 100

    @classmethod
    def from_row(cls, row: AccessRule) -> Rule:
        cond = row.conditions or {}
        return cls(
            name=row.name,
            effect=Effect(row.effect),
            permissions=tuple(row.permissions),
            subject=cond.get("subject") or {},
            resource=cond.get("resource") or {},
            environment=cond.get("environment") or {},
            priority=row.priority,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    rule: str | None = None


_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _any(wanted: Sequence[Any] | None, present: Sequence[Any] | frozenset[Any]) -> bool:
    return not wanted or bool(set(wanted) & set(present))


def _address_in(address: str | None, cidrs: Sequence[str]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for cidr in cidrs:
        try:
            if ip in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False


def subject_matches(rule: Rule, principal: Principal) -> bool:
    cond = rule.subject
    if not _any(cond.get("roles"), principal.roles):
        return False
    if cond.get("teams") and principal.attributes.get("team") not in cond["teams"]:
        return False
    return not (cond.get("kinds") and principal.kind not in cond["kinds"])


def resource_matches(rule: Rule, principal: Principal, resource: Mapping[str, Any] | None) -> bool:
    cond = rule.resource
    if not cond:
        return True
    if resource is None:
        return False
    if cond.get("types") and resource.get("type") not in cond["types"]:
        return False
    severity = str(resource.get("severity") or "").lower()
    if cond.get("severities") and severity not in cond["severities"]:
        return False
    if cond.get("min_severity") and _SEVERITY_RANK.get(severity, -1) < _SEVERITY_RANK.get(
        str(cond["min_severity"]), 99
    ):
        return False
    tags = list(resource.get("tags") or [])
    if cond.get("tags") and not _any(cond["tags"], tags):
        return False
    # "none of": team X only sees alerts tagged Y = deny team X where not_tags [Y].
    if cond.get("not_tags") and not set(cond["not_tags"]).isdisjoint(tags):
        return False
    owner = cond.get("owner")
    return not owner or (owner == "self") == is_owner(principal, resource.get("owner"))


def is_owner(principal: Principal, owner: Any) -> bool:
    """Whether ``owner`` (an alert's assignee, an incident's owner: free text people type)
    names the caller's user: their id, ``user:<id>`` or their email (any case)."""
    me = principal.attributes.get("user_id")
    if me is None or not isinstance(owner, str) or not owner:
        return False
    email = principal.attributes.get("email")
    return owner in (me, f"user:{me}") or (
        isinstance(email, str) and owner.strip().lower() == email.lower()
    )


def environment_matches(rule: Rule, request: RequestInfo | None, now: datetime) -> bool:
    cond = rule.environment
    if not cond:
        return True
    address = request.client_host if request else None
    if cond.get("cidrs") and not _address_in(address, cond["cidrs"]):
        return False
    if cond.get("not_cidrs") and _address_in(address, cond["not_cidrs"]):
        return False
    hours = cond.get("hours_utc")
    if hours:
        start, end = int(hours[0]), int(hours[1])
        inside = start <= now.hour < end if start <= end else (now.hour >= start or now.hour < end)
        if not inside:
            return False
    return not (cond.get("weekdays") and now.weekday() not in cond["weekdays"])


def rule_applies(
    rule: Rule,
    principal: Principal,
    permission: str,
    resource: Mapping[str, Any] | None,
    request: RequestInfo | None,
    now: datetime,
) -> bool:
    return _candidate(rule, principal, permission, request, now) and resource_matches(
        rule, principal, resource
    )


def _candidate(
    rule: Rule, principal: Principal, permission: str, request: RequestInfo | None, now: datetime
) -> bool:
    """Everything of ``rule_applies`` that does not depend on the resource."""
    if not any(fnmatch.fnmatchcase(permission, pattern) for pattern in rule.permissions):
        return False
    return subject_matches(rule, principal) and environment_matches(rule, request, now)


def _verdict(principal: Principal, permission: str, applicable: Sequence[Rule]) -> Decision:
    for rule in applicable:
        if rule.effect == Effect.DENY:
            return Decision(False, f"denied by rule {rule.name}", rule.name)
    if principal.has(permission):
        return Decision(True, "role")
    for rule in applicable:
        if rule.effect == Effect.ALLOW:
            return Decision(True, f"allowed by rule {rule.name}", rule.name)
    return Decision(False, f"missing permission {permission}")


_SYSTEM = Decision(True, "system")
_OTHER_TENANT = Decision(False, "other tenant's resource")


def decide_each(
    principal: Principal,
    permission: str,
    rules: Sequence[Rule],
    resources: Sequence[Mapping[str, Any] | None],
    *,
    request: RequestInfo | None = None,
    now: datetime | None = None,
) -> list[Decision]:
    """:func:`decide` for each of ``resources`` (one request's list): the permission, subject
    and environment parts of the rules are matched once, only the resource part per item."""
    if principal.kind == "system":
        return [_SYSTEM] * len(resources)
    moment = now or datetime.now(UTC)
    candidates = [r for r in rules if _candidate(r, principal, permission, request, moment)]
    # What the roles and the resource-free rules say: the answer for most items of a list.
    unconditional = [r for r in candidates if not r.resource]
    plain = _verdict(principal, permission, unconditional)
    conditional = len(candidates) > len(unconditional)
    out = []
    for resource in resources:
        if resource is not None and resource.get("tenant_id") not in (None, principal.tenant_id):
            out.append(_OTHER_TENANT)
            continue
        if not conditional:
            out.append(plain)
            continue
        applicable = [
            r for r in candidates if not r.resource or resource_matches(r, principal, resource)
        ]
        same = len(applicable) == len(unconditional)
        out.append(plain if same else _verdict(principal, permission, applicable))
    return out


def decide(
    principal: Principal,
    permission: str,
    rules: Sequence[Rule],
    *,
    resource: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
    now: datetime | None = None,
) -> Decision:
    """The pure decision (no cache, no logging); ``rules`` sorted by priority."""
    [decision] = decide_each(principal, permission, rules, [resource], request=request, now=now)
    return decision


class PolicyDecisionPoint:
    """The runtime's :class:`vigil.api.deps.Authorizer`."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        cache_ttl_s: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self.sessions = sessions
        self.cache_ttl_s = cache_ttl_s
        self.cache_size = cache_size
        self._decisions: OrderedDict[tuple[Any, ...], tuple[float, Decision]] = OrderedDict()
        self._rules: dict[str, tuple[float, tuple[Rule, ...]]] = {}
        self._lock = threading.Lock()

    # --- caches -----------------------------------------------------------------------------------

    def invalidate(self, invalidation: Invalidation | None = None) -> None:
        with self._lock:
            self._decisions.clear()
            if invalidation is None or invalidation.everything:
                self._rules.clear()
            else:
                for tenant_id in invalidation.tenant_ids:
                    self._rules.pop(tenant_id, None)

    def rules_for(self, tenant_id: str) -> tuple[Rule, ...]:
        cached = self._rules.get(tenant_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        session = system_session(self.sessions)
        try:
            rows = session.execute(
                select(AccessRule)
                .where(AccessRule.tenant_id == tenant_id, AccessRule.enabled.is_(True))
                .order_by(AccessRule.priority, AccessRule.name)
            ).scalars()
            rules = tuple(Rule.from_row(r) for r in rows)
        finally:
            session.close()
        self._rules[tenant_id] = (now + self.cache_ttl_s, rules)
        return rules

    def decide(
        self,
        principal: Principal,
        permission: str,
        *,
        resource: Mapping[str, Any] | None = None,
        request: RequestInfo | None = None,
    ) -> Decision:
        if principal.kind == "system":
            return Decision(True, "system")
        if resource is not None:
            # Per-object decisions are cheap (rules are cached) and rarely repeat: caching them
            # would only push the route-level decisions out of the cache.
            return decide(
                principal,
                permission,
                self.rules_for(principal.tenant_id),
                resource=resource,
                request=request,
            )
        now = time.monotonic()
        key = (
            principal.tenant_id,
            principal.kind,
            principal.subject_id,
            principal.permissions,
            principal.roles,
            principal.attributes.get("team"),
            permission,
            request.client_host if request else None,
            int(time.time() // 60),
        )
        hit = self._decisions.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        decision = decide(
            principal,
            permission,
            self.rules_for(principal.tenant_id),
            resource=resource,
            request=request,
        )
        if self.cache_ttl_s > 0 and self.cache_size > 0:
            with self._lock:
                self._decisions[key] = (now + self.cache_ttl_s, decision)
                while len(self._decisions) > self.cache_size:
                    self._decisions.popitem(last=False)
        return decision

    # --- Authorizer -------------------------------------------------------------------------------

    def allows_each(
        self,
        principal: Principal,
        permission: str,
        resources: Sequence[Mapping[str, Any]],
        *,
        request: RequestInfo | None = None,
    ) -> list[bool]:
        rules = self.rules_for(principal.tenant_id)
        decisions = decide_each(principal, permission, rules, resources, request=request)
        return [d.allowed for d in decisions]

    def authorize(
        self,
        principal: Principal,
        permission: str,
        *,
        resource: Mapping[str, Any] | None = None,
        request: RequestInfo | None = None,
    ) -> None:
        decision = self.decide(principal, permission, resource=resource, request=request)
        if decision.allowed:
            return
        self.record_denial(principal, permission, decision, resource=resource, request=request)
        raise PermissionDeniedError(
            f"missing permission {permission}"
            if decision.rule is None
            else f"{permission} denied by policy"
        )

    def record_denial(
        self,
        principal: Principal,
        permission: str,
        decision: Decision,
        *,
        resource: Mapping[str, Any] | None,
        request: RequestInfo | None,
    ) -> None:
        ACCESS_DENIED.inc()
        details: dict[str, Any] = {
            "actor": principal.actor,
            "permission": permission,
            "reason": decision.reason,
        }
        if decision.rule:
            details["rule"] = decision.rule
        if request is not None:
            details.update(
                method=request.method, path=request.path, client_address=request.client_host
            )
        if resource is not None:
            details["resource"] = {
                k: resource[k] for k in ("type", "id", "severity") if k in resource
            }
        log.warning("access denied", extra={"access": details})
        try:
            session = system_session(self.sessions)
            try:
                emit(
                    session,
                    tenant_id=principal.tenant_id,
                    event=vigil_event(
                        tenant_id=principal.tenant_id,
                        event_type=EventType.ACCESS_DENIED,
                        severity=Severity.MEDIUM,
                        details=details,
                        correlation_id=REQUEST_ID.get(),
                    ),
                )
                session.commit()
            finally:
                session.close()
        except Exception:
            # The denial stands even if it could not be recorded; the log line above keeps it.
            log.exception("could not emit access_denied event")
