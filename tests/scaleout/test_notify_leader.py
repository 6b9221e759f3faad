"""Notification delivery in a scale-out deployment: two `vigil worker` processes on the real
PostgreSQL, one webhook receiver on loopback. Only the leader (lease ``notify-leader``)
dispatches and sends: every notification arrives once; SIGKILL the leader and the other worker
takes over and delivers what follows, still once each."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.notify.conftest import NotifyEnv, make_env
from tests.notify.receivers import Receiver
from tests.pipeline.conftest import EXAMPLE_RULES
from tests.scaleout.cluster import WorkerProcess, start_all, wait_for
from tests.support.identity import bootstrap
from tests.support.server import run_vigil
from vigil.notify.models import DeliveryStatus
from vigil.notify.secretbox import box_for
from vigil.store import create_engine_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def leads(worker: WorkerProcess, key: str) -> bool:
    r = httpx.get(
        f"http://127.0.0.1:{worker.port}/health/deep",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return bool(r.json()["checks"]["workers"]["notify-send"]["leader"])


def delivered(env: NotifyEnv, events: set[str]) -> int:
    """Deliveries of ``events`` sent (the tenant's own set-up events are notified too)."""
    return sum(
        d.status == DeliveryStatus.DELIVERED and d.event_id in events
        for d in env.deliveries("acme")
    )


def emit(env: NotifyEnv, n: int) -> set[str]:
    return {str(env.emit(details={"title": f"event {i}"}).event_id) for i in range(n)}


def test_one_leader_delivers_each_notification_once_and_fails_over(
    tmp_path: Path, pg_schema_url: str
) -> None:
    home = tmp_path / "cluster"
    env_vars = {
        "VIGIL_DATABASE_URL": pg_schema_url,
        "VIGIL_NOTIFY__ALLOW_PRIVATE_NETWORKS": "true",
        "VIGIL_NOTIFY__LEADER_LEASE_S": "2",
        "VIGIL_NOTIFY__POLL_INTERVAL_S": "0.2",
    }
    run_vigil(["db", "upgrade"], home=home, env=env_vars)
    creds = bootstrap(home, env=env_vars)
    engine = create_engine_for(pg_schema_url)
    receiver = Receiver()
    workers = [
        WorkerProcess(home, env_vars, name=f"worker-{n}", args=("--rules", str(EXAMPLE_RULES)))
        for n in range(2)
    ]
    try:
        env = make_env(engine, allow_private_networks=True)
        env.box = box_for(home, [])  # the key file the workers read (same VIGIL_HOME)
        env.tenants["acme"] = creds.tenant_id
        channel = env.webhook(receiver.url)
        env.route(channel_ids=[channel.id])
        start_all(workers)
        wait_for(lambda: sum(leads(w, creds.admin_key) for w in workers) == 1, "exactly one leader")
        first = emit(env, 20)
        wait_for(lambda: delivered(env, first) == 20, "the first 20 notifications")
        leader = next(w for w in workers if leads(w, creds.admin_key))
        survivor = next(w for w in workers if w is not leader)
        leader.kill()
        second = emit(env, 20)
        wait_for(lambda: delivered(env, second) == 20, "the survivor to deliver the next 20")
        assert leads(survivor, creds.admin_key)
        ids = Counter(r.headers["x-vigil-delivery-id"] for r in receiver.requests)
        assert set(ids.values()) == {1}  # no notification sent twice
        sent = {d.id for d in env.deliveries("acme") if d.event_id in first | second}
        assert len(sent) == 40 and sent <= set(ids)
    finally:
        for worker in workers:
            worker.signal(signal.SIGCONT)
            worker.stop()
        receiver.close()
        engine.dispose()
