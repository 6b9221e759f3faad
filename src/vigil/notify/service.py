"""Channels and routing rules: create, read, change, delete (tenant-scoped sessions).

Every change is an audit ledger entry in the same transaction; the caller (a view) commits.
Secrets are sealed with the runtime's :class:`~vigil.notify.secretbox.SecretBox` and never leave
this module in a read model.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.errors import ConflictError, InvalidInputError, NotFoundError
from vigil.identity.principal import Principal
from vigil.ledger import service as ledger
from vigil.notify import signing
from vigil.notify.channels.registry import SPECS, literal_refusal
from vigil.notify.models import (
    ChannelType,
    CircuitState,
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationRoute,
    NotificationRouteChannel,
)
from vigil.notify.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelRead,
    ChannelUpdate,
    CircuitRead,
    RouteCreate,
    RouteRead,
    RouteUpdate,
    SecretRotate,
    SecretRotated,
)
from vigil.notify.secretbox import SecretBox
from vigil.obs.logging import REQUEST_ID


def _now() -> datetime:
    return datetime.now(UTC)


def _audit(
    session: Session,
    principal: Principal,
    action: str,
    target: str,
    change: dict[str, Any] | None = None,
) -> None:
    ledger.append(
        session,
        tenant=principal.tenant_id,
        actor=principal.actor,
        action=action,
        target=target,
        request_id=REQUEST_ID.get(),
        change=change,
    )


def _validated(model: type[BaseModel], data: Any, field: str) -> BaseModel:
    """``model`` from ``data``, or :class:`InvalidInputError` naming the field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in (field, *first["loc"]))
        raise InvalidInputError(first["msg"], field=path) from exc


def _check_destinations(kind: ChannelType, config: dict[str, Any], secrets: dict[str, Any]) -> None:
    checks = {
        ChannelType.WEBHOOK: ("body.config.url", config.get("url")),
        ChannelType.SLACK: ("body.secrets.url", secrets.get("url")),
        ChannelType.EMAIL: ("body.config.host", config.get("host")),
    }
    field, value = checks[kind]
    if isinstance(value, str):
        reason = literal_refusal(value)
        if reason:
            raise InvalidInputError(f"destination refused: {reason}", field=field)


# --- channels -------------------------------------------------------------------------------------


def channel_read(row: NotificationChannel) -> ChannelRead:
    return ChannelRead(
        id=row.id,
        name=row.name,
        type=ChannelType(row.type),
        enabled=row.enabled,
        description=row.description,
        config=dict(row.config),
        secrets_set=sorted(row.secrets_set),
        secret_rotated_at=row.secret_rotated_at,
        circuit=CircuitRead(
            state=CircuitState(row.circuit_state),
            consecutive_failures=row.circuit_failures,
            opened_at=row.circuit_opened_at,
            retry_at=row.circuit_retry_at,
        ),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _public_change(row: NotificationChannel) -> dict[str, Any]:
    """What the audit log records of a channel: everything but the secret values."""
    return {
        "name": row.name,
        "type": row.type,
        "enabled": row.enabled,
        "config": row.config,
        "secrets_set": sorted(row.secrets_set),
    }


def get_channel_row(session: Session, *, channel_id: str) -> NotificationChannel:
    row = session.scalars(
        select(NotificationChannel).where(NotificationChannel.id == channel_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"notification channel {channel_id} not found")
    return row


def get_channel(session: Session, *, channel_id: str) -> ChannelRead:
    return channel_read(get_channel_row(session, channel_id=channel_id))


def list_channels(session: Session) -> list[ChannelRead]:
    rows = session.scalars(select(NotificationChannel).order_by(NotificationChannel.name)).all()
    return [channel_read(r) for r in rows]


def _check_name_free(
    session: Session, model: type[NotificationChannel] | type[NotificationRoute], name: str
) -> None:
    taken = session.scalars(select(model.id).where(model.name == name)).first()
    if taken is not None:
        raise ConflictError(f"name {name!r} is already used")


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"{what} conflicts with an existing one") from exc


def _clean_secrets(secrets: BaseModel) -> dict[str, Any]:
    return {k: v for k, v in secrets.model_dump().items() if v is not None}


def create_channel(
    session: Session, *, data: ChannelCreate, principal: Principal, box: SecretBox
) -> ChannelCreated:
    spec = SPECS[data.type]
    config = data.config.model_dump(mode="json")
    secrets = _clean_secrets(data.secrets)
    generated: str | None = None
    if data.type is ChannelType.WEBHOOK and "signing_secret" not in secrets:
        generated = secrets["signing_secret"] = signing.generate_secret()
    missing = spec.required_secrets - secrets.keys()
    if missing:
        name = sorted(missing)[0]
        raise InvalidInputError(f"{name} is required", field=f"body.secrets.{name}")
    _check_destinations(data.type, config, secrets)
    _check_name_free(session, NotificationChannel, data.name)
    now = _now()
    row = NotificationChannel(
        id=str(uuid.uuid4()),
        tenant_id=principal.tenant_id,
        name=data.name,
        type=data.type.value,
        enabled=data.enabled,
        description=data.description,
        config=config,
        secrets=box.seal(secrets),
        secrets_set=sorted(secrets),
        secret_rotated_at=now if data.type is ChannelType.WEBHOOK else None,
        created_by=principal.actor,
        created_at=now,
        updated_at=now,
        circuit_state=CircuitState.CLOSED.value,
        circuit_failures=0,
    )
    session.add(row)
    _flush(session, "channel")
    _audit(session, principal, "notify.channel.create", f"channel:{row.id}", _public_change(row))
    return ChannelCreated(**channel_read(row).model_dump(), signing_secret=generated)


def update_channel(
    session: Session,
    *,
    channel_id: str,
    data: ChannelUpdate,
    principal: Principal,
    box: SecretBox,
) -> ChannelRead:
    row = get_channel_row(session, channel_id=channel_id)
    spec = SPECS[ChannelType(row.type)]
    changed: list[str] = []
    if data.name is not None and data.name != row.name:
        _check_name_free(session, NotificationChannel, data.name)
        row.name = data.name
        changed.append("name")
    if "description" in data.model_fields_set:
        row.description = data.description
        changed.append("description")
    if data.enabled is not None and data.enabled != row.enabled:
        row.enabled = data.enabled
        changed.append("enabled")
    secrets = box.open(row.secrets) if data.secrets is not None else None
    if data.config is not None:
        row.config = _validated(spec.config_model, data.config, "body.config").model_dump(
            mode="json"
        )
        changed.append("config")
    if data.secrets is not None and secrets is not None:
        managed = spec.managed_secrets & data.secrets.keys()
        if managed:
            name = sorted(managed)[0]
            raise InvalidInputError(
                "change it with POST .../rotate-secret", field=f"body.secrets.{name}"
            )
        given = _validated(spec.secrets_model, data.secrets, "body.secrets")
        for key in data.secrets:
            value = getattr(given, key)
            if value is None:
                secrets.pop(key, None)
            else:
                secrets[key] = value
        missing = spec.required_secrets - secrets.keys()
        if missing:
            name = sorted(missing)[0]
            raise InvalidInputError(f"{name} cannot be removed", field=f"body.secrets.{name}")
        row.secrets = box.seal(secrets)
        row.secrets_set = sorted(secrets)
        changed.append("secrets")
    _check_destinations(ChannelType(row.type), row.config, secrets or {})
    if changed:
        row.updated_at = _now()
        _flush(session, "channel")
        change = {**_public_change(row), "changed": changed}
        _audit(session, principal, "notify.channel.update", f"channel:{row.id}", change)
    return channel_read(row)


def delete_channel(session: Session, *, channel_id: str, principal: Principal) -> None:
    """Delete a channel; its route links go with it and its unsent deliveries are cancelled."""
    row = get_channel_row(session, channel_id=channel_id)
    now = _now()
    cancelled = session.execute(
        update(NotificationDelivery)
        .where(
            NotificationDelivery.channel_id == row.id,
            NotificationDelivery.status.in_(
                [DeliveryStatus.PENDING.value, DeliveryStatus.DEAD.value]
            ),
        )
        .values(status=DeliveryStatus.CANCELLED.value, updated_at=now, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.execute(
        delete(NotificationRouteChannel).where(NotificationRouteChannel.channel_id == row.id)
    )
    change = {**_public_change(row), "cancelled_deliveries": cancelled}
    session.delete(row)
    session.flush()
    _audit(session, principal, "notify.channel.delete", f"channel:{channel_id}", change)


def rotate_secret(
    session: Session,
    *,
    channel_id: str,
    data: SecretRotate,
    principal: Principal,
    box: SecretBox,
) -> SecretRotated:
    row = get_channel_row(session, channel_id=channel_id)
    if row.type != ChannelType.WEBHOOK.value:
        raise InvalidInputError("only webhook channels have a signing secret", field="path.id")
    secrets = box.open(row.secrets)
    new = data.signing_secret or signing.generate_secret()
    now = _now()
    until: datetime | None = None
    previous = secrets.get("signing_secret")
    if data.grace_s > 0 and isinstance(previous, str):
        until = now + timedelta(seconds=data.grace_s)
        secrets["previous_signing_secret"] = previous
        secrets["previous_valid_until"] = until.timestamp()
    else:
        secrets.pop("previous_signing_secret", None)
        secrets.pop("previous_valid_until", None)
    secrets["signing_secret"] = new
    row.secrets = box.seal(secrets)
    row.secrets_set = sorted(k for k in secrets if k != "previous_valid_until")
    row.secret_rotated_at = now
    row.updated_at = now
    session.flush()
    _audit(
        session,
        principal,
        "notify.channel.rotate_secret",
        f"channel:{row.id}",
        {"grace_s": data.grace_s, "generated": data.signing_secret is None},
    )
    return SecretRotated(
        signing_secret=None if data.signing_secret else new, previous_valid_until=until
    )


def reset_circuit(session: Session, *, channel_id: str, principal: Principal) -> ChannelRead:
    """Close a channel's circuit by hand (the receiver is known to be back)."""
    row = get_channel_row(session, channel_id=channel_id)
    before = row.circuit_state
    row.circuit_state = CircuitState.CLOSED.value
    row.circuit_failures = 0
    row.circuit_opened_at = None
    row.circuit_retry_at = None
    session.flush()
    _audit(
        session,
        principal,
        "notify.channel.reset_circuit",
        f"channel:{row.id}",
        {"from": before},
    )
    return channel_read(row)


# --- routes ---------------------------------------------------------------------------------------


def _route_channels(session: Session, route_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {rid: [] for rid in route_ids}
    if not route_ids:
        return out
    rows = session.execute(
        select(NotificationRouteChannel.route_id, NotificationRouteChannel.channel_id)
        .where(NotificationRouteChannel.route_id.in_(list(route_ids)))
        .order_by(NotificationRouteChannel.channel_id)
    ).all()
    for rid, cid in rows:
        out[rid].append(cid)
    return out


def _route_read(row: NotificationRoute, channel_ids: list[str]) -> RouteRead:
    return RouteRead(
        id=row.id,
        name=row.name,
        description=row.description,
        enabled=row.enabled,
        min_severity=row.min_severity,  # type: ignore[arg-type]
        tags=list(row.tags),
        event_types=list(row.event_types),
        channel_ids=channel_ids,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _normalise_tags(tags: Sequence[str]) -> list[str]:
    return sorted({t.lower() for t in tags})


def _check_channels(session: Session, channel_ids: Sequence[str]) -> list[str]:
    """The ids, deduplicated, after checking each is a channel of the caller's tenant."""
    wanted = list(dict.fromkeys(channel_ids))
    found = set(
        session.scalars(select(NotificationChannel.id).where(NotificationChannel.id.in_(wanted)))
    )
    for i, cid in enumerate(channel_ids):
        if cid not in found:
            raise InvalidInputError(f"no channel {cid}", field=f"body.channel_ids[{i}]")
    return wanted


def _set_route_channels(session: Session, route_id: str, channel_ids: list[str]) -> None:
    session.execute(
        delete(NotificationRouteChannel).where(NotificationRouteChannel.route_id == route_id)
    )
    session.execute(
        insert(NotificationRouteChannel),
        [{"route_id": route_id, "channel_id": cid} for cid in channel_ids],
    )


def get_route_row(session: Session, *, route_id: str) -> NotificationRoute:
    row = session.scalars(
        select(NotificationRoute).where(NotificationRoute.id == route_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"notification route {route_id} not found")
    return row


def get_route(session: Session, *, route_id: str) -> RouteRead:
    row = get_route_row(session, route_id=route_id)
    return _route_read(row, _route_channels(session, [row.id])[row.id])


def list_routes(session: Session) -> list[RouteRead]:
    rows = session.scalars(select(NotificationRoute).order_by(NotificationRoute.name)).all()
    links = _route_channels(session, [r.id for r in rows])
    return [_route_read(r, links[r.id]) for r in rows]


def _route_change(route: RouteRead) -> dict[str, Any]:
    return route.model_dump(mode="json", exclude={"created_at", "updated_at", "created_by"})


def create_route(session: Session, *, data: RouteCreate, principal: Principal) -> RouteRead:
    channel_ids = _check_channels(session, data.channel_ids)
    _check_name_free(session, NotificationRoute, data.name)
    now = _now()
    row = NotificationRoute(
        id=str(uuid.uuid4()),
        tenant_id=principal.tenant_id,
        name=data.name,
        description=data.description,
        enabled=data.enabled,
        min_severity=data.min_severity.value if data.min_severity else None,
        tags=_normalise_tags(data.tags),
        event_types=sorted(set(data.event_types)),
        created_by=principal.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    _flush(session, "route")
    _set_route_channels(session, row.id, channel_ids)
    out = _route_read(row, sorted(channel_ids))
    _audit(session, principal, "notify.route.create", f"route:{row.id}", _route_change(out))
    return out


def update_route(
    session: Session, *, route_id: str, data: RouteUpdate, principal: Principal
) -> RouteRead:
    row = get_route_row(session, route_id=route_id)
    fields = data.model_fields_set
    if data.name is not None and data.name != row.name:
        _check_name_free(session, NotificationRoute, data.name)
        row.name = data.name
    if "description" in fields:
        row.description = data.description
    if data.enabled is not None:
        row.enabled = data.enabled
    if "min_severity" in fields:
        row.min_severity = data.min_severity.value if data.min_severity else None
    if data.tags is not None:
        row.tags = _normalise_tags(data.tags)
    if data.event_types is not None:
        row.event_types = sorted(set(data.event_types))
    if data.channel_ids is not None:
        _set_route_channels(session, row.id, _check_channels(session, data.channel_ids))
    row.updated_at = _now()
    _flush(session, "route")
    out = _route_read(row, _route_channels(session, [row.id])[row.id])
    change = {**_route_change(out), "changed": sorted(fields)}
    _audit(session, principal, "notify.route.update", f"route:{row.id}", change)
    return out


def delete_route(session: Session, *, route_id: str, principal: Principal) -> None:
    row = get_route_row(session, route_id=route_id)
    before = _route_read(row, _route_channels(session, [row.id])[row.id])
    session.execute(
        delete(NotificationRouteChannel).where(NotificationRouteChannel.route_id == row.id)
    )
    session.delete(row)
    session.flush()
    _audit(session, principal, "notify.route.delete", f"route:{route_id}", _route_change(before))
