"""The alerts API on the real server: event in → alert out, filters and cursors over HTTP,
lifecycle and bulk, permissions, problem+json errors and tenant isolation."""

from __future__ import annotations

from datetime import timedelta

from tests.alerts.helpers import T0, detection
from tests.alerts.server import Service, problem, wait_for
from tests.pipeline.conftest import ENCODED_PS_RULE, MALICIOUS


def test_event_in_alert_out(service: Service) -> None:
    with service.client() as http:
        r = http.post("/v1/events", content=MALICIOUS, headers={"content-type": "application/json"})
        assert r.status_code == 202, r.text

        def found() -> list[dict]:
            page = http.get("/v1/alerts", params={"rule_id": ENCODED_PS_RULE}).json()
            return page["items"]

        [alert] = wait_for(found)
        assert alert["severity"] == "high" and alert["status"] == "new"
        assert alert["incident_id"]  # high: grouped into an incident at once
        assert alert["entity"] == "host=ws042.corp.example user=CORP\\alice"
        assert "attack.t1059.001" in alert["tags"]
        detail = http.get(f"/v1/alerts/{alert['id']}").json()
        assert len(detail["event_ids"]) == 1
        assert detail["context"]["CommandLine"].endswith("-enc SQBFAFgA")
        # The same event once more (a new event id): folded into the same alert.
        http.post("/v1/events", content=MALICIOUS, headers={"content-type": "application/json"})
        wait_for(lambda: http.get(f"/v1/alerts/{alert['id']}").json()["count"] == 2)
        assert len(found()) == 1


def test_list_filters_sorts_and_pages(service: Service) -> None:
    dets = [
        detection(
            tenant=service.acme.tenant_id,
            rule_id="api-list",
            host=f"LIST{i:02d}",
            level=["low", "medium", "critical"][i % 3],
            at=T0 + timedelta(minutes=i),
        )
        for i in range(12)
    ]
    ids = [o.alert_id for o in service.seed(dets)]
    with service.client() as http:
        seen: list[str] = []
        params: dict[str, str | int] = {"rule_id": "api-list", "limit": 5, "sort": "first_seen"}
        while True:
            page = http.get("/v1/alerts", params=params).json()
            seen.extend(a["id"] for a in page["items"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == ids[::-1]
        crit = http.get(
            "/v1/alerts", params={"rule_id": "api-list", "severity": "critical", "order": "asc"}
        ).json()["items"]
        assert [a["id"] for a in crit] == ids[2::3]
        both = http.get(
            "/v1/alerts",
            params=[("rule_id", "api-list"), ("severity", "critical"), ("severity", "low")],
        ).json()["items"]
        assert len(both) == 8
        assert (
            len(
                http.get(
                    "/v1/alerts", params={"rule_id": "api-list", "min_severity": "medium"}
                ).json()["items"]
            )
            == 8
        )
        hit = http.get("/v1/alerts", params={"q": "list07"}).json()["items"]
        assert [a["id"] for a in hit] == [ids[7]]
        window = http.get(
            "/v1/alerts",
            params={
                "rule_id": "api-list",
                "since": (T0 + timedelta(minutes=3)).isoformat(),
                "until": (T0 + timedelta(minutes=5)).isoformat(),
            },
        ).json()["items"]
        assert {a["id"] for a in window} == set(ids[3:6])


def test_bad_queries_are_422_problems(service: Service) -> None:
    with service.client() as http:
        body = problem(http.get("/v1/alerts", params={"cursor": "nope"}), 422, "invalid-input")
        assert body["errors"][0]["field"] == "query.cursor"
        body = problem(http.get("/v1/alerts", params={"status": "bogus"}), 422, "validation")
        assert body["errors"][0]["field"].startswith("query.status")
        problem(http.get("/v1/alerts", params={"limit": 0}), 422)
        problem(http.get("/v1/alerts", params={"since": "yesterday"}), 422)
        page = http.get("/v1/alerts", params={"limit": 1}).json()
        if page["next_cursor"]:
            body = problem(
                http.get("/v1/alerts", params={"cursor": page["next_cursor"], "sort": "count"}),
                422,
            )
            assert "another sort" in body["detail"]


def test_lifecycle_over_http(service: Service) -> None:
    [out] = service.seed([detection(tenant=service.acme.tenant_id, rule_id="api-life")])
    url = f"/v1/alerts/{out.alert_id}"
    with service.client() as http:
        r = http.patch(url, json={"status": "acknowledged", "assignee": "u-1", "note": "mine"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "acknowledged" and r.json()["assignee"] == "u-1"
        body = problem(http.patch(url, json={"status": "new"}), 409, "invalid-transition")
        assert "acknowledged to new" in body["detail"]
        assert http.patch(url, json={"assignee": None}).json()["assignee"] is None
        assert http.patch(url, json={"status": "resolved"}).json()["resolved_at"]
        assert http.patch(url, json={"status": "in_progress"}).json()["status"] == "in_progress"
        r = http.post(f"{url}/comments", json={"body": "handed to IR"})
        assert r.status_code == 201 and r.json()["body"] == "handed to IR"
        problem(http.post(f"{url}/comments", json={"body": "   "}), 422)
        problem(http.patch(url, json={"status": "done"}), 422)
        problem(http.patch(url, json={"colour": "red"}), 422)
        detail = http.get(url).json()
        transitions = [(t["kind"], t["from_value"], t["to_value"]) for t in detail["transitions"]]
        assert transitions == [
            ("status", "new", "acknowledged"),
            ("assignee", None, "u-1"),
            ("assignee", "u-1", None),
            ("status", "acknowledged", "resolved"),
            ("status", "resolved", "in_progress"),
        ]
        assert all(t["actor"].startswith("key:") for t in detail["transitions"])
        assert [c["body"] for c in detail["comments"]] == ["handed to IR"]
        entries = http.get("/v1/audit/entries", params={"action": "alert.status"}).json()
        assert sum(1 for e in entries["items"] if e["target"] == f"alert:{out.alert_id}") == 3


def test_bulk_over_http(service: Service) -> None:
    outs = service.seed(
        [detection(tenant=service.acme.tenant_id, rule_id="api-bulk", host=h) for h in "AB"]
    )
    ids = [o.alert_id for o in outs]
    with service.client() as http:
        r = http.post("/v1/alerts/bulk", json={"ids": [*ids, "nope"], "action": "false_positive"})
        assert r.status_code == 200, r.text
        result = r.json()
        assert (result["succeeded"], result["failed"]) == (2, 1)
        assert [x["outcome"] for x in result["results"]] == ["updated", "updated", "not_found"]
        body = problem(http.post("/v1/alerts/bulk", json={"ids": ids, "action": "assign"}), 422)
        assert body["errors"][0]["field"] == "body.assignee"
        problem(http.post("/v1/alerts/bulk", json={"ids": [], "action": "resolve"}), 422)
        problem(http.post("/v1/alerts/bulk", json={"ids": ids, "action": "explode"}), 422)


def test_permissions(service: Service) -> None:
    [out] = service.seed([detection(tenant=service.acme.tenant_id, rule_id="api-perm")])
    url = f"/v1/alerts/{out.alert_id}"
    with service.server.client() as anonymous:
        problem(anonymous.get("/v1/alerts"), 401)
    with service.client(service.viewer_key) as viewer:
        assert viewer.get(url).status_code == 200
        assert viewer.get("/v1/alerts").status_code == 200
        problem(viewer.patch(url, json={"status": "resolved"}), 403)
        problem(viewer.post(f"{url}/comments", json={"body": "x"}), 403)
        problem(
            viewer.post("/v1/alerts/bulk", json={"ids": [out.alert_id], "action": "resolve"}), 403
        )
    with service.client() as http:
        assert http.get(url).json()["status"] == "new"


def test_tenant_isolation(service: Service) -> None:
    [mine] = service.seed([detection(tenant=service.acme.tenant_id, rule_id="api-iso")])
    [theirs] = service.seed([detection(tenant=service.other.tenant_id, rule_id="api-iso")])
    with service.client(service.other.admin_key) as other:
        listed = other.get("/v1/alerts", params={"rule_id": "api-iso"}).json()["items"]
        assert [a["id"] for a in listed] == [theirs.alert_id]
        url = f"/v1/alerts/{mine.alert_id}"
        problem(other.get(url), 404, "not-found")
        problem(other.patch(url, json={"status": "resolved"}), 404)
        problem(other.post(f"{url}/comments", json={"body": "x"}), 404)
        bulk = other.post("/v1/alerts/bulk", json={"ids": [mine.alert_id], "action": "resolve"})
        assert bulk.json()["results"][0]["outcome"] == "not_found"
    with service.client() as http:
        assert http.get(f"/v1/alerts/{mine.alert_id}").json()["status"] == "new"
        problem(http.get(f"/v1/alerts/{theirs.alert_id}"), 404)
