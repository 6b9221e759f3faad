"""Put a runnable Vigil together: migrate, initialise the ledger, wire every domain onto the
runtime (authentication, workers, health probes). The one place that knows all domains."""

from __future__ import annotations

import logging
from typing import Literal

from vigil.config import Settings
from vigil.runtime import Runtime, build_runtime
from vigil.store import session_scope, upgrade

log = logging.getLogger("vigil.wiring")

Role = Literal["all", "api", "worker"]


def prepare_storage(settings: Settings) -> None:
    """Create the home directory, apply migrations, give the ledger its key (idempotent)."""
    from vigil.ledger import service as ledger
    from vigil.ledger.keys import parse_configured_key
    from vigil.store import create_engine_for, session_factory

    settings.home.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    upgrade(url)
    engine = create_engine_for(url)
    try:
        with session_scope(session_factory(engine)) as session:
            supplied = (
                parse_configured_key(settings.audit_signing_key)
                if settings.audit_signing_key
                else None
            )
            ledger.init_log(
                session, home=settings.home, origin=settings.audit_origin, signing_key=supplied
            )
    finally:
        engine.dispose()


def assemble(settings: Settings, *, role: Role = "all") -> Runtime:
    """A runtime with every domain wired for ``role`` (api: no workers; worker: no HTTP)."""
    from vigil.alerts import wiring as alerts
    from vigil.identity import wiring as identity
    from vigil.incidents import wiring as incidents
    from vigil.ingest import wiring as ingest
    from vigil.ledger import wiring as ledger
    from vigil.metering import wiring as metering
    from vigil.notify import wiring as notify
    from vigil.pipeline import wiring as pipeline

    runtime = build_runtime(settings)
    # Order matters: identity first (authentication), then the path of an event.
    for domain in (identity, metering, ingest, pipeline, alerts, incidents, notify, ledger):
        domain.install(runtime, role=role)
    return runtime
