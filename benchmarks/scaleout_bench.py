"""Scale-out throughput and latency: `vigil serve --role api` + N `vigil worker` processes on
PostgreSQL and Redis Streams, driven over loopback HTTP.

Each deployment gets a fresh PostgreSQL database (``vigil_bench_<random>``, dropped afterwards);
the scale-out ones also a Redis stream prefix of their own (``vigil-bench:<random>:events``;
its keys are deleted afterwards, nothing shared is flushed). Every process loads every SigmaHQ
rule of engine_bench.py's rule set. The deployments, one after the other:

* the embedded `vigil serve` (API + detection child process on the SQL queue), the baseline;
* one API replica (`vigil serve --role api`) + 1 `vigil worker`, then + 2 (``--workers``).

For each:

1. **ingest**: the detecting processes are frozen (SIGSTOP) and ``--events`` events of
   engine_bench.py's synthetic Sysmon corpus are posted by ``--clients`` clients in
   ``--batch``-event NDJSON requests: events/s accepted by the API alone (for the embedded
   service, by a `--role api` replica on its database: see ``embedded``).
2. **detection**: the detecting processes are resumed (SIGCONT) and the backlog (Redis
   consumer group, or the SQL queue's offset) is polled until empty: events/s processed, per
   process too, and the CPU seconds those processes and the database's PostgreSQL backends
   spent (from /proc), so the per-core rate holds even while other jobs share the machine.
3. **latency**: a steady ``--rate`` events/s in ``--latency-batch``-event requests for
   ``--seconds``; event-to-alert from the histogram ``vigil_event_to_alert_seconds``
   (accepted -> alert committed; percentiles interpolated inside its buckets) and, exactly,
   from the stored detections (``detected_at - accepted_at``: accepted -> detection stamped,
   before the alert writes and the commit).

Last, per CPU second: the embedded engine (engine_bench.py's measurement, file -> detections,
same rules and events), the embedded pipeline, and a worker through the queue.

    # 100,000 events; embedded, then 1 worker, then 2; latency at 1,000 events/s for 20 s
    .venv/bin/python benchmarks/scaleout_bench.py
    .venv/bin/python benchmarks/scaleout_bench.py --events 50000 --workers 1 --rate 500
    # the workers' idle wait (VIGIL_PIPELINE__IDLE_POLL_S, default 1 s)
    .venv/bin/python benchmarks/scaleout_bench.py --idle-poll 0.05
    # py-spy (collapsed stacks) of the first detecting process while it drains
    .venv/bin/python benchmarks/scaleout_bench.py --profile /tmp/scaleout-profile

Prints figures with the machine's core count and load average; records nothing by itself.
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
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
class Target:
    """What a run drives: an API, the processes that detect (frozen while preloading), how many
    records are left for them, and how many events each has processed so far."""

    label: str
    api: Replica
    """where the throughput run posts"""
    latency_api: Replica
    """where the latency run posts"""
    key: str
    database_url: str
    detectors: list[int]
    remaining: Callable[[], int]
    processed: Callable[[], list[float]]
    latencies: Callable[[], list[list[tuple[float, float]]]]
    """each detector's vigil_event_to_alert_seconds buckets"""


def admin_key(home: Path, env: dict[str, str]) -> str:
    run_vigil(["db", "upgrade"], home=home, env=env)
    init = run_vigil(
        ["admin", "init", "--tenant", "bench", "--email", "bench@bench.test", "--json"],
        home=home,
        env=env,
    )
    return str(json.loads(init.stdout)["api_key"])


def base_env(database_url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {
        "VIGIL_DATABASE_URL": database_url,
        "VIGIL_LOG_LEVEL": "warning",
        # The key's rate limiter stays on (its cost is part of every request) but must not
        # refuse the benchmark's requests.
        "VIGIL_IDENTITY__RATE_LIMIT_REQUESTS": "100000000",
    }
    if args.idle_poll is not None:
        env["VIGIL_PIPELINE__IDLE_POLL_S"] = str(args.idle_poll)
    return env


def rule_args() -> list[str]:
    return [a for d in RULE_DIRS if d.is_dir() for a in ("--rules", str(d))]


def metrics_of(url: str) -> str:
    return httpx.get(url + "/metrics", timeout=30).text


def processed(metrics: str) -> float:
    return metric_values(metrics, "vigil_events_processed_total").get("", 0.0)


@contextmanager
def scaleout(workers: int, database_url: str, args: argparse.Namespace) -> Iterator[Target]:
    """One API replica and ``workers`` `vigil worker` processes on a Redis stream of their
    own (its keys deleted afterwards)."""
    prefix = f"vigil-bench:{uuid.uuid4().hex[:10]}"
    stream = f"{prefix}:events"
    env = {
        **base_env(database_url, args),
        "VIGIL_QUEUE_URL": REDIS_URL,
        "VIGIL_REDIS_QUEUE__STREAM": stream,
        "VIGIL_REDIS_QUEUE__DEAD_LETTER_STREAM": f"{prefix}:events:dead",
    }
    client = redis.Redis.from_url(REDIS_URL)
    with tempfile.TemporaryDirectory(prefix="vigil-sb-") as tmp:
        home = Path(tmp)
        key = admin_key(home, env)
        api = Replica(home=home, args=["--role", "api", *rule_args()], env=env, name="api")
        procs = [
            WorkerProcess(home, env, name=f"worker-{n}", args=tuple(rule_args()))
            for n in range(workers)
        ]
        try:
            start_all([api, *procs], timeout=900)
            urls = [f"http://127.0.0.1:{w.port}" for w in procs]
            print(f"  stream {stream}")
            yield Target(
                label=f"API + {workers} worker(s)",
                api=api,
                latency_api=api,
                key=key,
                database_url=database_url,
                detectors=[w.pid for w in procs],
                remaining=lambda: backlog(client, stream),
                processed=lambda: [processed(metrics_of(u)) for u in urls],
                latencies=lambda: [
                    histogram(metrics_of(u), "vigil_event_to_alert_seconds") for u in urls
                ],
            )
        finally:
            for w in procs:
                w.signal(signal.SIGCONT)  # a frozen process would not see SIGTERM
                w.stop()
            api.stop()
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
            client.close()


def detection_child(pid: int) -> int:
    """The detection process `vigil serve` spawned (not multiprocessing's resource tracker)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                return int(child)
    raise AssertionError(f"vigil serve (pid {pid}) has no detection child")


@contextmanager
def embedded(database_url: str, args: argparse.Namespace) -> Iterator[Target]:
    """The embedded service for comparison: `vigil serve` (API + detection child process on
    the SQL queue in PostgreSQL), the same rules.

    The throughput run posts to a `--role api` replica on the same database instead: ingest
    wakes the embedded child with a multiprocessing.Event, whose set() waits until the child
    has woken, so posting to `vigil serve` while its child is frozen would hang. The latency
    run posts to `vigil serve` itself (the path that wakes the child)."""
    env = base_env(database_url, args)
    engine = create_engine(database_url)

    def remaining() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM event_queue WHERE seq > coalesce((SELECT position"
                        " FROM consumer_offsets WHERE name = 'detection'), 0)"
                    )
                ).scalar_one()
            )

    with tempfile.TemporaryDirectory(prefix="vigil-sb-") as tmp:
        home = Path(tmp)
        key = admin_key(home, env)
        server = Replica(home=home, args=rule_args(), env=env, name="serve")
        api = Replica(home=home, args=["--role", "api", *rule_args()], env=env, name="api")
        try:
            start_all([server, api], timeout=900)
            assert server.process is not None

            def detection_ready() -> bool:
                with server.client(key) as http:
                    health = http.get("/health/deep", timeout=60).json()
                state = health["checks"]["workers"]["detection"]
                return bool(state.get("running") and not state.get("starting"))

            # /health/ready answers before the detection child has loaded its rules.
            wait_for(detection_ready, "the detection child to load its rules", 900)
            child = detection_child(server.process.pid)
            yield Target(
                label="embedded `vigil serve` (SQL queue, detection child process)",
                api=api,
                latency_api=server,
                key=key,
                database_url=database_url,
                detectors=[child],
                remaining=remaining,
                processed=lambda: [processed(metrics_of(server.url))],
                latencies=lambda: [
                    histogram(metrics_of(server.url), "vigil_event_to_alert_seconds")
                ],
            )
        finally:
            api.stop()
            server.stop()
            engine.dispose()


def pg_backends(database_url: str) -> list[int]:
    """Server processes serving the benchmark database (pool connections live for the run)."""
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                {"d": make_url(database_url).database},
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
    events: list[float]
    """per detector process"""
    cpu: list[float]
    """per detector process"""
    pg_cpu: float

    def per_cpu(self, with_pg: bool = False) -> float:
        return sum(self.events) / max(sum(self.cpu) + (self.pg_cpu if with_pg else 0), 1e-9)


def measure_throughput(
    target: Target, lines: Sequence[bytes], args: argparse.Namespace
) -> Throughput:
    """Preload with the detectors frozen (ingest alone), then let them drain (detection)."""
    assert target.api.process is not None
    before = target.processed()
    payloads = batches(lines, args.batch)
    api_cpu0 = cpu_seconds(target.api.process.pid)
    for pid in target.detectors:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        sent = Senders([target.api.url] * args.clients, target.key, payloads).start().join(3600)
        ingest_s = time.perf_counter() - started
    except BaseException:
        for pid in target.detectors:
            os.kill(pid, signal.SIGCONT)  # a frozen process would not see SIGTERM
        raise
    api_cpu = cpu_seconds(target.api.process.pid) - api_cpu0
    print(
        f"  ingest: {sent.accepted:,} events in {sent.requests} requests of {args.batch} by "
        f"{args.clients} clients in {ingest_s:.1f} s = {sent.accepted / ingest_s:,.0f} events/s "
        f"accepted (API process {api_cpu:.1f} CPU s = {sent.accepted / max(api_cpu, 1e-9):,.0f} "
        f"events per API CPU second) [{machine()}]"
    )
    pids = pg_backends(target.database_url)
    pg0 = {p: cpu_seconds(p) for p in pids}
    cpu0 = [cpu_seconds(p) for p in target.detectors]
    profiler = start_profiler(target, args)
    started = time.perf_counter()
    for pid in target.detectors:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: target.remaining() == 0, "the detectors to drain the queue", 3600)
    drain_s = time.perf_counter() - started
    profile = stop_profiler(profiler)
    cpu = [cpu_seconds(p) - c for p, c in zip(target.detectors, cpu0, strict=True)]
    backends = set(pids) | set(pg_backends(target.database_url))
    pg_cpu = sum(cpu_seconds(p) - pg0.get(p, 0.0) for p in backends)
    events = [a - b for a, b in zip(target.processed(), before, strict=True)]
    result = Throughput(sent.accepted / ingest_s, sum(events) / drain_s, events, cpu, pg_cpu)
    print(
        f"  detection: {sum(events):,.0f} events drained in {drain_s:.1f} s = "
        f"{result.detection_rate:,.0f} events/s [{machine()}]"
    )
    for n, (done, used) in enumerate(zip(events, cpu, strict=True)):
        print(
            f"    detector process {n}: {done:,.0f} events, {used:.1f} CPU s = "
            f"{done / max(used, 1e-9):,.0f} events per CPU second"
        )
    print(
        f"    PostgreSQL backends of this database: {pg_cpu:.1f} CPU s = "
        f"{sum(events) / max(pg_cpu, 1e-9):,.0f} events per PostgreSQL CPU second"
    )
    if profile is not None:
        print_profile(profile)
    return result


Profiler = tuple[subprocess.Popen[bytes], Path]


def start_profiler(target: Target, args: argparse.Namespace) -> Profiler | None:
    if not args.profile:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    pid = target.detectors[0]
    out = args.profile / f"detector-{pid}.txt"
    print(f"    profiling detector process {pid} into {out}")
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        sys.exit(f"--profile needs py-spy next to {sys.executable} (pip install py-spy)")
    idle = ["--idle"] if args.profile_idle else []
    process = subprocess.Popen(
        [str(spy), "record", "--format", "raw", "--rate", "50", "--nonblocking", *idle,
         "--pid", str(pid), "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, out


def stop_profiler(profiler: Profiler | None) -> Path | None:
    if profiler is None:
        return None
    process, output = profiler
    process.send_signal(signal.SIGINT)
    process.wait(60)
    return output if output.exists() else None


def print_profile(path: Path, top: int = 12) -> None:
    """Where the profiled process spent its busy samples: the steps of a detection batch
    (under ``DetectionPipeline.run_once``) and the other threads, by function. With
    ``--profile-idle`` the samples include waiting threads, and the detection thread's samples
    are also listed by their innermost frame (where a batch waits: a socket, a lock)."""
    shares: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    in_batch = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = [frame.split(" (", 1)[0] for frame in stack.split(";")]
        n = int(count)
        total += n
        if "DetectionPipeline.run_once" in frames:
            at = frames.index("DetectionPipeline.run_once")
            shares["batch: " + (frames[at + 1] if at + 1 < len(frames) else "itself")] += n
            leaves[" < ".join(reversed(frames[-3:]))] += n
            in_batch += n
        elif "DetectionThread._run" in frames:
            shares["detection thread: " + " > ".join(frames[-2:])] += n
        else:  # name a thread by its loop's step (frames 0-2 are threading's bootstrap)
            shares["other: " + " > ".join(frames[3:5] or frames)] += n
    print(f"    py-spy samples of the busy threads ({total:,}; {path}):")
    for name, n in shares.most_common(top):
        print(f"      {n / max(total, 1):6.1%}  {name}")
    print(f"    innermost frames of the detection batches ({in_batch:,} samples):")
    for name, n in leaves.most_common(top):
        print(f"      {n / max(in_batch, 1):6.1%}  {name}")


def measure_latency(target: Target, lines: Sequence[bytes], args: argparse.Namespace) -> None:
    """A steady offered load from one client; event-to-alert from the detectors' histograms and,
    exactly, from the stored detections."""
    payloads = batches(lines, args.latency_batch)
    interval = args.latency_batch / args.rate
    before = target.latencies()
    window_start = time.time()
    sent = late = 0
    headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {target.key}"}
    with httpx.Client(base_url=target.latency_api.url, headers=headers, timeout=60) as http:
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
    wait_for(lambda: target.remaining() == 0, "the detectors to drain the queue", 600)
    time.sleep(0.5)
    diff: dict[float, float] = {}
    for after_one, before_one in zip(target.latencies(), before, strict=True):
        earlier = dict(before_one)
        for le, count in after_one:
            diff[le] = diff.get(le, 0.0) + count - earlier.get(le, 0.0)
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
    exact = detection_delays(target.database_url, window_start)
    if len(exact) > 1:
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


def run(kind: str, workers: int, lines: Sequence[bytes], args: argparse.Namespace) -> Throughput:
    """One fresh database, one deployment, the throughput and latency runs."""
    with fresh_database(PG_ADMIN_URL) as url:
        name = "embedded `vigil serve`" if kind == "embedded" else f"API + {workers} worker(s)"
        print(f"\n== {name} (database {make_url(url).database}) [{machine()}]")
        t0 = time.perf_counter()
        deployment = embedded(url, args) if kind == "embedded" else scaleout(workers, url, args)
        with deployment as target:
            print(f"  started in {time.perf_counter() - t0:.1f} s [{machine()}]")
            result = measure_throughput(target, lines, args)
            if args.seconds > 0:
                measure_latency(target, lines, args)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="offered events/s (latency)")
    ap.add_argument("--latency-batch", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0, help="latency run; 0 skips it")
    ap.add_argument("--idle-poll", type=float, default=None, help="VIGIL_PIPELINE__IDLE_POLL_S")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy a detector into this dir")
    ap.add_argument(
        "--profile-idle", action="store_true", help="profile waiting threads too (py-spy --idle)"
    )
    ap.add_argument(
        "--no-embedded",
        dest="embedded",
        action="store_false",
        help="skip the embedded `vigil serve` baseline",
    )
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
    base = run("embedded", 0, lines, args) if args.embedded else None
    results = {n: run("scaleout", n, lines, args) for n in args.workers}
    wall_rate, cpu_rate, n = engine_rate(write_corpus("synthetic", args.events))
    print(f"\n== per core [{machine()}]")
    print(
        f"  embedded engine (engine_bench measurement, file -> detections, {n:,} events): "
        f"{wall_rate:,.0f} events/s wall, {cpu_rate:,.0f} events per CPU second"
    )
    if base is not None:
        print(
            f"  embedded pipeline (SQL queue, detections + alerts): {base.detection_rate:,.0f} "
            f"events/s wall; {base.per_cpu():,.0f} events per detector CPU second "
            f"({base.per_cpu() / cpu_rate:.0%} of the engine's); with PostgreSQL's CPU "
            f"{base.per_cpu(with_pg=True):,.0f}"
        )
    for workers, r in results.items():
        vs_base = f", {r.per_cpu() / base.per_cpu():.0%} of the embedded pipeline's" if base else ""
        print(
            f"  {workers} worker(s) through Redis: {r.detection_rate:,.0f} events/s wall = "
            f"{r.detection_rate / workers:,.0f} per worker; {r.per_cpu():,.0f} events per worker "
            f"CPU second ({r.per_cpu() / cpu_rate:.0%} of the engine's{vs_base}); with "
            f"PostgreSQL's CPU {r.per_cpu(with_pg=True):,.0f}"
        )
    if 1 in results and 2 in results:
        print(
            "  scaling 1 -> 2 workers: "
            f"{results[2].detection_rate / results[1].detection_rate:.2f}x detection throughput"
        )
    if results:
        one = results[min(results)]
        print(
            f"  sizing figure: {one.per_cpu():,.0f} events/s per worker core, plus "
            f"{one.pg_cpu / max(sum(one.events), 1) * 1e6:,.0f} µs of PostgreSQL CPU per event"
        )


if __name__ == "__main__":
    main()
