"""The incidents and escalation-policy API on the real server, including the escalation worker
firing a step in the running process."""

from __future__ import annotations

import sqlite3

import orjson

from tests.alerts.helpers import detection
from tests.alerts.server import Service, problem, wait_for

LEVELS = [
    {"after_minutes": 0.01, "channels": ["chan-oncall"]},
    {"after_minutes": 600, "channels": ["chan-ciso", "chan-slack"]},
]


def _incident_of(service: Service, alert_id: str) -> str:
    with service.client() as http:
        incident_id = http.get(f"/v1/alerts/{alert_id}").json()["incident_id"]
    assert incident_id
    return str(incident_id)


def test_automatic_incident_over_http(service: Service) -> None:
    [out] = service.seed(
        [detection(tenant=service.acme.tenant_id, level="critical", host="AUTO1", rule_id="i-auto")]
    )
    incident_id = _incident_of(service, out.alert_id)
    with service.client() as http:
        detail = http.get(f"/v1/incidents/{incident_id}").json()
        assert detail["severity"] == "critical" and detail["status"] == "open"
        assert [a["id"] for a in detail["alerts"]] == [out.alert_id]
        assert [t["kind"] for t in detail["timeline"]][:2] == ["opened", "alert_added"]
        assert detail["ack_due_at"] and detail["ack_breached"] is False
        listed = http.get("/v1/incidents", params={"q": "auto1"}).json()["items"]
        assert [i["id"] for i in listed] == [incident_id]


def test_work_an_incident_over_http(service: Service) -> None:
    outs = service.seed(
        [
            detection(tenant=service.acme.tenant_id, level="low", host="MAN1", rule_id="i-man"),
            detection(tenant=service.acme.tenant_id, level="low", host="MAN2", rule_id="i-man"),
        ]
    )
    a, b = (o.alert_id for o in outs)
    with service.client() as http:
        problem(http.post("/v1/incidents", json={"title": "x"}), 422)  # no alerts, no severity
        problem(http.post("/v1/incidents", json={"title": "x", "alert_ids": ["nope"]}), 422)
        r = http.post("/v1/incidents", json={"title": "Phishing wave", "alert_ids": [a]})
        assert r.status_code == 201, r.text
        incident = r.json()
        url = f"/v1/incidents/{incident['id']}"
        assert incident["severity"] == "low" and incident["alert_count"] == 1
        assert http.post(f"{url}/alerts", json={"alert_ids": [b]}).json()["alert_count"] == 2
        problem(http.post(f"{url}/alerts", json={"alert_ids": []}), 422)
        r = http.patch(url, json={"status": "investigating", "owner": "u-9", "note": "on it"})
        assert r.status_code == 200 and r.json()["acknowledged_at"]
        problem(http.patch(url, json={"status": "open"}), 409, "invalid-transition")
        problem(http.patch(url, json={"status": "paused"}), 422)
        problem(http.patch(url, json={"follow_ups": [{"text": ""}]}), 422)
        r = http.patch(
            url,
            json={
                "status": "resolved",
                "root_cause": "macro-enabled attachment",
                "lessons_learned": "block macros from the internet",
                "follow_ups": [{"text": "GPO for macros", "owner": "it", "done": False}],
            },
        )
        assert r.status_code == 200 and r.json()["resolved_at"]
        assert r.json()["follow_ups"][0]["text"] == "GPO for macros"
        r = http.post(f"{url}/comments", json={"body": "post-mortem on Friday"})
        assert r.status_code == 201 and r.json()["kind"] == "comment"
        r = http.delete(f"{url}/alerts/{b}")
        assert r.status_code == 200 and r.json()["alert_count"] == 1
        problem(http.delete(f"{url}/alerts/{b}"), 404)
        assert http.patch(url, json={"status": "closed"}).json()["closed_at"]
        problem(http.patch(url, json={"status": "investigating"}), 409)
        problem(http.post(f"{url}/alerts", json={"alert_ids": [b]}), 409)
        kinds = [t["kind"] for t in http.get(url).json()["timeline"]]
        assert kinds == [
            "opened",
            "alert_added",
            "alert_added",
            "status",
            "owner",
            "status",
            "updated",
            "comment",
            "alert_removed",
            "status",
        ]
        audit = http.get("/v1/audit/entries", params={"action": "incident.status"}).json()
        assert sum(1 for e in audit["items"] if e["target"] == f"incident:{incident['id']}") == 3


def test_list_pages_over_http(service: Service) -> None:
    outs = service.seed(
        [
            detection(
                tenant=service.acme.tenant_id, level="high", host=f"PAGE{i}", rule_id="i-page"
            )
            for i in range(7)
        ]
    )
    wanted = {_incident_of(service, o.alert_id) for o in outs}
    with service.client() as http:
        seen: list[str] = []
        params: dict[str, str | int] = {"q": "page", "limit": 3, "sort": "severity"}
        while True:
            page = http.get("/v1/incidents", params=params).json()
            seen.extend(i["id"] for i in page["items"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        assert sorted(seen) == sorted(wanted) and len(seen) == 7
        body = problem(http.get("/v1/incidents", params={"cursor": "x"}), 422)
        assert body["errors"][0]["field"] == "query.cursor"
        assert (
            http.get("/v1/incidents", params={"breached": "true", "q": "page"}).json()["items"]
            == []
        )


def test_policies_over_http(service: Service) -> None:
    with service.client() as http:
        body = {"name": "lows", "severity": "low", "levels": LEVELS}
        r = http.post("/v1/escalation-policies", json=body)
        assert r.status_code == 201, r.text
        policy = r.json()
        url = f"/v1/escalation-policies/{policy['id']}"
        problem(http.post("/v1/escalation-policies", json=body), 409, "conflict")
        bad = {**body, "severity": "medium", "levels": [LEVELS[1], LEVELS[0]]}
        problem(http.post("/v1/escalation-policies", json=bad), 422)
        assert http.patch(url, json={"enabled": False}).json()["enabled"] is False
        assert http.get(url).json()["name"] == "lows"
        assert policy["id"] in [p["id"] for p in http.get("/v1/escalation-policies").json()]
        assert http.delete(url).status_code == 204
        problem(http.get(url), 404)
    with service.client(service.viewer_key) as viewer:
        assert viewer.get("/v1/escalation-policies").status_code == 200
        problem(viewer.post("/v1/escalation-policies", json=body), 403)
        assert viewer.get("/v1/incidents").status_code == 200
        problem(viewer.post("/v1/incidents", json={"title": "x", "severity": "low"}), 403)
    with service.server.client() as anonymous:
        problem(anonymous.get("/v1/incidents"), 401)
        problem(anonymous.get("/v1/escalation-policies"), 401)


def test_escalation_fires_in_the_running_server(service: Service) -> None:
    with service.client() as http:
        r = http.post(
            "/v1/escalation-policies",
            json={"name": "high on-call", "severity": "high", "levels": LEVELS},
        )
        assert r.status_code == 201, r.text
        [out] = service.seed(
            [detection(tenant=service.acme.tenant_id, level="high", host="ESC1", rule_id="i-esc")]
        )
        incident_id = _incident_of(service, out.alert_id)

        def escalated() -> list[dict]:
            timeline = http.get(f"/v1/incidents/{incident_id}").json()["timeline"]
            return [t for t in timeline if t["kind"] == "escalation"]

        [step] = wait_for(escalated, timeout=30)
        assert step["data"]["channels"] == ["chan-oncall"] and step["data"]["level"] == 1
        http.delete(f"/v1/escalation-policies/{r.json()['id']}")
    with sqlite3.connect(service.server.home / "vigil.db", timeout=30) as conn:
        bodies = [
            orjson.loads(b)
            for (b,) in conn.execute(
                "SELECT body FROM outbox_events WHERE event_type = 'escalation'"
            ).fetchall()
        ]
    mine = [e for e in bodies if e["details"].get("incident", {}).get("incident_id") == incident_id]
    assert len(mine) == 1
    assert mine[0]["details"]["channels"] == ["chan-oncall"]
    assert mine[0]["metadata"]["tenant_id"] == service.acme.tenant_id


def test_tenant_isolation_over_http(service: Service) -> None:
    [out] = service.seed(
        [detection(tenant=service.acme.tenant_id, level="high", host="ISO1", rule_id="i-iso")]
    )
    incident_id = _incident_of(service, out.alert_id)
    with service.client() as http:
        policy = http.post(
            "/v1/escalation-policies",
            json={"name": "info", "severity": "info", "levels": LEVELS},
        ).json()
    url = f"/v1/incidents/{incident_id}"
    with service.client(service.other.admin_key) as other:
        assert incident_id not in [i["id"] for i in other.get("/v1/incidents").json()["items"]]
        problem(other.get(url), 404, "not-found")
        problem(other.patch(url, json={"status": "resolved"}), 404)
        problem(other.post(f"{url}/comments", json={"body": "x"}), 404)
        problem(other.post(f"{url}/alerts", json={"alert_ids": [out.alert_id]}), 404)
        problem(other.delete(f"{url}/alerts/{out.alert_id}"), 404)
        r = other.post("/v1/incidents", json={"title": "steal", "alert_ids": [out.alert_id]})
        problem(r, 422)
        assert other.get("/v1/escalation-policies").json() == []
        purl = f"/v1/escalation-policies/{policy['id']}"
        problem(other.get(purl), 404)
        problem(other.patch(purl, json={"enabled": False}), 404)
        problem(other.delete(purl), 404)
    with service.client() as http:
        assert http.get(url).json()["status"] == "open"
        assert http.get(f"/v1/escalation-policies/{policy['id']}").json()["enabled"] is True
