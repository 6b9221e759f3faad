"""Rules in the running service: list/filter/page, per-tenant overrides (with their effect on
detections and the audit ledger), hot reload and load status."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pipeline.conftest import (
    ENCODED_PS_RULE,
    EXAMPLE_RULES,
    FAILED_LOGON_RULE,
    MALICIOUS,
    MANY_FAILED_LOGONS,
)
from tests.support.identity import Credentials, bootstrap, create_key
from tests.support.server import VigilServer

PS_FILE = "proc_creation_encoded_powershell.yml"
NDJSON = {"content-type": "application/x-ndjson"}


@dataclass
class Env:
    server: VigilServer
    rules: Path
    acme: Credentials
    other: Credentials
    viewer: str

    def levels(self, tenant_id: str) -> list[str | None]:
        with sqlite3.connect(self.server.home / "vigil.db", timeout=30) as conn:
            rows = conn.execute(
                "SELECT level FROM detections WHERE tenant_id = ? AND rule_id = ? "
                "ORDER BY event_seq",
                (tenant_id, ENCODED_PS_RULE),
            ).fetchall()
        return [r[0] for r in rows]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("rules-home")
    rules = home.parent / f"{home.name}-rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    (rules / "broken.yml").write_text(
        "title: Broken\nid: 99999999-0000-0000-0000-000000000000\nlogsource:\n  product: x\n"
        "detection:\n  sel:\n    a: b\n  condition: nothing\n"
    )
    acme = bootstrap(home, tenant="acme")
    other = bootstrap(home, tenant="other")
    viewer = create_key(home, "acme", "viewer")
    server = VigilServer(
        home,
        args=["--rules", str(rules)],
        env={"VIGIL_PIPELINE__RELOAD_INTERVAL_S": "0.2"},
    ).start()
    try:
        yield Env(server, rules, acme, other, viewer)
    finally:
        server.stop()


def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _send_and_wait(env: Env, key: str, tenant_id: str, expected: int) -> list[str | None]:
    with env.server.client(key) as http:
        r = http.post("/v1/events", content=MALICIOUS, headers=NDJSON)
        assert r.status_code == 202
    levels: list[str | None] = (
        _eventually(lambda: (lv := env.levels(tenant_id)) and len(lv) >= expected and lv) or []
    )
    return levels


def test_list_filter_page_and_status(env: Env) -> None:
    with env.server.client(env.viewer) as http:
        page = http.get("/v1/rules").json()
        assert page["total"] == 3 and page["offset"] == 0
        ids = {item["rule_id"]: item for item in page["items"]}
        assert ids[ENCODED_PS_RULE]["effective_level"] == "high"
        assert ids[ENCODED_PS_RULE]["enabled"] is True
        assert ids[MANY_FAILED_LOGONS]["kind"] == "correlation"
        assert ids[FAILED_LOGON_RULE]["path"].endswith("security_failed_logon.yml")
        high = http.get("/v1/rules", params={"level": "high"}).json()
        assert {i["rule_id"] for i in high["items"]} == {ENCODED_PS_RULE, MANY_FAILED_LOGONS}
        assert http.get("/v1/rules", params={"tag": "attack.t1110"}).json()["total"] == 1
        assert http.get("/v1/rules", params={"q": "powershell"}).json()["total"] == 1
        assert http.get("/v1/rules", params={"category": "process_creation"}).json()["total"] == 1
        paged = http.get("/v1/rules", params={"limit": 2, "offset": 2}).json()
        assert len(paged["items"]) == 1 and paged["total"] == 3
        assert http.get("/v1/rules", params={"limit": 0}).status_code == 422
        status = http.get("/v1/rules/status").json()
        assert status["loaded"] == 3
        [failure] = status["failed"]
        assert failure["rule_id"] == "99999999-0000-0000-0000-000000000000"
        assert failure["path"].endswith("broken.yml") and failure["reason"]
        detail = http.get(f"/v1/rules/{ENCODED_PS_RULE}").json()
        assert detail["description"].startswith("PowerShell")
        r = http.get("/v1/rules/no-such-rule")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        r = http.patch(f"/v1/rules/{ENCODED_PS_RULE}", json={"enabled": False})
        assert r.status_code == 403


def test_overrides_change_detections_per_tenant(env: Env) -> None:
    with env.server.client(env.acme.admin_key) as http:
        r = http.patch(f"/v1/rules/{ENCODED_PS_RULE}", json={"level": "critical"})
        assert r.status_code == 200, r.text
        assert r.json()["effective_level"] == "critical" and r.json()["level"] == "high"
        assert r.json()["updated_by"].startswith("key:")
    time.sleep(1.2)  # the worker looks at changed settings at most once a second
    assert _send_and_wait(env, env.acme.admin_key, env.acme.tenant_id, 1) == ["critical"]
    assert _send_and_wait(env, env.other.admin_key, env.other.tenant_id, 1) == ["high"]

    with env.server.client(env.acme.admin_key) as http:
        r = http.patch(f"/v1/rules/{ENCODED_PS_RULE}", json={"enabled": False})
        assert r.json()["enabled"] is False
        listed = http.get("/v1/rules", params={"enabled": "false"}).json()
        assert [i["rule_id"] for i in listed["items"]] == [ENCODED_PS_RULE]
    time.sleep(1.2)
    with env.server.client(env.acme.admin_key) as http:
        http.post("/v1/events", content=MALICIOUS, headers=NDJSON)
    # another tenant's event goes through after acme's: once it is detected, acme's was seen
    assert _send_and_wait(env, env.other.admin_key, env.other.tenant_id, 2) == ["high", "high"]
    assert env.levels(env.acme.tenant_id) == ["critical"]

    with env.server.client(env.acme.admin_key) as http:
        r = http.patch(
            f"/v1/rules/{ENCODED_PS_RULE}",
            json={"enabled": True, "level": None, "suppression_window_s": 120},
        )
        body = r.json()
        assert (body["enabled"], body["effective_level"], body["suppression_window_s"]) == (
            True,
            "high",
            120,
        )
        entries = http.get("/v1/audit/entries", params={"action": "rule.update"}).json()
    assert [e["target"] for e in entries["items"]] == [f"rule:{ENCODED_PS_RULE}"] * 3
    assert all(e["request_id"] and e["actor"].startswith("key:") for e in entries["items"])

    def critical_counted() -> bool:
        # counted in the detection process, relayed to the serving process's /metrics
        text = httpx.get(env.server.url + "/metrics").text
        return 'vigil_detections_total{level="critical"} 1.0' in text and (
            "vigil_events_processed_total" in text
        )

    assert _eventually(critical_counted)


def test_patch_validation(env: Env) -> None:
    with env.server.client(env.acme.admin_key) as http:
        for body in (
            {"level": "severe"},
            {"colour": "red"},
            {},
            {"enabled": None},
            {"suppression_window_s": -1},
        ):
            r = http.patch(f"/v1/rules/{ENCODED_PS_RULE}", json=body)
            assert r.status_code == 422, body
            assert r.json()["errors"], body
        assert http.patch("/v1/rules/nope", json={"enabled": False}).status_code == 404


def test_hot_reload_edit_break_and_fix(env: Env) -> None:
    path = env.rules / PS_FILE
    original = path.read_text()

    def current(http: httpx.Client) -> dict[str, Any]:
        return dict(http.get(f"/v1/rules/{ENCODED_PS_RULE}").json())

    with env.server.client(env.acme.admin_key) as http:
        version = http.get("/v1/rules/status").json()["version"]
        path.write_text(original.replace("Encoded PowerShell", "Encoded PS (edited)"))
        assert _eventually(lambda: "edited" in current(http)["title"])
        assert http.get("/v1/rules/status").json()["version"] > version
        path.write_text(original.replace("condition: all of selection_*", "condition: bad("))
        detail = _eventually(lambda: (d := current(http))["stale"] and d)
        assert detail and "edited" in detail["title"]  # the previous version serves on
        assert detail["failures"] and detail["failures"][0]["path"].endswith(PS_FILE)
        status = http.get("/v1/rules/status").json()
        assert status["stale"] == [ENCODED_PS_RULE]
        deep = http.get("/health/deep").json()["checks"]["rules"]
        assert deep["stale"] == 1 and deep["failed"] == 2
    # the stale version still detects
    before = len(env.levels(env.other.tenant_id))
    assert len(_send_and_wait(env, env.other.admin_key, env.other.tenant_id, before + 1)) == (
        before + 1
    )
    path.write_text(original)
    with env.server.client(env.acme.admin_key) as http:
        assert _eventually(lambda: not current(http)["stale"])
        assert current(http)["title"].startswith("Encoded PowerShell")
