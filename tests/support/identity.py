"""Credentials for HTTP tests, made with the real CLI (``vigil admin init`` / ``vigil keys
create``) against a server home, exactly as an operator would.

    creds = bootstrap(home)                      # tenant + admin user + admin API key
    key = create_key(home, creds.tenant_name, "viewer")
    with server.client(creds.admin_key) as http: ...

Run these before or while the server runs (they share VIGIL_HOME and the database).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import run_vigil

DEFAULT_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True, slots=True)
class Credentials:
    tenant_id: str
    tenant_name: str
    admin_email: str
    admin_password: str
    admin_key: str
    admin_user_id: str = ""


def bootstrap(
    home: Path,
    *,
    tenant: str = "acme",
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Create a tenant with an admin (password ``password``) and an admin API key."""
    address = email or f"admin@{tenant.lower()}.test"
    proc = run_vigil(
        ["admin", "init", "--tenant", tenant, "--email", address, "--password-stdin", "--json"],
        home=home,
        env=env,
        input=password + "\n",
    )
    data = json.loads(proc.stdout)
    return Credentials(
        tenant_id=data["tenant_id"],
        tenant_name=data["tenant"],
        admin_email=data["email"],
        admin_password=password,
        admin_key=data["api_key"],
        admin_user_id=data["user_id"],
    )


def create_key(
    home: Path,
    tenant: str,
    role: str | Sequence[str],
    *,
    name: str | None = None,
    scopes: Sequence[str] = (),
    expires_in: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """A new API key of ``tenant`` acting with ``role`` (one name or several); returns its text."""
    roles = [role] if isinstance(role, str) else list(role)
    args = ["keys", "create", "--tenant", tenant, "--name", name or f"test {'+'.join(roles)}"]
    for r in roles:
        args += ["--role", r]
    for s in scopes:
        args += ["--scope", s]
    if expires_in:
        args += ["--expires-in", expires_in]
    proc = run_vigil([*args, "--json"], home=home, env=env)
    key: str = json.loads(proc.stdout)["api_key"]
    return key
