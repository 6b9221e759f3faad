"""Property test: whatever the detections (hosts, rules, times, repeated ids, batch cuts),
recording them keeps the alert bookkeeping consistent, and recording them again changes
nothing."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.fixtures import TABLES
from tests.alerts.helpers import T0, detection
from vigil.alerts.intake import DetectionRecord
from vigil.alerts.models import Alert, AlertDetection
from vigil.alerts.service import Outcome, record_detections
from vigil.alerts.states import OPEN_STATUSES
from vigil.store.base import Base

NOW = T0 + timedelta(days=1)

_detections = st.lists(
    st.builds(
        lambda det_id, tenant, rule, host, minute, window: detection(
            detection_id=f"d{det_id}",
            tenant=tenant,
            rule_id=rule,
            host=host,
            at=T0 + timedelta(minutes=minute),
            window_s=window,
            level="low",  # keeps incident grouping out of this test
        ),
        det_id=st.integers(0, 30),
        tenant=st.sampled_from(["t1", "t2"]),
        rule=st.sampled_from(["r1", "r2"]),
        host=st.sampled_from(["A", "a", "B", None]),
        minute=st.integers(0, 300),
        window=st.sampled_from([None, 600.0, 7200.0]),
    ),
    max_size=40,
)


def _clear(session: Session) -> None:
    for name in TABLES:
        session.execute(delete(Base.metadata.tables[name]))
    session.commit()


def _state(session: Session) -> list[tuple[str, int, object, object, str]]:
    rows = session.execute(
        select(Alert.id, Alert.count, Alert.first_seen, Alert.last_seen, Alert.status).order_by(
            Alert.id
        )
    ).all()
    return [tuple(r) for r in rows]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(dets=_detections, cut=st.integers(0, 40))
def test_bookkeeping_holds(
    factory: sessionmaker[Session], dets: list[DetectionRecord], cut: int
) -> None:
    with factory() as session:
        _clear(session)
        outcomes = []
        for batch in (dets[:cut], dets[cut:]):
            outcomes += record_detections(session, detections=batch, now=NOW)
            session.commit()
        distinct = {(d.tenant_id, d.detection_id) for d in dets}
        links = session.scalar(select(func.count()).select_from(AlertDetection))
        assert links == len(distinct)
        assert (session.scalar(select(func.sum(Alert.count))) or 0) == len(distinct)
        created = sum(1 for o in outcomes if o.outcome is Outcome.CREATED)
        assert session.scalar(select(func.count()).select_from(Alert)) == created
        # An alert spans exactly the detections recorded into it, of its own tenant.
        for alert in session.scalars(select(Alert)):
            seen = session.execute(
                select(func.min(AlertDetection.seen_at), func.max(AlertDetection.seen_at)).where(
                    AlertDetection.alert_id == alert.id,
                    AlertDetection.tenant_id == alert.tenant_id,
                )
            ).one()
            assert (alert.first_seen, alert.last_seen) == (seen[0], seen[1])
            assert alert.status in {s.value for s in OPEN_STATUSES}
        # Every outcome names an alert of the detection's tenant.
        owners = dict(session.execute(select(Alert.id, Alert.tenant_id)).all())
        assert all(owners[o.alert_id] == o.tenant_id for o in outcomes)
        before = _state(session)
        again = record_detections(session, detections=dets, now=NOW + timedelta(hours=5))
        session.commit()
        assert all(o.outcome is Outcome.DUPLICATE for o in again)
        assert _state(session) == before
