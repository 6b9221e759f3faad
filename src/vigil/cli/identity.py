"""`vigil admin`, `vigil keys`, `vigil users`: identity from the command line (non-interactive).

Every command reads ``VIGIL_HOME`` / ``VIGIL_DATABASE_URL`` like the server, applies the schema
migrations first, and records what it does in the audit ledger (actor ``system:cli``). Secrets
(generated passwords, API keys) are printed exactly once; ``--json`` prints one JSON object for
scripts.

Revocations (keys revoked, users disabled or re-roled, passwords reset) reach running servers
within about a second through the revocation epoch they poll
(:mod:`vigil.identity.revocations`); with a ``redis://`` ``VIGIL_QUEUE_URL`` they are also
broadcast to the replicas at once.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
import typer
from sqlalchemy.orm import Session

from vigil.cli.common import cli_settings, fail
from vigil.errors import VigilError

CLI_ACTOR = "system:cli"
T = TypeVar("T")

admin_app = typer.Typer(help="Bootstrap a Vigil installation.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys (the key text is shown once).", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant name.", show_default=False)]


@contextmanager
def cli_session(*, tenant_name: str | None = None) -> Iterator[tuple[Session, str | None]]:
    """A committed-on-success session on the configured database (migrated first), scoped to
    ``tenant_name`` when given (which must exist)."""
    from vigil.identity import service
    from vigil.store import create_engine_for, session_factory
    from vigil.store.tenancy import TENANT_KEY, UNSCOPED_KEY
    from vigil.wiring import prepare_storage

    settings = cli_settings()
    try:
        prepare_storage(settings)
    except VigilError as exc:
        fail(str(exc).replace("\n", "; "))
    engine = create_engine_for(settings.resolved_database_url())
    session = session_factory(engine)()
    try:
        tenant_id = None
        if tenant_name is not None:
            tenant = service.get_tenant_by_name(session, name=tenant_name)
            if tenant is None:
                fail(f"no tenant named {tenant_name!r}")
            tenant_id = tenant.id
            session.info[TENANT_KEY] = tenant_id
        else:
            session.info[UNSCOPED_KEY] = True
        yield session, tenant_id
        session.commit()
        _broadcast(session, settings.queue_url)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        engine.dispose()


def _broadcast(session: Session, queue_url: str | None) -> None:
    """Tell replicas listening on Redis what this command revoked (the epoch covers the rest)."""
    from vigil.identity.revocations import pending, publish_pending

    url = queue_url or ""
    if url.startswith(("redis://", "rediss://", "unix://")):
        publish_pending(session, url)
    else:
        pending(session)


def run(action: Callable[[], T]) -> T:
    """Turn domain errors into one-line CLI errors."""
    try:
        return action()
    except VigilError as exc:
        fail(str(exc))


def emit(data: dict[str, Any], *, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(orjson.dumps(data, default=str).decode())
    else:
        for line in lines:
            typer.echo(line)


_DURATION = re.compile(r"^(\d+)\s*([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        fail(f"bad duration {text!r}: use e.g. 3600, 90m, 12h, 30d, 2w", 2)
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def read_password_stdin() -> str:
    data = sys.stdin.readline().rstrip("\r\n")
    if not data:
        fail("--password-stdin: no password on standard input", 2)
    return data


# --- vigil admin ----------------------------------------------------------------------------------


@admin_app.command("init")
def admin_init(
    tenant: TenantOpt,
    email: Annotated[str, typer.Option("--email", help="The first admin's email address.")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the admin's password from the first line of standard input "
            "(otherwise one is generated).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant with its first admin user and an admin API key.

    Prints the generated password (unless --password-stdin) and the admin API key ONCE: they
    are stored only as hashes and cannot be shown again. Works without a terminal.
    """
    from vigil.identity import apikeys, service
    from vigil.identity.credentials import new_password

    generated = not password_stdin
    password = new_password() if generated else read_password_stdin()
    with cli_session() as (session, _):

        def work() -> tuple[Any, Any, Any]:
            t = service.create_tenant(session, name=tenant, actor=CLI_ACTOR)
            settings = cli_settings()
            user = service.create_user(
                session,
                tenant_id=t.id,
                email=email,
                password=password,
                roles=["admin"],
                min_password_length=settings.identity.password_min_length,
                granter=None,
                actor=CLI_ACTOR,
            )
            key = apikeys.create_key(
                session,
                tenant_id=t.id,
                name="bootstrap admin key",
                roles=["admin"],
                user_id=user.id,
                granter=None,
                actor=CLI_ACTOR,
            )
            return t, user, key

        t, user, key = run(work)
    data = {
        "tenant_id": t.id,
        "tenant": t.name,
        "user_id": user.id,
        "email": user.email,
        "password": password if generated else None,
        "api_key": key.secret,
        "api_key_id": key.key.id,
    }
    lines = [f"tenant:   {t.name} ({t.id})", f"admin:    {user.email} ({user.id})"]
    if generated:
        lines.append(f"password: {password}")
    lines += [
        f"api key:  {key.secret}",
        "Store the "
        + ("password and the " if generated else "")
        + "API key now: they are shown only once.",
    ]
    emit(data, as_json=as_json, lines=lines)


# --- vigil keys -----------------------------------------------------------------------------------


def _key_dict(key: Any) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "roles": key.roles,
        "scopes": key.scopes,
        "user_id": key.user_id,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }


@keys_app.command("create")
def keys_create(
    tenant: TenantOpt,
    role: Annotated[list[str], typer.Option("--role", help="Role the key acts with (repeatable).")],
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Lifetime, e.g. 90d, 12h, 3600 (default: none)."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Narrow the key to these permissions (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a service API key and print it ONCE (only its hash is stored)."""
    from vigil.identity import apikeys

    expires_at = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    with cli_session(tenant_name=tenant) as (session, tenant_id):
        assert tenant_id is not None
        new = run(
            lambda: apikeys.create_key(
                session,
                tenant_id=tenant_id,
                name=name,
                roles=role,
                scopes=scope,
                expires_at=expires_at,
                granter=None,
                actor=CLI_ACTOR,
            )
        )
    data = {**_key_dict(new.key), "api_key": new.secret}
    emit(
        data,
        as_json=as_json,
        lines=[new.secret, f"# key {new.key.id}: store it now, it is shown only once"],
    )


@keys_app.command("list")
def keys_list(
    tenant: TenantOpt,
    include_revoked: Annotated[bool, typer.Option("--include-revoked")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List a tenant's API keys (prefixes only; key texts are never shown again)."""
    from vigil.identity import apikeys

    with cli_session(tenant_name=tenant) as (session, _):
        keys = apikeys.list_keys(session, include_revoked=include_revoked)
        rows = [_key_dict(k) for k in keys]
    if as_json:
        typer.echo(orjson.dumps({"items": rows}, default=str).decode())
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        typer.echo(
            f"{row['id']}  {row['prefix']}…  {state:8} {','.join(row['roles']):20} {row['name']}"
        )


@keys_app.command("revoke")
def keys_revoke(
    tenant: TenantOpt,
    key_id: Annotated[str, typer.Argument(help="Key id (see `vigil keys list`).")],
) -> None:
    """Revoke a key at once (running servers stop accepting it within about a second)."""
    from vigil.identity import apikeys

    with cli_session(tenant_name=tenant) as (session, _):
        run(
            lambda: apikeys.revoke_key(
                session, key=apikeys.get_key(session, key_id=key_id), actor=CLI_ACTOR
            )
        )
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    """Add the identity command groups to the top-level CLI."""
    app.add_typer(admin_app, name="admin")
    app.add_typer(keys_app, name="keys")
    from vigil.cli.identity_users import users_app

    app.add_typer(users_app, name="users")
