"""The outbox: events appear in seq order, and on PostgreSQL no reader can pass a lower seq that
commits later (emitters are serialised by an advisory lock)."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from vigil.bus import offsets, outbox
from vigil.events.envelope import Severity, vigil_event
from vigil.store import session_factory


def _event(n: int) -> object:
    return vigil_event(
        tenant_id="t1", event_type="threat_detected", severity=Severity.HIGH, details={"n": n}
    )


def test_emit_read_after_and_offsets(db_engine: Engine) -> None:
    sessions = session_factory(db_engine)
    with sessions() as s:
        outbox.emit_many(s, tenant_id="t1", events=[_event(i) for i in range(3)])  # type: ignore[misc]
        s.commit()
    with sessions() as s:
        items = outbox.read_after(s, after_seq=0)
        assert [i.event.details["n"] for i in items] == [0, 1, 2]
        assert all(i.event.metadata.tenant_id == "t1" for i in items)
        offsets.advance(s, name="c", position=items[1].seq)
        s.commit()
    with sessions() as s:
        rest = outbox.read_after(s, after_seq=offsets.get(s, name="c"))
        assert [i.event.details["n"] for i in rest] == [2]
        assert outbox.last_seq(s) == items[-1].seq


def test_a_second_emitter_waits_for_the_first_to_commit(db_engine: Engine) -> None:
    sessions = session_factory(db_engine)
    first = sessions()
    outbox.emit(first, tenant_id="t1", event=_event(1))  # type: ignore[arg-type]
    first.flush()
    done = threading.Event()

    def second() -> None:
        with sessions() as s:
            outbox.emit(s, tenant_id="t1", event=_event(2))  # type: ignore[arg-type]
            s.commit()
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    # While the first transaction is open the second cannot commit an event (PostgreSQL: the
    # advisory lock; SQLite: the single writer lock).
    assert not done.wait(1.0)
    first.commit()
    first.close()
    thread.join(30)
    assert done.is_set()
    with sessions() as s:
        items = outbox.read_after(s, after_seq=0)
    assert [i.event.details["n"] for i in items] == [1, 2]
    assert items[0].seq < items[1].seq
