"""Scale-out under faults: Redis and PostgreSQL go away mid-stream and come back.

1 API replica + 2 workers. While a dependency is gone the API answers 503 problem+json with
Retry-After (never 500), ``/health/ready`` answers 503 naming the dependency and why, and
``/health/live`` stays 200; once it is back the system recovers by itself and the detections and
alerts equal those of a clean embedded run on the same events: nothing lost, nothing doubled.

Every event carries an ``event_id``: a 503 leaves the client unsure whether a request whose
answer was lost got in, and resending it is exact only with ids (records without one are
at-least-once across client retries; inside one publish, retries are exact either way, see
``test_publish_retried_after_a_lost_reply_appends_once``).

Redis is cut with a TCP proxy in front of the shared server (streams of the test's own);
PostgreSQL is a private server (:mod:`tests.scaleout.private_services`) stopped and started.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from sqlalchemy import Engine, create_engine, make_url, text

from tests.conftest import PG_BASE_URL
from tests.scaleout.cluster import (
    REDIS_URL,
    Outcome,
    Replica,
    StreamNames,
    WorkerProcess,
    backlog,
    outcome,
    start_all,
    wait_for,
)
from tests.scaleout.private_services import PrivatePostgres, TcpProxy
from tests.support.identity import bootstrap
from tests.support.server import run_vigil
from vigil.bus.queue import QueueRecord
from vigil.bus.redis_config import RedisQueueSettings
from vigil.bus.redis_queue import RedisStreamsQueue

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RULE = Path(__file__).resolve().parents[2] / "examples/rules/proc_creation_encoded_powershell.yml"
EVENTS = 1200
PER_REQUEST = 40
CLAIM_IDLE_S = 3
NDJSON = {"Content-Type": "application/x-ndjson"}
PROBLEM = "application/problem+json"


def fault_event(i: int) -> dict[str, Any]:
    """Every third event is an encoded PowerShell start (a detection) on one of 20 hosts, so
    alerts fold several detections; every event has an event_id."""
    encoded = i % 3 == 0
    image = (
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
        if encoded
        else "C:\\Windows\\explorer.exe"
    )
    return {
        "event_id": f"fault-{i}",
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "EventRecordID": 500_000 + i,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": f"ws{i % 20:03d}.corp.example",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-21T08:03:12.000000Z"}},
            },
            "EventData": {
                "Image": image,
                "CommandLine": f"powershell.exe -NoP -enc SQBFAFgA{i:06d}" if encoded else image,
                "User": "CORP\\alice",
            },
        },
    }


def bodies() -> list[bytes]:
    lines = [orjson.dumps(fault_event(i)) for i in range(EVENTS)]
    return [b"\n".join(lines[s : s + PER_REQUEST]) for s in range(0, EVENTS, PER_REQUEST)]


def assert_unavailable(r: httpx.Response) -> None:
    """A 503 problem document with Retry-After (what an outage must look like)."""
    assert r.status_code == 503, (
        f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    )
    assert r.headers["content-type"] == PROBLEM
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["type"].endswith("/unavailable")


class Sender(threading.Thread):
    """Sends the bodies in order, each until it is accepted: a 503 (checked) is retried, any
    other answer but 202 stops it with an error. Pauses after ``pause_after`` bodies until
    :attr:`go` is set, so the fault lands mid-stream at a known point."""

    def __init__(self, url: str, key: str, payloads: list[bytes], pause_after: int) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.payloads, self.pause_after = url, key, payloads, pause_after
        self.paused = threading.Event()
        self.go = threading.Event()
        self.accepted = 0
        self.unavailable = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = {**NDJSON, "Authorization": f"Bearer {self.key}"}
        try:
            with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
                for n, body in enumerate(self.payloads):
                    if n == self.pause_after:
                        self.paused.set()
                        self.go.wait(120)
                    while True:
                        r = http.post("/v1/events", content=body)
                        if r.status_code == 202:
                            self.accepted += int(r.json()["accepted"])
                            break
                        assert_unavailable(r)
                        self.unavailable += 1
                        time.sleep(0.2)  # a real client waits Retry-After; the test is in a hurry
        except BaseException as exc:
            self.error = exc
        finally:
            self.paused.set()

    def finish(self) -> None:
        self.join(120)
        if self.error is not None:
            raise self.error
        assert not self.is_alive(), "the sender did not finish"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (scripts/services-up starts it)")
    yield client
    client.close()


@pytest.fixture
def streams(redis_client: redis.Redis) -> Iterator[StreamNames]:
    names = StreamNames()
    yield names
    names.cleanup()


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    url = make_url(REDIS_URL)
    tcp = TcpProxy((url.host or "127.0.0.1", url.port or 6379)).start()
    yield tcp
    tcp.close()


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def reference(pg_admin: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """One embedded `vigil serve` (SQL queue, shared PostgreSQL), the same events, no faults."""
    schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_BASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    db_url = url.render_as_string(hide_password=False)
    home = tmp_path_factory.mktemp("reference")
    env = {"VIGIL_DATABASE_URL": db_url, "VIGIL_PIPELINE__IDLE_POLL_S": "0.1"}
    try:
        run_vigil(["db", "upgrade"], home=home, env=env)
        creds = bootstrap(home, env=env)
        server = Replica(home=home, args=["--rules", str(RULE)], env=env, name="clean").start()
        try:
            sender = Sender(server.url, creds.admin_key, bodies(), pause_after=-1)
            sender.start()
            sender.finish()
            assert sender.accepted == EVENTS and sender.unavailable == 0
            engine = create_engine(db_url)

            def drained() -> bool:
                with engine.connect() as conn:
                    last = conn.execute(text("SELECT max(seq) FROM event_queue")).scalar_one()
                    done = conn.execute(
                        text("SELECT position FROM consumer_offsets WHERE name = 'detection'")
                    ).scalar_one_or_none()
                return last is not None and done == last

            try:
                wait_for(drained, "the clean run to process every event")
            finally:
                engine.dispose()
        finally:
            server.stop()
        yield outcome(db_url)
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class Cluster:
    key: str
    api: Replica
    workers: list[WorkerProcess]

    @property
    def urls(self) -> list[str]:
        """The API's and the workers' (health) base URLs."""
        return [self.api.url, *(f"http://127.0.0.1:{w.port}" for w in self.workers)]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, headers={"Authorization": f"Bearer {self.key}"})

    def stop(self) -> None:
        self.api.stop()
        for worker in self.workers:
            worker.stop()


def start_cluster(home: Path, env: dict[str, str]) -> Cluster:
    """Migrate, bootstrap, start 1 API and 2 workers."""
    env = {
        **env,
        "VIGIL_REDIS_QUEUE__CLAIM_IDLE_S": str(CLAIM_IDLE_S),
        "VIGIL_REDIS_QUEUE__CLAIM_INTERVAL_S": "0.5",
        "VIGIL_PIPELINE__IDLE_POLL_S": "0.1",
        "VIGIL_PIPELINE__BATCH_SIZE": "100",
        "VIGIL_PIPELINE__WORKER_MODE": "thread",
    }
    run_vigil(["db", "upgrade"], home=home, env=env)
    creds = bootstrap(home, env=env)
    rules = ("--rules", str(RULE))
    api = Replica(home=home, args=["--role", "api", *rules], env=env, name="api")
    workers = [WorkerProcess(home, env, name=f"worker-{n}", args=rules) for n in range(2)]
    start_all([api, *workers])
    return Cluster(creds.admin_key, api, workers)


def ready_down(url: str) -> dict[str, str]:
    """``down`` of a 503 /health/ready (asserting the shape), or {} when ready."""
    r = httpx.get(url + "/health/ready", timeout=30)
    if r.status_code == 200:
        return {}
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    down: dict[str, str] = r.json()["down"]
    return down


def fault_mid_stream(api: Replica, key: str, fault: Callable[[], None]) -> Sender:
    """Send the first half of the bodies, cause ``fault``, send the rest (503s are retried)."""
    payloads = bodies()
    sender = Sender(api.url, key, payloads, pause_after=len(payloads) // 2)
    sender.start()
    assert sender.paused.wait(120), "the sender did not get half-way"
    fault()
    sender.go.set()
    return sender


def assert_down(processes: list[str], dependency: str, errors: tuple[str, ...]) -> None:
    """Each process is not ready, for ``dependency`` alone, with one of ``errors`` as reason;
    and still live."""
    for url in processes:
        down = ready_down(url)
        assert set(down) == {dependency}, down
        assert any(name in down[dependency] for name in errors), down
        assert httpx.get(url + "/health/live", timeout=10).status_code == 200


def assert_recovered(
    sender: Sender, redis_client: redis.Redis, streams: StreamNames, cluster: Cluster
) -> None:
    """Everything sent was accepted and processed, nothing was given up on, all is ready."""
    sender.finish()
    assert sender.accepted == EVENTS
    wait_for(
        lambda: backlog(redis_client, streams.stream) == 0, "the workers to process everything"
    )
    assert not redis_client.xlen(f"{streams.prefix}:events:dead")
    for url in cluster.urls:

        def ready(url: str = url) -> bool:
            return ready_down(url) == {}

        wait_for(ready, f"{url} to be ready again", 30)
    for worker in cluster.workers:
        assert worker.process is not None and worker.process.poll() is None


def queue_settings(streams: StreamNames, **overrides: Any) -> RedisQueueSettings:
    """The test's streams; short reads and frequent take-over checks unless overridden."""
    values: dict[str, Any] = {"block_ms": 10, "claim_interval_s": 0.01, **overrides}
    return RedisQueueSettings(
        stream=streams.stream, dead_letter_stream=f"{streams.prefix}:events:dead", **values
    )


def assert_same_as_reference(url: str, reference: Outcome) -> None:
    got = outcome(url)
    detections, _alerts, links = got
    assert sum(detections.values()) == len(range(0, EVENTS, 3)), "a detection was lost or added"
    assert all(n == 1 for n in detections.values()), "a detection was made twice"
    assert links == len(range(0, EVENTS, 3))
    assert got == reference


# --- tests --------------------------------------------------------------------------------------


def test_publish_retried_after_a_lost_reply_appends_once(
    proxy: TcpProxy, streams: StreamNames, redis_client: redis.Redis
) -> None:
    """Redis ran the publish script, the reply was lost, redis-py retried on a new connection:
    the chunk token answers the retry, records without an event_id are not appended twice."""
    # no backlog look-up between the warm-up and the publish
    settings = queue_settings(streams, backlog_check_s=3600)
    queue = RedisStreamsQueue(proxy.url, settings)
    try:
        assert queue.publish("t1", [QueueRecord(None, b'{"warm": 1}')]).accepted == 1
        proxy.drop_reply_to(b"EVALSHA")
        records = [QueueRecord(None, b'{"n": %d}' % n) for n in range(10)]
        records.append(QueueRecord("with-id", b'{"n": "id"}'))
        result = queue.publish("t1", records)
    finally:
        queue.close()
    assert proxy.dropped_replies == 1
    assert (result.accepted, result.duplicates) == (11, 0)
    assert redis_client.xlen(streams.stream) == 12


def test_bury_and_replay_retried_after_a_lost_reply_act_once(
    proxy: TcpProxy, streams: StreamNames, redis_client: redis.Redis
) -> None:
    """The bury and replay scripts ran, their replies were lost, redis-py retried: one dead
    letter, one replayed copy, and the retried replay still answers the new id."""
    dead_stream = f"{streams.prefix}:events:dead"
    settings = queue_settings(streams, max_deliveries=1, claim_idle_s=0.05)
    queue = RedisStreamsQueue(proxy.url, settings, name="faulty")
    no_session: Any = None
    try:
        queue.publish("t1", [QueueRecord("poison", b'{"n": 1}')])
        assert len(queue.read(no_session, consumer="detection", limit=10)) == 1
        time.sleep(0.1)  # idle past claim_idle_s: the next read takes it over and buries it
        proxy.drop_reply_to(b"EVALSHA")
        assert queue.read(no_session, consumer="detection", limit=10) == []
        assert proxy.dropped_replies == 1
        assert redis_client.xlen(dead_stream) == 1
        (letter,) = queue.dead_letters(tenant_id="t1")
        proxy.drop_reply_to(b"EVALSHA")
        new_id = queue.replay_dead_letter(letter.id, tenant_id="t1")
    finally:
        queue.close()
    assert proxy.dropped_replies == 2
    assert redis_client.xlen(dead_stream) == 0
    entries: Any = redis_client.xrange(streams.stream)
    assert len(entries) == 2  # the original (acknowledged when buried) and the replayed copy
    assert entries[-1][0].decode() == new_id


def test_records_waiting_for_their_solo_retry_are_not_taken_over(
    streams: StreamNames, redis_client: redis.Redis
) -> None:
    """After an outage failed a batch, its records come back one at a time (solo retry). Those
    still waiting must not look idle to the other workers: a take-over would count one more
    delivery each and bury them although nothing is wrong with them."""
    dead_stream = f"{streams.prefix}:events:dead"
    settings = queue_settings(streams, claim_idle_s=2.0, solo_after_deliveries=2, max_deliveries=2)
    first = RedisStreamsQueue(REDIS_URL, settings, name="first")
    other = RedisStreamsQueue(REDIS_URL, settings, name="other")
    no_session: Any = None
    done: list[str] = []
    try:
        first.publish("t1", [QueueRecord(f"r{n}", b"{}") for n in range(4)])
        failed = first.read(no_session, consumer="detection", limit=10)
        assert len(failed) == 4  # delivered once and failed (the database went away)
        time.sleep(2.2)  # idle past claim_idle_s: the next read takes them over (2nd delivery)
        while len(done) < 4:
            (record,) = first.read(no_session, consumer="detection", limit=10)
            time.sleep(0.8)  # processing one record alone, meanwhile the other worker looks
            assert other.read(no_session, consumer="detection", limit=10) == []
            first.acknowledged(consumer="detection", batch=[record])
            done.append(str(record.event_id))
    finally:
        first.close()
        other.close()
    assert done == ["r0", "r1", "r2", "r3"]
    assert redis_client.xlen(dead_stream) == 0


def test_redis_cut_and_restored_mid_stream(
    tmp_path: Path,
    pg_schema_url: str,
    streams: StreamNames,
    proxy: TcpProxy,
    redis_client: redis.Redis,
    reference: Outcome,
) -> None:
    env = {"VIGIL_DATABASE_URL": pg_schema_url, **streams.env(), "VIGIL_QUEUE_URL": proxy.url}
    cluster = start_cluster(tmp_path / "cluster", env)
    try:
        sender = fault_mid_stream(cluster.api, cluster.key, proxy.cut)
        wait_for(lambda: sender.unavailable > 0 or not sender.is_alive(), "a 503 during the cut")
        assert sender.unavailable > 0, sender.error
        assert_down(cluster.urls, "queue", ("ConnectionError", "TimeoutError"))
        with cluster.http() as http:
            assert_unavailable(http.get("/v1/queue/dead-letters"))
        proxy.restore()
        assert_recovered(sender, redis_client, streams, cluster)
    finally:
        cluster.stop()
    assert_same_as_reference(pg_schema_url, reference)


def test_postgres_stopped_and_restarted_mid_stream(
    tmp_path: Path,
    private_pg: PrivatePostgres,
    streams: StreamNames,
    redis_client: redis.Redis,
    reference: Outcome,
) -> None:
    url = private_pg.create_database(f"vigil_{uuid.uuid4().hex[:10]}")
    env = {
        "VIGIL_DATABASE_URL": url,
        **streams.env(),
        # Strict: a record taken from Redis while the database is down and failed each time
        # would be buried within the outage (workers must leave records alone meanwhile).
        "VIGIL_REDIS_QUEUE__MAX_DELIVERIES": "2",
        "VIGIL_REDIS_QUEUE__SOLO_AFTER_DELIVERIES": "2",
    }
    cluster = start_cluster(tmp_path / "cluster", env)
    try:
        sender = fault_mid_stream(cluster.api, cluster.key, private_pg.stop)
        with cluster.http() as http:
            assert_unavailable(http.get("/v1/alerts"))
            assert_unavailable(http.get("/v1/incidents"))
        assert_down(cluster.urls, "database", ("OperationalError",))
        # Into the outage for longer than two take-overs: workers must not take records now.
        time.sleep(3 * CLAIM_IDLE_S)
        private_pg.start()
        assert_recovered(sender, redis_client, streams, cluster)
        with cluster.http() as http:
            assert http.get("/v1/alerts").status_code == 200
    finally:
        cluster.stop()
    assert_same_as_reference(url, reference)
