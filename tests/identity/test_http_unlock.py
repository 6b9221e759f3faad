"""Lifting a lockout on the real server: `POST /v1/users/{id}/unlock` (users:manage) and
`vigil users unlock EMAIL --tenant T` clear the account's failures and back-off, make a locked
user active, and are recorded in the ledger and as a security event."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.identity import DEFAULT_PASSWORD, bootstrap, create_key
from tests.support.server import VigilServer, run_vigil
from vigil.bus.outbox import read_after
from vigil.store import create_engine_for, session_factory, session_scope

EMAIL = "locked@acme.test"
# Two failures lock the account for ten minutes: long enough that only an unlock lifts it.
ENV = {"VIGIL_IDENTITY__LOCKOUT_THRESHOLD": "2", "VIGIL_IDENTITY__LOCKOUT_BASE_S": "600"}


def _login(server: VigilServer, password: str) -> httpx.Response:
    body = {"tenant": "acme", "email": EMAIL, "password": password}
    with server.client() as http:
        return http.post("/v1/auth/login", json=body)


def _lock_out(server: VigilServer) -> None:
    assert [_login(server, "wrong password!").status_code for _ in range(2)] == [401, 401]
    r = _login(server, DEFAULT_PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 60, r.text


def _security_events(home: Path, event_type: str) -> list[dict]:
    engine = create_engine_for(f"sqlite:///{home / 'vigil.db'}")
    try:
        with session_scope(session_factory(engine)) as s:
            items = read_after(s, after_seq=0, limit=10_000)
            return [i.event.details for i in items if i.event.event_type == event_type]
    finally:
        engine.dispose()


def test_unlock_over_http_and_cli(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path)
    viewer = create_key(tmp_path, creds.tenant_name, "viewer")
    server = VigilServer(tmp_path, env=ENV).start()
    try:
        with server.client(creds.admin_key) as admin:
            user = {"email": EMAIL, "password": DEFAULT_PASSWORD, "roles": ["viewer"]}
            r = admin.post("/v1/users", json=user)
            assert r.status_code == 201, r.text
            user_id = r.json()["id"]
            _lock_out(server)
            assert admin.get(f"/v1/users/{user_id}").json()["status"] == "locked"

            with server.client(viewer) as v:
                assert v.post(f"/v1/users/{user_id}/unlock").status_code == 403
            assert admin.post("/v1/users/no-such-user/unlock").status_code == 404
            r = admin.post(f"/v1/users/{user_id}/unlock")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "active"
            assert _login(server, DEFAULT_PASSWORD).status_code == 200

            entries = admin.get("/v1/audit/entries", params={"limit": 1000}).json()["items"]
            unlocks = [e for e in entries if e["action"] == "identity.user_unlocked"]
            assert [e["target"] for e in unlocks] == [f"user:{user_id}"]
            assert unlocks[0]["actor"].startswith("key:")

            # The CLI does the same (by email), as an operator would at the console.
            _lock_out(server)
            out = run_vigil(["users", "unlock", EMAIL, "--tenant", "acme"], home=tmp_path)
            assert "unlocked, status active" in out.stdout
            assert _login(server, DEFAULT_PASSWORD).status_code == 200
            assert admin.get(f"/v1/users/{user_id}").json()["status"] == "active"
        events = _security_events(tmp_path, "identity_user_unlocked")
        assert [e["actor"] for e in events][-2:] == [unlocks[0]["actor"], "system:cli"]
        assert all(e["change"]["to"] == {"status": "active"} for e in events)
        assert events[0]["change"]["from"]["status"] == "locked"
    finally:
        server.stop()


def test_unlock_leaves_a_disabled_user_disabled(tmp_path: Path) -> None:
    bootstrap(tmp_path)  # the tenant
    args = ["users", "create", "--tenant", "acme", "--email", EMAIL, "--password-stdin"]
    run_vigil(args, home=tmp_path, input=DEFAULT_PASSWORD + "\n")
    run_vigil(["users", "disable", "--tenant", "acme", "--email", EMAIL], home=tmp_path)
    out = run_vigil(["users", "unlock", EMAIL, "--tenant", "acme"], home=tmp_path)
    assert "status disabled" in out.stdout
    missing = run_vigil(
        ["users", "unlock", "nobody@acme.test", "--tenant", "acme"], home=tmp_path, check=False
    )
    assert missing.returncode == 1 and "no user" in missing.stderr
