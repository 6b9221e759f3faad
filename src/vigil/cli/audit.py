"""`vigil audit ...`: the tamper-evident audit ledger from the command line.

Exit codes: 0 success (for ``verify``: the log is intact), 1 verification failed or the ledger
refused (e.g. an inconsistent checkpoint), 2 bad input (missing files, malformed arguments).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from vigil.cli.common import cli_settings, fail
from vigil.config import Settings
from vigil.errors import VigilError
from vigil.ledger.checkpoint import SignerKey
from vigil.ledger.keys import parse_configured_key

app = typer.Typer(help="Tamper-evident audit ledger: export, verify, keys.", no_args_is_help=True)

SigningKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--signing-key",
        envvar="VIGIL_AUDIT_SIGNING_KEY",
        help="Signing key (PRIVATE+KEY+... text or a file path) instead of $VIGIL_HOME/keys.",
        show_default=False,
    ),
]


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A committed-on-success session on an up-to-date database."""
    from vigil.store import create_engine_for, session_factory, session_scope, upgrade

    url = settings.resolved_database_url()
    upgrade(url)
    engine = create_engine_for(url)
    try:
        with session_scope(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _signing_key(settings: Settings, option: str | None) -> SignerKey | None:
    value = option or settings.audit_signing_key
    return parse_configured_key(str(value)) if value else None


def _log_cli_action(session: Session, action: str, target: str, change: object = None) -> None:
    """Exports and archives are security-relevant: the ledger records who ran them (the OS user
    of the CLI), inside the exported range itself."""
    import getpass

    from vigil.ledger import service

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    service.append(
        session,
        tenant=service.SYSTEM_TENANT,
        actor=f"cli:{user}",
        action=action,
        target=target,
        change=change,
    )


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except VigilError as exc:
        fail(str(exc))


@app.command("init-key")
def init_key(
    origin: Annotated[
        str | None, typer.Option(help="Log origin (and key name), e.g. example.com/audit.")
    ] = None,
    signing_key: SigningKeyOpt = None,
) -> None:
    """Create the log's Ed25519 signing key (file mode 0600) unless it has one; print its key."""
    from vigil.ledger import service

    settings = cli_settings()
    with _errors(), _session(settings) as session:
        supplied = _signing_key(settings, signing_key)
        key = service.init_log(
            session,
            home=settings.home,
            origin=origin,
            signing_key=supplied,
        )
    typer.echo(key.vkey)


@app.command("public-key")
def public_key() -> None:
    """Print the active verifier key (give it to whoever verifies exports)."""
    from vigil.ledger import service

    with _errors(), _session(cli_settings()) as session:
        typer.echo(service.public_key(session))


@app.command("checkpoint")
def checkpoint(
    sign: Annotated[bool, typer.Option("--sign/--no-sign", help="Sign one now if needed.")] = True,
    signing_key: SigningKeyOpt = None,
) -> None:
    """Print the latest signed checkpoint (signing a new one first, on demand)."""
    from vigil.ledger import service

    settings = cli_settings()
    with _errors(), _session(settings) as session:
        if sign:
            supplied = _signing_key(settings, signing_key)
            cp = service.sign_checkpoint(
                session,
                home=settings.home,
                signing_key=supplied,
            )
        else:
            cp = service.get_checkpoint(session)
    typer.echo(cp.note, nl=False)


@app.command("rotate-key")
def rotate_key(
    actor: Annotated[str, typer.Option(help="Who rotates (logged).")] = "cli",
    signing_key: SigningKeyOpt = None,
) -> None:
    """Replace the signing key; the new key is announced in a checkpoint signed by the old one."""
    from vigil.ledger import service

    settings = cli_settings()
    with _errors(), _session(settings) as session:
        supplied = _signing_key(settings, signing_key)
        cp = service.rotate_key(
            session,
            home=settings.home,
            actor=actor,
            signing_key=supplied,
        )
        vkey = service.public_key(session)
    typer.echo(cp.note, nl=False)
    typer.echo(f"new public key: {vkey}")


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("-o", "--out", help="New (or empty) directory.")],
    sign: Annotated[
        bool, typer.Option("--sign/--no-sign", help="Sign a fresh checkpoint first.")
    ] = True,
    signing_key: SigningKeyOpt = None,
) -> None:
    """Write entries (JSONL), the latest checkpoint and the public key to a directory."""
    from vigil.ledger import export as ledger_export

    settings = cli_settings()
    with _errors(), _session(settings) as session:
        supplied = _signing_key(settings, signing_key)
        _log_cli_action(session, "audit.export", f"export:{out.resolve()}")
        summary = ledger_export.export(
            session,
            out=out,
            home=settings.home,
            signing_key=supplied,
            sign=sign,
        )
    typer.echo(
        f"exported {summary['entries']} entries from {summary['begin']} to {out} "
        f"(tree size {summary['tree_size']}, root {summary['root_hash']})"
    )


@app.command("archive")
def archive(
    before: Annotated[int, typer.Option(help="Archive every entry with seq below this.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="New (or empty) directory.")],
    signing_key: SigningKeyOpt = None,
) -> None:
    """Move old entries out of the database into a verifiable export directory."""
    from vigil.ledger import export as ledger_export

    settings = cli_settings()
    with _errors(), _session(settings) as session:
        supplied = _signing_key(settings, signing_key)
        _log_cli_action(session, "audit.archive", f"archive:{out.resolve()}", {"before": before})
        result = ledger_export.archive(
            session,
            before=before,
            out=out,
            home=settings.home,
            signing_key=supplied,
        )
    typer.echo(f"archived entries [{result.begin}, {result.end}) to {result.location}")


@app.command("prove")
def prove(
    seq: Annotated[int, typer.Argument(help="Sequence number of the entry.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Proof bundle (JSON) to write.")],
    checkpoint_file: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint saved earlier (default: the latest)."),
    ] = None,
) -> None:
    """Write one entry with its inclusion proof, for `vigil audit verify BUNDLE`."""
    from vigil.ledger import export as ledger_export

    note = _read_text(checkpoint_file) if checkpoint_file else None
    with _errors(), _session(cli_settings()) as session:
        bundle = ledger_export.proof_bundle(session, seq=seq, checkpoint_note=note)
    out.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    typer.echo(f"wrote the inclusion proof of entry {seq} (tree size {bundle['tree_size']})")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"{path}: cannot read ({exc.strerror})", 2)


@app.command("verify")
def verify(
    target: Annotated[Path, typer.Argument(help="Export directory, or a proof bundle file.")],
    public_key_file: Annotated[
        Path | None,
        typer.Option("--public-key", help="Trusted verifier key(s), one per line."),
    ] = None,
    checkpoint_files: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="Checkpoint(s) saved earlier to check against."),
    ] = None,
) -> None:
    """Recompute everything offline; exit 0 only if the log is intact (else name the first bad
    entry)."""
    from vigil.ledger import verify as ledger_verify

    if not target.exists():
        fail(f"{target}: no such file or directory", 2)
    saved = [_read_text(p) for p in checkpoint_files or []]
    try:
        keys = ledger_verify.read_verifier_keys(public_key_file) if public_key_file else None
    except VigilError as exc:
        fail(str(exc), 2)
    if target.is_dir():
        report = ledger_verify.verify_export(target, trusted_keys=keys, saved_checkpoints=saved)
    else:
        if keys is None:
            fail("verifying a proof bundle needs --public-key", 2)
        try:
            bundle = json.loads(_read_text(target))
        except ValueError:
            fail(f"{target}: not JSON", 2)
        if len(saved) > 1:
            fail("a proof bundle is checked against one --checkpoint", 2)
        report = ledger_verify.verify_bundle(
            bundle, trusted_keys=keys, checkpoint_text=saved[0] if saved else None
        )
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    if report.ok:
        typer.echo(
            f"OK: {report.entries} entries verified from {report.begin}; tree size "
            f"{report.tree_size}, root {report.root_hash}"
        )
        return
    if report.first_bad_seq is not None:
        typer.echo(f"FAILED: first bad entry: {report.first_bad_seq}")
    else:
        typer.echo("FAILED")
    for problem in report.problems:
        typer.echo(f"  {problem}")
    raise typer.Exit(1)
