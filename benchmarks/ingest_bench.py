"""Ingest and detection through the real service: `vigil serve` driven over loopback HTTP.

Starts `vigil serve` (fresh VIGIL_HOME, SQLite) with the SigmaHQ rules of ../shared/sigma/rules
if present (else examples/rules), creates an admin key with `vigil admin init`, and drives it
from this process (a second process) with NDJSON batches of the synthetic Sysmon corpus of
engine_bench.py. Prints figures; records nothing by itself (copy them into docs/performance.md).

    # events/s accepted: 4 concurrent clients posting 1,000-event batches for 20 s
    .venv/bin/python benchmarks/ingest_bench.py throughput --clients 4 --batch 1000 --seconds 20
    # event-to-alert latency at a steady 5,000 events/s (100-event batches every 20 ms)
    .venv/bin/python benchmarks/ingest_bench.py latency --rate 5000 --batch 100 --seconds 30
    # either, with the detection worker as a thread of the API process instead of a child
    ... --worker-mode thread
    # no server: the detection pipeline in this process over 20,000 queued events, CPU time
    # per event by stage (detect, store, alerts, incident grouping, outbox, queue)
    .venv/bin/python benchmarks/ingest_bench.py stages --events 20000 --batch 1000

Latency comes from the server's own histogram (vigil_event_to_alert_seconds: ingest accepted
the event → the transaction holding its detection and alert committed), read from /metrics
before and after the run; percentiles are interpolated inside histogram buckets.

Both modes also print where the time went: the CPU the serving process and the detection child
used (as a share of one core: a child near 100 % is the bottleneck), the detection batches
(count, average size, p50/p99 duration from vigil_pipeline_batch_seconds) and the deepest
queue backlog seen, and how much of the time each process sat blocked on a SQLite write gate's
flock (from /proc/<pid>/task/*/wchan, sampled every 10 ms), split by gate from the blocked
waiters in /proc/locks: the queue gate (queue.db: ingest, purge) and the main gate (vigil.db:
the detection transaction, the correlator); the latency mode adds the client-side time of each
ingest request, which includes any wait for the queue gate. The machine's load
average is printed with them: figures taken while other jobs share the cores are lower bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from tests.support.server import VigilServer, run_vigil  # noqa: E402

from engine_bench import synthetic_record  # noqa: E402

SIGMA_RULES = ROOT.parent / "shared" / "sigma" / "rules"
EXAMPLE_RULES = ROOT / "examples" / "rules"
NDJSON = {"content-type": "application/x-ndjson"}


def corpus_batches(batch: int, count: int) -> list[bytes]:
    rng = random.Random(11)
    out = []
    for b in range(count):
        out.append(b"\n".join(synthetic_record(rng, b * batch + i) for i in range(batch)))
    return out


def metric_values(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric family from Prometheus text."""
    values: dict[str, float] = {}
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            values[m.group(1) or ""] = float(m.group(2))
    return values


def histogram(text: str, name: str) -> list[tuple[float, float]]:
    buckets = metric_values(text, name + "_bucket")
    out = []
    for labels, count in buckets.items():
        le = re.search(r'le="([^"]+)"', labels)
        if le:
            out.append((float("inf") if le.group(1) == "+Inf" else float(le.group(1)), count))
    return sorted(out)


def percentile(buckets: list[tuple[float, float]], q: float) -> float:
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    target = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= target:
            if le == float("inf"):
                return prev_le
            span = count - prev_count
            frac = (target - prev_count) / span if span else 1.0
            return prev_le + (le - prev_le) * frac
        prev_le, prev_count = le, count
    return prev_le


def start_server(home: Path, rules: Path, worker_mode: str) -> tuple[VigilServer, str]:
    init = run_vigil(
        ["admin", "init", "--tenant", "bench", "--email", "bench@bench.test", "--json"],
        home=home,
    )
    key = json.loads(init.stdout)["api_key"]
    env = {
        "VIGIL_PIPELINE__WORKER_MODE": worker_mode,
        "VIGIL_LOG_LEVEL": "warning",
        # The key's rate limiter stays on (its cost is part of every request) but must not
        # refuse the benchmark's 50-100 requests/s.
        "VIGIL_IDENTITY__RATE_LIMIT_REQUESTS": "100000000",
    }
    server = VigilServer(home, args=["--rules", str(rules)], env=env).start(timeout=180)
    # /health/ready answers before a detection child has loaded its rules; wait for it.
    deadline = time.monotonic() + 180
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
        while time.monotonic() < deadline:
            worker = http.get("/health/deep", timeout=30).json()["checks"]["workers"]["detection"]
            if worker.get("running") and not worker.get("starting"):
                break
            time.sleep(0.2)
    return server, key


def wait_drained(server: VigilServer, key: str, timeout: float = 600) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
        while time.perf_counter() - started < timeout:
            queue = http.get("/health/deep", timeout=30).json()["checks"]["queue"]
            if queue["depth"] == 0:
                break
            time.sleep(0.2)
    return time.perf_counter() - started


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of process ``pid`` so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Monitor:
    """While a run lasts: CPU used by the serving process and the detection child, and the
    queue's deepest backlog and oldest lag (sampled from /health/deep twice a second)."""

    def __init__(self, server: VigilServer, key: str) -> None:
        self.server = server
        self.key = key
        self.max_depth = 0
        self.max_lag = 0.0
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._gate_thread = threading.Thread(target=self._sample_gate, daemon=True)
        #: samples, and samples in which a thread of the process waited for the write gate's
        #: flock (i.e. for the other process's write transaction)
        self.gate_samples = 0
        self.gate_waits = {"serving": 0, "child": 0}
        #: (process, gate) → samples in which /proc/locks showed it blocked on that gate's file
        self.gate_by_file: dict[tuple[str, str], int] = {}
        with self._client() as http:
            worker = http.get("/health/deep", timeout=30).json()["checks"]["workers"]["detection"]
        self.api_pid = server.process.pid if server.process is not None else None
        self.child_pid: int | None = worker.get("pid")

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def _sample(self) -> None:
        with self._client() as http:
            while not self._stop.wait(0.5):
                queue = http.get("/health/deep").json()["checks"]["queue"]
                self.max_depth = max(self.max_depth, int(queue["depth"]))
                self.max_lag = max(self.max_lag, float(queue["lag_seconds"]))

    def _sample_gate(self) -> None:
        pids = {"serving": self.api_pid, "child": self.child_pid}
        while not self._stop.wait(0.01):
            self.gate_samples += 1
            for name, pid in pids.items():
                if pid is not None and waits_for_flock(pid):
                    self.gate_waits[name] += 1
            gates = gate_inodes(self.server.home)
            names = {pid: name for name, pid in pids.items() if pid is not None}
            for pid, inode in blocked_flocks():
                if pid in names and inode in gates:
                    key = (names[pid], gates[inode])
                    self.gate_by_file[key] = self.gate_by_file.get(key, 0) + 1

    def __enter__(self) -> Monitor:
        self.started = time.perf_counter()
        self.cpu = (cpu_seconds(self.api_pid), cpu_seconds(self.child_pid))
        self.metrics = httpx.get(self.server.url + "/metrics").text
        self._thread.start()
        self._gate_thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._gate_thread.join()
        elapsed = time.perf_counter() - self.started
        api = (cpu_seconds(self.api_pid) - self.cpu[0]) / elapsed
        child = (cpu_seconds(self.child_pid) - self.cpu[1]) / elapsed
        after = httpx.get(self.server.url + "/metrics").text
        batches = histogram(after, "vigil_pipeline_batch_seconds")
        before = histogram(self.metrics, "vigil_pipeline_batch_seconds")
        diff = [(le, a - b) for (le, a), (_, b) in zip(batches, before, strict=True)]
        count = diff[-1][1] if diff else 0
        events = metric_values(after, "vigil_events_processed_total").get("", 0.0) - (
            metric_values(self.metrics, "vigil_events_processed_total").get("", 0.0)
        )
        self.lines = [
            f"CPU over {elapsed:.1f} s: serving process {api:.0%} of a core, detection child "
            f"{child:.0%} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        ]
        if self.gate_samples:
            share = {k: v / self.gate_samples for k, v in self.gate_waits.items()}
            self.lines.append(
                f"write gate (flock) waits, sampled every 10 ms: serving process blocked "
                f"{share['serving']:.0%} of the time, detection child {share['child']:.0%}"
            )
            by_file = ", ".join(
                f"{who} on the {gate} gate {self.gate_by_file.get((who, gate), 0) / n:.0%}"
                for who in ("serving", "child")
                for gate in ("queue", "main")
                for n in (self.gate_samples,)
            )
            self.lines.append(f"  by gate (/proc/locks): {by_file}")
        if events:
            # CPU per event does not depend on how much of a core other jobs left the child.
            per_event = (cpu_seconds(self.child_pid) - self.cpu[1]) / events
            self.lines.append(
                f"detection child CPU per event processed: {per_event * 1e6:,.0f} µs, i.e. "
                f"{1 / per_event:,.0f} events/s if it had a core to itself"
            )
        if count:
            self.lines.append(
                f"detection: {count:,.0f} batches, {events / count:,.0f} events per batch on "
                f"average, batch time p50 {percentile(diff, 0.5) * 1000:,.0f} ms / p99 "
                f"{percentile(diff, 0.99) * 1000:,.0f} ms; queue at most {self.max_depth:,} "
                f"deep, oldest record at most {self.max_lag:.1f} s old"
            )


def gate_inodes(home: Path) -> dict[int, str]:
    """Inode of each write-gate lock file → the gate's name (missing files left out)."""
    found: dict[int, str] = {}
    for gate in ("queue", "main"):
        try:
            found[os.stat(home / f"{gate}.lock").st_ino] = gate
        except OSError:
            continue
    return found


def blocked_flocks() -> list[tuple[int, int]]:
    """(pid, inode) of every process blocked waiting for a flock now (the ``->`` lines of
    /proc/locks: ``N: -> FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF``)."""
    out: list[tuple[int, int]] = []
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[1] == "->" and fields[2] == "FLOCK":
            out.append((int(fields[5]), int(fields[6].rsplit(":", 1)[1])))
    return out


def waits_for_flock(pid: int) -> bool:
    """Whether a thread of ``pid`` is blocked in ``flock`` now (the kernel's wait channel)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for task in tasks:
        try:
            if Path(f"/proc/{pid}/task/{task}/wchan").read_text() == "locks_lock_inode_wait":
                return True
        except OSError:
            continue
    return False


def throughput(server: VigilServer, key: str, args: argparse.Namespace) -> None:
    batches = corpus_batches(args.batch, 64)
    sizes = sum(len(b) for b in batches) / len(batches)
    accepted = [0] * args.clients
    requests = [0] * args.clients
    deadline = time.perf_counter() + args.seconds
    metrics_before = httpx.get(server.url + "/metrics").text

    def client(n: int) -> None:
        headers = {**NDJSON, "Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            i = n
            while time.perf_counter() < deadline:
                r = http.post("/v1/events", content=batches[i % len(batches)])
                if r.status_code != 202:
                    raise SystemExit(f"HTTP {r.status_code}: {r.text[:300]}")
                accepted[n] += r.json()["accepted"]
                requests[n] += 1
                i += args.clients

    monitor = Monitor(server, key)
    with monitor:
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    metrics_after = httpx.get(server.url + "/metrics").text
    processed = metric_values(metrics_after, "vigil_events_processed_total").get("", 0.0) - (
        metric_values(metrics_before, "vigil_events_processed_total").get("", 0.0)
    )
    total = sum(accepted)
    print(
        f"accepted {total:,} events in {sum(requests):,} requests of {args.batch} "
        f"({sizes / 1024:,.0f} KiB each) with {args.clients} clients in {elapsed:.1f} s: "
        f"{total / elapsed:,.0f} events/s accepted"
    )
    print(f"detection meanwhile: {processed:,.0f} events processed ({processed / elapsed:,.0f}/s)")
    drain = wait_drained(server, key)
    print(f"queue drained {drain:.1f} s after the last request")
    print("\n".join(monitor.lines))


def latency(server: VigilServer, key: str, args: argparse.Namespace) -> None:
    batches = corpus_batches(args.batch, 256)
    interval = args.batch / args.rate
    before = histogram(httpx.get(server.url + "/metrics").text, "vigil_event_to_alert_seconds")
    sent = 0
    late = 0
    requests: list[float] = []
    headers = {**NDJSON, "Authorization": f"Bearer {key}"}
    monitor = Monitor(server, key)
    with monitor, httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        started = time.perf_counter()
        next_at = started
        i = 0
        while time.perf_counter() - started < args.seconds:
            posted = time.perf_counter()
            r = http.post("/v1/events", content=batches[i % len(batches)])
            requests.append(time.perf_counter() - posted)
            if r.status_code != 202:
                raise SystemExit(f"HTTP {r.status_code}: {r.text[:300]}")
            sent += args.batch
            i += 1
            next_at += interval
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                late += 1
        elapsed = time.perf_counter() - started
        wait_drained(server, key)
    requests.sort()
    time.sleep(0.5)
    after = histogram(httpx.get(server.url + "/metrics").text, "vigil_event_to_alert_seconds")
    diff = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = diff[-1][1] if diff else 0
    under = {le: c / total for le, c in diff if le in (0.1, 0.25, 0.5, 1.0)} if total else {}
    print(
        f"sent {sent:,} events in {elapsed:.1f} s = {sent / elapsed:,.0f} events/s "
        f"({args.batch}-event batches; {late} sends fell behind schedule)"
    )
    print(
        f"ingest request (client side, includes waiting for the write gate): p50 "
        f"{requests[len(requests) // 2] * 1000:,.1f} ms, p99 "
        f"{requests[int(len(requests) * 0.99)] * 1000:,.1f} ms, max {requests[-1] * 1000:,.1f} ms"
    )
    print(
        f"event-to-alert over {total:,.0f} detections: p50 {percentile(diff, 0.5) * 1000:,.0f} ms"
        f", p95 {percentile(diff, 0.95) * 1000:,.0f} ms, p99 {percentile(diff, 0.99) * 1000:,.0f}"
        f" ms; share within 100/250/500/1000 ms: "
        + ", ".join(f"{under.get(le, 0):.1%}" for le in (0.1, 0.25, 0.5, 1.0))
    )
    print("\n".join(monitor.lines))


class StageClock:
    """CPU time (of the calling thread) spent inside wrapped functions, by stage name.

    Stages may nest (incident grouping runs inside alert recording): ``own`` subtracts the
    stages that ran inside a stage from it."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.inner: dict[str, float] = {}
        self._stack: list[str] = []

    def wrap(self, owner: object, attribute: str, stage: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args: object, **kwargs: object) -> object:
            self._stack.append(stage)
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                self._stack.pop()
                self.total[stage] = self.total.get(stage, 0.0) + spent
                if self._stack:
                    parent = self._stack[-1]
                    self.inner[parent] = self.inner.get(parent, 0.0) + spent

        setattr(owner, attribute, timed)

    def own(self, stage: str) -> float:
        return self.total.get(stage, 0.0) - self.inner.get(stage, 0.0)


class HeldGate:
    """Wraps the pipeline's write gate (the main database's): the CPU time (of the holding
    thread) spent holding it, i.e. what the correlator waits for while the detection worker
    writes (ingest, on queue.db, does not)."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.cpu = 0.0
        self.holds = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.gate.hold():
            started = time.thread_time()
            try:
                yield
            finally:
                self.cpu += time.thread_time() - started
                self.holds += 1


def stages(args: argparse.Namespace, rules: Path) -> None:
    """The detection pipeline in this process over a filled queue, CPU per event by stage."""
    from vigil.alerts import service as alerts
    from vigil.bus.queue import SqlEventQueue
    from vigil.bus.queue_store import open_sql_queue
    from vigil.config import Settings, load_settings
    from vigil.incidents import grouping
    from vigil.ingest.config import IngestSettings
    from vigil.ingest.parse import BodyFormat, parse_body
    from vigil.ingest.service import limits_of
    from vigil.pipeline import service as pipeline_service
    from vigil.pipeline.detector import Detector
    from vigil.pipeline.host import freeze_heap
    from vigil.pipeline.rules import RuleRegistry
    from vigil.pipeline.worker import DetectionPipeline, alerts_sink
    from vigil.store import create_engine_for, session_factory, upgrade

    with tempfile.TemporaryDirectory(prefix="vigil-stages-") as tmp:
        settings = load_settings(home=Path(tmp))
        url = settings.resolved_database_url()
        upgrade(url)
        engine = create_engine_for(url)
        sessions = session_factory(engine)
        # as `vigil serve` opens it: the records in queue.db, offsets and results in vigil.db
        queue = open_sql_queue(settings, sessions, engine)
        bodies = corpus_batches(100, args.events // 100)
        limits = limits_of(IngestSettings())
        started = time.thread_time()
        for body in bodies:
            batch = parse_body(body, BodyFormat.NDJSON, tenant_id="bench", limits=limits)
            queue.publish("bench", batch.records)
        ingest_cpu = time.thread_time() - started
        registry = RuleRegistry([rules])
        registry.load()
        freeze_heap()  # as the detection child does after loading its rules
        pipeline = DetectionPipeline(
            sessions=sessions,
            queue=queue,
            detector=Detector(registry),
            sink=alerts_sink(Settings()),
            batch_size=args.batch,
        )
        gate = HeldGate(pipeline.gate)
        pipeline.gate = gate  # type: ignore[assignment]  # a wrapper with the same hold()
        clock = StageClock()
        # Indented names run inside the stage above them and count apart from it.
        for owner, attribute, stage in (
            (SqlEventQueue, "read", "queue read"),
            (SqlEventQueue, "ack", "queue ack"),
            (Detector, "detect", "detect (decode, normalise, match)"),
            (pipeline_service, "store_detections", "store detections"),
            (alerts, "record_detections", "record alerts (alerts domain)"),
            (alerts, "emit_many", "threat_detected outbox events"),
            (grouping, "group_alerts", "incident grouping"),
            (alerts, "threat_detected", "  threat_detected events (pydantic)"),
            (alerts, "_write", "  alert rows (insert, fold update)"),
            (grouping, "_candidates", "  incident candidates (ORM load)"),
            (grouping, "record", "  incident timeline rows"),
            (grouping, "append_many", "  ledger entries (incident.open)"),
            (grouping, "_announce", "  incident events + ledger"),
        ):
            clock.wrap(owner, attribute, stage)
        events = detections = 0
        started = time.thread_time()
        while True:
            report = pipeline.run_once()
            if not report.events:
                break
            events += report.events
            detections += sum(report.detections.values())
        total = time.thread_time() - started
    print(
        f"ingest side (parse + validate + queue insert, 100-record requests): "
        f"{ingest_cpu / args.events * 1e6:,.1f} µs CPU per event"
    )
    print(
        f"detection pipeline: {events:,} events, {detections:,} detections, batches of "
        f"{args.batch}: {total / events * 1e6:,.0f} µs CPU per event "
        f"({events / total:,.0f} events/s on one free core); by stage, µs per event:"
    )
    names = [*clock.total, "the rest (sessions, commit, gate, reports)"]
    rest = total - sum(clock.own(name) for name in clock.total)
    for name in names:
        own = rest if name.startswith("the rest") else clock.own(name)
        print(f"  {name:45} {own / events * 1e6:8.1f}  ({own / total:5.1%})")
    print(
        f"main-database write gate held by the pipeline (ingest does not wait for it: "
        f"queue.db has a gate of its own): "
        f"{gate.cpu / events * 1e6:,.1f} µs CPU per event ({gate.cpu / total:.0%} of its CPU), "
        f"{gate.holds} holds, "
        f"{gate.cpu / max(gate.holds, 1) * 1000:,.1f} ms CPU each"
    )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (CPU times, not wall)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["throughput", "latency", "stages"])
    ap.add_argument("--events", type=int, default=20_000, help="stages: events to queue")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--worker-mode", choices=["thread", "process"], default=None)
    ap.add_argument("--rules", type=Path, default=None)
    args = ap.parse_args()
    rules = args.rules or (SIGMA_RULES if SIGMA_RULES.is_dir() else EXAMPLE_RULES)
    mode = args.worker_mode or os.environ.get("VIGIL_PIPELINE__WORKER_MODE", "process")
    if args.mode == "stages":
        stages(args, rules)
        return
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        t0 = time.perf_counter()
        server, key = start_server(Path(tmp) / "home", rules, mode)
        print(
            f"vigil serve ready in {time.perf_counter() - t0:.1f} s: rules {rules}, "
            f"detection worker mode {mode}, cores {os.cpu_count()}"
        )
        try:
            if args.mode == "throughput":
                throughput(server, key, args)
            else:
                latency(server, key, args)
        finally:
            server.stop()
            if server.process is not None and server.process.returncode not in (0, None):
                print(server.log()[-3000:])


if __name__ == "__main__":
    main()
