"""`vigil admin`, `vigil keys`, `vigil users`: identity from the command line (non-interactive)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the identity command groups to the top-level CLI."""
