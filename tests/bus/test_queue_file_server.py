"""``queue.db`` through real `vigil serve` processes: ingest answers while another process holds
the service database's write gate (the detection side's), a backlog left in the service
database by a pre-split installation is detected after the upgrade, and a broken queue file
makes readiness (and ingest) 503."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.ingest.conftest import EXAMPLE_RULES
from tests.pipeline.conftest import ENCODED_PS_RULE, encoded_ps_records
from tests.support.identity import bootstrap
from tests.support.server import VigilServer
from vigil.bus.queue import QueueRecord, SqlEventQueue
from vigil.store import create_engine_for, session_factory

NDJSON = {"content-type": "application/x-ndjson"}

#: Holds the main gate (the one the detection worker and correlator write under) until its
#: stdin closes; says "held" once it has it.
HOLDER = """
import sys
from pathlib import Path
from vigil.bus.queue_gate import main_gate_for
with main_gate_for("sqlite://", Path(sys.argv[1])).hold():
    print("held", flush=True)
    sys.stdin.read()
"""


def _detected(home: Path) -> set[str]:
    with sqlite3.connect(home / "vigil.db", timeout=30) as db:
        rows = db.execute(
            "SELECT event_ids FROM detections WHERE rule_id = ?", (ENCODED_PS_RULE,)
        ).fetchall()
    return {orjson.loads(r[0])[0] for r in rows}


def _wait_detected(home: Path, ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _detected(home) != set(ids):
        assert time.monotonic() < deadline, f"detected {len(_detected(home))} of {len(ids)}"
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_ingest_answers_while_another_process_holds_the_main_gate(
    tmp_path: Path, mode: str
) -> None:
    home = tmp_path / "home"
    creds = bootstrap(home)
    env = {"VIGIL_PIPELINE__WORKER_MODE": mode}
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)], env=env).start()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lines, ids = encoded_ps_records(200)
        with server.client(creds.admin_key) as http:
            # answered while the holder still has the gate: ingest does not take it
            r = http.post("/v1/events", content=b"\n".join(lines), headers=NDJSON)
            assert r.status_code == 202 and r.json()["accepted"] == len(ids), r.text
            assert holder.poll() is None
            # detection cannot commit meanwhile: nothing of it is processed yet
            queue = http.get("/health/deep").json()["checks"]["queue"]
            assert queue["depth"] == len(ids) and queue["committed"] == 0, queue
            assert holder.poll() is None
            holder.stdin.close()  # type: ignore[union-attr]
            holder.wait(10)
            _wait_detected(home, ids)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        server.stop()


def test_a_backlog_in_the_service_database_is_detected_after_the_upgrade(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    creds = bootstrap(home)
    # What a pre-split release left behind: accepted records in vigil.db's event_queue.
    engine = create_engine_for(f"sqlite:///{home / 'vigil.db'}")
    lines, ids = encoded_ps_records(300)
    legacy = SqlEventQueue(session_factory(engine))
    records = [QueueRecord(i, b) for i, b in zip(ids, lines, strict=True)]
    published = legacy.publish(creds.tenant_id, records)
    assert published.accepted == len(ids)
    engine.dispose()
    assert not (home / "queue.db").exists()

    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)]).start()
    try:
        _wait_detected(home, ids)
        with server.client(creds.admin_key) as http:
            # the moved ids still make a re-send a duplicate
            r = http.post("/v1/events", content=b"\n".join(lines[:20]), headers=NDJSON)
            assert r.json()["duplicates"] == 20, r.text
    finally:
        server.stop()
    with sqlite3.connect(home / "vigil.db") as db:
        assert db.execute("SELECT count(*) FROM event_queue").fetchone()[0] == 0
    detected = _detected(home)
    assert detected == set(ids)


def test_an_unusable_queue_file_makes_readiness_and_ingest_503(tmp_path: Path) -> None:
    home = tmp_path / "home"
    creds = bootstrap(home)
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)]).start()
    try:
        with server.client(creds.admin_key) as http:
            assert http.get("/health/ready").status_code == 200
            for name in ("queue.db", "queue.db-wal", "queue.db-shm"):
                (home / name).unlink(missing_ok=True)
            ready = http.get("/health/ready")
            assert ready.status_code == 503, ready.text
            assert "queue" in ready.text
            lines, _ = encoded_ps_records(3)
            r = http.post("/v1/events", content=b"\n".join(lines), headers=NDJSON)
            assert r.status_code == 503, r.text
            deep = http.get("/health/deep")
            assert deep.status_code == 503
            assert deep.json()["checks"]["queue"]["ok"] is False
    finally:
        server.stop()
