"""`vigil users`: manage a tenant's users from the command line (non-interactive)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from vigil.cli.common import cli_settings, fail
from vigil.cli.identity import (
    CLI_ACTOR,
    JsonOpt,
    TenantOpt,
    cli_session,
    emit,
    read_password_stdin,
    run,
)

users_app = typer.Typer(help="Manage a tenant's users.", no_args_is_help=True)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (otherwise one is "
        "generated and printed once).",
    ),
]


def _user_dict(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "status": user.status,
        "roles": user.roles,
        "team": user.team,
        "created_at": user.created_at,
        "last_login_at": user.last_login_at,
    }


def _find(session: Any, email: str) -> Any:
    from sqlalchemy import select

    from vigil.identity.models import User

    user = session.execute(
        select(User).where(User.email == email.strip().lower())
    ).scalar_one_or_none()
    if user is None:
        fail(f"no user {email!r} in this tenant")
    return user


@users_app.command("list")
def users_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List the tenant's users."""
    from vigil.identity import service

    with cli_session(tenant_name=tenant) as (session, _):
        rows = [_user_dict(u) for u in service.list_users(session, limit=10_000)]
    if as_json:
        typer.echo(orjson.dumps({"items": rows}, default=str).decode())
        return
    for row in rows:
        typer.echo(f"{row['id']}  {row['status']:8} {','.join(row['roles']):24} {row['email']}")


@users_app.command("create")
def users_create(
    tenant: TenantOpt,
    email: Annotated[str, typer.Option("--email")],
    role: Annotated[list[str] | None, typer.Option("--role", help="Role (repeatable).")] = None,
    team: Annotated[str | None, typer.Option("--team")] = None,
    password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a user. A generated password is printed ONCE."""
    from vigil.identity import service
    from vigil.identity.credentials import new_password

    password = read_password_stdin() if password_stdin else new_password()
    min_length = cli_settings().identity.password_min_length
    with cli_session(tenant_name=tenant) as (session, tenant_id):
        assert tenant_id is not None
        user = run(
            lambda: service.create_user(
                session,
                tenant_id=tenant_id,
                email=email,
                password=password,
                roles=role or [],
                team=team,
                min_password_length=min_length,
                granter=None,
                actor=CLI_ACTOR,
            )
        )
        data = _user_dict(user)
    data["password"] = None if password_stdin else password
    lines = [f"user:     {data['email']} ({data['id']})"]
    if not password_stdin:
        lines += [f"password: {password}", "Store the password now: it is shown only once."]
    emit(data, as_json=as_json, lines=lines)


def _update(tenant: str, email: str, **changes: Any) -> None:
    from vigil.identity import service

    with cli_session(tenant_name=tenant) as (session, _):
        user = _find(session, email)
        run(
            lambda: service.update_user(
                session, user=user, granter=None, actor=CLI_ACTOR, **changes
            )
        )
        if changes.get("status") is not None and changes["status"] != "active":
            from vigil.identity.sessions import revoke_user_sessions

            revoke_user_sessions(session, user_id=user.id, reason="user_" + changes["status"])
        typer.echo(f"{user.email}: status {user.status}, roles {','.join(user.roles) or '-'}")


@users_app.command("set-roles")
def users_set_roles(
    tenant: TenantOpt,
    email: Annotated[str, typer.Option("--email")],
    role: Annotated[list[str], typer.Option("--role", help="Role (repeatable).")],
) -> None:
    """Replace a user's roles."""
    _update(tenant, email, roles=role)


@users_app.command("disable")
def users_disable(tenant: TenantOpt, email: Annotated[str, typer.Option("--email")]) -> None:
    """Disable a user and end their sessions."""
    from vigil.identity.models import UserStatus

    _update(tenant, email, status=UserStatus.DISABLED)


@users_app.command("enable")
def users_enable(tenant: TenantOpt, email: Annotated[str, typer.Option("--email")]) -> None:
    """Re-activate a disabled or locked user."""
    from vigil.identity.models import UserStatus

    _update(tenant, email, status=UserStatus.ACTIVE)


@users_app.command("reset-password")
def users_reset_password(
    tenant: TenantOpt,
    email: Annotated[str, typer.Option("--email")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a new password (generated and printed once unless --password-stdin) and end the
    user's sessions."""
    from vigil.identity import service
    from vigil.identity.credentials import new_password
    from vigil.identity.sessions import revoke_user_sessions

    password = read_password_stdin() if password_stdin else new_password()
    min_length = cli_settings().identity.password_min_length
    with cli_session(tenant_name=tenant) as (session, _):
        user = _find(session, email)
        run(
            lambda: service.set_password(
                session, user=user, password=password, min_length=min_length, actor=CLI_ACTOR
            )
        )
        revoke_user_sessions(session, user_id=user.id, reason="password_reset")
    if not password_stdin:
        typer.echo(f"password: {password}")
        typer.echo("Store the password now: it is shown only once.")
    else:
        typer.echo(f"password of {email} changed")


@users_app.command("unlock")
def users_unlock(
    email: Annotated[str, typer.Argument(help="The user's email address.")],
    tenant: TenantOpt,
) -> None:
    """Clear a user's failed logins and sign-in back-off; a locked user becomes active again
    (a disabled one stays disabled: use `vigil users enable`)."""
    from vigil.identity import service, sessions

    with cli_session(tenant_name=tenant) as (session, tenant_id):
        assert tenant_id is not None
        user = service.find_user(session, tenant_id=tenant_id, email=email)
        if user is None:
            fail(f"no user {email!r} in this tenant")
        run(lambda: sessions.unlock_user(session, user=user, actor=CLI_ACTOR))
        typer.echo(f"{user.email}: unlocked, status {user.status}")
