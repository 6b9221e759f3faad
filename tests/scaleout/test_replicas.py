"""Scale-out on loopback: 2 API replicas and 3 workers on the real PostgreSQL and Redis.

The events go in through both APIs while one worker is SIGKILLed holding records it had not
acknowledged; the detections and alerts must equal those of a single clean run of the embedded
service (SQL queue) on the same events: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import Engine, create_engine, make_url, text

from tests.conftest import PG_BASE_URL
from tests.scaleout.cluster import REDIS_URL, Replica, StreamNames, WorkerProcess
from tests.support.identity import bootstrap
from tests.support.server import run_vigil

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RULE = Path(__file__).resolve().parents[2] / "examples/rules/proc_creation_encoded_powershell.yml"
EVENTS = 3000
PER_REQUEST = 100
CLAIM_IDLE_S = 3


def windows_event(i: int) -> dict[str, Any]:
    """Every third event is an encoded PowerShell start (a detection); hosts repeat, so alerts
    fold several detections; half of the records carry an event_id."""
    encoded = i % 3 == 0
    image = (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
        if encoded
        else "C:\\Windows\\explorer.exe"
    )
    command = f"powershell.exe -NoP -enc SQBFAFgA{i:06d}" if encoded else image
    record: dict[str, Any] = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "EventRecordID": 100_000 + i,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": f"ws{i % 40:03d}.corp.example",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-21T08:03:12.000000Z"}},
            },
            "EventData": {"Image": image, "CommandLine": command, "User": "CORP\\alice"},
        }
    }
    if i % 2 == 0:
        record["event_id"] = f"scaleout-{i}"
    return record


def bodies() -> list[bytes]:
    lines = [orjson.dumps(windows_event(i)) for i in range(EVENTS)]
    return [b"\n".join(lines[s : s + PER_REQUEST]) for s in range(0, EVENTS, PER_REQUEST)]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def schemas(pg_admin: Engine) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        url = make_url(PG_BASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    yield make
    with pg_admin.connect() as conn:
        for schema in made:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
def streams() -> Iterator[StreamNames]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    names = StreamNames()
    yield names
    names.cleanup()


def outcome(url: str) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]], int]:
    """What a run produced, without what differs between runs (ids, times, tenant):
    detections by (rule, event), alerts by (rule, entity, severity, count), and how many
    detections the alerts link."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            detections = Counter(
                (row.rule_id, row.kind, json.dumps(row.fields, sort_keys=True))
                for row in conn.execute(text("SELECT rule_id, kind, fields FROM detections"))
            )
            alerts = Counter(
                tuple(row)
                for row in conn.execute(text("SELECT rule_id, entity, severity, count FROM alerts"))
            )
            links = conn.execute(text("SELECT count(*) FROM alert_detections")).scalar_one()
    finally:
        engine.dispose()
    return detections, alerts, int(links)


def send_all(urls: list[str], key: str, payloads: list[bytes], sent: list[int]) -> None:
    import httpx

    clients = [
        httpx.Client(base_url=u, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        for u in urls
    ]
    try:
        for n, body in enumerate(payloads):
            r = clients[n % len(clients)].post(
                "/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
            assert r.status_code == 202, r.text
            sent.append(r.json()["accepted"])
    finally:
        for c in clients:
            c.close()


def clean_run(tmp_path: Path, url: str) -> tuple[Any, ...]:
    """The reference: one embedded `vigil serve` (SQL queue), the same events, no faults."""
    home = tmp_path / "clean"
    env = {"VIGIL_DATABASE_URL": url}
    run_vigil(["db", "upgrade"], home=home, env=env)
    creds = bootstrap(home, env=env)
    server = Replica(home=home, args=["--rules", str(RULE)], env=env, name="clean").start()
    try:
        sent: list[int] = []
        send_all([server.url], creds.admin_key, bodies(), sent)
        assert sum(sent) == EVENTS
        engine = create_engine(url)

        def drained() -> bool:
            with engine.connect() as conn:
                last = conn.execute(text("SELECT max(seq) FROM event_queue")).scalar_one()
                done = conn.execute(
                    text("SELECT position FROM consumer_offsets WHERE name = 'detection'")
                ).scalar_one_or_none()
            return last is not None and done == last

        wait_for(drained, "the clean run to process every event")
        engine.dispose()
    finally:
        server.stop()
    return outcome(url)


def test_two_apis_three_workers_one_killed_equal_a_clean_run(
    tmp_path: Path, schemas: Callable[[], str], streams: StreamNames
) -> None:
    url = schemas()
    home = tmp_path / "cluster"
    env = {
        "VIGIL_DATABASE_URL": url,
        **streams.env(),
        "VIGIL_REDIS_QUEUE__CLAIM_IDLE_S": str(CLAIM_IDLE_S),
        "VIGIL_REDIS_QUEUE__CLAIM_INTERVAL_S": "0.5",
        "VIGIL_PIPELINE__IDLE_POLL_S": "0.1",
        "VIGIL_PIPELINE__BATCH_SIZE": "200",
        # One detection thread per worker process: the consumer is `<host>-<worker pid>`.
        "VIGIL_PIPELINE__WORKER_MODE": "thread",
    }
    run_vigil(["db", "upgrade"], home=home, env=env)
    creds = bootstrap(home, env=env)
    rules = ("--rules", str(RULE))
    apis = [
        Replica(home=home, args=["--role", "api", *rules], env=env, name=f"api-{n}")
        for n in range(2)
    ]
    workers = [WorkerProcess(home, env, name=f"worker-{n}", args=rules) for n in range(3)]
    processes: list[Replica | WorkerProcess] = [*apis, *workers]
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for process in processes:
            process.start()
        sent: list[int] = []
        sender = threading.Thread(
            target=send_all, args=([a.url for a in apis], creds.admin_key, bodies(), sent)
        )
        sender.start()
        victim = workers[0]
        victim_suffix = f"-{victim.pid}".encode()

        def victim_pending() -> int:
            try:
                consumers = client.xinfo_consumers(streams.stream, "vigil-workers")
            except redis.exceptions.ResponseError:
                return 0
            return sum(int(c["pending"]) for c in consumers if c["name"].endswith(victim_suffix))

        def frozen_holding_records() -> bool:
            # Freeze it, then look: a frozen worker cannot acknowledge behind our back.
            victim.signal(signal.SIGSTOP)
            if victim_pending() > 0:
                return True
            victim.signal(signal.SIGCONT)
            return False

        wait_for(frozen_holding_records, "the victim worker to hold unacknowledged records", 60)
        held = victim_pending()
        victim.kill()  # SIGKILL: its records stay pending until another worker takes them
        assert held > 0
        sender.join(120)
        assert sum(sent) == EVENTS

        def drained() -> bool:
            (group,) = client.xinfo_groups(streams.stream)
            return int(group["pending"]) == 0 and int(group["lag"] or 0) == 0

        wait_for(drained, "the surviving workers to process everything")
        assert victim_pending() == 0  # taken over (XAUTOCLAIM) and acknowledged by survivors
        assert not client.xlen(f"{streams.prefix}:events:dead")
        for process in processes:
            if process is victim:
                continue
            assert process.process is not None and process.process.poll() is None
    finally:
        for process in processes:
            process.stop()
        client.close()
    scaled = outcome(url)
    reference = clean_run(tmp_path, schemas())
    detections, alerts, links = scaled
    assert sum(detections.values()) == EVENTS // 3
    assert all(n == 1 for n in detections.values()), "a detection was made twice"
    assert scaled == reference
    assert links == EVENTS // 3
    assert sum(alerts.values()) >= 1
