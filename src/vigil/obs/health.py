"""Health checks: live (the process answers), ready (storage and queue usable), deep (details).

Domains register probes on the runtime (``runtime.extras["health_probes"]``: name → callable
returning a dict with ``ok: bool`` plus details); ready fails when a probe marked ``critical``
fails, and :func:`down` names each failed dependency ("database", "queue") with the reason.

Probes are bounded in time: the database engine connects with a timeout
(:mod:`vigil.store.engine`) and the Redis client with its socket timeouts, so a readiness probe
answers 503 promptly instead of hanging while a dependency is unreachable.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from vigil.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    check: Callable[[Runtime], dict[str, Any]]
    critical: bool = True


def register_probe(runtime: Runtime, probe: Probe) -> None:
    runtime.extras.setdefault("health_probes", []).append(probe)


#: The probe of the service database (the queue's own probe is "queue", from ingest).
DATABASE = "database"


def storage_probe(runtime: Runtime) -> dict[str, Any]:
    started = time.perf_counter()
    with runtime.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {
        "ok": True,
        "backend": runtime.engine.dialect.name,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _run(probe: Probe, runtime: Runtime) -> dict[str, Any]:
    try:
        result = dict(probe.check(runtime))
        result.setdefault("ok", True)
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    return result


def probes(runtime: Runtime) -> list[Probe]:
    registered: list[Probe] = list(runtime.extras.get("health_probes", []))
    return [Probe(DATABASE, storage_probe), *registered]


def readiness(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    ok = True
    for probe in probes(runtime):
        if not probe.critical:
            continue
        result = _run(probe, runtime)
        checks[probe.name] = result
        ok = ok and bool(result["ok"])
    return ok, checks


def down(checks: dict[str, Any]) -> dict[str, str]:
    """Dependency → why it is not usable, for every failed check (an empty dict when all are
    fine)."""
    return {
        name: str(result.get("error") or "not usable")
        for name, result in checks.items()
        if isinstance(result, dict) and "ok" in result and not result["ok"]
    }


def deep(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    ok = True
    for probe in probes(runtime):
        result = _run(probe, runtime)
        checks[probe.name] = result
        if probe.critical:
            ok = ok and bool(result["ok"])
    home = runtime.settings.home
    try:
        usage = shutil.disk_usage(home if home.exists() else ".")
        checks["disk"] = {
            "ok": usage.free > 512 * 1024 * 1024,
            "free_bytes": usage.free,
            "total_bytes": usage.total,
        }
        ok = ok and checks["disk"]["ok"]
    except OSError as exc:
        checks["disk"] = {"ok": False, "error": str(exc)}
    checks["workers"] = {w.name: w.status() for w in runtime.workers}
    for name, status in checks["workers"].items():
        if not status.get("running", False):
            ok = False
            checks["workers"][name]["ok"] = False
    checks["uptime_s"] = round(time.time() - runtime.started_at, 1)
    return ok, checks
