"""``LoopWorker`` (every background loop of the service: escalation, usage flush, rule reload,
audit checkpoints) while its step keeps failing: one traceback, then one line per back-off step
with a doubling delay, and one "recovered" line; ``status()`` carries the last error."""

from __future__ import annotations

import logging
import threading

import pytest

from vigil.runtime import LoopWorker


def test_failing_loop_backs_off_logs_one_traceback_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[Exception | None] = [ConnectionError("database down")] * 4 + [None]
    errors_seen: list[str | None] = []
    done = threading.Event()
    worker: LoopWorker

    def step() -> float:
        errors_seen.append(worker.last_error)
        if not outcomes:
            done.set()
            return 60.0
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return 0.0

    worker = LoopWorker("flaky-loop", step, error_backoff=0.01)
    with caplog.at_level(logging.INFO, logger="vigil.runtime"):
        worker.start()
        assert done.wait(30), "the loop did not get past its failures"
        worker.stop()
    records = [r for r in caplog.records if getattr(r, "worker", None) == "flaky-loop"]
    assert [r.levelname for r in records] == ["ERROR", "WARNING", "WARNING", "WARNING", "INFO"]
    assert records[0].exc_info is not None
    assert all(r.exc_info is None for r in records[1:])
    assert [getattr(r, "retry_in_s", None) for r in records[:4]] == [0.01, 0.02, 0.04, 0.08]
    assert records[-1].getMessage() == "flaky-loop recovered after 4 failures"
    # while failing, the next step saw the error; after the success it is cleared
    assert errors_seen[1] == "ConnectionError: database down"
    assert errors_seen[-1] is None and worker.status()["last_error"] is None
