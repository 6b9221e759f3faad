"""Resource-level access rules on incidents, on the real server: an incident's severity, owner
and the tags of the alerts it holds decide what a caller may see and change; lists leave denied
incidents out, one incident answers 403 with an ``access_denied`` event, and an incident shows
only the alerts the caller may read."""

from __future__ import annotations

from typing import Any

import httpx

from tests.alerts.server import Service, problem
from tests.alerts.test_abac import _seed, _tenant, denials
from tests.support.identity import create_key

RULES = [
    {
        "name": "viewers-no-critical-incidents",
        "effect": "deny",
        "permissions": ["incidents:read"],
        "conditions": {"subject": {"roles": ["viewer"]}, "resource": {"severities": ["critical"]}},
    },
    {
        "name": "viewers-no-secret-alerts",
        "effect": "deny",
        "permissions": ["alerts:read"],
        "conditions": {"subject": {"roles": ["viewer"]}, "resource": {"tags": ["secret"]}},
    },
    {
        "name": "analysts-not-on-secret-incidents",
        "effect": "deny",
        "permissions": ["incidents:*"],
        "conditions": {
            "subject": {"roles": ["security"]},
            "resource": {"types": ["incident"], "tags": ["secret"]},
        },
    },
]


def _incident(http: httpx.Client, **body: Any) -> str:
    r = http.post("/v1/incidents", json={"move": True, **body})
    assert r.status_code == 201, r.text
    incident_id: str = r.json()["id"]
    return incident_id


def _listed(http: httpx.Client) -> set[str]:
    r = http.get("/v1/incidents", params={"q": "abac", "limit": 500})
    assert r.status_code == 200, r.text
    return {i["id"] for i in r.json()["items"]}


def test_incidents_by_severity_and_by_the_tags_of_their_alerts(service: Service) -> None:
    creds = _tenant(service, "abac-incidents", RULES)
    home, tenant = service.server.home, creds.tenant_name
    viewer = create_key(home, tenant, "viewer")
    analyst = create_key(home, tenant, "security")
    alerts = _seed(
        service,
        creds,
        "abac-inc",
        {"S": ("medium", ("secret",)), "P": ("low", ("public",)), "Q": ("low", ())},
    )
    with service.server.client(creds.admin_key) as admin:
        critical = _incident(admin, title="abac critical", severity="critical")
        secret = _incident(admin, title="abac secret", alert_ids=[alerts["S"], alerts["P"]])
        plain = _incident(admin, title="abac plain", alert_ids=[alerts["Q"]])
        assert _listed(admin) == {critical, secret, plain}

    with service.server.client(viewer) as v:
        assert _listed(v) == {secret, plain}
        problem(v.get(f"/v1/incidents/{critical}"), 403, "forbidden")
        detail = v.get(f"/v1/incidents/{secret}").json()
        # The incident is visible; of its alerts, only those the viewer may read.
        assert [a["id"] for a in detail["alerts"]] == [alerts["P"]]
        assert detail["alert_count"] == 2

    with service.server.client(analyst) as a:
        assert _listed(a) == {critical, plain}
        problem(a.get(f"/v1/incidents/{secret}"), 403)
        problem(a.patch(f"/v1/incidents/{secret}", json={"owner": "me"}), 403)
        problem(a.post(f"/v1/incidents/{secret}/comments", json={"body": "hi"}), 403)
        problem(a.delete(f"/v1/incidents/{secret}/alerts/{alerts['P']}"), 403)
        # Opening an incident over a secret alert would make a secret incident: denied too.
        r = a.post(
            "/v1/incidents", json={"title": "abac mine", "alert_ids": [alerts["S"]], "move": True}
        )
        problem(r, 403)
        r = a.patch(f"/v1/incidents/{plain}", json={"owner": "me"})
        assert r.status_code == 200 and r.json()["owner"] == "me"

    with service.server.client(creds.admin_key) as admin:
        kept = admin.get(f"/v1/incidents/{secret}").json()
        assert kept["owner"] is None and kept["alert_count"] == 2
        assert [i["summary"] for i in kept["timeline"] if i["kind"] == "comment"] == []

    events = denials(service, creds.tenant_id)
    assert [(e["rule"], e["permission"]) for e in events] == [
        ("viewers-no-critical-incidents", "incidents:read"),
        ("analysts-not-on-secret-incidents", "incidents:read"),
        ("analysts-not-on-secret-incidents", "incidents:write"),
        ("analysts-not-on-secret-incidents", "incidents:write"),
        ("analysts-not-on-secret-incidents", "incidents:write"),
        ("analysts-not-on-secret-incidents", "incidents:write"),
    ]
    assert events[0]["resource"] == {"type": "incident", "id": critical, "severity": "critical"}
