"""Correlation windows survive a restart of the real server: the example rule (5 failed logons
for one account and address within 5 minutes) fires once for 3 events before a stop and 2 after.

SIGTERM: the detection process writes the correlation snapshot on its way out and the new one
restores it. SIGKILL: nothing is written; the new process replays the stored inputs since the
last snapshot (none here). Either way exactly one correlation detection and one alert.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.pipeline.conftest import (
    EXAMPLE_RULES,
    FAILED_LOGON_RULE,
    MANY_FAILED_LOGONS,
    failed_logon,
)
from tests.support.identity import bootstrap
from tests.support.server import VigilServer

IP = "198.51.100.23"
ENV = {
    # no periodic snapshot: after a SIGKILL only the inputs can bring the three back
    "VIGIL_PIPELINE__CORRELATION_SNAPSHOT_INTERVAL_S": "3600",
    "VIGIL_PIPELINE__IDLE_POLL_S": "0.2",
}


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "vigil.db", timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


def correlated_up_to(home: Path, base_detections: int) -> bool:
    """The detection worker made ``base_detections`` failed-logon detections and the correlator
    has read every input they appended."""
    (made,) = query(home, "SELECT count(*) FROM detections WHERE rule_id = ?", FAILED_LOGON_RULE)[0]
    inputs = query(home, "SELECT max(seq) FROM correlation_inputs")[0][0]
    state = query(home, "SELECT position FROM correlation_state WHERE partition_no = 0")
    return made == base_detections and bool(state) and state[0][0] == inputs


def send(server: VigilServer, key: str, seconds: range) -> None:
    body = b"\n".join(failed_logon("mallory", IP, s) for s in seconds)
    with server.client(key) as http:
        r = http.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202 and r.json()["accepted"] == len(seconds), r.text


def correlation_alerts(server: VigilServer, key: str) -> list[dict[str, Any]]:
    with server.client(key) as http:
        r = http.get("/v1/alerts", params={"rule_id": MANY_FAILED_LOGONS})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_window_spans_a_restart(tmp_path: Path, stop: str) -> None:
    home = tmp_path / "home"
    creds = bootstrap(home)
    args = ["--rules", str(EXAMPLE_RULES)]
    server = VigilServer(home, args=args, env=ENV).start()
    try:
        send(server, creds.admin_key, range(3))
        wait_for(lambda: correlated_up_to(home, 3), "the first three to be correlated")
        assert correlation_alerts(server, creds.admin_key) == []
    finally:
        if stop == "sigterm":
            server.stop()
        else:
            server.kill()
    [(position, snapshot_position, has_snapshot)] = query(
        home,
        "SELECT position, snapshot_position, snapshot IS NOT NULL FROM correlation_state",
    )
    assert position == 3
    # a clean stop wrote the state; a kill left only the inputs
    assert (snapshot_position, has_snapshot) == ((3, 1) if stop == "sigterm" else (0, 0))

    restarted = VigilServer(home, args=args, env=ENV).start()
    try:
        send(restarted, creds.admin_key, range(3, 5))
        wait_for(lambda: correlated_up_to(home, 5), "the last two to be correlated")
        [alert] = wait_for(lambda: correlation_alerts(restarted, creds.admin_key), "the alert")
        assert alert["severity"] == "high" and alert["count"] == 1
        assert alert["entity_fields"] == {"IpAddress": IP, "TargetUserName": "mallory"}
    finally:
        restarted.stop()
    rows = query(home, "SELECT event_ids FROM detections WHERE kind = 'correlation'")
    assert len(rows) == 1
    assert len(orjson.loads(rows[0][0])) == 5  # all five events
