"""Health endpoints and ``/metrics``; unauthenticated by design (probes and scrapers).

``/health/live`` never touches a dependency (a database outage must not get replicas
restarted); ``/health/ready`` answers 503 with ``Retry-After`` and ``down`` naming each unusable
dependency and why. ``/health/deep`` reveals internals (queue depth, worker errors), so it needs
``queue:read``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vigil.api.deps import get_runtime, require
from vigil.api.problems import OUTAGE_RETRY_AFTER_S
from vigil.identity.principal import Permission, Principal
from vigil.obs import health
from vigil.obs.metrics import REGISTRY

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="The process is up")
def live() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/health/ready", summary="Storage and queue are usable (503 otherwise)")
def ready(request: Request) -> Response:
    ok, checks = health.readiness(get_runtime(request))
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    headers = {"Cache-Control": "no-store"}
    if not ok:
        body["down"] = health.down(checks)
        headers["Retry-After"] = str(OUTAGE_RETRY_AFTER_S)
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


@router.get("/health/deep", summary="Storage, queue depth and lag, rule engine, disk, workers")
def deep(request: Request, _p: Principal = Depends(require(Permission.QUEUE_READ))) -> Response:
    ok, checks = health.deep(get_runtime(request))
    body: dict[str, Any] = {"status": "ok" if ok else "degraded", "checks": checks}
    if not ok:
        body["down"] = health.down(checks)
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
