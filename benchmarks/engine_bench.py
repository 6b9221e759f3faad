"""Detection engine throughput: file to detections, with every SigmaHQ rule loaded.

Prints figures; records nothing by itself (copy them into docs/performance.md).

    .venv/bin/python benchmarks/engine_bench.py --events 1000000
    .venv/bin/python benchmarks/engine_bench.py --events 200000 --workers 1 2
    .venv/bin/python benchmarks/engine_bench.py --events 100000 --repeat 5   # on a busy machine

Corpora (written under benchmarks/.data/, re-used between runs):
  regression  every event of SigmaHQ's regression EVTX files, as evtx_dump JSON lines,
              replicated to --events lines (a malicious-heavy stream: most events hit rules)
  synthetic   generated Sysmon/Security events with benign, varied values (the everyday case)
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
SIGMA = ROOT.parent / "shared" / "sigma"
RULE_DIRS = [SIGMA / "rules", SIGMA / "rules-emerging-threats", SIGMA / "rules-threat-hunting"]
DATA = ROOT / "benchmarks" / ".data"


def regression_records() -> list[bytes]:
    from evtx import PyEvtxParser

    out = []
    for path in sorted((SIGMA / "regression_data").rglob("*.evtx")):
        for rec in PyEvtxParser(str(path)).records_json():
            out.append(orjson.dumps(json.loads(rec["data"])))
    return out


IMAGES = [
    "C:\\Windows\\System32\\svchost.exe", "C:\\Windows\\explorer.exe",
    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
    "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
    "C:\\Windows\\System32\\RuntimeBroker.exe", "C:\\Windows\\System32\\conhost.exe",
    "C:\\Program Files\\Mozilla Firefox\\firefox.exe", "C:\\Windows\\System32\\taskhostw.exe",
]  # fmt: skip


def synthetic_record(rng: random.Random, i: int) -> bytes:
    image = rng.choice(IMAGES)
    parent = rng.choice(IMAGES)
    kind = rng.random()
    common = {
        "UtcTime": "2026-11-01 10:00:00.000",
        "ProcessGuid": f"{{{rng.getrandbits(128):032x}}}",
        "ProcessId": rng.randint(100, 60000),
        "Image": image,
        "User": f"CORP\\user{rng.randint(1, 500)}",
    }
    if kind < 0.4:
        eid = 1
        data = {
            **common,
            "CommandLine": f'"{image}" --type=renderer --field-trial-handle={rng.getrandbits(32)}',
            "CurrentDirectory": "C:\\Users\\user\\",
            "IntegrityLevel": "Medium",
            "Hashes": f"SHA256={rng.getrandbits(256):064X}",
            "ParentImage": parent,
            "ParentCommandLine": parent,
            "OriginalFileName": image.rsplit("\\", 1)[-1],
        }
    elif kind < 0.6:
        eid = 3
        data = {
            **common,
            "Protocol": "tcp",
            "DestinationIp": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 9)}",
            "DestinationPort": rng.choice([443, 80, 53, 8443]),
            "DestinationHostname": f"host{rng.randint(1, 9999)}.corp.example",
        }
    elif kind < 0.8:
        eid = 11
        data = {
            **common,
            "TargetFilename": f"C:\\Users\\user{rng.randint(1, 500)}\\Documents\\r{i}.docx",
        }
    else:
        eid = 13
        data = {
            **common,
            "EventType": "SetValue",
            "TargetObject": f"HKU\\S-1-5-21-1\\Software\\Vendor\\App{rng.randint(1, 99)}\\Setting",
            "Details": f"DWORD (0x{rng.randint(0, 255):08x})",
        }
    event = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": eid,
                "EventRecordID": i,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": f"ws{rng.randint(1, 300)}.corp.example",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-01T10:00:00.000000Z"}},
            },
            "EventData": data,
        }
    }
    return orjson.dumps(event)


def write_corpus(name: str, events: int) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"{name}-{events}.jsonl"
    if path.exists():
        return path
    with path.open("wb") as out:
        if name == "regression":
            base = regression_records()
            for i in range(events):
                out.write(base[i % len(base)])
                out.write(b"\n")
        else:
            rng = random.Random(7)
            for i in range(events):
                out.write(synthetic_record(rng, i))
                out.write(b"\n")
    return path


def in_process(path: Path, repeat: int = 1) -> None:
    from vigil.detect.scan import Scanner, ScanSummary, scan_paths
    from vigil.detect.sigma.engine import SigmaEngine
    from vigil.detect.sigma.loader import load_rules
    from vigil.detect.sigma.mapping import load_mapping

    t0 = time.perf_counter()
    result = load_rules(RULE_DIRS, mapping=load_mapping())
    engine = SigmaEngine(result.rules)
    t_load = time.perf_counter() - t0
    stats = engine.stats()
    print(
        f"  rules loaded: {len(result.rules)} ({len(result.failures)} failed) in {t_load:.1f} s; "
        f"buckets {stats.buckets}, indexed variants {stats.indexed_variants}, "
        f"unindexed {stats.unindexed_variants}"
    )
    rates = []
    cpu_rates = []
    for _ in range(repeat):
        summary = ScanSummary()
        t0 = time.perf_counter()
        c0 = time.process_time()
        n_det = sum(1 for _ in scan_paths([path], Scanner(engine), summary))
        cpu = time.process_time() - c0
        dt = time.perf_counter() - t0
        rates.append(summary.events / dt)
        cpu_rates.append(summary.events / cpu)
        # CPU time is the figure to compare on a shared machine: wall time counts waiting for
        # the other processes too.
        print(
            f"  one core, file->detections: {summary.events} events in {dt:.1f} s = "
            f"{summary.events / dt:,.0f} events/s wall, {summary.events / cpu:,.0f} events/s "
            f"CPU time ({cpu:.1f} s); {n_det} detections"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if repeat > 1:
        print(
            f"  median of {repeat} passes: {statistics.median(rates):,.0f} events/s wall, "
            f"{statistics.median(cpu_rates):,.0f} events/s CPU time"
        )
    print(f"  peak RSS {rss:,.0f} MiB")


def with_workers(path: Path, workers: int, events: int) -> None:
    # Split into one file per worker so that `--workers` has files to share out.
    parts_dir = DATA / f"{path.stem}-split{workers}"
    if not parts_dir.exists():
        parts_dir.mkdir()
        outs = [(parts_dir / f"part{i}.jsonl").open("wb") for i in range(workers * 4)]
        with path.open("rb") as src:
            for i, line in enumerate(src):
                outs[i % len(outs)].write(line)
        for o in outs:
            o.close()
    cmd = [
        sys.executable, "-m", "vigil.cli.main", "scan", str(parts_dir), "--workers", str(workers),
        "-q", "-o", "/dev/null", *[a for d in RULE_DIRS for a in ("--rules", str(d))],
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    dt = time.perf_counter() - t0
    print(
        f"  vigil scan --workers {workers}: {events} events in {dt:.1f} s (incl. ~rule load) "
        f"= {events / dt:,.0f} events/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--corpus", choices=["regression", "synthetic", "both"], default="both")
    ap.add_argument("--workers", type=int, nargs="*", default=[])
    ap.add_argument(
        "--repeat", type=int, default=1, help="scan passes in one process (median printed)"
    )
    args = ap.parse_args()
    if not SIGMA.is_dir():
        sys.exit(f"SigmaHQ data not found at {SIGMA}")
    names = ["regression", "synthetic"] if args.corpus == "both" else [args.corpus]
    for name in names:
        path = write_corpus(name, args.events)
        print(f"{name} corpus: {path} ({path.stat().st_size / 2**20:,.0f} MiB)")
        in_process(path, args.repeat)
        for w in args.workers:
            with_workers(path, w, args.events)


if __name__ == "__main__":
    main()
