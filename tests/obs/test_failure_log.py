"""Background loops while what they need is down: the first failure is logged with its
traceback, then one line per back-off step (doubling, capped), then one "recovered" line."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.pipeline.conftest import EXAMPLE_RULES
from vigil.bus.queue import SqlEventQueue
from vigil.obs.failures import FailureLog
from vigil.pipeline.detector import Detector
from vigil.pipeline.rules import RuleRegistry
from vigil.pipeline.worker import DetectionPipeline, DetectionThread, no_sink
from vigil.store import create_engine_for, session_factory
from vigil.store.migrate import upgrade

LOGGER = "vigil.test.failures"


def test_one_traceback_then_one_line_per_backoff_then_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = FailureLog(logging.getLogger(LOGGER), "poller", base_s=1.0, cap_s=30.0)
    outcomes: list[Exception | None] = [ConnectionError("database down")] * 7 + [None, None]

    def step() -> float:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return 0.5

    guarded = failures.guard(step)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        delays = [guarded() for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 0.5]
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 8  # one per failed step and one for the recovery
    assert [r.exc_info is not None for r in records] == [True] + [False] * 7
    assert "ConnectionError: database down" in records[1].getMessage()
    assert records[-1].getMessage() == "poller recovered after 7 failures"
    assert guarded() == 0.5 and len(caplog.records) == len(records)  # healthy: silent


def test_detection_thread_with_failing_storage_logs_one_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    sessions = session_factory(engine)
    registry = RuleRegistry([EXAMPLE_RULES])
    registry.load()
    pipeline = DetectionPipeline(
        sessions=sessions,
        queue=SqlEventQueue(sessions),
        detector=Detector(registry),
        sink=no_sink,
        consumer="detection",
    )
    with engine.begin() as conn:  # every batch now fails in the database
        conn.execute(text("DROP TABLE event_queue"))
    thread = DetectionThread(pipeline, idle_poll_s=0.05)
    thread._failures.base_s = 0.01  # the same policy, faster steps
    with caplog.at_level(logging.INFO, logger="vigil.pipeline"):
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while thread._failures.failures < 5:
                assert time.monotonic() < deadline, "the batches did not fail"
                time.sleep(0.01)
        finally:
            thread.stop()
            engine.dispose()
    failed = [r for r in caplog.records if "detection batch" in r.getMessage()]
    assert len(failed) >= 5
    assert sum(r.exc_info is not None for r in failed) == 1
    assert failed[0].exc_info is not None
    assert thread.last_error is not None and "OperationalError" in thread.last_error
