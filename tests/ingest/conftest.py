"""A real `vigil serve` with the example rules and two tenants, shared by the ingest tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.identity import Credentials, bootstrap, create_key
from tests.support.server import VigilServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_RULES = ROOT / "examples" / "rules"
SAMPLE_EVENTS = ROOT / "examples" / "events" / "sample.jsonl"


@dataclass
class Service:
    server: VigilServer
    acme: Credentials
    other: Credentials
    viewer_key: str

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.server.home / "vigil.db", timeout=30)

    def queue_db(self) -> sqlite3.Connection:
        """The queue's own file (on SQLite ``event_queue`` is not in vigil.db)."""
        return sqlite3.connect(self.server.home / "queue.db", timeout=30)

    def queued(self, tenant_id: str) -> int:
        with self.queue_db() as conn:
            row = conn.execute(
                "SELECT count(*) FROM event_queue WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
        return int(row[0])


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("ingest-home")
    acme = bootstrap(home, tenant="acme")
    other = bootstrap(home, tenant="other")
    viewer = create_key(home, "acme", "viewer")
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)]).start()
    try:
        yield Service(server, acme, other, viewer)
    finally:
        server.stop()
