"""Render the kustomizations under ``deploy/`` in Python, without kubectl or kustomize.

Only the kustomize features the manifests use are implemented, exactly as kustomize applies
them; a kustomization that uses anything else is refused (:class:`KustomizeError`) instead of
being rendered wrongly:

- ``resources``: YAML files (multi-document) inside the kustomization's directory, and other
  directories holding a kustomization (bases), rendered recursively;
- ``replicas``: set ``spec.replicas`` of the named Deployment/StatefulSet/ReplicaSet.

Like kustomize, two resources with the same identity (group, kind, namespace, name) are an
error, and a file outside the kustomization's directory is refused (the default load
restriction). ``test_render.py`` compares the output with ``kubectl kustomize`` when kubectl
is installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "resources", "replicas"})
SCALABLE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"})


class KustomizeError(Exception):
    """The kustomization cannot be rendered (or uses a feature this renderer refuses)."""


def load_documents(path: Path) -> list[Manifest]:
    """Every non-empty YAML document of ``path``, each checked to be a Kubernetes object."""
    with path.open(encoding="utf-8") as fh:
        documents = [doc for doc in yaml.safe_load_all(fh) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
            raise KustomizeError(f"{path}: a document is not a Kubernetes object")
    return documents


def identity(obj: Manifest) -> tuple[str, str, str, str]:
    """Kustomize's resource id: API group, kind, namespace, name."""
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj["metadata"]
    return (group, obj["kind"], meta.get("namespace", ""), meta["name"])


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    raise KustomizeError(f"{directory}: no kustomization file")


def render(directory: Path) -> list[Manifest]:
    """The objects ``kubectl kustomize directory`` would print (in resource order)."""
    return _render(directory.resolve(), ())


def _render(directory: Path, stack: tuple[Path, ...]) -> list[Manifest]:
    if directory in stack:
        raise KustomizeError(f"{directory}: kustomization cycle through {list(stack)}")
    path = _kustomization_file(directory)
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unsupported = sorted(set(spec) - SUPPORTED_FIELDS)
    if unsupported:
        raise KustomizeError(f"{path}: unsupported kustomization fields {unsupported}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{path}: kind {spec.get('kind')!r} is not Kustomization")
    objects: list[Manifest] = []
    for entry in spec.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(_render(target, (*stack, directory)))
        elif target.is_file():
            if not target.is_relative_to(directory):
                raise KustomizeError(
                    f"{path}: {entry} is outside the kustomization's directory (kustomize "
                    "refuses to load it)"
                )
            objects.extend(load_documents(target))
        else:
            raise KustomizeError(f"{path}: resource {entry} does not exist")
    _check_unique(objects, path)
    _apply_replicas(objects, spec.get("replicas") or [], path)
    return objects


def _check_unique(objects: Iterable[Manifest], path: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        key = identity(obj)
        if key in seen:
            raise KustomizeError(f"{path}: resource {key} is defined twice")
        seen.add(key)


def _apply_replicas(objects: list[Manifest], replicas: list[dict[str, Any]], path: Path) -> None:
    for entry in replicas:
        if set(entry) != {"name", "count"} or not isinstance(entry["count"], int):
            raise KustomizeError(f"{path}: replicas entry {entry} needs exactly name and count")
        targets = [
            obj
            for obj in objects
            if obj["kind"] in SCALABLE_KINDS and obj["metadata"]["name"] == entry["name"]
        ]
        if not targets:
            raise KustomizeError(f"{path}: replicas: no workload named {entry['name']!r}")
        for obj in targets:
            obj.setdefault("spec", {})["replicas"] = entry["count"]
