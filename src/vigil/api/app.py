"""The FastAPI application factory.

``create_app(runtime)`` builds the app around an existing :class:`vigil.runtime.Runtime`; the
lifespan starts and stops the runtime's background workers. Routers come from the domains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vigil import __version__
from vigil.api import openapi, problems
from vigil.api.middleware import RequestContextMiddleware
from vigil.runtime import Runtime

API_DESCRIPTION = """\
Vigil's HTTP API. Authenticate with `Authorization: Bearer <API key or access token>`.
Errors are RFC 9457 problem documents (`application/problem+json`) naming the field at fault.
"""


def _routers() -> list[tuple[str, object]]:
    from vigil.alerts.views import router as alerts
    from vigil.bus.views import router as queue
    from vigil.identity.views import router as identity
    from vigil.incidents.views import router as incidents
    from vigil.ingest.views import router as ingest
    from vigil.ledger.views import router as ledger
    from vigil.metering.views import router as metering
    from vigil.notify.views import router as notify
    from vigil.obs.views import router as obs
    from vigil.pipeline.views import router as pipeline

    return [
        ("obs", obs),
        ("identity", identity),
        ("ingest", ingest),
        ("queue", queue),
        ("pipeline", pipeline),
        ("alerts", alerts),
        ("incidents", incidents),
        ("notify", notify),
        ("ledger", ledger),
        ("metering", metering),
    ]


def create_health_app(runtime: Runtime) -> FastAPI:
    """What a `vigil worker` process serves: health checks and metrics only; the lifespan
    starts and stops the runtime's workers."""
    from vigil.obs.views import router as obs

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start_workers()
        try:
            yield
        finally:
            runtime.stop_workers()

    app = FastAPI(title="Vigil worker", version=__version__, lifespan=lifespan, openapi_url=None)
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(obs)
    app.add_middleware(problems.UnavailableMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app


def create_app(runtime: Runtime, *, manage_workers: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_workers:
            runtime.start_workers()
        try:
            yield
        finally:
            if manage_workers:
                runtime.stop_workers()

    app = FastAPI(
        title="Vigil",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    problems.install(app)
    for _name, router in _routers():
        app.include_router(router)  # type: ignore[arg-type]
    openapi.install(app)
    # Domains add ASGI middleware through the runtime (identity: rate limits, usage metering);
    # outages they run into become 503s (they run before routing, outside the exception
    # handlers); the request-context middleware is added last so it wraps everything and logs
    # the status the client got.
    for middleware in runtime.extras.get("asgi_middleware", []):
        app.add_middleware(middleware)
    app.add_middleware(problems.UnavailableMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app
