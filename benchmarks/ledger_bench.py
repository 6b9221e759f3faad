"""Audit ledger benchmark: append throughput, proof latency and size, export + verify.

Usage::

    .venv/bin/python benchmarks/ledger_bench.py                 # SQLite in a temp dir, 1M entries
    .venv/bin/python benchmarks/ledger_bench.py --entries 100000
    .venv/bin/python benchmarks/ledger_bench.py --database-url postgresql+psycopg://...

Prints one line per figure. The PostgreSQL URL must point at an empty database or schema.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from vigil.ledger import export, merkle, service
from vigil.ledger.schemas import AuditEntryCreate, unb64
from vigil.ledger.verify import verify_export
from vigil.store import create_engine_for, session_factory, session_scope, upgrade


def items(start: int, count: int) -> list[AuditEntryCreate]:
    return [
        AuditEntryCreate(
            tenant=f"tenant-{i % 7}",
            actor=f"user:{i % 101}",
            action="rule.update",
            target=f"rule:{i}",
            request_id=f"req-{i:012d}",
            change={"rule": i, "enabled": bool(i & 1)},
        )
        for i in range(start, start + count)
    ]


def timed_batches(factory: sessionmaker[Session], total: int, batch: int, start: int) -> float:
    """Entries per second, one transaction per ``batch`` entries."""
    t0 = time.perf_counter()
    done = 0
    while done < total:
        n = min(batch, total - done)
        payload = items(start + done, n)
        with session_scope(factory) as s:
            service.append_many(s, entries=payload)
        done += n
    return total / (time.perf_counter() - t0)


def timed_singles(factory: sessionmaker[Session], total: int, start: int) -> float:
    t0 = time.perf_counter()
    for i in range(total):
        with session_scope(factory) as s:
            service.append(
                s,
                tenant="tenant-0",
                actor="user:1",
                action="rule.update",
                target=f"rule:{start + i}",
                change={"rule": start + i},
            )
    return total / (time.perf_counter() - t0)


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return f"p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms, max {samples[-1] * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="log size for proofs")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--proofs", type=int, default=2000, help="proofs to time")
    parser.add_argument("--singles", type=int, default=2000, help="single-entry transactions")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="time proofs without gc.freeze() (long-lived start-up objects then make full "
        "collections pause for tens of ms)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vigil-ledger-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    backend = url.split(":", 1)[0]
    upgrade(url)
    engine = create_engine_for(url)
    factory = session_factory(engine)
    home = tmp / "home"
    with session_scope(factory) as s:
        service.init_log(s, home=home, origin="bench.vigil.local/audit")
    print(f"backend: {backend}; state in {tmp}")

    size = 0
    for batch, total in ((1000, 50_000), (100, 20_000)):
        rate = timed_batches(factory, total, batch, size)
        size += total
        print(f"append_many, {batch} entries per transaction: {rate:,.0f} entries/s")
    rate = timed_singles(factory, args.singles, size)
    size += args.singles
    print(f"append, 1 entry per transaction (commit each): {rate:,.0f} entries/s")

    remaining = max(0, args.entries - size)
    t0 = time.perf_counter()
    timed_batches(factory, remaining, 10_000, size)
    size += remaining
    print(f"filled the log to {size:,} entries in {time.perf_counter() - t0:.1f} s")

    with session_scope(factory) as s:
        t0 = time.perf_counter()
        cp = service.sign_checkpoint(s, home=home)
        print(f"sign_checkpoint at size {cp.size:,}: {(time.perf_counter() - t0) * 1000:.2f} ms")
    root = unb64(cp.root_hash)
    if not args.no_gc_freeze:  # what a long-running server does after start-up
        gc.collect()
        gc.freeze()
    print(f"proof timings with gc.freeze(): {not args.no_gc_freeze}")
    rng = random.Random(6962)
    incl: list[float] = []
    cons: list[float] = []
    lengths: set[int] = set()
    cons_lengths: set[int] = set()
    with session_scope(factory) as s:
        for _ in range(args.proofs):
            seq = rng.randrange(size)
            t0 = time.perf_counter()
            p = service.inclusion_proof(s, seq=seq, tree_size=size)
            incl.append(time.perf_counter() - t0)
            hashes = [unb64(h) for h in p.hashes]
            lengths.add(len(hashes))
            assert merkle.verify_inclusion(seq, size, unb64(p.leaf_hash), hashes, root)
        for _ in range(args.proofs):
            old = rng.randrange(1, size)
            t0 = time.perf_counter()
            c = service.consistency_proof(s, old_size=old, new_size=size)
            cons.append(time.perf_counter() - t0)
            cons_lengths.add(len(c.hashes))
    print(f"inclusion proof at size {size:,}: {percentiles(incl)}")
    print(f"consistency proof to size {size:,}: {percentiles(cons)}")
    print(
        f"proof sizes: inclusion {min(lengths)}..{max(lengths)} hashes, consistency "
        f"{min(cons_lengths)}..{max(cons_lengths)} hashes (log2(n) = {math.log2(size):.2f})"
    )

    out = tmp / "export"
    with session_scope(factory) as s:
        t0 = time.perf_counter()
        export.export(s, out=out, home=home)
        print(f"export of {size:,} entries: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    report = verify_export(out)
    print(
        f"verify of {size:,} entries: {time.perf_counter() - t0:.1f} s "
        f"({'intact' if report.ok else 'FAILED: ' + '; '.join(report.problems)})"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
