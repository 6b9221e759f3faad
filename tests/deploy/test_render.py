"""The Python kustomize renderer: what it produces for deploy/, and that it refuses what it
does not implement (so a future kustomization never renders silently wrong)."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, KUSTOMIZATIONS, find, rendered
from tests.deploy.kustomize import KustomizeError, identity, render


def kinds(name: str) -> Counter[str]:
    return Counter(obj["kind"] for obj in rendered(name))


def test_base_holds_the_core_objects_and_no_secret_or_crd() -> None:
    assert kinds("base") == Counter(
        {
            "Namespace": 1,
            "ServiceAccount": 2,
            "ConfigMap": 1,
            "Deployment": 2,
            "Service": 2,
            "PodDisruptionBudget": 2,
            "NetworkPolicy": 6,
        }
    )


def test_production_adds_autoscaling_and_nothing_else() -> None:
    production = {identity(o) for o in rendered("overlays/production")}
    parts = {identity(o) for o in [*rendered("base"), *rendered("autoscaling")]}
    assert production == parts
    assert kinds("autoscaling") == Counter(
        {"HorizontalPodAutoscaler": 1, "ScaledObject": 1, "TriggerAuthentication": 1}
    )
    assert "Secret" not in kinds("overlays/production")


def test_dev_overlay_fixes_replicas_and_marks_its_own_objects_not_for_production() -> None:
    dev = rendered("overlays/dev")
    assert find(dev, "Deployment", "vigil-api")["spec"]["replicas"] == 2
    assert find(dev, "Deployment", "vigil-worker")["spec"]["replicas"] == 2
    shared = {identity(o) for o in [*rendered("base"), *rendered("migrate")]}
    own = [o for o in dev if identity(o) not in shared]
    assert {o["kind"] for o in own} == {"Secret", "Service", "StatefulSet", "NetworkPolicy"}
    for obj in own:
        annotations = obj["metadata"].get("annotations", {})
        assert annotations.get("vigil/not-for-production") == "true", identity(obj)
    # The base itself carries no replica count (the autoscalers own it in production).
    for deployment in rendered("base"):
        if deployment["kind"] == "Deployment":
            assert "replicas" not in deployment["spec"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_same_objects_as_kubectl_kustomize(name: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / name)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    theirs = {identity(o): o for o in yaml.safe_load_all(out) if o}
    ours = {identity(o): o for o in rendered(name)}
    assert ours.keys() == theirs.keys()
    for key, obj in ours.items():
        assert obj == theirs[key], key


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: one, namespace: vigil}
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: vigil}
spec: {template: {spec: {containers: []}}}
"""


@pytest.mark.parametrize(
    "extra", ["namespace: other", "commonLabels: {a: b}", "patches: []", "images: []"]
)
def test_refuses_fields_it_does_not_implement(tmp_path: Path, extra: str) -> None:
    write(tmp_path / "cm.yaml", CONFIGMAP)
    write(tmp_path / "kustomization.yaml", f"resources: [cm.yaml]\n{extra}\n")
    with pytest.raises(KustomizeError, match="unsupported kustomization fields"):
        render(tmp_path)


def test_refuses_the_same_object_twice(tmp_path: Path) -> None:
    write(tmp_path / "base/cm.yaml", CONFIGMAP)
    write(tmp_path / "base/kustomization.yaml", "resources: [cm.yaml]\n")
    write(tmp_path / "top/cm.yaml", CONFIGMAP)
    write(tmp_path / "top/kustomization.yaml", "resources: [../base, cm.yaml]\n")
    with pytest.raises(KustomizeError, match="defined twice"):
        render(tmp_path / "top")


def test_refuses_a_file_outside_its_directory(tmp_path: Path) -> None:
    write(tmp_path / "cm.yaml", CONFIGMAP)
    write(tmp_path / "top/kustomization.yaml", "resources: [../cm.yaml]\n")
    with pytest.raises(KustomizeError, match="outside"):
        render(tmp_path / "top")


def test_refuses_missing_resources_and_unknown_replica_targets(tmp_path: Path) -> None:
    write(tmp_path / "a/kustomization.yaml", "resources: [nope.yaml]\n")
    with pytest.raises(KustomizeError, match="does not exist"):
        render(tmp_path / "a")
    write(tmp_path / "b/web.yaml", DEPLOYMENT)
    write(
        tmp_path / "b/kustomization.yaml",
        "resources: [web.yaml]\nreplicas: [{name: webb, count: 3}]\n",
    )
    with pytest.raises(KustomizeError, match="no workload named 'webb'"):
        render(tmp_path / "b")


def test_replicas_and_nested_bases(tmp_path: Path) -> None:
    write(tmp_path / "base/web.yaml", DEPLOYMENT)
    write(tmp_path / "base/kustomization.yaml", "resources: [web.yaml]\n")
    write(
        tmp_path / "top/kustomization.yaml",
        "resources: [../base]\nreplicas: [{name: web, count: 3}]\n",
    )
    (obj,) = render(tmp_path / "top")
    assert obj["spec"]["replicas"] == 3
    # The base on its own is untouched (no shared state between renders).
    (base,) = render(tmp_path / "base")
    assert "replicas" not in base["spec"]


def test_refuses_non_objects(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "- just\n- a list\n")
    write(tmp_path / "kustomization.yaml", "resources: [bad.yaml]\n")
    with pytest.raises(KustomizeError, match="not a Kubernetes object"):
        render(tmp_path)
