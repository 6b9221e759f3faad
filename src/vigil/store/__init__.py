"""Storage: the SQLAlchemy declarative base, engines and sessions, Alembic migrations."""

from vigil.store.base import Base
from vigil.store.engine import (
    create_engine_for,
    engine_from_settings,
    session_factory,
    session_scope,
)
from vigil.store.migrate import upgrade

__all__ = [
    "Base",
    "create_engine_for",
    "engine_from_settings",
    "session_factory",
    "session_scope",
    "upgrade",
]
