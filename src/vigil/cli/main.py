"""The `vigil` command line: a thin shell over the domains."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="vigil",
    help="Vigil: self-hosted security detection and response.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Sub-commands live in their own modules; importing them here keeps start-up explicit.
    from vigil.cli import audit, identity
    from vigil.cli.rules import app as rules_app
    from vigil.cli.scan import scan
    from vigil.cli.serve import db_app, serve, worker

    app.add_typer(rules_app, name="rules")
    app.command(name="scan")(scan)
    app.add_typer(audit.app, name="audit")
    app.command(name="serve")(serve)
    app.command(name="worker")(worker)
    app.add_typer(db_app, name="db")
    identity.register(app)


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
