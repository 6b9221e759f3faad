"""Tenant scoping happens in one place: a scoped session never sees or writes another tenant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Integer, String, delete, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from vigil.store import create_engine_for
from vigil.store.tenancy import (
    TenantMismatchError,
    TenantScoped,
    system_session,
    tenant_session,
)


class _Base(DeclarativeBase):
    pass


class Note(TenantScoped, _Base):
    __tablename__ = "tenancy_test_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker]:  # type: ignore[type-arg]
    engine: Engine = create_engine_for(database_url)
    _Base.metadata.create_all(engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with system_session(sessions) as s:
        s.add_all(
            [
                Note(id=1, tenant_id="a", text="a1"),
                Note(id=2, tenant_id="a", text="a2"),
                Note(id=3, tenant_id="b", text="b1"),
            ]
        )
        s.commit()
    yield sessions
    engine.dispose()


def test_select_get_and_count_see_only_own_tenant(factory: sessionmaker) -> None:  # type: ignore[type-arg]
    with tenant_session(factory, "a") as s:
        assert sorted(n.text for n in s.scalars(select(Note))) == ["a1", "a2"]
        assert s.get(Note, 3) is None
        assert s.scalar(select(func.count()).select_from(Note)) == 2
        assert s.scalars(select(Note).where(Note.text == "b1")).first() is None
    with tenant_session(factory, "b") as s:
        assert [n.text for n in s.scalars(select(Note))] == ["b1"]


def test_orm_update_and_delete_cannot_touch_other_tenant(factory: sessionmaker) -> None:  # type: ignore[type-arg]
    with tenant_session(factory, "b") as s:
        s.execute(update(Note).values(text="hacked"))
        s.execute(delete(Note).where(Note.id == 1))
        s.commit()
    with system_session(factory) as s:
        rows = {n.id: (n.tenant_id, n.text) for n in s.scalars(select(Note))}
    assert rows == {1: ("a", "a1"), 2: ("a", "a2"), 3: ("b", "hacked")}


def test_new_objects_are_stamped_and_foreign_ones_refused(factory: sessionmaker) -> None:  # type: ignore[type-arg]
    with tenant_session(factory, "a") as s:
        s.add(Note(id=10, text="stamped"))
        s.commit()
        assert s.get(Note, 10) is not None
    with system_session(factory) as s:
        assert s.get(Note, 10).tenant_id == "a"  # type: ignore[union-attr]
    with tenant_session(factory, "a") as s:
        s.add(Note(id=11, tenant_id="b", text="smuggled"))
        with pytest.raises(TenantMismatchError):
            s.flush()


def test_system_session_sees_everything(factory: sessionmaker) -> None:  # type: ignore[type-arg]
    with system_session(factory) as s:
        assert s.scalar(select(func.count()).select_from(Note)) == 3
