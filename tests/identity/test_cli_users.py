"""`vigil users` end to end against a database under VIGIL_HOME, and the result over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.identity import DEFAULT_PASSWORD, bootstrap
from tests.support.server import VigilServer, run_vigil


def test_users_cli_lifecycle(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path)
    t = ["--tenant", creds.tenant_name]
    made = run_vigil(
        ["users", "create", *t, "--email", "Bob@Acme.test", "--role", "viewer", "--json"],
        home=tmp_path,
    )
    generated = json.loads(made.stdout)["password"]
    assert generated and len(generated) >= 20
    run_vigil(
        ["users", "create", *t, "--email", "carol@acme.test", "--password-stdin"],
        home=tmp_path,
        input=DEFAULT_PASSWORD + "\n",
    )
    run_vigil(
        ["users", "set-roles", *t, "--email", "bob@acme.test", "--role", "auditor"], home=tmp_path
    )
    listed = json.loads(run_vigil(["users", "list", *t, "--json"], home=tmp_path).stdout)["items"]
    by_email = {u["email"]: u for u in listed}
    assert by_email["bob@acme.test"]["roles"] == ["auditor"]
    assert by_email["carol@acme.test"]["status"] == "active"
    run_vigil(["users", "disable", *t, "--email", "carol@acme.test"], home=tmp_path)
    missing = run_vigil(
        ["users", "disable", *t, "--email", "nobody@acme.test"], home=tmp_path, check=False
    )
    assert missing.returncode == 1 and "no user" in missing.stderr
    weak = run_vigil(
        ["users", "create", *t, "--email", "dave@acme.test", "--password-stdin"],
        home=tmp_path,
        input="short\n",
        check=False,
    )
    assert weak.returncode == 1 and "at least 12" in weak.stderr
    server = VigilServer(tmp_path).start()
    try:
        with server.client() as http:
            bob = {"tenant": "acme", "email": "bob@acme.test", "password": generated}
            assert http.post("/v1/auth/login", json=bob).status_code == 200
            carol = {"tenant": "acme", "email": "carol@acme.test", "password": DEFAULT_PASSWORD}
            assert http.post("/v1/auth/login", json=carol).status_code == 401  # disabled
        with server.client(creds.admin_key) as admin:
            actions = {e["action"] for e in admin.get("/v1/audit/entries").json()["items"]}
        assert {"identity.user_roles_changed", "identity.user_status_changed"} <= actions
    finally:
        server.stop()
