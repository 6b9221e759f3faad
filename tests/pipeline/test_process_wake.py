"""The detection child's wake-up (``pipeline.worker_mode=process``): the serving process writes
to a non-blocking pipe, so ingest never waits on the child, even when the child is stopped."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.ingest.conftest import EXAMPLE_RULES
from tests.pipeline.conftest import ENCODED_PS_RULE, sysmon_process
from tests.support.identity import bootstrap
from tests.support.server import VigilServer
from vigil.config import load_settings
from vigil.pipeline.process import DetectionProcess, PipeWake


def test_wakes_never_block_and_one_pending_wake_is_kept(tmp_path: Path) -> None:
    process = DetectionProcess(load_settings(home=tmp_path))  # no child reads the pipe
    for _ in range(200_000):  # far more than a pipe buffer holds: the extra ones are dropped
        process.wake()
    child_end = PipeWake(process._wake_reader)
    assert child_end.is_set() and child_end.wait(0)
    child_end.clear()
    assert not child_end.is_set() and not child_end.wait(0.01)
    process.wake()
    assert child_end.wait(5)
    child_end.clear()
    child_end.set()  # the child's own wake (its stop) ends the wait too
    assert child_end.wait(5)


def _detected(home: Path) -> int:
    with sqlite3.connect(home / "vigil.db", timeout=30) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM detections WHERE rule_id = ?", (ENCODED_PS_RULE,)
            ).fetchone()[0]
        )


def test_ingest_answers_while_the_detection_child_is_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    creds = bootstrap(home)
    env = {"VIGIL_PIPELINE__WORKER_MODE": "process", "VIGIL_PIPELINE__IDLE_POLL_S": "3600"}
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)], env=env).start()
    child_pid: int | None = None
    try:
        with server.client(creds.admin_key) as http:
            deadline = time.monotonic() + 60
            detection: dict[str, object] = {"running": False, "starting": True}
            while not detection["running"] or detection["starting"]:
                assert time.monotonic() < deadline, "the detection child did not start"
                time.sleep(0.1)
                detection = http.get("/health/deep").json()["checks"]["workers"]["detection"]
                child_pid = int(str(detection["pid"]))
            assert child_pid is not None
            os.kill(child_pid, signal.SIGSTOP)
            lines = [sysmon_process(f"powershell.exe -enc QQB{i}", record=i) for i in range(20)]
            for line in lines:  # one publish (one wake) each
                r = http.post(
                    "/v1/events",
                    content=line,
                    headers={"content-type": "application/x-ndjson"},
                    timeout=30,
                )
                assert r.status_code == 202, r.text
            os.kill(child_pid, signal.SIGCONT)  # mypy: narrowed above
            # the idle poll is an hour: only the pending wake gets the child to read
            deadline = time.monotonic() + 60
            while _detected(home) < len(lines):
                assert time.monotonic() < deadline, "the woken child did not detect the events"
                time.sleep(0.2)
    finally:
        if child_pid is not None:
            os.kill(child_pid, signal.SIGCONT)
        server.stop()
    assert _detected(home) == len(lines)
