"""Every manifest validates against the Kubernetes JSON schemas (strict: unknown fields fail)
and the KEDA objects against the CRD schema in keda_v1alpha1.schema.json; broken copies fail."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.conftest import KUSTOMIZATIONS, SECRET_TEMPLATE, find, rendered
from tests.deploy.kustomize import Manifest, identity, load_documents

# The oldest Kubernetes the manifests support (PDB unhealthyPodEvictionPolicy is GA in 1.31;
# the preStop `sleep` action is on by default since 1.30) and the newest bundled schema.
OLDEST = "1.31"
VERSIONS = (OLDEST, kubernetes_validate.latest_version())
KEDA_KINDS = frozenset({"ScaledObject", "TriggerAuthentication"})
KEDA_SCHEMA = Path(__file__).with_name("keda_v1alpha1.schema.json")


@cache
def keda_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(KEDA_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def validate_keda(obj: Manifest) -> None:
    """Validate against the definition for the object's kind (precise error messages)."""
    schema = keda_schema()
    if obj.get("apiVersion") != "keda.sh/v1alpha1" or obj.get("kind") not in KEDA_KINDS:
        raise jsonschema.ValidationError(f"not a KEDA v1alpha1 object: {obj.get('kind')}")
    by_kind = {"$ref": f"#/$defs/{obj['kind']}", "$defs": schema["$defs"]}
    jsonschema.Draft202012Validator(by_kind).validate(obj)


def all_objects() -> list[tuple[str, Manifest]]:
    found: dict[tuple[str, str, str, str], tuple[str, Manifest]] = {}
    for name in KUSTOMIZATIONS:
        for obj in rendered(name):
            found.setdefault(identity(obj), (name, obj))
    # The dev Secret and the template share an identity; validate both.
    objects = list(found.values())
    objects += [("secret.example.yaml", obj) for obj in load_documents(SECRET_TEMPLATE)]
    return objects


OBJECTS = all_objects()


@pytest.mark.parametrize(
    ("source", "obj"),
    OBJECTS,
    ids=[f"{src}:{o['kind']}/{o['metadata']['name']}" for src, o in OBJECTS],
)
def test_manifest_is_valid(source: str, obj: Manifest) -> None:
    if obj["kind"] in KEDA_KINDS:
        validate_keda(obj)
        return
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


# --- the validators catch broken manifests -----------------------------------------------------


def broken(kind: str, name: str, source: str = "overlays/production") -> Manifest:
    return copy.deepcopy(find(rendered(source), kind, name))


def test_strict_schema_rejects_an_unknown_container_field() -> None:
    deployment = broken("Deployment", "vigil-api")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    # The lenient schema lets the typo through; the strict one, which these tests use, does not.
    kubernetes_validate.validate(deployment, OLDEST, strict=False)
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(deployment, OLDEST, strict=True)


@pytest.mark.parametrize(
    ("kind", "name", "path", "value"),
    [
        ("Deployment", "vigil-worker", ("spec", "minReadySeconds"), "ten"),
        ("Deployment", "vigil-worker", ("spec", "selector", "matchLabel"), {"a": "b"}),
        ("HorizontalPodAutoscaler", "vigil-api", ("spec", "minReplica"), 2),
        ("PodDisruptionBudget", "vigil-api", ("spec", "unhealthyPodEvictionPolicy"), 3),
        ("NetworkPolicy", "vigil-default-deny", ("spec", "podSelectors"), {}),
        ("Service", "vigil-api", ("spec", "ports"), "8900"),
    ],
)
def test_kubernetes_schema_rejects(
    kind: str, name: str, path: tuple[str, ...], value: object
) -> None:
    obj = broken(kind, name)
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, OLDEST, strict=True)


def test_kubernetes_schema_rejects_a_missing_required_field() -> None:
    job = broken("Job", "vigil-db-upgrade", "migrate")
    del job["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(kubernetes_validate.ValidationError, match="'name' is a required"):
        kubernetes_validate.validate(job, OLDEST, strict=True)


def scaled_object() -> Manifest:
    return broken("ScaledObject", "vigil-worker")


def trigger_metadata(obj: Manifest) -> dict[str, Any]:
    metadata: dict[str, Any] = obj["spec"]["triggers"][0]["metadata"]
    return metadata


def test_keda_schema_rejects_an_hpa_field_name_in_a_scaled_object() -> None:
    obj = scaled_object()
    obj["spec"]["minReplicas"] = 2
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        validate_keda(obj)


def test_keda_schema_rejects_a_misspelt_redis_streams_parameter() -> None:
    obj = scaled_object()
    trigger_metadata(obj)["lagcount"] = trigger_metadata(obj).pop("lagCount")
    with pytest.raises(jsonschema.ValidationError, match="lagcount"):
        validate_keda(obj)


def test_keda_schema_rejects_unquoted_numbers_in_trigger_metadata() -> None:
    obj = scaled_object()
    trigger_metadata(obj)["lagCount"] = 10000
    with pytest.raises(jsonschema.ValidationError, match="10000"):
        validate_keda(obj)


def test_keda_schema_needs_the_activation_threshold_and_group_with_lag_count() -> None:
    obj = scaled_object()
    del trigger_metadata(obj)["activationLagCount"]
    with pytest.raises(jsonschema.ValidationError, match="activationLagCount"):
        validate_keda(obj)
    obj = scaled_object()
    del trigger_metadata(obj)["consumerGroup"]
    with pytest.raises(jsonschema.ValidationError, match="consumerGroup"):
        validate_keda(obj)


def test_keda_schema_rejects_a_scaled_object_without_triggers_or_target() -> None:
    obj = scaled_object()
    obj["spec"]["triggers"] = []
    with pytest.raises(jsonschema.ValidationError):
        validate_keda(obj)
    obj = scaled_object()
    del obj["spec"]["scaleTargetRef"]["name"]
    with pytest.raises(jsonschema.ValidationError, match="'name' is a required"):
        validate_keda(obj)


def test_keda_schema_rejects_an_incomplete_secret_reference() -> None:
    auth = broken("TriggerAuthentication", "vigil-redis")
    del auth["spec"]["secretTargetRef"][0]["key"]
    with pytest.raises(jsonschema.ValidationError, match="'key' is a required"):
        validate_keda(auth)


def test_keda_schema_accepts_other_scalers_with_free_metadata() -> None:
    """The closed metadata applies to redis-streams only, as the CRD leaves metadata open."""
    obj = scaled_object()
    obj["spec"]["triggers"] = [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "60"}}
    ]
    validate_keda(obj)
