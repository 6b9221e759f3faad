"""docs/operations.md names real metrics, commands and manifest objects (catches renames)."""

from __future__ import annotations

import re

import pytest
import typer.main

from tests.deploy.conftest import REPO, cluster_view
from vigil.cli import main as cli_main
from vigil.obs.metrics import REGISTRY

DOC = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")


def exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        for suffix in ("", "_total", "_bucket", "_sum", "_count", "_created"):
            names.add(family.name + suffix)
    return names


def test_every_metric_the_guide_names_is_exported() -> None:
    mentioned = set(re.findall(r"\bvigil_[a-z_]+", DOC))
    assert mentioned, "the guide names no metric"
    assert mentioned <= exported_names(), mentioned - exported_names()


def test_the_guide_covers_the_metrics_the_issue_asks_for() -> None:
    for metric in (
        "vigil_queue_lag_seconds",
        "vigil_queue_depth",
        "vigil_event_to_alert_seconds",
        "vigil_http_requests_total",
        "vigil_notification_dead_letters",
        "vigil_rate_limited_total",
        "vigil_auth_failures_total",
    ):
        assert metric in DOC


@pytest.mark.parametrize(
    "command",
    [
        ("db", "upgrade"),
        ("audit", "init-key"),
        ("audit", "rotate-key"),
        ("audit", "export"),
        ("audit", "verify"),
        ("audit", "public-key"),
        ("audit", "archive"),
        ("serve",),
        ("worker",),
        ("admin", "init"),
    ],
)
def test_cli_commands_the_guide_uses_exist(command: tuple[str, ...]) -> None:
    assert f"vigil {' '.join(command)}" in DOC
    if not cli_main.app.registered_groups:  # registering twice would add every command twice
        cli_main._register()
    group = typer.main.get_command(cli_main.app)
    for name in command:
        group = group.commands[name]  # type: ignore[attr-defined]


def test_manifest_names_in_the_guide_exist() -> None:
    objects = cluster_view("production")
    names = {obj["metadata"]["name"] for obj in objects}
    for name in ("vigil-api", "vigil-worker", "vigil-worker-metrics", "vigil-db-upgrade",
                 "vigil-secrets", "vigil-default-deny", "vigil-config"):  # fmt: skip
        assert name in names
        assert name in DOC
