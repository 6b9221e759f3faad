"""Ledger fixtures: a migrated database (SQLite and PostgreSQL) with an initialised log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vigil.ledger import service
from vigil.ledger.schemas import AuditEntryCreate
from vigil.store import session_factory, session_scope

ORIGIN = "test.vigil.local/audit"


@dataclass
class Ledger:
    factory: sessionmaker[Session]
    home: Path

    def add(self, count: int, *, start: int = 0, tenant: str = "acme") -> None:
        items = [
            AuditEntryCreate(
                tenant=tenant,
                actor=f"user:{i % 3}",
                action="rule.update",
                target=f"rule:{start + i}",
                request_id=f"req-{start + i}",
                change={"n": start + i},
            )
            for i in range(count)
        ]
        with session_scope(self.factory) as s:
            service.append_many(s, entries=items)

    def sign(self) -> str:
        with session_scope(self.factory) as s:
            return service.sign_checkpoint(s, home=self.home).note


@pytest.fixture
def ledger(db_engine: Engine, tmp_path: Path) -> Ledger:
    home = tmp_path / "home"
    factory = session_factory(db_engine)
    with session_scope(factory) as s:
        service.init_log(s, home=home, origin=ORIGIN)
    return Ledger(factory, home)
