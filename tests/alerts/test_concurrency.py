"""PostgreSQL, two detection workers at once: a fingerprint gets one alert and an entity one
incident, even when both transactions look before either commits (advisory locks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from tests.alerts.helpers import T0, detection
from vigil.alerts.models import Alert
from vigil.alerts.service import Outcome, RecordedDetection, record_detections
from vigil.incidents.models import Incident
from vigil.store import create_engine_for, session_factory, upgrade

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(pg_schema_url: str) -> Iterator[Engine]:
    upgrade(pg_schema_url)
    engine = create_engine_for(pg_schema_url)
    yield engine
    engine.dispose()


def _waiting_for_a_lock(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"), {"pid": pid}
        ).scalar_one()
    return bool(waiting)


def test_two_workers_one_alert_one_incident(pg_engine: Engine) -> None:
    factory = session_factory(pg_engine)
    now = T0 + timedelta(hours=1)
    first = factory()
    [one] = record_detections(first, detections=[detection(level="high")], now=now)
    assert one.outcome is Outcome.CREATED

    results: list[RecordedDetection] = []
    pids: list[int] = []

    def second_worker() -> None:
        with factory() as session:
            pids.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            results.extend(
                record_detections(
                    session,
                    detections=[detection(level="high"), detection(level="critical", rule_id="r2")],
                    now=now,
                )
            )
            session.commit()

    thread = threading.Thread(target=second_worker)
    thread.start()
    deadline = time.monotonic() + 30
    # The second worker blocks on the first one's locks before it can look at anything.
    while not (pids and _waiting_for_a_lock(pg_engine, pids[0])):
        assert time.monotonic() < deadline, "the second worker never waited for a lock"
        time.sleep(0.02)
    first.commit()
    first.close()
    thread.join(30)
    assert [r.outcome for r in results] == [Outcome.DEDUPLICATED, Outcome.CREATED]
    assert results[0].alert_id == one.alert_id
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 2
        [incident] = session.scalars(select(Incident)).all()
        assert incident.alert_count == 2 and incident.severity == "critical"
