"""Sessions, users, keys and tenant isolation through the real server's HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pyotp
import pytest

from tests.support.identity import DEFAULT_PASSWORD, Credentials, bootstrap
from tests.support.server import VigilServer


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[VigilServer, Credentials, Credentials]]:
    home = tmp_path_factory.mktemp("sessions")
    acme = bootstrap(home, tenant="acme")
    globex = bootstrap(home, tenant="globex")
    server = VigilServer(
        home, env={"VIGIL_IDENTITY__LOCKOUT_THRESHOLD": "3", "VIGIL_IDENTITY__LOCKOUT_BASE_S": "60"}
    ).start()
    try:
        yield server, acme, globex
    finally:
        server.stop()


def _login(http: httpx.Client, creds: Credentials, **extra: str) -> httpx.Response:
    body = {"tenant": creds.tenant_name, "email": creds.admin_email, "password": DEFAULT_PASSWORD}
    body.update(extra)
    return http.post("/v1/auth/login", json=body)


def _user(server: VigilServer, creds: Credentials, email: str, roles: list[str]) -> str:
    with server.client(creds.admin_key) as http:
        r = http.post(
            "/v1/users", json={"email": email, "password": DEFAULT_PASSWORD, "roles": roles}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def test_login_refresh_logout(env: tuple[VigilServer, Credentials, Credentials]) -> None:
    server, acme, _ = env
    with server.client() as http:
        r = _login(http, acme)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        pair = r.json()
        me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
        assert me.status_code == 200 and me.json()["email"] == acme.admin_email
        r2 = http.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert r2.status_code == 200
        new = r2.json()
        assert new["refresh_token"] != pair["refresh_token"]
        # reuse of the spent refresh token revokes the family: the new tokens die too
        reuse = http.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert reuse.status_code == 401
        dead = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"})
        assert dead.status_code == 401
        again = http.post("/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
        assert again.status_code == 401
        # logout ends the access token at once
        fresh = _login(http, acme).json()
        auth = {"Authorization": f"Bearer {fresh['access_token']}"}
        assert http.post("/v1/auth/logout", json={}, headers=auth).status_code == 204
        assert http.get("/v1/auth/me", headers=auth).status_code == 401
        gone = http.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
        assert gone.status_code == 401


def test_tampered_tokens_are_refused(env: tuple[VigilServer, Credentials, Credentials]) -> None:
    server, acme, globex = env
    with server.client() as http:
        token = _login(http, acme).json()["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        forged = [
            jwt.encode(
                {**claims, "tid": globex.tenant_id},
                "guessed-key-" * 4,
                algorithm="HS256",
                headers={"typ": "at+jwt"},
            ),
            jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"}),
            token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        ]
        for bad in forged:
            r = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad


def test_failed_logins_are_generic_then_locked(
    env: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, _ = env
    _user(server, acme, "victim@acme.test", ["viewer"])
    with server.client() as http:
        wrong = {"tenant": "acme", "email": "victim@acme.test", "password": "nope nope nope"}
        unknown = {"tenant": "acme", "email": "nobody@acme.test", "password": "nope nope nope"}
        bodies = [http.post("/v1/auth/login", json=b).json() for b in (wrong, unknown)]
        assert bodies[0]["detail"] == bodies[1]["detail"] == "invalid or missing credentials"
        for _ in range(2):
            assert http.post("/v1/auth/login", json=wrong).status_code == 401
        right = {**wrong, "password": DEFAULT_PASSWORD}
        locked = http.post("/v1/auth/login", json=right)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
    with server.client(acme.admin_key) as admin:
        users = admin.get("/v1/users", params={"status": "locked"}).json()["items"]
        assert [u["email"] for u in users] == ["victim@acme.test"]
        entries = admin.get("/v1/audit/entries", params={"limit": 500}).json()["items"]
        actions = [e["action"] for e in entries]
        assert "identity.lockout" in actions and "identity.login_failed" in actions


def test_totp_enrolment_login_and_replay(env: tuple[VigilServer, Credentials, Credentials]) -> None:
    server, acme, _ = env
    _user(server, acme, "mfa@acme.test", ["security"])
    login = {"tenant": "acme", "email": "mfa@acme.test", "password": DEFAULT_PASSWORD}
    with server.client() as http:
        token = http.post("/v1/auth/login", json=login).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        enrol = http.post("/v1/auth/mfa/totp", headers=auth)
        assert enrol.status_code == 201
        seed = enrol.json()["secret"]
        assert enrol.json()["otpauth_uri"].startswith("otpauth://totp/")
        codes = http.post(
            "/v1/auth/mfa/totp/confirm", json={"code": pyotp.TOTP(seed).now()}, headers=auth
        ).json()["recovery_codes"]
        assert len(codes) == 10
        need = http.post("/v1/auth/login", json=login)
        assert need.status_code == 401 and need.json()["mfa_required"] is True
        # the confirmation used the current step: wait for the next one
        step = int(time.time() // 30)
        while int(time.time() // 30) == step:
            time.sleep(0.5)
        code = pyotp.TOTP(seed).now()
        assert http.post("/v1/auth/login", json={**login, "totp": code}).status_code == 200
        assert http.post("/v1/auth/login", json={**login, "totp": code}).status_code == 401
        ok = http.post("/v1/auth/login", json={**login, "recovery_code": codes[3]})
        assert ok.status_code == 200


def test_tenant_requiring_mfa_limits_unenrolled_sessions(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path, tenant="strict")
    server = VigilServer(tmp_path).start()
    try:
        with server.client(creds.admin_key) as admin:
            assert admin.patch("/v1/tenant", json={"require_mfa": True}).status_code == 200
        with server.client() as http:
            pair = _login(http, creds).json()
            assert pair["mfa_pending"] is True
            auth = {"Authorization": f"Bearer {pair['access_token']}"}
            assert http.get("/v1/users", headers=auth).status_code == 403
            seed = http.post("/v1/auth/mfa/totp", headers=auth).json()["secret"]
            r = http.post(
                "/v1/auth/mfa/totp/confirm", json={"code": pyotp.TOTP(seed).now()}, headers=auth
            )
            assert r.status_code == 200
            assert http.get("/v1/users", headers=auth).status_code == 200
    finally:
        server.stop()


def test_key_revocation_and_rotation_take_effect_at_once(
    env: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, _ = env
    with server.client(acme.admin_key) as admin:
        created = admin.post("/v1/keys", json={"name": "ci", "roles": ["auditor"]})
        assert created.status_code == 201
        key, key_id = created.json()["key"], created.json()["id"]
        assert "key" not in admin.get(f"/v1/keys/{key_id}").json()
        with server.client(key) as http:
            assert http.get("/v1/audit/entries").status_code == 200  # now cached
        rotated = admin.post(f"/v1/keys/{key_id}/rotate", json={"grace_s": 3600})
        assert rotated.status_code == 201
        new_key, new_id = rotated.json()["key"], rotated.json()["id"]
        with server.client(key) as old, server.client(new_key) as new:
            assert old.get("/v1/audit/entries").status_code == 200  # grace period
            assert new.get("/v1/audit/entries").status_code == 200
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 204
        assert admin.delete(f"/v1/keys/{new_id}").status_code == 204
        with server.client(key) as old, server.client(new_key) as new:
            assert old.get("/v1/audit/entries").status_code == 401
            assert new.get("/v1/audit/entries").status_code == 401
        # a key cannot carry more than its creator holds
        viewer_key = admin.post("/v1/keys", json={"name": "v", "roles": ["viewer"]}).json()["key"]
    with server.client(viewer_key) as viewer:
        assert viewer.post("/v1/keys", json={"name": "x"}).status_code == 403


def test_disabling_a_user_ends_their_tokens_and_keys(
    env: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, _ = env
    user_id = _user(server, acme, "leaver@acme.test", ["admin"])
    login = {"tenant": "acme", "email": "leaver@acme.test", "password": DEFAULT_PASSWORD}
    with server.client() as http:
        token = http.post("/v1/auth/login", json=login).json()["access_token"]
    with server.client(token) as user:
        key = user.post("/v1/keys", json={"name": "mine"}).json()["key"]
        assert user.get("/v1/users").status_code == 200
    with server.client(key) as k:
        assert k.get("/v1/users").status_code == 200
    with server.client(acme.admin_key) as admin:
        r = admin.post(f"/v1/users/{user_id}/disable")
        assert r.status_code == 200 and r.json()["status"] == "disabled"
    with server.client(token) as user, server.client(key) as k:
        assert user.get("/v1/users").status_code == 401
        assert k.get("/v1/users").status_code == 401


def test_tenant_isolation_of_identity_resources(
    env: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, globex = env
    with server.client(acme.admin_key) as a:
        user_id = a.post(
            "/v1/users", json={"email": "iso@acme.test", "password": DEFAULT_PASSWORD}
        ).json()["id"]
        key_id = a.post("/v1/keys", json={"name": "iso", "roles": ["viewer"]}).json()["id"]
        role_id = a.post(
            "/v1/roles", json={"name": "triage", "permissions": ["alerts:read"]}
        ).json()["id"]
        rule_id = a.post(
            "/v1/access-rules",
            json={
                "name": "iso",
                "effect": "deny",
                "permissions": ["users:*"],
                "conditions": {"subject": {"roles": ["viewer"]}},
            },
        ).json()["id"]
    with server.client(globex.admin_key) as g:
        assert all(u["email"] != "iso@acme.test" for u in g.get("/v1/users").json()["items"])
        assert all(k["id"] != key_id for k in g.get("/v1/keys").json()["items"])
        assert all(r["id"] != role_id for r in g.get("/v1/roles").json())
        assert all(r["id"] != rule_id for r in g.get("/v1/access-rules").json())
        assert g.get(f"/v1/users/{user_id}").status_code == 404
        assert g.patch(f"/v1/users/{user_id}", json={"roles": ["admin"]}).status_code == 404
        assert g.post(f"/v1/users/{user_id}/disable").status_code == 404
        assert (
            g.post(f"/v1/users/{user_id}/password", json={"new_password": "x" * 20}).status_code
            == 404
        )
        assert g.get(f"/v1/keys/{key_id}").status_code == 404
        assert g.post(f"/v1/keys/{key_id}/rotate", json={}).status_code == 404
        assert g.delete(f"/v1/keys/{key_id}").status_code == 404
        assert g.delete(f"/v1/roles/{role_id}").status_code == 404
        assert g.delete(f"/v1/access-rules/{rule_id}").status_code == 404
        assert g.get("/v1/tenant").json()["id"] == globex.tenant_id
    with server.client(acme.admin_key) as a:
        assert a.get(f"/v1/users/{user_id}").json()["status"] == "active"
        assert a.get(f"/v1/keys/{key_id}").json()["revoked_at"] is None


def test_usage_counts_api_calls_per_route_and_exports_csv(
    env: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, globex = env
    with server.client(acme.admin_key) as a:
        for _ in range(3):
            a.get("/v1/roles")
        report = a.get("/v1/usage", params={"granularity": "hour"}).json()
        calls = {r["dimension"]: r["value"] for r in report["items"] if r["metric"] == "api_calls"}
        assert calls.get("GET /v1/roles", 0) >= 3
        assert a.patch("/v1/tenant", json={"quotas": {"events": 1000}}).status_code == 200
        forecasts = a.get("/v1/usage").json()["forecasts"]
        assert [f["metric"] for f in forecasts] == ["events"]
        csv = a.get("/v1/usage", params={"format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[0] == "period_start,metric,dimension,value"
        bad = a.get(
            "/v1/usage", params={"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
        )
        assert bad.status_code == 422
    with server.client(globex.admin_key) as g:
        items = g.get("/v1/usage", params={"granularity": "hour"}).json()["items"]
        assert all(r["dimension"] != "GET /v1/roles" or r["value"] < 3 for r in items)


def test_event_quota_is_enforced_with_a_problem_document(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path, tenant="quota")
    server = VigilServer(tmp_path).start()
    try:
        with server.client(creds.admin_key) as admin:
            assert admin.patch("/v1/tenant", json={"quotas": {"events": 3}}).status_code == 200
            event = {"message": "hello", "host": "h1"}
            first = admin.post("/v1/events", json=[event, event])
            assert first.status_code in (200, 202), first.text
            over = admin.post("/v1/events", json=[event, event])
            assert over.status_code == 429
            assert over.headers["content-type"].startswith("application/problem+json")
            assert over.json()["type"].endswith("/quota-exceeded")
            assert "2 of 3" in over.json()["detail"]
            assert int(over.headers["retry-after"]) > 0
            usage = admin.get("/v1/usage", params={"metric": "events"}).json()
            assert usage["totals"]["events"] == 2
            assert usage["forecasts"][0]["used_today"] == 2
    finally:
        server.stop()


def test_allow_rules_with_resource_conditions_are_refused(
    env: tuple[VigilServer, Credentials, Credentials],
) -> None:
    """An allow rule is consulted at the route, where no resource is known: with resource
    conditions it could never match, so it is refused (field path and reason) instead of being
    stored as a silent no-op; the same conditions on a deny rule are accepted."""
    server, acme, _ = env
    conditions = {"subject": {"roles": ["viewer"]}, "resource": {"severities": ["low"]}}
    with server.client(acme.admin_key) as a:
        before = a.get("/v1/access-rules").json()
        r = a.post(
            "/v1/access-rules",
            json={
                "name": "viewers-write-low",
                "effect": "allow",
                "permissions": ["alerts:write"],
                "conditions": conditions,
            },
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        [error] = r.json()["errors"]
        assert error["field"] == "body.conditions"
        assert "allow rule cannot have resource conditions" in error["message"]
        assert a.get("/v1/access-rules").json() == before  # nothing stored
        r = a.post(
            "/v1/access-rules",
            json={
                "name": "viewers-no-low",
                "effect": "deny",
                "permissions": ["alerts:read"],
                "conditions": conditions,
            },
        )
        assert r.status_code == 201, r.text
        assert a.delete(f"/v1/access-rules/{r.json()['id']}").status_code in (200, 204)
