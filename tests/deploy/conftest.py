"""Rendered manifests of ``deploy/``, shared by the deployment tests."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.deploy.kustomize import Manifest, load_documents, render

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZATIONS = ("base", "autoscaling", "migrate", "overlays/production", "overlays/dev")
SECRET_TEMPLATE = DEPLOY / "secret.example.yaml"


def rendered(name: str) -> list[Manifest]:
    return render(DEPLOY / name)


def cluster_view(name: str) -> list[Manifest]:
    """Everything that ends up in the namespace for one way of deploying."""
    if name == "production":
        # The overlay, the migration Job applied before it, and the Secret made out of band
        # (its template stands in for it: same name and keys).
        return [
            *rendered("overlays/production"),
            *rendered("migrate"),
            *load_documents(SECRET_TEMPLATE),
        ]
    if name == "dev":
        return rendered("overlays/dev")
    raise ValueError(name)


@pytest.fixture(scope="session")
def vigil_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


@pytest.fixture(params=["production", "dev"])
def view(request: pytest.FixtureRequest) -> list[Manifest]:
    return cluster_view(request.param)


@pytest.fixture
def production() -> list[Manifest]:
    return cluster_view("production")


@pytest.fixture
def dev() -> list[Manifest]:
    return cluster_view("dev")


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise LookupError(f"{kind}/{name} not rendered")
