"""Shared pieces of the CLI: loading rules with settings, one-line errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import typer

from vigil.config import Settings, load_settings
from vigil.detect.sigma.loader import LoadResult, load_rules
from vigil.detect.sigma.mapping import LogsourceMapping, load_mapping
from vigil.errors import VigilError
from vigil.events.issues import ReadIssue
from vigil.events.model import EventRecord
from vigil.events.readers import read_events


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error on stderr and exit non-zero."""
    typer.echo(f"vigil: error: {message}", err=True)
    raise typer.Exit(code)


def cli_settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # pydantic's ValidationError: show it on one line
        fail(f"invalid settings: {str(exc).splitlines()[0]}", 2)


def load_engine_inputs(
    rule_paths: Sequence[Path], mapping_paths: Sequence[Path]
) -> tuple[LoadResult, LogsourceMapping]:
    for path in [*rule_paths, *mapping_paths]:
        if not path.exists():
            fail(f"{path}: no such file or directory", 2)
    try:
        mapping = load_mapping(list(mapping_paths))
    except VigilError as exc:
        fail(str(exc).replace("\n", "; "))
    result = load_rules(rule_paths, mapping=mapping, placeholders=cli_settings().sigma_placeholders)
    return result, mapping


def read_single_events(path: Path) -> list[EventRecord]:
    """All events of a (small) file, for `rules test`; unreadable records are errors here."""
    if not path.exists():
        fail(f"{path}: no such file or directory", 2)
    records: list[EventRecord] = []
    for item in read_events(path):
        if isinstance(item, ReadIssue):
            fail(str(item))
        records.append(item)
    if not records:
        fail(f"{path}: no events found")
    return records
