"""Scale-out throughput and latency: `vigil serve --role api` + N `vigil worker` processes on
PostgreSQL and Redis Streams, driven over loopback HTTP.

For each worker count it creates a fresh PostgreSQL database (``vigil_bench_<random>``, dropped
afterwards) and a Redis stream prefix of its own (``vigil-bench:<random>:events``; its keys are
deleted afterwards, nothing shared is flushed), migrates, makes an admin key, starts one API
replica and the workers with every SigmaHQ rule of engine_bench.py's rule set, then:

1. **ingest**: the workers are frozen (SIGSTOP) and ``--events`` events of engine_bench.py's
   synthetic Sysmon corpus are posted by ``--clients`` clients in ``--batch``-event NDJSON
   requests: events/s accepted by the API.
2. **detection**: the workers are resumed (SIGCONT) and the consumer group's backlog is polled
   until it is empty: events/s processed, per worker too, and the CPU seconds the workers and
   their PostgreSQL backends spent (from /proc), so the per-core rate is known even when other
   jobs share the machine.
3. **latency**: a steady ``--rate`` events/s in ``--latency-batch``-event requests for
   ``--seconds``; event-to-alert from the workers' histogram ``vigil_event_to_alert_seconds``
   (accepted → alert committed; percentiles interpolated inside its buckets) and, exactly, from
   the detections stored (``detected_at - accepted_at``: accepted → detection stamped, before
   the alert writes and the commit).

Last, the per-core figure: the embedded engine (engine_bench.py's measurement: file →
detections in one process, same rules, same events) against one worker through the queue.

    # 100,000 events; 1 worker, then 2; latency at 1,000 events/s for 20 s
    .venv/bin/python benchmarks/scaleout_bench.py
    .venv/bin/python benchmarks/scaleout_bench.py --events 50000 --workers 1 --rate 500
    # the workers' idle wait (VIGIL_PIPELINE__IDLE_POLL_S, default 1 s)
    .venv/bin/python benchmarks/scaleout_bench.py --idle-poll 0.05
    # py-spy (collapsed stacks) of the first worker while it drains
    .venv/bin/python benchmarks/scaleout_bench.py --profile /tmp/scaleout-profile

Prints figures with the machine's core count and load average; records nothing by itself (the
lead copies figures into docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from tests.scaleout.cluster import (  # noqa: E402
    Replica,
    Senders,
    WorkerProcess,
    backlog,
    start_all,
    wait_for,
)
from tests.support.server import run_vigil  # noqa: E402

from engine_bench import RULE_DIRS, SIGMA, write_corpus  # noqa: E402
from ingest_bench import histogram, metric_values, percentile  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "VIGIL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("VIGIL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"nproc {os.cpu_count()}, load average {load}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A database of this run's own on the shared server; dropped (with its sessions) after."""
    name = f"vigil_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Deployment:
    """One API replica and ``workers`` worker processes on a fresh database and stream."""

    home: Path
    database_url: str
    workers_n: int
    idle_poll_s: float | None
    prefix: str = field(default_factory=lambda: f"vigil-bench:{uuid.uuid4().hex[:10]}")
    key: str = ""
    api: Replica | None = None
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def stream(self) -> str:
        return f"{self.prefix}:events"

    def env(self) -> dict[str, str]:
        env = {
            "VIGIL_DATABASE_URL": self.database_url,
            "VIGIL_QUEUE_URL": REDIS_URL,
            "VIGIL_REDIS_QUEUE__STREAM": self.stream,
            "VIGIL_REDIS_QUEUE__DEAD_LETTER_STREAM": f"{self.prefix}:events:dead",
            "VIGIL_LOG_LEVEL": "warning",
            # The key's rate limiter stays on (its cost is part of every request) but must
            # not refuse the benchmark's requests.
            "VIGIL_IDENTITY__RATE_LIMIT_REQUESTS": "100000000",
        }
        if self.idle_poll_s is not None:
            env["VIGIL_PIPELINE__IDLE_POLL_S"] = str(self.idle_poll_s)
        return env

    def start(self) -> None:
        env = self.env()
        run_vigil(["db", "upgrade"], home=self.home, env=env)
        init = run_vigil(
            ["admin", "init", "--tenant", "bench", "--email", "bench@bench.test", "--json"],
            home=self.home,
            env=env,
        )
        self.key = json.loads(init.stdout)["api_key"]
        rules = [a for d in RULE_DIRS if d.is_dir() for a in ("--rules", str(d))]
        self.api = Replica(home=self.home, args=["--role", "api", *rules], env=env, name="api")
        self.workers = [
            WorkerProcess(self.home, env, name=f"worker-{n}", args=tuple(rules))
            for n in range(self.workers_n)
        ]
        start_all([self.api, *self.workers], timeout=600)

    def stop(self) -> None:
        for w in self.workers:
            w.signal(signal.SIGCONT)  # a frozen process would not see SIGTERM
            w.stop()
        if self.api is not None:
            self.api.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()

    def worker_metrics(self) -> list[str]:
        return [
            httpx.get(f"http://127.0.0.1:{w.port}/metrics", timeout=30).text for w in self.workers
        ]


def processed(metrics: str) -> float:
    return metric_values(metrics, "vigil_events_processed_total").get("", 0.0)


def pg_backends(database_url: str) -> list[int]:
    """Server processes serving the benchmark database (pool connections live for the run)."""
    name = make_url(database_url).database
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": name}
            )
            return [int(r[0]) for r in rows]
    finally:
        engine.dispose()


def read_corpus(events: int) -> list[bytes]:
    path = write_corpus("synthetic", events)
    with path.open("rb") as f:
        return [line.rstrip(b"\n") for line in f]


def batches(lines: Sequence[bytes], size: int) -> list[bytes]:
    return [b"\n".join(lines[s : s + size]) for s in range(0, len(lines), size)]


@dataclass
class Throughput:
    ingest_rate: float
    detection_rate: float
    per_worker_events: list[float]
    worker_cpu: list[float]
    pg_cpu: float
    drain_s: float


def measure_throughput(
    dep: Deployment, lines: Sequence[bytes], args: argparse.Namespace
) -> Throughput:
    assert dep.api is not None
    client = redis.Redis.from_url(REDIS_URL)
    before = [processed(m) for m in dep.worker_metrics()]
    for w in dep.workers:
        w.signal(signal.SIGSTOP)
    # Every client gets the same share of requests; all go to the one API replica.
    payloads = batches(lines, args.batch)
    assert dep.api.process is not None
    api_cpu0 = cpu_seconds(dep.api.process.pid)
    started = time.perf_counter()
    senders = Senders([dep.api.url] * args.clients, dep.key, payloads).start()
    sent = senders.join(3600)
    ingest_s = time.perf_counter() - started
    api_cpu = cpu_seconds(dep.api.process.pid) - api_cpu0
    print(
        f"  ingest: {sent.accepted:,} events in {sent.requests} requests of {args.batch} by "
        f"{args.clients} clients in {ingest_s:.1f} s = {sent.accepted / ingest_s:,.0f} events/s "
        f"accepted (API process {api_cpu:.1f} CPU s = {sent.accepted / max(api_cpu, 1e-9):,.0f} "
        f"events per API CPU second) [{machine()}]"
    )
    pids = pg_backends(dep.database_url)
    pg0 = {p: cpu_seconds(p) for p in pids}
    cpu0 = [cpu_seconds(w.pid) for w in dep.workers]
    profiler = start_profiler(dep, args)
    started = time.perf_counter()
    for w in dep.workers:
        w.signal(signal.SIGCONT)
    wait_for(lambda: backlog(client, dep.stream) == 0, "the workers to drain the queue", 3600)
    drain_s = time.perf_counter() - started
    stop_profiler(profiler)
    worker_cpu = [cpu_seconds(w.pid) - c for w, c in zip(dep.workers, cpu0, strict=True)]
    pg_cpu = sum(
        cpu_seconds(p) - pg0.get(p, 0.0) for p in set(pids) | set(pg_backends(dep.database_url))
    )
    after = [processed(m) for m in dep.worker_metrics()]
    per_worker = [a - b for a, b in zip(after, before, strict=True)]
    client.close()
    total = sum(per_worker)
    print(
        f"  detection: {total:,.0f} events drained in {drain_s:.1f} s = {total / drain_s:,.0f} "
        f"events/s with {len(dep.workers)} worker(s) [{machine()}]"
    )
    for n, (events, cpu) in enumerate(zip(per_worker, worker_cpu, strict=True)):
        print(
            f"    worker {n}: {events:,.0f} events, {cpu:.1f} CPU s = "
            f"{events / max(cpu, 1e-9):,.0f} events per worker CPU second"
        )
    print(
        f"    PostgreSQL backends of this database: {pg_cpu:.1f} CPU s = "
        f"{total / max(pg_cpu, 1e-9):,.0f} events per PostgreSQL CPU second"
    )
    return Throughput(
        sent.accepted / ingest_s, total / drain_s, per_worker, worker_cpu, pg_cpu, drain_s
    )


def start_profiler(dep: Deployment, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    if not args.profile:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"worker-{len(dep.workers)}w-{dep.workers[0].pid}.txt"
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy), "record", "--format", "raw", "--rate", "50", "--nonblocking",
         "--pid", str(dep.workers[0].pid), "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)


def measure_latency(dep: Deployment, lines: Sequence[bytes], args: argparse.Namespace) -> None:
    assert dep.api is not None
    payloads = batches(lines, args.latency_batch)
    interval = args.latency_batch / args.rate
    client = redis.Redis.from_url(REDIS_URL)
    before = [histogram(m, "vigil_event_to_alert_seconds") for m in dep.worker_metrics()]
    window_start = time.time()
    sent = late = 0
    headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {dep.key}"}
    with httpx.Client(base_url=dep.api.url, headers=headers, timeout=60) as http:
        started = time.perf_counter()
        next_at = started
        i = 0
        while time.perf_counter() - started < args.seconds:
            r = http.post("/v1/events", content=payloads[i % len(payloads)])
            if r.status_code != 202:
                raise SystemExit(f"HTTP {r.status_code}: {r.text[:300]}")
            sent += r.json()["accepted"]
            i += 1
            next_at += interval
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                late += 1
        elapsed = time.perf_counter() - started
    wait_for(lambda: backlog(client, dep.stream) == 0, "the workers to drain the queue", 600)
    client.close()
    time.sleep(0.5)
    after = [histogram(m, "vigil_event_to_alert_seconds") for m in dep.worker_metrics()]
    diff: dict[float, float] = {}
    for a_w, b_w in zip(after, before, strict=True):
        b_map = dict(b_w)
        for le, count in a_w:
            diff[le] = diff.get(le, 0.0) + count - b_map.get(le, 0.0)
    buckets = sorted(diff.items())
    total = buckets[-1][1] if buckets else 0
    print(
        f"  latency: offered {sent:,} events in {elapsed:.1f} s = {sent / elapsed:,.0f} events/s "
        f"({args.latency_batch}-event requests; {late} fell behind schedule) [{machine()}]"
    )
    print(
        f"    event-to-alert (accepted -> alert committed, histogram, {total:,.0f} detections): "
        + ", ".join(f"p{q} {percentile(buckets, q / 100) * 1000:,.0f} ms" for q in (50, 95, 99))
    )
    exact = detection_delays(dep.database_url, window_start)
    if exact:
        qs = statistics.quantiles(exact, n=100, method="inclusive")
        print(
            f"    accepted -> detection stamped (exact, {len(exact):,} detections): "
            f"p50 {qs[49] * 1000:,.0f} ms, p95 {qs[94] * 1000:,.0f} ms, "
            f"p99 {qs[98] * 1000:,.0f} ms, max {max(exact) * 1000:,.0f} ms"
        )


def detection_delays(database_url: str, since: float) -> list[float]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT EXTRACT(EPOCH FROM detected_at - accepted_at) FROM detections "
                    "WHERE accepted_at >= to_timestamp(:since)"
                ),
                {"since": since},
            )
            return [float(r[0]) for r in rows]
    finally:
        engine.dispose()


def engine_rate(lines_path: Path) -> tuple[float, float, int]:
    """engine_bench.py's in-process measurement (file → detections, one core) on the same
    rules and events: (events per wall second, events per CPU second, events)."""
    from vigil.detect.scan import Scanner, ScanSummary, scan_paths
    from vigil.detect.sigma.engine import SigmaEngine
    from vigil.detect.sigma.loader import load_rules
    from vigil.detect.sigma.mapping import load_mapping

    scanner = Scanner(SigmaEngine(load_rules(RULE_DIRS, mapping=load_mapping()).rules))
    summary = ScanSummary()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in scan_paths([lines_path], scanner, summary):
        pass
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return summary.events / wall, summary.events / cpu, summary.events


def run_one(workers: int, lines: Sequence[bytes], args: argparse.Namespace) -> Throughput:
    print(f"\n== API + {workers} worker(s) [{machine()}]")
    with (
        fresh_database(PG_ADMIN_URL) as url,
        tempfile.TemporaryDirectory(prefix="vigil-sb-") as tmp,
    ):
        dep = Deployment(Path(tmp) / "home", url, workers, args.idle_poll)
        t0 = time.perf_counter()
        try:
            dep.start()
            print(
                f"  started in {time.perf_counter() - t0:.1f} s (database "
                f"{make_url(url).database}, stream {dep.stream})"
            )
            result = measure_throughput(dep, lines, args)
            if args.seconds > 0:
                measure_latency(dep, lines, args)
        finally:
            dep.stop()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="offered events/s (latency)")
    ap.add_argument("--latency-batch", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0, help="latency run; 0 skips it")
    ap.add_argument("--idle-poll", type=float, default=None, help="VIGIL_PIPELINE__IDLE_POLL_S")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy a worker into this dir")
    args = ap.parse_args()
    if not SIGMA.is_dir():
        sys.exit(f"SigmaHQ rules not found at {SIGMA}")
    lines = read_corpus(args.events)
    print(
        f"scale-out bench: {args.events:,} synthetic events, rules "
        f"{', '.join(d.name for d in RULE_DIRS)}, "
        f"PostgreSQL {make_url(PG_ADMIN_URL).host}, Redis {REDIS_URL}, idle poll "
        f"{args.idle_poll if args.idle_poll is not None else 'default'} [{machine()}]"
    )
    results = {n: run_one(n, lines, args) for n in args.workers}
    wall_rate, cpu_rate, n = engine_rate(write_corpus("synthetic", args.events))
    print(f"\n== per core [{machine()}]")
    print(
        f"  embedded engine (engine_bench measurement, file -> detections, {n:,} events): "
        f"{wall_rate:,.0f} events/s wall, {cpu_rate:,.0f} events per CPU second"
    )
    for workers, r in results.items():
        per_worker_wall = r.detection_rate / workers
        per_cpu = sum(r.per_worker_events) / max(sum(r.worker_cpu), 1e-9)
        with_pg = sum(r.per_worker_events) / max(sum(r.worker_cpu) + r.pg_cpu, 1e-9)
        print(
            f"  {workers} worker(s): {r.detection_rate:,.0f} events/s = {per_worker_wall:,.0f} per "
            f"worker (wall); {per_cpu:,.0f} events per worker CPU second "
            f"({per_cpu / cpu_rate:.0%} of the engine's); counting PostgreSQL's CPU too "
            f"{with_pg:,.0f} ({with_pg / cpu_rate:.0%})"
        )
    if 1 in results and 2 in results:
        print(
            "  scaling 1 -> 2 workers: "
            f"{results[2].detection_rate / results[1].detection_rate:.2f}x detection throughput"
        )


if __name__ == "__main__":
    main()
