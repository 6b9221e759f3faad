"""Tenant isolation in one place.

Every table that belongs to a tenant mixes in :class:`TenantScoped`. A session opened with
:func:`tenant_session` (or whose ``info["tenant_id"]`` is set) sees only that tenant's rows: a
global ``do_orm_execute`` hook adds ``tenant_id = :tenant`` to every ORM SELECT, UPDATE and DELETE
of such a table, and ``before_flush`` stamps (and checks) the tenant on new objects. Views never
filter by tenant by hand; asking for another tenant's object simply finds nothing (404).

Core ``insert()``/``update()`` statements built without the ORM are not rewritten: services that
use them for bulk work pass ``tenant_id`` explicitly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, event
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)

from vigil.errors import VigilError

TENANT_KEY = "tenant_id"
UNSCOPED_KEY = "tenant_unscoped"


class TenantMismatchError(VigilError):
    """An object of one tenant was added to a session scoped to another."""


class TenantScoped:
    """Mixin: a ``tenant_id`` column, indexed; the scope filter applies to subclasses."""

    tenant_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)


def tenant_session(factory: sessionmaker[Session], tenant_id: str) -> Session:
    """A session that sees and writes only ``tenant_id``'s rows."""
    session = factory()
    session.info[TENANT_KEY] = tenant_id
    return session


def system_session(factory: sessionmaker[Session]) -> Session:
    """A session for system work across tenants (workers, migrations, admin CLI)."""
    session = factory()
    session.info[UNSCOPED_KEY] = True
    return session


def scoped_tenant(session: Session) -> str | None:
    value = session.info.get(TENANT_KEY)
    return str(value) if value is not None else None


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get(TENANT_KEY)
    if tenant_id is None:
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent row was already scoped
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant_id = session.info.get(TENANT_KEY)
    if tenant_id is None:
        return
    for obj in session.new:
        if isinstance(obj, TenantScoped):
            current = getattr(obj, "tenant_id", None)
            if current is None:
                obj.tenant_id = tenant_id
            elif current != tenant_id:
                raise TenantMismatchError(
                    f"{type(obj).__name__} of tenant {current} added to a session of {tenant_id}"
                )
