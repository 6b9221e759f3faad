"""Rules in the running service: list, inspect, per-tenant overrides, load status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from vigil.api.deps import get_runtime, require, tenant_db
from vigil.errors import InvalidInputError, NotFoundError
from vigil.identity.principal import Permission, Principal
from vigil.ledger import service as ledger
from vigil.obs.logging import REQUEST_ID
from vigil.pipeline import service
from vigil.pipeline.models import RuleSetting
from vigil.pipeline.rules import RuleEntry
from vigil.pipeline.schemas import Level, RuleDetail, RuleKind, RulePage, RulesStatus
from vigil.pipeline.schemas import RuleUpdate as RuleUpdateBody
from vigil.pipeline.wiring import registry_of

router = APIRouter(tags=["rules"])


def _read(entry: RuleEntry, setting: RuleSetting | None) -> dict[str, Any]:
    return {
        "rule_id": entry.rule_id,
        "kind": entry.kind,
        "title": entry.title,
        "level": entry.level,
        "effective_level": (setting.level if setting and setting.level else entry.level),
        "enabled": setting.enabled if setting else True,
        "suppression_window_s": setting.suppression_window_s if setting else None,
        "tags": list(entry.tags),
        "path": entry.path,
        "logsource": dict(entry.logsource),
        "status": entry.status,
        "stale": entry.stale,
    }


@router.get("/v1/rules", response_model=RulePage, summary="Loaded rules with this tenant's view")
def list_rules(
    request: Request,
    q: str | None = Query(default=None, max_length=200, description="Text in id or title."),
    level: Level | None = Query(default=None, description="The rule file's level."),
    effective_level: Level | None = Query(default=None),
    enabled: bool | None = Query(default=None),
    tag: str | None = Query(default=None, max_length=200),
    kind: RuleKind | None = Query(default=None),
    product: str | None = Query(default=None, max_length=100),
    category: str | None = Query(default=None, max_length=100),
    service_name: str | None = Query(default=None, alias="service", max_length=100),
    stale: bool | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
    _p: Principal = Depends(require(Permission.RULES_READ)),
    session: Session = Depends(tenant_db),
) -> dict[str, Any]:
    settings = service.list_settings(session)
    needle = q.lower() if q else None
    wanted_logsource = {"product": product, "category": category, "service": service_name}
    items = []
    for entry in registry_of(get_runtime(request)).current.entries.values():
        item = _read(entry, settings.get(entry.rule_id))
        if needle and needle not in entry.rule_id.lower() and needle not in entry.title.lower():
            continue
        if level and entry.level != level:
            continue
        if effective_level and item["effective_level"] != effective_level:
            continue
        if enabled is not None and item["enabled"] != enabled:
            continue
        if tag and tag.lower() not in (t.lower() for t in entry.tags):
            continue
        if kind and entry.kind != kind:
            continue
        if stale is not None and entry.stale != stale:
            continue
        if any(
            v and entry.logsource.get(k, "").lower() != v.lower()
            for k, v in wanted_logsource.items()
        ):
            continue
        items.append(item)
    return {
        "items": items[offset : offset + limit],
        "total": len(items),
        "limit": limit,
        "offset": offset,
    }


@router.get("/v1/rules/status", response_model=RulesStatus, summary="Rule loading status")
def rules_status(
    request: Request, _p: Principal = Depends(require(Permission.RULES_READ))
) -> dict[str, Any]:
    return registry_of(get_runtime(request)).status()


def _entry(request: Request, rule_id: str) -> RuleEntry:
    entry = registry_of(get_runtime(request)).current.entries.get(rule_id) or (
        registry_of(get_runtime(request)).current.entries.get(rule_id.lower())
    )
    if entry is None:
        raise NotFoundError(f"no loaded rule {rule_id!r}")
    return entry


def _detail(request: Request, entry: RuleEntry, setting: RuleSetting | None) -> dict[str, Any]:
    snap = registry_of(get_runtime(request)).current
    failures = [
        f.to_dict() for f in snap.failures if (f.rule_id or "").lower() == entry.rule_id.lower()
    ]
    return {
        **_read(entry, setting),
        "description": entry.description,
        "falsepositives": list(entry.falsepositives),
        "failures": failures,
        "updated_at": setting.updated_at.isoformat() if setting else None,
        "updated_by": setting.updated_by if setting else None,
    }


@router.get("/v1/rules/{rule_id}", response_model=RuleDetail, summary="One rule")
def get_rule(
    request: Request,
    rule_id: str,
    _p: Principal = Depends(require(Permission.RULES_READ)),
    session: Session = Depends(tenant_db),
) -> dict[str, Any]:
    entry = _entry(request, rule_id)
    return _detail(request, entry, service.get_setting(session, rule_id=entry.rule_id))


@router.patch(
    "/v1/rules/{rule_id}",
    response_model=RuleDetail,
    summary="Enable/disable, re-level or set the suppression window of a rule for this tenant",
)
def update_rule(
    request: Request,
    rule_id: str,
    body: RuleUpdateBody,
    principal: Principal = Depends(require(Permission.RULES_WRITE)),
    session: Session = Depends(tenant_db),
) -> dict[str, Any]:
    entry = _entry(request, rule_id)
    changes = body.model_dump(include=body.model_fields_set)
    if "enabled" in changes and changes["enabled"] is None:
        raise InvalidInputError("enabled must be true or false", field="body.enabled")
    if not changes:
        raise InvalidInputError(
            "nothing to change: give enabled, level or suppression_window_s", field="body"
        )
    setting, before = service.update_setting(
        session,
        tenant_id=principal.tenant_id,
        rule_id=entry.rule_id,
        changes=changes,
        actor=principal.actor,
    )
    ledger.append(
        session,
        tenant=principal.tenant_id,
        actor=principal.actor,
        action="rule.update",
        target=f"rule:{entry.rule_id}",
        request_id=REQUEST_ID.get(),
        change={"before": {k: before[k] for k in changes}, "after": changes},
    )
    session.commit()
    return _detail(request, entry, setting)
