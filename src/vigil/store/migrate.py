"""Apply the Alembic migrations programmatically (no alembic.ini needed).

All domains share one linear revision history in ``vigil/store/migrations/versions``; name new
files ``NNNN_<domain>_<change>.py`` and set ``down_revision`` to the previous head. Domains whose
tables should be visible to ``alembic revision --autogenerate`` add their models module to
:data:`MODEL_MODULES`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

MODEL_MODULES: list[str] = [
    "vigil.ledger.models",
    "vigil.identity.models",
    "vigil.bus.models",
    "vigil.bus.queue_models",
    "vigil.pipeline.models",
    "vigil.alerts.models",
    "vigil.incidents.models",
    "vigil.notify.models",
    "vigil.metering.models",
]
"""Modules that define tables; imported so ``Base.metadata`` is complete for autogenerate."""


def import_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)


def alembic_config(database_url: str, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` up to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current_heads(database_url: str) -> list[str]:
    from alembic.runtime.migration import MigrationContext

    from vigil.store.engine import create_engine_for

    engine = create_engine_for(database_url)
    try:
        with engine.connect() as conn:
            return list(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision the code knows (what ``upgrade`` brings a database to)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must form one line; heads are {heads}")
    return str(heads[0])
