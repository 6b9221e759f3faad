"""Resource-level access rules on alerts, on the real server: rules on severity, tags and owner
hide alerts from lists, answer 403 for one alert (recording an ``access_denied`` event), and
turn the denied items of a bulk action into ``forbidden`` results, while the other alerts stay
untouched. Each test works in a tenant of its own, so its rules touch no other test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from tests.alerts.helpers import detection
from tests.alerts.server import Service, problem
from tests.support.identity import DEFAULT_PASSWORD, Credentials, bootstrap, create_key
from vigil.bus.outbox import read_after
from vigil.store import session_factory, session_scope


def _tenant(service: Service, name: str, rules: Sequence[dict[str, Any]]) -> Credentials:
    creds = bootstrap(service.server.home, tenant=name)
    with service.server.client(creds.admin_key) as admin:
        for rule in rules:
            r = admin.post("/v1/access-rules", json=rule)
            assert r.status_code == 201, r.text
    return creds


def _seed(service: Service, creds: Credentials, rule_id: str, specs: dict[str, Any]) -> dict:
    """One alert per ``name: (level, tags)``; returns name → alert id."""
    dets = [
        detection(tenant=creds.tenant_id, rule_id=rule_id, host=name, level=level, tags=tags)
        for name, (level, tags) in specs.items()
    ]
    return {name: o.alert_id for name, o in zip(specs, service.seed(dets), strict=True)}


def _all_ids(http: httpx.Client, **params: Any) -> list[str]:
    """Walk every page of the list; ids in the order served."""
    seen: list[str] = []
    query: dict[str, Any] = dict(params)
    while True:
        r = http.get("/v1/alerts", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [a["id"] for a in page["items"]]
        if not page["next_cursor"]:
            return seen
        query["cursor"] = page["next_cursor"]


def denials(service: Service, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's ``access_denied`` security events, oldest first."""
    with session_scope(session_factory(service.engine)) as s:
        items = read_after(s, after_seq=0, limit=1_000_000)
    return [
        i.event.details
        for i in items
        if i.event.event_type == "access_denied" and i.event.metadata.tenant_id == tenant_id
    ]


def test_viewer_may_not_read_critical_alerts(service: Service) -> None:
    rule = {
        "name": "viewers-no-critical",
        "effect": "deny",
        "permissions": ["alerts:read"],
        "conditions": {"subject": {"roles": ["viewer"]}, "resource": {"severities": ["critical"]}},
    }
    creds = _tenant(service, "abac-severity", [rule])
    viewer = create_key(service.server.home, creds.tenant_name, "viewer")
    specs = {f"C{i}": ("critical", ()) for i in range(3)} | {f"L{i}": ("low", ()) for i in range(3)}
    ids = _seed(service, creds, "abac-sev", specs)
    critical = {ids[n] for n in specs if n.startswith("C")}
    low = {ids[n] for n in specs if n.startswith("L")}

    with service.server.client(creds.admin_key) as admin, service.server.client(viewer) as v:
        assert set(_all_ids(admin, rule_id="abac-sev")) == critical | low
        assert set(_all_ids(v, rule_id="abac-sev")) == low
        # Criticals come first by severity: the page is filled from further rows, and the
        # cursor continues exactly after what was looked at (nothing repeated or skipped).
        first = v.get("/v1/alerts", params={"rule_id": "abac-sev", "sort": "severity", "limit": 2})
        assert {a["id"] for a in first.json()["items"]} <= low
        assert len(first.json()["items"]) == 2
        walked = _all_ids(v, rule_id="abac-sev", sort="severity", limit=2)
        assert sorted(walked) == sorted(low)
        assert denials(service, creds.tenant_id) == []  # lists record nothing

        some_critical = sorted(critical)[0]
        body = problem(v.get(f"/v1/alerts/{some_critical}"), 403, "forbidden")
        assert "denied by policy" in body["detail"]
        assert v.get(f"/v1/alerts/{sorted(low)[0]}").status_code == 200
        assert admin.get(f"/v1/alerts/{some_critical}").status_code == 200

    [event] = denials(service, creds.tenant_id)
    assert event["rule"] == "viewers-no-critical"
    assert event["permission"] == "alerts:read"
    assert event["resource"] == {"type": "alert", "id": some_critical, "severity": "critical"}
    assert event["path"] == f"/v1/alerts/{some_critical}"


def test_analysts_may_not_change_critical_alerts(service: Service) -> None:
    rule = {
        "name": "no-critical-writes",
        "effect": "deny",
        "permissions": ["alerts:write"],
        "conditions": {
            "subject": {"roles": ["security"]},
            "resource": {"min_severity": "critical"},
        },
    }
    creds = _tenant(service, "abac-writes", [rule])
    analyst = create_key(service.server.home, creds.tenant_name, "security")
    ids = _seed(service, creds, "abac-wr", {"C": ("critical", ()), "M": ("medium", ())})
    crit, med = ids["C"], ids["M"]
    with service.server.client(analyst) as a, service.server.client(creds.admin_key) as admin:
        assert a.get(f"/v1/alerts/{crit}").status_code == 200  # reading stays allowed
        problem(a.patch(f"/v1/alerts/{crit}", json={"status": "acknowledged"}), 403)
        problem(a.post(f"/v1/alerts/{crit}/comments", json={"body": "mine now"}), 403)
        r = a.patch(f"/v1/alerts/{med}", json={"status": "acknowledged"})
        assert r.status_code == 200 and r.json()["status"] == "acknowledged"

        r = a.post("/v1/alerts/bulk", json={"ids": [crit, med, "nope"], "action": "resolve"})
        assert r.status_code == 200, r.text
        result = r.json()
        outcomes = {i["id"]: i["outcome"] for i in result["results"]}
        assert outcomes == {crit: "forbidden", med: "updated", "nope": "not_found"}
        assert [i["id"] for i in result["results"]] == [crit, med, "nope"]
        assert (result["succeeded"], result["failed"]) == (1, 2)

        detail = admin.get(f"/v1/alerts/{crit}").json()
        assert detail["status"] == "new" and detail["comments"] == []
        assert admin.get(f"/v1/alerts/{med}").json()["status"] == "resolved"
    denied = [(e["path"], e["permission"]) for e in denials(service, creds.tenant_id)]
    assert denied == [
        (f"/v1/alerts/{crit}", "alerts:write"),
        (f"/v1/alerts/{crit}/comments", "alerts:write"),
        ("/v1/alerts/bulk", "alerts:write"),
    ]


def test_team_sees_only_its_tag_and_changes_only_its_own(service: Service) -> None:
    rules = [
        {
            "name": "blue-sees-blue",
            "effect": "deny",
            "permissions": ["alerts:*"],
            "conditions": {
                "subject": {"teams": ["blue"]},
                "resource": {"types": ["alert"], "not_tags": ["team:blue"]},
            },
        },
        {
            "name": "blue-changes-own",
            "effect": "deny",
            "permissions": ["alerts:write"],
            "conditions": {"subject": {"teams": ["blue"]}, "resource": {"owner": "other"}},
        },
    ]
    creds = _tenant(service, "abac-team", rules)
    specs = {
        "B1": ("medium", ("team:blue",)),
        "B2": ("low", ("team:blue", "x")),
        "R1": ("medium", ("team:red",)),
        "U1": ("low", ()),
    }
    ids = _seed(service, creds, "abac-team", specs)
    email = "bo@abac-team.test"
    with service.server.client(creds.admin_key) as admin:
        user = {"email": email, "password": DEFAULT_PASSWORD, "roles": ["security"], "team": "blue"}
        assert admin.post("/v1/users", json=user).status_code == 201
        login = {"tenant": creds.tenant_name, "email": email, "password": DEFAULT_PASSWORD}
        token = admin.post("/v1/auth/login", json=login).json()["access_token"]
        # Assigned by email: the owner condition knows the user by id, user:<id> or email.
        assert admin.patch(f"/v1/alerts/{ids['B1']}", json={"assignee": email}).status_code == 200
    with service.server.client(token) as bo:
        assert set(_all_ids(bo, rule_id="abac-team")) == {ids["B1"], ids["B2"]}
        problem(bo.get(f"/v1/alerts/{ids['R1']}"), 403)
        problem(bo.get(f"/v1/alerts/{ids['U1']}"), 403)
        r = bo.patch(f"/v1/alerts/{ids['B1']}", json={"status": "in_progress"})
        assert r.status_code == 200, r.text
        problem(bo.patch(f"/v1/alerts/{ids['B2']}", json={"status": "in_progress"}), 403)
    rules_hit = [e["rule"] for e in denials(service, creds.tenant_id)]
    assert rules_hit == ["blue-sees-blue", "blue-sees-blue", "blue-changes-own"]
