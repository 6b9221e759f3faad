"""`vigil scan`: run the rules over log files and print the detections."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from vigil.cli.common import fail, load_engine_inputs
from vigil.detect.correlate import CorrelationEngine, compile_correlations, suppressed_base_rules
from vigil.detect.detection import Detection, EncodedBatch, Level
from vigil.detect.scan import Scanner, ScanSummary, scan_paths, total_size
from vigil.detect.sigma.engine import SigmaEngine
from vigil.errors import VigilError


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    json = "json"
    csv = "csv"
    table = "table"


CSV_COLUMNS = [
    "rule_id",
    "rule_title",
    "level",
    "tags",
    "kind",
    "source_file",
    "record_id",
    "timestamp",
    "event",
]


def _json_line(det: Detection) -> bytes:
    return orjson.dumps(det.to_dict(), default=str, option=orjson.OPT_NON_STR_KEYS)


def _lines(items: Iterator[Detection | EncodedBatch]) -> Iterator[bytes]:
    for item in items:
        if isinstance(item, EncodedBatch):
            yield from item.line_list()
        else:
            yield _json_line(item)


def _dicts(items: Iterator[Detection | EncodedBatch]) -> Iterator[dict[str, Any]]:
    for item in items:
        if isinstance(item, EncodedBatch):
            for line in item.line_list():
                yield orjson.loads(line)
        else:
            yield item.to_dict()


def _write(items: Iterator[Detection | EncodedBatch], fmt: OutputFormat, out: IO[str]) -> None:
    if fmt is OutputFormat.jsonl:
        for item in items:
            if isinstance(item, EncodedBatch):
                out.write(item.lines.decode())  # already one JSON object per line
            else:
                out.write(_json_line(item).decode())
                out.write("\n")
    elif fmt is OutputFormat.json:
        out.write("[")
        for i, line in enumerate(_lines(items)):
            out.write(",\n" if i else "\n")
            out.write(line.decode())
        out.write("\n]\n")
    elif fmt is OutputFormat.csv:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for d in _dicts(items):
            d["tags"] = ";".join(d["tags"])
            d["event"] = orjson.dumps(d["event"], default=str).decode()
            writer.writerow([d.get(c) for c in CSV_COLUMNS])
    else:
        table = Table("timestamp", "level", "rule", "source", "record")
        for d in _dicts(items):
            table.add_row(
                str(d["timestamp"] or ""),
                str(d["level"] or ""),
                d["rule_title"],
                Path(d["source_file"]).name,
                str(d["record_id"] or ""),
            )
        Console(file=out, width=160).print(table)


def _print_summary(summary: ScanSummary, rules: int, err: Console) -> None:
    err.print(
        f"[bold]Scanned[/] {summary.events} events in {summary.files} files with {rules} rules: "
        f"[bold]{summary.detections}[/] detections from {len(summary.by_rule)} rules"
    )
    if summary.by_level:
        order = [lv.name.lower() for lv in sorted(Level, reverse=True)]
        parts = [f"{lv}={summary.by_level[lv]}" for lv in order if summary.by_level.get(lv)]
        err.print("  by level: " + ", ".join(parts))
    if summary.by_tactic:
        parts = [f"{t}={n}" for t, n in summary.by_tactic.most_common()]
        err.print("  by ATT&CK tactic: " + ", ".join(parts))
    for title, n in summary.by_rule.most_common(10):
        err.print(f"  {n:>7}  {title}")
    if summary.issues:
        err.print(f"[yellow]{len(summary.issues)} unreadable records or files skipped:[/]")
        for issue in summary.issues[:20]:
            # One unwrapped, literal line per issue: paths and parser messages are long and may
            # hold "[", which Rich would otherwise take for markup.
            err.print(f"  {issue}", soft_wrap=True, markup=False, highlight=False)


def scan(
    paths: Annotated[list[Path], typer.Argument(help="Log files or folders (EVTX, JSON, JSONL).")],
    rules: Annotated[list[Path], typer.Option("--rules", help="Rule file or folder (repeatable).")],
    mapping: Annotated[
        list[Path] | None, typer.Option("--mapping", help="Extra logsource mapping file(s).")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.jsonl
    ),
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here.")] = None,
    min_level: Annotated[
        str, typer.Option("--min-level", help="informational, low, medium, high or critical.")
    ] = "informational",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")] = False,
) -> None:
    """Scan log files with Sigma rules. Exit code 0 whether or not anything matched."""
    try:
        level = Level.parse(min_level)
    except ValueError as exc:
        fail(str(exc), 2)
    for path in paths:
        if not path.exists():
            fail(f"{path}: no such file or directory", 2)
    result, _ = load_engine_inputs(rules, mapping or [])
    err = Console(stderr=True)
    if result.failures and not quiet:
        err.print(
            f"[yellow]{len(result.failures)} rules could not be loaded[/] (see `vigil rules check`)"
        )
    try:
        compiled = compile_correlations(result.correlations)
    except VigilError as exc:
        fail(str(exc))
    scanner = Scanner(
        SigmaEngine(result.rules),
        CorrelationEngine(compiled) if compiled else None,
        min_level=level,
        suppressed=frozenset(suppressed_base_rules(compiled)),
    )
    summary = ScanSummary()
    show_progress = err.is_terminal and not quiet
    with ExitStack() as stack:
        out: IO[str] = sys.stdout
        if output is not None:
            try:
                out = stack.enter_context(output.open("w", encoding="utf-8", newline=""))
            except OSError as exc:
                fail(f"{output}: {exc.strerror}")
        progress_cb = None
        if show_progress:
            bar = stack.enter_context(
                Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=err,
                    transient=True,
                )
            )
            task = bar.add_task("scanning", total=total_size(paths))

            def progress_cb(n: int) -> None:
                bar.advance(task, n)

        try:
            dets = scan_paths(paths, scanner, summary, workers=workers, progress=progress_cb)
            _write(dets, fmt, out)
        except BrokenPipeError:
            # The reader went away (`vigil scan … | head`): stop quietly, like other filters.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OSError as exc:
            fail(f"{exc.filename or output or '<stdout>'}: {exc.strerror}")
        except VigilError as exc:
            fail(str(exc))
    if not quiet:
        _print_summary(summary, len(result.rules) + len(result.correlations), err)
