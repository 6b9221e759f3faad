"""HTTP routes of the notify domain (/v1/notifications): translate HTTP to service calls and back.

Reads need ``notify:read``, changes ``notify:write``. Sessions are tenant-scoped: another
tenant's channel, route or delivery is simply not found (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from vigil.api.deps import get_runtime, require, tenant_db
from vigil.identity.principal import Permission, Principal
from vigil.notify import deliveries, service
from vigil.notify.models import DeliveryKind, DeliveryStatus
from vigil.notify.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelList,
    ChannelRead,
    ChannelUpdate,
    DeadLetterRetry,
    DeliveryPage,
    DeliveryRead,
    RetryResult,
    RouteCreate,
    RouteList,
    RouteRead,
    RouteUpdate,
    SecretRotate,
    SecretRotated,
)
from vigil.notify.wiring import NotifyRuntime, notify_runtime

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])

Reader = Annotated[Principal, Depends(require(Permission.NOTIFY_READ))]
Writer = Annotated[Principal, Depends(require(Permission.NOTIFY_WRITE))]
Db = Annotated[Session, Depends(tenant_db)]
Limit = Annotated[int, Query(ge=1, le=deliveries.MAX_PAGE)]


def _notify(request: Request) -> NotifyRuntime:
    return notify_runtime(get_runtime(request))


Notify = Annotated[NotifyRuntime, Depends(_notify)]


# --- channels -------------------------------------------------------------------------------------


@router.get("/channels", summary="The tenant's notification channels (secrets never shown)")
def list_channels(_p: Reader, session: Db) -> ChannelList:
    return ChannelList(items=service.list_channels(session))


@router.post(
    "/channels",
    status_code=201,
    summary="Create a channel; a generated webhook signing secret is returned only here",
)
def create_channel(
    principal: Writer,
    session: Db,
    notify: Notify,
    data: Annotated[ChannelCreate, Body()],
) -> ChannelCreated:
    out = service.create_channel(session, data=data, principal=principal, box=notify.box())
    session.commit()
    return out


@router.get("/channels/{channel_id}", summary="One channel")
def get_channel(_p: Reader, session: Db, channel_id: str) -> ChannelRead:
    return service.get_channel(session, channel_id=channel_id)


@router.patch("/channels/{channel_id}", summary="Change a channel (secrets are write-only)")
def update_channel(
    principal: Writer, session: Db, notify: Notify, channel_id: str, data: ChannelUpdate
) -> ChannelRead:
    out = service.update_channel(
        session, channel_id=channel_id, data=data, principal=principal, box=notify.box()
    )
    session.commit()
    return out


@router.delete(
    "/channels/{channel_id}",
    status_code=204,
    summary="Delete a channel; its route links go and its unsent deliveries are cancelled",
)
def delete_channel(principal: Writer, session: Db, channel_id: str) -> Response:
    service.delete_channel(session, channel_id=channel_id, principal=principal)
    session.commit()
    return Response(status_code=204)


@router.post(
    "/channels/{channel_id}/rotate-secret",
    summary="Rotate a webhook's signing secret (optionally signing with both for a grace period)",
)
def rotate_secret(
    principal: Writer,
    session: Db,
    notify: Notify,
    channel_id: str,
    data: Annotated[SecretRotate | None, Body()] = None,
) -> SecretRotated:
    out = service.rotate_secret(
        session,
        channel_id=channel_id,
        data=data or SecretRotate(),
        principal=principal,
        box=notify.box(),
    )
    session.commit()
    return out


@router.post("/channels/{channel_id}/circuit/reset", summary="Close a channel's circuit breaker")
def reset_circuit(principal: Writer, session: Db, channel_id: str) -> ChannelRead:
    out = service.reset_circuit(session, channel_id=channel_id, principal=principal)
    session.commit()
    return out


@router.post(
    "/channels/{channel_id}/test",
    summary="Send a test event to the channel now; answers with the logged delivery",
)
def test_channel(principal: Writer, session: Db, notify: Notify, channel_id: str) -> DeliveryRead:
    return notify.engine.send_test(session, channel_id=channel_id, principal=principal)


# --- routes ---------------------------------------------------------------------------------------


@router.get("/routes", summary="The tenant's routing rules")
def list_routes(_p: Reader, session: Db) -> RouteList:
    return RouteList(items=service.list_routes(session))


@router.post("/routes", status_code=201, summary="Create a routing rule")
def create_route(principal: Writer, session: Db, data: RouteCreate) -> RouteRead:
    out = service.create_route(session, data=data, principal=principal)
    session.commit()
    return out


@router.get("/routes/{route_id}", summary="One routing rule")
def get_route(_p: Reader, session: Db, route_id: str) -> RouteRead:
    return service.get_route(session, route_id=route_id)


@router.patch("/routes/{route_id}", summary="Change a routing rule")
def update_route(principal: Writer, session: Db, route_id: str, data: RouteUpdate) -> RouteRead:
    out = service.update_route(session, route_id=route_id, data=data, principal=principal)
    session.commit()
    return out


@router.delete("/routes/{route_id}", status_code=204, summary="Delete a routing rule")
def delete_route(principal: Writer, session: Db, route_id: str) -> Response:
    service.delete_route(session, route_id=route_id, principal=principal)
    session.commit()
    return Response(status_code=204)


# --- delivery log and dead letters ----------------------------------------------------------------


@router.get("/deliveries", summary="The delivery log, newest first, with every attempt")
def list_deliveries(
    _p: Reader,
    session: Db,
    channel_id: str | None = None,
    status: DeliveryStatus | None = None,
    event_id: str | None = None,
    kind: DeliveryKind | None = None,
    since: Annotated[datetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Created before.")] = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> DeliveryPage:
    return deliveries.list_deliveries(
        session,
        channel_id=channel_id,
        status=status,
        event_id=event_id,
        kind=kind,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


@router.get("/deliveries/{delivery_id}", summary="One delivery with its attempts")
def get_delivery(_p: Reader, session: Db, delivery_id: str) -> DeliveryRead:
    return deliveries.get_delivery(session, delivery_id=delivery_id)


@router.get("/dead-letters", summary="Deliveries that used up their attempts, newest first")
def list_dead_letters(
    _p: Reader,
    session: Db,
    channel_id: str | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> DeliveryPage:
    return deliveries.list_deliveries(
        session, channel_id=channel_id, status=DeliveryStatus.DEAD, cursor=cursor, limit=limit
    )


@router.post(
    "/dead-letters/retry",
    summary="Retry dead letters by ids, by channel or all, each with a fresh attempt budget",
)
def retry_dead_letters(
    principal: Writer, session: Db, notify: Notify, data: DeadLetterRetry
) -> RetryResult:
    out = deliveries.retry_dead_letters(session, selection=data, principal=principal)
    session.commit()
    notify.wake_sender()
    return out


@router.post("/dead-letters/{delivery_id}/retry", summary="Retry one dead letter")
def retry_dead_letter(
    principal: Writer, session: Db, notify: Notify, delivery_id: str
) -> DeliveryRead:
    out = deliveries.retry_one(session, delivery_id=delivery_id, principal=principal)
    session.commit()
    notify.wake_sender()
    return out
