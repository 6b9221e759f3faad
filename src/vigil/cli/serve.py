"""`vigil serve`, `vigil worker` and `vigil db upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vigil.cli.common import cli_settings, fail
from vigil.config import Settings
from vigil.errors import VigilError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from vigil.runtime import Runtime
    from vigil.wiring import Role

RulesOpt = Annotated[
    list[Path] | None,
    typer.Option("--rules", help="Sigma rule file or folder (repeatable).", show_default=False),
]
MappingOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--mapping", help="Extra logsource mapping file (repeatable).", show_default=False
    ),
]

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)


def _settings_with(rules: list[Path] | None, mapping: list[Path] | None) -> Settings:
    for path in [*(rules or []), *(mapping or [])]:
        if not path.exists():
            fail(f"{path}: no such file or directory", 2)
    settings = cli_settings()
    overrides: dict[str, object] = {}
    if rules:
        overrides["rules_dirs"] = [*settings.rules_dirs, *rules]
    if mapping:
        overrides["mapping_files"] = [*settings.mapping_files, *mapping]
    return settings.model_copy(update=overrides) if overrides else settings


def _run_uvicorn(app: FastAPI, runtime: Runtime, host: str, port: int) -> None:
    import uvicorn

    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        runtime.close()


def _assemble(settings: Settings, role: Role, *, migrate: bool) -> Runtime:
    from vigil.obs.logging import configure_logging
    from vigil.wiring import assemble, prepare_storage

    configure_logging(settings.log_level)
    try:
        if migrate:
            prepare_storage(settings)
        return assemble(settings, role=role)
    except VigilError as exc:
        fail(str(exc).replace("\n", "; "))


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8900,
    rules: RulesOpt = None,
    mapping: MappingOpt = None,
    role: Annotated[
        str, typer.Option(help="all (API + workers), or api (stateless API replica).")
    ] = "all",
) -> None:
    """Start the API, the detection pipeline and the notifier in one process."""
    from vigil.api.app import create_app

    if role not in ("all", "api"):
        fail(f"--role must be 'all' or 'api', not {role!r}", 2)
    settings = _settings_with(rules, mapping)
    # API replicas of a scale-out deployment leave migrations to `vigil db upgrade` (a Job);
    # the embedded process migrates itself at start.
    runtime = _assemble(settings, role, migrate=role == "all")  # type: ignore[arg-type]
    _run_uvicorn(create_app(runtime), runtime, host, port)


def worker(
    host: Annotated[str, typer.Option(help="Address of the health/metrics listener.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port of /health/* and /metrics.", min=0)] = 8901,
    rules: RulesOpt = None,
    mapping: MappingOpt = None,
) -> None:
    """Run detection, notification, escalation and checkpoint workers (no API)."""
    from vigil.api.app import create_health_app

    settings = _settings_with(rules, mapping)
    runtime = _assemble(settings, "worker", migrate=False)
    _run_uvicorn(create_health_app(runtime), runtime, host, port)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the schema migrations to VIGIL_DATABASE_URL (or the SQLite file under VIGIL_HOME)."""
    from vigil.store import upgrade
    from vigil.store.migrate import current_heads

    settings = cli_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url()
    try:
        upgrade(url, revision)
        heads = current_heads(url)
    except Exception as exc:
        fail(f"migration failed: {str(exc).splitlines()[0]}")
    typer.echo(f"database at revision {', '.join(heads) or 'base'}")
