"""`vigil audit ...` through the real command line (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.ledger import service
from vigil.ledger.schemas import AuditEntryCreate
from vigil.store import create_engine_for, session_factory, session_scope

VIGIL = Path(sys.executable).parent / "vigil"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_HOME"] = str(home)
    return subprocess.run(
        [str(VIGIL), "audit", *args], capture_output=True, text=True, env=env, timeout=120
    )


def add_entries(home: Path, count: int, start: int = 0) -> None:
    engine = create_engine_for(f"sqlite:///{home / 'vigil.db'}")
    try:
        with session_scope(session_factory(engine)) as s:
            service.append_many(
                s,
                entries=[
                    AuditEntryCreate(
                        tenant="acme", actor="user:1", action="rule.update", target=f"rule:{i}"
                    )
                    for i in range(start, start + count)
                ],
            )
    finally:
        engine.dispose()


def test_export_verify_and_tamper(home: Path, tmp_path: Path) -> None:
    r = run(home, "init-key", "--origin", "example.com/audit")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("example.com/audit+")
    key_files = list((home / "keys").iterdir())
    assert len(key_files) == 1 and key_files[0].stat().st_mode & 0o777 == 0o600
    pub = tmp_path / "audit.pub"
    pub.write_text(run(home, "public-key").stdout)

    add_entries(home, 12)
    out = tmp_path / "export"
    r = run(home, "export", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.iterdir()} >= {
        "entries.jsonl",
        "checkpoint.txt",
        "public_key.txt",
        "manifest.json",
    }
    r = run(home, "verify", str(out), "--public-key", str(pub))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: 13 entries" in r.stdout  # the 12 added + the export itself
    exported = (out / "entries.jsonl").read_text().splitlines()
    assert '"action":"audit.export"' in exported[-1] and '"actor":"cli:' in exported[-1]

    lines = (out / "entries.jsonl").read_text().splitlines(keepends=True)
    lines[5] = lines[5].replace("rule:5", "rule:50")
    (out / "entries.jsonl").write_text("".join(lines))
    r = run(home, "verify", str(out), "--public-key", str(pub))
    assert r.returncode == 1
    assert "first bad entry: 5" in r.stdout


def test_saved_checkpoint_bundle_and_rotation(home: Path, tmp_path: Path) -> None:
    assert run(home, "init-key").returncode == 0
    old_pub = tmp_path / "old.pub"
    old_pub.write_text(run(home, "public-key").stdout)
    add_entries(home, 6)
    saved = tmp_path / "saved.txt"
    r = run(home, "checkpoint")
    assert r.returncode == 0, r.stderr
    saved.write_text(r.stdout)
    add_entries(home, 20, start=6)

    bundle = tmp_path / "entry3.json"
    r = run(home, "prove", "3", "--checkpoint", str(saved), "-o", str(bundle))
    assert r.returncode == 0, r.stderr
    r = run(home, "verify", str(bundle), "--public-key", str(old_pub), "--checkpoint", str(saved))
    assert r.returncode == 0, r.stdout + r.stderr

    r = run(home, "rotate-key", "--actor", "user:admin")
    assert r.returncode == 0, r.stderr
    assert "vigil-key-rotation" in r.stdout
    out = tmp_path / "export"
    assert run(home, "export", "-o", str(out)).returncode == 0
    r = run(home, "verify", str(out), "--public-key", str(old_pub), "--checkpoint", str(saved))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: 28 entries" in r.stdout  # 26 appended + the logged rotation + the export


def test_bad_input_exits_2(home: Path, tmp_path: Path) -> None:
    r = run(home, "verify", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert "no such file or directory" in r.stderr
