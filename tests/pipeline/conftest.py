"""Shared pieces of the pipeline tests: example rules and events."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_RULES = ROOT / "examples" / "rules"

ENCODED_PS_RULE = "6f1c2b7e-3d41-4c55-9a0e-2f7b8d9e0a11"
FAILED_LOGON_RULE = "0d4f6a43-55a2-4c1e-8f0e-8a1a9b9d2c01"
MANY_FAILED_LOGONS = "3b0e9c55-7d22-4f0a-b9e1-64c3f1a2d777"


def sysmon_process(command_line: str, *, record: int = 1, image: str | None = None) -> bytes:
    image = image or "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    event: dict[str, Any] = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "EventRecordID": record,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "ws042.corp.example",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-21T08:03:12.000000Z"}},
            },
            "EventData": {"Image": image, "CommandLine": command_line, "User": "CORP\\alice"},
        }
    }
    return orjson.dumps(event)


def encoded_ps_records(n: int) -> tuple[list[bytes], list[str]]:
    """``n`` records that each match the encoded-PowerShell rule once, with fresh event ids:
    the lines (one NDJSON record each) and their ids."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    lines = []
    for i, event_id in enumerate(ids):
        record = orjson.loads(sysmon_process(f"powershell.exe -enc QQB{i}", record=i))
        record["event_id"] = event_id
        lines.append(orjson.dumps(record))
    return lines, ids


def failed_logon(user: str, ip: str, second: int) -> bytes:
    return orjson.dumps(
        {
            "Event": {
                "System": {
                    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                    "EventID": 4625,
                    "Channel": "Security",
                    "Computer": "dc01",
                    "TimeCreated": {
                        "#attributes": {"SystemTime": f"2026-11-21T08:10:{second:02d}.000000Z"}
                    },
                },
                "EventData": {"TargetUserName": user, "IpAddress": ip, "LogonType": 3},
            }
        }
    )


MALICIOUS = sysmon_process("powershell.exe -NoP -W Hidden -enc SQBFAFgA")
BENIGN = sysmon_process("C:\\Windows\\explorer.exe", image="C:\\Windows\\explorer.exe")
