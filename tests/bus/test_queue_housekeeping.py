"""Queue housekeeping runs in a thread of the serving process (not between detection batches),
in both detection worker modes: processed records past retention leave the queue table."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.identity import bootstrap
from tests.support.server import VigilServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_RULES = ROOT / "examples" / "rules"
SAMPLE_EVENTS = ROOT / "examples" / "events" / "sample.jsonl"


def _queued(home: Path) -> int:
    with sqlite3.connect(home / "queue.db", timeout=30) as db:
        (count,) = db.execute("SELECT count(*) FROM event_queue").fetchone()
    return int(count)


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_processed_records_are_purged_beside_detection(tmp_path: Path, mode: str) -> None:
    home = tmp_path / "home"
    creds = bootstrap(home)
    env = {
        "VIGIL_PIPELINE__WORKER_MODE": mode,
        "VIGIL_PIPELINE__PROCESSED_RETENTION_S": "0",
        "VIGIL_PIPELINE__PURGE_INTERVAL_S": "0.2",
    }
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)], env=env).start()
    try:
        with server.client(creds.admin_key) as http:
            workers = http.get("/health/deep").json()["checks"]["workers"]
            assert workers["queue-housekeeping"]["running"] is True
            body = SAMPLE_EVENTS.read_bytes()
            ndjson = {"content-type": "application/x-ndjson"}
            r = http.post("/v1/events", content=body, headers=ndjson)
            assert r.status_code == 202 and r.json()["accepted"] > 0
            deadline = time.monotonic() + 60
            while not http.get("/v1/alerts").json()["items"]:
                assert time.monotonic() < deadline, "no alert from the sample events"
                time.sleep(0.2)
            while _queued(home):
                assert time.monotonic() < deadline, "processed records were never purged"
                time.sleep(0.2)
            steps = http.get("/health/deep").json()["checks"]["workers"]["queue-housekeeping"]
            assert steps["steps"] > 1 and steps["last_error"] is None
    finally:
        server.stop()
