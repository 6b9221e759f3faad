"""Correlation windows in a scale-out deployment: one API replica and two `vigil worker`
processes on the real PostgreSQL and Redis Streams, two correlation partitions.

The example correlation (5 failed logons for one account and address within 5 minutes) must
fire exactly once per account although the events of each account are detected by both workers
(the other worker is frozen with SIGSTOP while each half is sent), and still exactly once when
the worker owning a partition is SIGKILLed between the halves, and when it is frozen (SIGSTOP,
its connections open) long enough to lose its partition's lease.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from tests.pipeline.conftest import (
    EXAMPLE_RULES,
    FAILED_LOGON_RULE,
    MANY_FAILED_LOGONS,
    failed_logon,
)
from tests.scaleout.cluster import (
    NDJSON,
    REDIS_URL,
    Replica,
    StreamNames,
    WorkerProcess,
    backlog,
    start_all,
    wait_for,
)
from tests.support.identity import Credentials, bootstrap
from tests.support.server import run_vigil
from vigil.detect.correlate import RuleRef
from vigil.pipeline.correlation_plan import CorrelationPlan
from vigil.pipeline.rules import RuleRegistry

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PARTITIONS = 2
IP = "192.0.2.44"


@pytest.fixture
def streams() -> Iterator[StreamNames]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379")
    finally:
        client.close()
    names = StreamNames()
    yield names
    names.cleanup()


def accounts(tenant_id: str) -> dict[int, str]:
    """One account per partition, found with the routing the workers use."""
    registry = RuleRegistry([EXAMPLE_RULES])
    snap = registry.load()
    plan = CorrelationPlan(snap.correlations, partitions=PARTITIONS)
    rule = next(r.info for r in snap.rules if r.info.id == FAILED_LOGON_RULE)
    ref = RuleRef(rule.id, rule.name, rule.title)
    [family], _ = plan.families_for(ref)
    found: dict[int, str] = {}
    n = 0
    while len(found) < PARTITIONS:
        user = f"acct{n}"
        fields = {"TargetUserName": user, "IpAddress": IP}
        found.setdefault(plan.partition(family, tenant_id=tenant_id, rule=ref, fields=fields), user)
        n += 1
    return found


class Cluster:
    def __init__(
        self, tmp_path: Path, url: str, streams: StreamNames, *, lease_s: float = 120.0
    ) -> None:
        self.home = tmp_path / "cluster"
        self.env = {
            "VIGIL_DATABASE_URL": url,
            **streams.env(),
            "VIGIL_REDIS_QUEUE__CLAIM_IDLE_S": "3",
            "VIGIL_REDIS_QUEUE__CLAIM_INTERVAL_S": "0.5",
            "VIGIL_PIPELINE__IDLE_POLL_S": "0.1",
            "VIGIL_PIPELINE__CORRELATION_PARTITIONS": str(PARTITIONS),
            "VIGIL_PIPELINE__CORRELATION_POLL_S": "0.2",
            # no periodic snapshot: a killed owner's successor must replay the inputs
            "VIGIL_PIPELINE__CORRELATION_SNAPSHOT_INTERVAL_S": "3600",
            # long by default: the tests that freeze a worker briefly keep its partitions
            "VIGIL_PIPELINE__CORRELATION_LEASE_S": str(lease_s),
        }
        run_vigil(["db", "upgrade"], home=self.home, env=self.env)
        self.creds: Credentials = bootstrap(self.home, env=self.env)
        rules = ("--rules", str(EXAMPLE_RULES))
        self.api = Replica(home=self.home, args=["--role", "api", *rules], env=self.env)
        self.workers = [
            WorkerProcess(self.home, self.env, name=f"worker-{n}", args=rules) for n in range(2)
        ]
        self.db: Engine = create_engine(url)
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.stream = streams.stream

    def __enter__(self) -> Cluster:
        start_all([self.api, *self.workers])
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.signal(signal.SIGCONT)
            worker.stop()
        self.api.stop()
        self.redis.close()
        self.db.dispose()

    def send(self, users: list[str], seconds: range) -> None:
        body = b"\n".join(failed_logon(u, IP, s) for u in users for s in seconds)
        headers = {**NDJSON, "Authorization": f"Bearer {self.creds.admin_key}"}
        r = httpx.post(f"{self.api.url}/v1/events", content=body, headers=headers, timeout=60)
        assert r.status_code == 202 and r.json()["accepted"] == len(users) * len(seconds), r.text

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def detected(self, n: int) -> bool:
        """The workers made ``n`` failed-logon detections and acknowledged every record."""
        made = self.scalar(
            "SELECT count(*) FROM detections WHERE rule_id = :r", r=FAILED_LOGON_RULE
        )
        return made == n and backlog(self.redis, self.stream) == 0

    def correlated(self) -> bool:
        """Every partition's correlator has read every input of its partition."""
        behind = self.scalar(
            "SELECT count(*) FROM correlation_inputs i WHERE i.seq > coalesce("
            " (SELECT position FROM correlation_state s WHERE s.partition_no = i.partition_no),"
            " 0)"
        )
        return behind == 0

    def correlations(self) -> dict[str, int]:
        with self.db.connect() as conn:
            rows = conn.execute(
                text("SELECT fields FROM detections WHERE kind = 'correlation' AND rule_id = :r"),
                {"r": MANY_FAILED_LOGONS},
            ).all()
        found: dict[str, int] = {}
        for (fields,) in rows:
            found[fields["TargetUserName"]] = found.get(fields["TargetUserName"], 0) + 1
        return found

    def alerts(self) -> int:
        return int(
            self.scalar("SELECT count(*) FROM alerts WHERE rule_id = :r", r=MANY_FAILED_LOGONS)
        )

    def owner_of(self, partition: int) -> WorkerProcess:
        """The worker that last committed a step of ``partition``."""
        owner = self.scalar(
            "SELECT owner FROM correlation_state WHERE partition_no = :p", p=partition
        )
        return next(w for w in self.workers if owner and owner.endswith(f"-{w.pid}"))

    def partitions(self, worker: WorkerProcess) -> list[int]:
        """The partitions ``worker``'s correlator holds now (its /health/deep)."""
        r = httpx.get(
            f"http://127.0.0.1:{worker.port}/health/deep",
            headers={"Authorization": f"Bearer {self.creds.admin_key}"},
            timeout=10,
        )
        partitions: list[int] = r.json()["checks"]["workers"]["correlator"]["partitions"]
        return partitions

    def spread(self) -> bool:
        return all(len(self.partitions(w)) == 1 for w in self.workers)


def test_one_group_detected_by_two_workers_fires_once(
    tmp_path: Path, pg_schema_url: str, streams: StreamNames
) -> None:
    with Cluster(tmp_path, pg_schema_url, streams) as cluster:
        users = list(accounts(cluster.creds.tenant_id).values())
        # members count each other and keep one partition each
        wait_for(cluster.spread, "each worker to own one partition")
        first, second = cluster.workers
        second.signal(signal.SIGSTOP)  # the first three of each account: the first worker
        cluster.send(users, range(3))
        wait_for(lambda: cluster.detected(3 * len(users)), "the first worker to detect")
        second.signal(signal.SIGCONT)
        first.signal(signal.SIGSTOP)  # the last two: the second worker
        cluster.send(users, range(3, 5))
        wait_for(lambda: cluster.detected(5 * len(users)), "the second worker to detect")
        first.signal(signal.SIGCONT)
        wait_for(cluster.correlated, "the correlators to read every input")
        wait_for(lambda: cluster.correlations() == dict.fromkeys(users, 1), "one hit per account")
        wait_for(lambda: cluster.alerts() == len(users), "one alert per account")
        owners = {cluster.owner_of(p).name for p in range(PARTITIONS)}
        assert len(owners) == PARTITIONS  # each worker correlated one partition
    assert cluster.correlations() == dict.fromkeys(users, 1)


def test_owner_killed_between_the_halves_fires_once(
    tmp_path: Path, pg_schema_url: str, streams: StreamNames
) -> None:
    # its partitions are free when its leases expire
    with Cluster(tmp_path, pg_schema_url, streams, lease_s=3.0) as cluster:
        users = list(accounts(cluster.creds.tenant_id).values())
        cluster.send(users, range(3))
        wait_for(lambda: cluster.detected(3 * len(users)), "the first three to be detected")
        wait_for(cluster.correlated, "the first three to be correlated")
        assert cluster.correlations() == {}
        victim = cluster.owner_of(0)
        victim.kill()  # SIGKILL: no snapshot, no release
        survivor = next(w for w in cluster.workers if w is not victim)
        cluster.send(users, range(3, 5))
        wait_for(lambda: cluster.detected(5 * len(users)), "the survivor to detect")
        wait_for(cluster.correlated, "the survivor to take over and correlate")
        wait_for(lambda: cluster.correlations() == dict.fromkeys(users, 1), "one hit per account")
        assert {cluster.owner_of(p).name for p in range(PARTITIONS)} == {survivor.name}
        assert cluster.partitions(survivor) == list(range(PARTITIONS))
        assert cluster.alerts() == len(users)
    assert cluster.correlations() == dict.fromkeys(users, 1)


def test_frozen_owner_loses_its_partition_and_writes_nothing_stale(
    tmp_path: Path, pg_schema_url: str, streams: StreamNames
) -> None:
    with Cluster(tmp_path, pg_schema_url, streams, lease_s=3.0) as cluster:
        users = list(accounts(cluster.creds.tenant_id).values())
        wait_for(cluster.spread, "each worker to own one partition")
        cluster.send(users, range(3))
        wait_for(lambda: cluster.detected(3 * len(users)), "the first three to be detected")
        wait_for(cluster.correlated, "the first three to be correlated")
        victim = cluster.owner_of(0)
        survivor = next(w for w in cluster.workers if w is not victim)
        # Frozen, not dead: its PostgreSQL sessions stay open (advisory locks would stay held).
        victim.signal(signal.SIGSTOP)
        wait_for(
            lambda: cluster.partitions(survivor) == list(range(PARTITIONS)),
            "the survivor to take the frozen worker's partitions over when their leases expire",
        )
        cluster.send(users, range(3, 5))
        wait_for(lambda: cluster.detected(5 * len(users)), "the survivor to detect")
        wait_for(cluster.correlated, "the survivor to correlate")
        wait_for(lambda: cluster.correlations() == dict.fromkeys(users, 1), "one hit per account")
        assert cluster.owner_of(0) is survivor
        victim.signal(signal.SIGCONT)
        # The woken worker finds its partitions gone, drops them unwritten and rejoins.
        wait_for(lambda: "correlation partitions lost" in victim.log(), "the victim to notice")
        wait_for(cluster.spread, "the partitions to spread over both workers again")
        assert cluster.correlations() == dict.fromkeys(users, 1)
        assert cluster.alerts() == len(users)
