"""`vigil serve` and `vigil db upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import cli_settings, fail
from vigil.errors import VigilError

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8900,
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", help="Sigma rule file or folder (repeatable).", show_default=False),
    ] = None,
    mapping: Annotated[
        list[Path] | None,
        typer.Option(
            "--mapping", help="Extra logsource mapping file (repeatable).", show_default=False
        ),
    ] = None,
    role: Annotated[
        str, typer.Option(help="all (API + workers), or api (stateless API replica).")
    ] = "all",
) -> None:
    """Start the API, the detection pipeline and the notifier in one process."""
    import uvicorn

    from vigil.api.app import create_app
    from vigil.obs.logging import configure_logging
    from vigil.wiring import assemble, prepare_storage

    if role not in ("all", "api"):
        fail(f"--role must be 'all' or 'api', not {role!r}", 2)
    overrides: dict[str, object] = {}
    for path in [*(rules or []), *(mapping or [])]:
        if not path.exists():
            fail(f"{path}: no such file or directory", 2)
    settings = cli_settings()
    if rules:
        overrides["rules_dirs"] = [*settings.rules_dirs, *rules]
    if mapping:
        overrides["mapping_files"] = [*settings.mapping_files, *mapping]
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level)
    try:
        prepare_storage(settings)
        runtime = assemble(settings, role=role)  # type: ignore[arg-type]
    except VigilError as exc:
        fail(str(exc).replace("\n", "; "))
    app = create_app(runtime)
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
