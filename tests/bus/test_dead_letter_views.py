"""``/v1/queue/dead-letters`` on the real server with the real Redis: tenant-scoped lists with
paging, replay back onto the stream (same identity), 404 across tenants, permissions, the
ledger entries of burials and replays; and the embedded SQL queue, which never dead-letters.

The server runs as an API replica (no workers), so nothing consumes the stream but the test's
own reader, which fails records until the queue buries them, exactly as a worker would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy.orm import Session

from tests.scaleout.cluster import REDIS_URL, StreamNames
from tests.support.identity import Credentials, bootstrap, create_key
from tests.support.server import VigilServer
from vigil.bus.queue import QueuedEvent
from vigil.bus.redis_config import RedisQueueSettings
from vigil.bus.redis_queue import RedisStreamsQueue
from vigil.config import load_settings
from vigil.store import create_engine_for, session_factory
from vigil.store.tenancy import system_session

PROBLEM = "application/problem+json"
POISON = "ValueError: poison record"

ACME_RECORDS = [
    {"event_id": "dl-1", "message": "first", "n": 1},
    {"event_id": "dl-2", "message": "second", "n": 2},
    {"message": "third, without an id", "n": 3},
]
GLOBEX_RECORDS = [{"event_id": "dl-1", "message": "globex's own", "n": 1}]


@dataclass
class Setup:
    server: VigilServer
    acme: Credentials
    globex: Credentials
    names: StreamNames
    reader: RedisStreamsQueue

    def read_all(self) -> list[QueuedEvent]:
        return self.reader.read(_NO_SESSION, consumer="detection", limit=100)


_NO_SESSION: Any = None


def _bury_everything(setup: Setup, home: Path) -> None:
    """Read every record, fail it, and read again once it is idle: the take-over finds it past
    ``max_deliveries`` and buries it (with the ledger entry, through a real session)."""
    batch = setup.read_all()
    assert len(batch) == len(ACME_RECORDS) + len(GLOBEX_RECORDS)
    setup.reader.failed(consumer="detection", batch=batch, error=POISON)
    engine = create_engine_for(load_settings(home=home).resolved_database_url())
    try:
        session: Session = system_session(session_factory(engine))
        try:
            time.sleep(0.2)  # past claim_idle_s
            assert setup.reader.read(session, consumer="detection", limit=100) == []
        finally:
            session.rollback()
            session.close()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (scripts/services-up starts it)")
    finally:
        client.close()
    names = StreamNames()
    home = tmp_path_factory.mktemp("dead-letters") / "home"
    env = names.env()
    acme = bootstrap(home, tenant="acme", env=env)
    globex = bootstrap(home, tenant="globex", env=env)
    server = VigilServer(home=home, args=["--role", "api"], env=env).start()
    settings = RedisQueueSettings(
        stream=names.stream,
        dead_letter_stream=f"{names.prefix}:events:dead",
        block_ms=10,
        max_deliveries=1,
        claim_idle_s=0.1,
        claim_interval_s=0.01,
    )
    reader = RedisStreamsQueue(REDIS_URL, settings, name="test-worker")
    try:
        for creds, records in ((acme, ACME_RECORDS), (globex, GLOBEX_RECORDS)):
            with server.client(creds.admin_key) as http:
                r = http.post("/v1/events", json=records)
                assert r.status_code == 202, r.text
        setup = Setup(server, acme, globex, names, reader)
        _bury_everything(setup, home)
        yield setup
    finally:
        reader.close()
        server.stop()
        names.cleanup()


def _letters(setup: Setup, key: str, **params: Any) -> dict[str, Any]:
    with setup.server.client(key) as http:
        r = http.get("/v1/queue/dead-letters", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def _audit(setup: Setup, key: str, action: str) -> list[dict[str, Any]]:
    with setup.server.client(key) as http:
        r = http.get("/v1/audit/entries", params={"action": action, "limit": 1000})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_each_tenant_lists_only_its_own_dead_letters(setup: Setup) -> None:
    acme = _letters(setup, setup.acme.admin_key)
    assert acme["dead_lettering"] is True
    assert [d["record"] for d in acme["items"]] == ACME_RECORDS
    assert [d["event_id"] for d in acme["items"]] == ["dl-1", "dl-2", None]
    for letter in acme["items"]:
        assert letter["error"] == POISON
        assert letter["attempts"] == 1
        assert letter["consumer"] == "test-worker"
        assert letter["dead_at"] >= letter["accepted_at"]
    globex = _letters(setup, setup.globex.admin_key)
    assert [d["record"] for d in globex["items"]] == GLOBEX_RECORDS
    assert not {d["id"] for d in globex["items"]} & {d["id"] for d in acme["items"]}


def test_dead_letters_are_paged_by_id(setup: Setup) -> None:
    whole = _letters(setup, setup.acme.admin_key)["items"]
    first = _letters(setup, setup.acme.admin_key, limit=2)
    assert [d["id"] for d in first["items"]] == [d["id"] for d in whole[:2]]
    assert first["next_after"] == whole[1]["id"]
    rest = _letters(setup, setup.acme.admin_key, limit=2, after=first["next_after"])
    assert [d["id"] for d in rest["items"]] == [d["id"] for d in whole[2:]]
    assert rest["next_after"] is None
    with setup.server.client(setup.acme.admin_key) as http:
        bad = http.get("/v1/queue/dead-letters", params={"after": "not-an-id"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.after"


def test_burials_are_in_the_ledger_of_the_records_tenant(setup: Setup) -> None:
    letters = _letters(setup, setup.acme.admin_key)["items"]
    entries = _audit(setup, setup.acme.admin_key, "queue.dead_letter")
    assert {e["target"] for e in entries} == {f"dead-letter:{d['id']}" for d in letters}
    assert {e["actor"] for e in entries} == {"system:queue"}
    assert {e["tenant"] for e in entries} == {setup.acme.tenant_id}


def test_another_tenants_or_an_unknown_id_is_not_found(setup: Setup) -> None:
    theirs = _letters(setup, setup.globex.admin_key)["items"][0]["id"]
    with setup.server.client(setup.acme.admin_key) as http:
        for dead_id in (theirs, "1-1", "nope"):
            r = http.post(f"/v1/queue/dead-letters/{dead_id}/replay")
            assert r.status_code == 404, r.text
            assert r.headers["content-type"] == PROBLEM
    assert theirs in {d["id"] for d in _letters(setup, setup.globex.admin_key)["items"]}


def test_permissions(setup: Setup) -> None:
    viewer = create_key(setup.server.home, setup.acme.tenant_name, "viewer")
    security = create_key(setup.server.home, setup.acme.tenant_name, "security")
    some_id = _letters(setup, setup.acme.admin_key)["items"][0]["id"]
    with setup.server.client(viewer) as http:
        assert http.get("/v1/queue/dead-letters").status_code == 403
        assert http.post(f"/v1/queue/dead-letters/{some_id}/replay").status_code == 403
    with setup.server.client(security) as http:
        assert http.get("/v1/queue/dead-letters").status_code == 200
        assert http.post(f"/v1/queue/dead-letters/{some_id}/replay").status_code == 403
    with setup.server.client() as http:
        assert http.get("/v1/queue/dead-letters").status_code == 401


def test_replay_puts_the_record_back_with_its_identity(setup: Setup) -> None:
    letters = _letters(setup, setup.globex.admin_key)["items"]
    (letter,) = letters
    with setup.server.client(setup.globex.admin_key) as http:
        r = http.post(f"/v1/queue/dead-letters/{letter['id']}/replay")
        assert r.status_code == 200, r.text
        answer = r.json()
        # It is no longer a dead letter: a second replay finds nothing (and adds nothing).
        again = http.post(f"/v1/queue/dead-letters/{letter['id']}/replay")
        assert again.status_code == 404, again.text
    assert answer["id"] == letter["id"] and answer["event_id"] == "dl-1"
    assert _letters(setup, setup.globex.admin_key)["items"] == []
    (back,) = setup.read_all()
    assert back.tenant_id == setup.globex.tenant_id
    assert back.event_id == "dl-1"
    assert orjson.loads(back.payload) == GLOBEX_RECORDS[0]
    assert getattr(back, "stream_id", None) == answer["replayed_as"]
    setup.reader.acknowledged(consumer="detection", batch=[back])
    (entry,) = _audit(setup, setup.globex.admin_key, "queue.dead_letter.replay")
    assert entry["target"] == f"dead-letter:{letter['id']}"
    assert entry["actor"].startswith("key:")
    # acme's records were not touched
    assert len(_letters(setup, setup.acme.admin_key)["items"]) == len(ACME_RECORDS)


def test_the_embedded_sql_queue_has_no_dead_letters(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("sql-queue") / "home"
    creds = bootstrap(home)
    server = VigilServer(home=home).start()
    try:
        with server.client(creds.admin_key) as http:
            r = http.get("/v1/queue/dead-letters")
            assert r.status_code == 200, r.text
            assert r.json() == {
                "items": [],
                "next_after": None,
                "limit": 50,
                "dead_lettering": False,
            }
            replay = http.post("/v1/queue/dead-letters/1-1/replay")
            assert replay.status_code == 404
            assert replay.headers["content-type"] == PROBLEM
    finally:
        server.stop()
