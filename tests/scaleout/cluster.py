"""A scale-out deployment on loopback for tests and benchmarks: API replicas
(`vigil serve --role api`) and worker processes (`vigil worker`) on one PostgreSQL schema and
one Redis stream.

All processes share one VIGIL_HOME (as replicas share one configuration and secret mount);
each writes its own log file in it. Besides the processes: the Redis consumer group's backlog
as workers see it, and NDJSON senders that spread requests over the API replicas.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import Engine, create_engine, text

from tests.support.server import VIGIL, VigilServer, free_port, vigil_env

REDIS_URL = "redis://127.0.0.1:6379/0"
#: the consumer group of the detection workers (RedisQueueSettings.group)
GROUP = "vigil-workers"
NDJSON = {"Content-Type": "application/x-ndjson"}


@dataclass
class Replica(VigilServer):
    """A VigilServer with a log file of its own in the shared home."""

    name: str = "api"

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"


@dataclass
class WorkerProcess:
    """`vigil worker` with its health listener on a free loopback port."""

    home: Path
    env: Mapping[str, str]
    name: str = "worker"
    args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        self.port = self.port or free_port()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*VIGIL, "worker", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            env=vigil_env(self.home, self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"vigil worker exited early:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health/live", timeout=1).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"vigil worker not up after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class StreamNames:
    """A stream and dead-letter stream of this test's own, removed afterwards."""

    prefix: str = field(default_factory=lambda: f"vigil-test:{uuid.uuid4().hex[:10]}")

    @property
    def stream(self) -> str:
        return f"{self.prefix}:events"

    def env(self) -> dict[str, str]:
        return {
            "VIGIL_QUEUE_URL": REDIS_URL,
            "VIGIL_REDIS_QUEUE__STREAM": self.stream,
            "VIGIL_REDIS_QUEUE__DEAD_LETTER_STREAM": f"{self.prefix}:events:dead",
        }

    def cleanup(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def run_parallel(*calls: Callable[[], Any]) -> list[Any]:
    """Call each in a thread of its own (process start-ups, CLI runs: mostly waiting); return
    their results in order, re-raising the first failure."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = calls[n]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def start_all(processes: Sequence[Replica | WorkerProcess], timeout: float = 180.0) -> None:
    """Start the processes side by side (on a loaded machine, one after another takes minutes);
    if one fails, stop the others."""
    try:
        run_parallel(*(lambda p=p: p.start(timeout=timeout) for p in processes))
    except BaseException:
        for p in processes:
            p.stop()
        raise


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def backlog(client: redis.Redis, stream: str, group: str = GROUP) -> int:
    """Records not yet acknowledged by the workers' group: undelivered (lag) + pending."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.exceptions.ResponseError:  # no stream yet
        return 0
    for info in groups:
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            # lag is None only when Redis cannot compute it (entries deleted mid-range)
            lag = info.get("lag")
            return int(info["pending"]) + (int(lag) if lag is not None else client.xlen(stream))
    return int(client.xlen(stream))  # no worker created the group yet: nothing was read


def sql_queue_done(engine: Engine, consumer: str = "detection") -> bool:
    """Whether the embedded service's consumer has committed past the last record of its SQL
    queue (the reference runs use the SQL queue)."""
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(seq) FROM event_queue")).scalar_one()
        done = conn.execute(
            text("SELECT position FROM consumer_offsets WHERE name = :name"), {"name": consumer}
        ).scalar_one_or_none()
    return last is not None and done == last


def consumer_pending(client: redis.Redis, stream: str, pid: int, group: str = GROUP) -> int:
    """Records delivered to the worker process ``pid`` (consumer ``<host>-<pid>``) and not
    acknowledged by it."""
    suffix = f"-{pid}".encode()
    try:
        consumers = client.xinfo_consumers(stream, group)
    except redis.exceptions.ResponseError:
        return 0
    return sum(int(c["pending"]) for c in consumers if bytes(c["name"]).endswith(suffix))


@dataclass
class SendResult:
    """What the API replicas answered to a sender's requests (202 only; anything else fails)."""

    accepted: int = 0
    duplicates: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, accepted: int, duplicates: int) -> None:
        with self.lock:
            self.accepted += accepted
            self.duplicates += duplicates
            self.requests += 1


def post_all(url: str, key: str, payloads: Sequence[bytes], result: SendResult) -> None:
    """POST each NDJSON body to ``url`` in order; any answer but 202 raises."""
    headers = {**NDJSON, "Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        for body in payloads:
            r = http.post("/v1/events", content=body)
            if r.status_code != 202:
                raise AssertionError(f"POST /v1/events to {url}: {r.status_code} {r.text[:500]}")
            answer = r.json()
            result.add(int(answer["accepted"]), int(answer.get("duplicates", 0)))


class Senders:
    """One sending thread per API replica; request ``n`` goes to replica ``n % len(urls)``.
    :meth:`join` re-raises the first failure of any thread."""

    def __init__(self, urls: Sequence[str], key: str, payloads: Sequence[bytes]) -> None:
        self.result = SendResult()
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(
                target=self._run, args=(url, key, payloads[n :: len(urls)]), daemon=True
            )
            for n, url in enumerate(urls)
        ]

    def _run(self, url: str, key: str, payloads: Sequence[bytes]) -> None:
        try:
            post_all(url, key, payloads, self.result)
        except BaseException as exc:
            self.errors.append(exc)

    def start(self) -> Senders:
        for t in self._threads:
            t.start()
        return self

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float = 600.0) -> SendResult:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.errors:
            raise self.errors[0]
        if self.alive():
            raise AssertionError(f"senders still running after {timeout}s")
        return self.result


Outcome = tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]], int]


def outcome(url: str) -> Outcome:
    """What a run produced, without what differs between runs (ids, times, tenant):
    detections by (rule, kind, event fields), alerts by (rule, entity, severity, count), and
    how many detections the alerts link."""
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
