"""`vigil rules check` and `vigil rules test`: for people who maintain rule sets."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.common import fail, load_engine_inputs, read_single_events
from vigil.detect.sigma.context import EventContext
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.explain import explain

app = typer.Typer(help="Check and test Sigma rules.", no_args_is_help=True)


class CheckFormat(StrEnum):
    text = "text"
    json = "json"


MappingOpt = Annotated[
    list[Path] | None,
    typer.Option("--mapping", help="Extra logsource mapping file(s), applied over the default."),
]


@app.command("check")
def check(
    paths: Annotated[list[Path], typer.Argument(help="Rule files or folders (recursive).")],
    fmt: Annotated[CheckFormat, typer.Option("--format", help="Output format.")] = CheckFormat.text,
    mapping: MappingOpt = None,
) -> None:
    """Load and compile every rule; report each one that fails with its file, id and reason."""
    result, _ = load_engine_inputs(paths, mapping or [])
    loaded = len(result.rules) + len(result.correlations)
    if fmt is CheckFormat.json:
        payload = {
            "loaded": loaded,
            "rules": len(result.rules),
            "correlations": len(result.correlations),
            "files": result.files,
            "failed": [f.to_dict() for f in result.failures],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(
        f"{result.files} files: {loaded} rules loaded "
        f"({len(result.rules)} detection, {len(result.correlations)} correlation), "
        f"{len(result.failures)} failed"
    )
    for failure in result.failures:
        rid = failure.rule_id or "-"
        kind = " [needs placeholder values]" if failure.kind == "placeholder" else ""
        typer.echo(f"  {failure.path} ({rid}){kind}: {failure.reason}")


@app.command("test")
def test(
    rule: Annotated[Path, typer.Argument(help="The rule file.")],
    event: Annotated[
        Path,
        typer.Option("--event", help="Event file: JSON object, JSON array, JSON lines or EVTX."),
    ],
    mapping: MappingOpt = None,
) -> None:
    """Say whether the rule matches each event and, when not, which selection or item failed."""
    result, _ = load_engine_inputs([rule], mapping or [])
    if result.failures:
        for failure in result.failures:
            typer.echo(f"{failure.path}: {failure.reason}", err=True)
        raise typer.Exit(1)
    if not result.rules:
        fail(f"{rule}: no detection rule in this file")
    records = read_single_events(event)
    engine = SigmaEngine(result.rules)
    any_match = False
    for compiled in result.rules:
        for record in records:
            where = f"record {record.record_id}" if record.record_id is not None else "event"
            if not compiled.variants:
                typer.echo(f"{compiled.info.title} — {where}: no match")
                typer.echo("  the logsource mapping disables this rule's logsource")
                continue
            # The variant the engine itself would evaluate (sources may rename fields).
            variant = engine.variant_for(compiled, record)
            routed = variant is not None
            expl = explain((variant or compiled.variants[0]).node, EventContext(record.fields))
            matched = routed and expl.matched
            any_match |= matched
            verdict = "MATCH" if matched else "no match"
            typer.echo(f"{compiled.info.title} — {where}: {verdict}")
            if not routed:
                typer.echo(
                    f"  the event does not belong to the rule's logsource "
                    f"{dict(compiled.info.logsource)} (see the logsource mapping); "
                    "its detection is shown for information"
                )
            if not expl.matched:
                typer.echo("  failed because:")
                for line in expl.failures():
                    typer.echo(f"    - {line}")
            typer.echo("\n".join("  " + line for line in expl.lines()))
    sys.stdout.flush()
    if not any_match:
        raise typer.Exit(3)
