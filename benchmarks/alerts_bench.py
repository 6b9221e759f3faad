"""What ``vigil.alerts.service.record_detections`` costs per batch of detections.

Prints figures; records nothing by itself (copy them into docs/performance.md).

    .venv/bin/python benchmarks/alerts_bench.py
    .venv/bin/python benchmarks/alerts_bench.py --batch 1000 --rounds 5 \
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/test

Each round records one batch in one transaction and commits it (as the pipeline does), on a
fresh migrated database per scenario:

* ``new``: every detection has its own fingerprint: one alert each (half of them high, so
  incident grouping opens incidents and writes the ledger), one ``threat_detected`` outbox event
  each.
* ``fold``: the batch hits 100 open alerts again and again (the noisy-rule case): folded counts,
  no new rows but the detection links.
* ``replay``: the same batch a second time (a pipeline redelivery): nothing changes.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from vigil.alerts.intake import DetectionRecord
from vigil.alerts.service import record_detections
from vigil.store import create_engine_for, session_factory, upgrade

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def _detection(i: int, *, host: str, level: str, at: datetime) -> DetectionRecord:
    return DetectionRecord(
        detection_id=f"bench-{uuid.uuid4().hex}",
        tenant_id="bench-tenant",
        rule_id="6f1c2b7e-3d41-4c55-9a0e-2f7b8d9e0a11",
        rule_title="Encoded PowerShell Command Line",
        level=level,
        tags=("attack.execution", "attack.t1059.001"),
        kind="rule",
        event_fields={
            "EventID": 1,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": host,
            "User": "CORP\\alice",
            "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "CommandLine": f"powershell.exe -NoP -W Hidden -enc SQBFAFgA{i}",
            "ParentImage": "C:\\Windows\\explorer.exe",
        },
        event_ids=(str(uuid.uuid4()),),
        event_time=at,
        accepted_at=at,
    )


def _new(batch: int, round_: int) -> list[DetectionRecord]:
    return [
        _detection(i, host=f"ws{round_:03d}-{i:05d}", level=("high", "low")[i % 2], at=T0)
        for i in range(batch)
    ]


def _fold(batch: int, round_: int) -> list[DetectionRecord]:
    at = T0 + timedelta(seconds=round_)
    return [_detection(i, host=f"ws{i % 100:03d}", level="high", at=at) for i in range(batch)]


def _url(backend: str, pg: str | None, tmp: Path, name: str) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}", lambda: None
    assert pg is not None
    schema = f"bench_alerts_{uuid.uuid4().hex[:8]}"
    admin = create_engine_for(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    url = make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


def _scenario(
    backend: str, pg: str | None, tmp: Path, name: str, batch: int, rounds: int
) -> tuple[list[float], list[float]]:
    url, drop = _url(backend, pg, tmp, name)
    try:
        upgrade(url)
        engine = create_engine_for(url)
        factory = session_factory(engine)
        timings: list[float] = []
        cpu: list[float] = []
        previous: list[DetectionRecord] = []
        for round_ in range(rounds + 1):  # round 0 warms up (and seeds the open alerts)
            if name == "replay" and previous:
                dets = previous
            else:
                dets = (_fold if name == "fold" else _new)(batch, round_)
            previous = dets
            gc.collect()
            gc.disable()
            started = time.perf_counter()
            cpu_started = time.process_time()
            with factory() as session:
                record_detections(session, detections=dets, now=T0 + timedelta(hours=1))
                session.commit()
            elapsed = time.perf_counter() - started
            cpu_elapsed = time.process_time() - cpu_started
            gc.enable()
            if round_:
                timings.append(elapsed)
                cpu.append(cpu_elapsed)
        engine.dispose()
        return timings, cpu
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (also measure PostgreSQL)")
    parser.add_argument(
        "--scenarios", default="new,fold,replay", help="comma-separated: new, fold, replay"
    )
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if args.pg else [])
    print(f"record_detections, batch of {args.batch}, median of {args.rounds} rounds (+1 warm-up)")
    # Wall time suffers from other jobs on the machine; CPU time of this process much less.
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            for name in args.scenarios.split(","):
                timings, cpu = _scenario(backend, args.pg, Path(tmp), name, args.batch, args.rounds)
                median = statistics.median(timings)
                cpu_median = statistics.median(cpu)
                print(
                    f"{backend:10} {name:7} {median * 1000:8.1f} ms/batch "
                    f"{median / args.batch * 1e6:7.1f} µs/detection "
                    f"{args.batch / median:9.0f} detections/s  (min {min(timings) * 1000:.1f} ms; "
                    f"CPU of this process {cpu_median * 1000:.1f} ms/batch)"
                )


if __name__ == "__main__":
    main()
