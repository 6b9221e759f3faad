"""Deployment policy: resource tiers, probes, autoscaling, disruption budgets, selectors,
network policy, pod security, images and references. Each check runs on both ways of deploying
(production and dev) and on a deliberately broken copy, which it must catch."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.deploy import policy
from tests.deploy.conftest import find
from tests.deploy.kustomize import Manifest

PROBE_PORTS = {"vigil-api": 8900, "vigil-worker": 8901}
Check = Callable[[list[Manifest]], list[str]]


def container(objects: list[Manifest], kind: str, name: str, index: int = 0) -> dict[str, Any]:
    containers: list[dict[str, Any]] = find(objects, kind, name)["spec"]["template"]["spec"][
        "containers"
    ]
    return containers[index]


def assert_catches(
    check: Check, objects: list[Manifest], mutate: Callable[[list[Manifest]], Any], expected: str
) -> None:
    """``check`` passes on ``objects`` and reports ``expected`` once ``mutate`` broke a copy."""
    assert check(objects) == []
    broken = copy.deepcopy(objects)
    mutate(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), problems


# --- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", Decimal("0.5")), ("2", Decimal(2)), ("2000m", Decimal(2)),
     ("1Gi", Decimal(2**30)), ("512Mi", Decimal(2**29)), ("1k", Decimal(1000))],
)  # fmt: skip
def test_quantity(text: str, value: Decimal) -> None:
    assert policy.quantity(text) == value


@pytest.mark.parametrize("text", ["", "1GB", "lots", "1.5Xi"])
def test_quantity_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        policy.quantity(text)


def test_selector_semantics() -> None:
    labels = {"app": "vigil", "component": "api"}
    assert policy.selector_matches({}, labels)
    assert policy.selector_matches({"matchLabels": {"app": "vigil"}}, labels)
    assert not policy.selector_matches({"matchLabels": {"app": "vigil", "x": "y"}}, labels)
    expr = {"key": "component", "operator": "In", "values": ["api", "worker"]}
    assert policy.selector_matches({"matchExpressions": [expr]}, labels)
    expr = {"key": "component", "operator": "NotIn", "values": ["api"]}
    assert not policy.selector_matches({"matchExpressions": [expr]}, labels)
    assert policy.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels
    )
    assert not policy.selector_matches(None, labels)


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("reg.example:5000/vigil/vigil:0.1.0", ("reg.example:5000/vigil/vigil", "0.1.0", "")),
        ("postgres", ("postgres", "", "")),
        ("redis@sha256:abc", ("redis", "", "sha256:abc")),
    ],
)  # fmt: skip
def test_split_image(image: str, parts: tuple[str, str, str]) -> None:
    assert policy.split_image(image) == parts


# --- every check passes on what we ship --------------------------------------------------------


def test_shipped_manifests_pass_every_check(view: list[Manifest], vigil_version: str) -> None:
    assert policy.check_namespaces(view) == []
    assert policy.check_tier_resources(view) == []
    assert policy.check_probes(view, PROBE_PORTS) == []
    assert policy.check_disruption_budgets(view, set(PROBE_PORTS)) == []
    assert policy.check_selectors(view) == []
    assert policy.check_service_ports(view) == []
    assert policy.check_default_deny(view) == []
    assert policy.check_pod_security(view) == []
    assert policy.check_images(view, vigil_version) == []
    assert policy.check_references(view) == []


def test_production_autoscaling(production: list[Manifest]) -> None:
    assert policy.check_autoscaling(production) == []


# --- and catches broken copies -----------------------------------------------------------------


def test_tier_resources_catch_a_wrong_limit_and_a_wrong_tier(production: list[Manifest]) -> None:
    def smaller_limit(objs: list[Manifest]) -> None:
        container(objs, "Deployment", "vigil-worker")["resources"]["limits"]["memory"] = "2Gi"

    assert_catches(
        policy.check_tier_resources,
        production,
        smaller_limit,
        "limits.memory is '2Gi', critical tier wants 4Gi",
    )

    def demote_worker(objs: list[Manifest]) -> None:
        labels = find(objs, "Deployment", "vigil-worker")["spec"]["template"]["metadata"]
        labels["labels"][policy.TIER_LABEL] = "standard"

    assert_catches(
        policy.check_tier_resources,
        production,
        demote_worker,
        "component worker belongs to critical",
    )

    def init_container_without_resources(objs: list[Manifest]) -> None:
        job = find(objs, "Job", "vigil-db-upgrade")["spec"]["template"]["spec"]
        del job["initContainers"][0]["resources"]

    assert_catches(
        policy.check_tier_resources,
        production,
        init_container_without_resources,
        "db-upgrade: requests.cpu is None",
    )


def test_tier_quantities_compare_by_value(production: list[Manifest]) -> None:
    objs = copy.deepcopy(production)
    container(objs, "Deployment", "vigil-worker")["resources"]["limits"]["cpu"] = "2000m"
    assert policy.check_tier_resources(objs) == []


def test_probes_catch_wrong_path_port_and_missing_probe(production: list[Manifest]) -> None:
    check: Check = lambda objs: policy.check_probes(objs, PROBE_PORTS)  # noqa: E731

    def ready_on_live(objs: list[Manifest]) -> None:
        container(objs, "Deployment", "vigil-api")["readinessProbe"]["httpGet"]["path"] = "/live"

    assert_catches(check, production, ready_on_live, "path '/live', expected /health/ready")

    def worker_probe_on_api_port(objs: list[Manifest]) -> None:
        container(objs, "Deployment", "vigil-worker")["livenessProbe"]["httpGet"]["port"] = 8900

    assert_catches(check, production, worker_probe_on_api_port, "port 8900 is None, not 8901")

    def no_startup(objs: list[Manifest]) -> None:
        del container(objs, "Deployment", "vigil-worker")["startupProbe"]

    assert_catches(check, production, no_startup, "startupProbe: no HTTP probe")


def test_autoscaling_catches_drift(production: list[Manifest]) -> None:
    def cpu_80(objs: list[Manifest]) -> None:
        hpa = find(objs, "HorizontalPodAutoscaler", "vigil-api")
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = 80

    assert_catches(policy.check_autoscaling, production, cpu_80, "vigil-api HPA targets")

    def second_autoscaler_on_workers(objs: list[Manifest]) -> None:
        hpa = copy.deepcopy(find(objs, "HorizontalPodAutoscaler", "vigil-api"))
        hpa["metadata"]["name"] = "vigil-worker"
        hpa["spec"]["scaleTargetRef"]["name"] = "vigil-worker"
        objs.append(hpa)

    assert_catches(
        policy.check_autoscaling,
        production,
        second_autoscaler_on_workers,
        "has an HPA and a KEDA ScaledObject",
    )

    def fixed_replicas(objs: list[Manifest]) -> None:
        find(objs, "Deployment", "vigil-api")["spec"]["replicas"] = 2

    assert_catches(
        policy.check_autoscaling, production, fixed_replicas, "spec.replicas fights its autoscaler"
    )

    def wrong_stream(objs: list[Manifest]) -> None:
        find(objs, "ScaledObject", "vigil-worker")["spec"]["triggers"][0]["metadata"]["stream"] = (
            "vigil-events"
        )

    assert_catches(policy.check_autoscaling, production, wrong_stream, "not vigil:events")

    def target_typo(objs: list[Manifest]) -> None:
        find(objs, "ScaledObject", "vigil-worker")["spec"]["scaleTargetRef"]["name"] = "worker"

    assert_catches(
        policy.check_autoscaling, production, target_typo, "target Deployment/worker does not exist"
    )


def test_disruption_budgets_catch_a_typo_and_a_single_replica(dev: list[Manifest]) -> None:
    check: Check = lambda objs: policy.check_disruption_budgets(objs, set(PROBE_PORTS))  # noqa: E731

    def typo(objs: list[Manifest]) -> None:
        pdb = find(objs, "PodDisruptionBudget", "vigil-worker")
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "workers"

    assert_catches(check, dev, typo, "Deployment/vigil-worker: 0 PDBs select its pods")

    def one_replica(objs: list[Manifest]) -> None:
        find(objs, "Deployment", "vigil-api")["spec"]["replicas"] = 1

    assert_catches(check, dev, one_replica, "1 replica minimum with minAvailable 1")


@pytest.mark.parametrize(
    ("kind", "name", "path", "message"),
    [
        ("Service", "vigil-api", ("spec", "selector"), "Service/vigil-api: spec.selector"),
        ("PodDisruptionBudget", "vigil-api", ("spec", "selector", "matchLabels"),
         "PodDisruptionBudget/vigil-api: spec.selector"),
        ("NetworkPolicy", "vigil-api-ingress", ("spec", "podSelector", "matchLabels"),
         "NetworkPolicy/vigil-api-ingress: spec.podSelector"),
    ],
)  # fmt: skip
def test_selectors_catch_a_label_typo(
    production: list[Manifest], kind: str, name: str, path: tuple[str, ...], message: str
) -> None:
    def typo(objs: list[Manifest]) -> None:
        target = find(objs, kind, name)
        for key in path:
            target = target[key]
        target["app.kubernetes.io/component"] = "apl"

    assert_catches(policy.check_selectors, production, typo, message)


def test_selectors_catch_a_typo_in_match_expressions(production: list[Manifest]) -> None:
    def typo(objs: list[Manifest]) -> None:
        selector = find(objs, "NetworkPolicy", "vigil-allow-notifications")["spec"]["podSelector"]
        selector["matchExpressions"][0]["values"] = ["apl", "wroker"]

    assert_catches(
        policy.check_selectors, production, typo, "vigil-allow-notifications: spec.podSelector"
    )


def test_selectors_catch_a_peer_typo_and_a_workload_selector_mismatch(dev: list[Manifest]) -> None:
    def peer_typo(objs: list[Manifest]) -> None:
        policy_obj = find(objs, "NetworkPolicy", "vigil-dev-postgresql-ingress")
        policy_obj["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] = {
            "app.kubernetes.io/name": "vigill"
        }

    assert_catches(policy.check_selectors, dev, peer_typo, "ingress[0].from[0].podSelector")

    def template_mismatch(objs: list[Manifest]) -> None:
        sts = find(objs, "StatefulSet", "vigil-redis")
        sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "valkey"

    assert_catches(
        policy.check_selectors,
        dev,
        template_mismatch,
        "StatefulSet/vigil-redis: spec.selector does not match",
    )


def test_service_ports_catch_a_missing_target_port(production: list[Manifest]) -> None:
    def rename(objs: list[Manifest]) -> None:
        find(objs, "Service", "vigil-worker-metrics")["spec"]["ports"][0]["targetPort"] = "http"

    assert_catches(policy.check_service_ports, production, rename, "targetPort 'http'")


def test_default_deny_must_cover_all_pods_both_ways(production: list[Manifest]) -> None:
    def remove(objs: list[Manifest]) -> None:
        objs.remove(find(objs, "NetworkPolicy", "vigil-default-deny"))

    assert_catches(policy.check_default_deny, production, remove, "no NetworkPolicy denies")

    def ingress_only(objs: list[Manifest]) -> None:
        find(objs, "NetworkPolicy", "vigil-default-deny")["spec"]["policyTypes"] = ["Ingress"]

    assert_catches(policy.check_default_deny, production, ingress_only, "no NetworkPolicy")

    def api_only(objs: list[Manifest]) -> None:
        find(objs, "NetworkPolicy", "vigil-default-deny")["spec"]["podSelector"] = {
            "matchLabels": {"app.kubernetes.io/component": "api"}
        }

    assert_catches(policy.check_default_deny, production, api_only, "no NetworkPolicy")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("runAsUser", 0, "no non-zero runAsUser"),
        ("runAsNonRoot", False, "runAsNonRoot is not true"),
        ("privileged", True, "privileged"),
        ("allowPrivilegeEscalation", True, "allowPrivilegeEscalation is not false"),
        ("readOnlyRootFilesystem", False, "root filesystem is writable"),
        ("capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}, "capabilities"),
    ],
)
def test_pod_security_catches(dev: list[Manifest], field: str, value: object, message: str) -> None:
    def weaken(objs: list[Manifest]) -> None:
        container(objs, "StatefulSet", "vigil-postgresql")["securityContext"][field] = value

    assert_catches(policy.check_pod_security, dev, weaken, message)


def test_pod_security_catches_pod_level_weakening(production: list[Manifest]) -> None:
    def host_network(objs: list[Manifest]) -> None:
        find(objs, "Deployment", "vigil-api")["spec"]["template"]["spec"]["hostNetwork"] = True

    assert_catches(policy.check_pod_security, production, host_network, "hostNetwork")

    def unconfined(objs: list[Manifest]) -> None:
        spec = find(objs, "Job", "vigil-db-upgrade")["spec"]["template"]["spec"]
        spec["securityContext"]["seccompProfile"]["type"] = "Unconfined"

    assert_catches(policy.check_pod_security, production, unconfined, "seccompProfile")

    def host_path(objs: list[Manifest]) -> None:
        spec = find(objs, "Deployment", "vigil-worker")["spec"]["template"]["spec"]
        spec["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}})

    assert_catches(policy.check_pod_security, production, host_path, "is ['hostPath']")

    def no_tmp(objs: list[Manifest]) -> None:
        mounts = container(objs, "Deployment", "vigil-worker")["volumeMounts"]
        mounts[:] = [m for m in mounts if m["mountPath"] != "/tmp"]

    assert_catches(policy.check_pod_security, production, no_tmp, "no emptyDir at /tmp")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("registry.example.com/vigil/vigil:latest", "is not pinned"),
        ("registry.example.com/vigil/vigil", "is not pinned"),
        ("registry.example.com/vigil/vigil:0.0.9", "is not the release"),
    ],
)
def test_images_must_be_pinned_to_the_release(
    production: list[Manifest], vigil_version: str, image: str, message: str
) -> None:
    def repin(objs: list[Manifest]) -> None:
        container(objs, "Deployment", "vigil-worker")["image"] = image

    assert_catches(
        lambda objs: policy.check_images(objs, vigil_version), production, repin, message
    )


def test_version_label_follows_the_release(production: list[Manifest], vigil_version: str) -> None:
    def stale(objs: list[Manifest]) -> None:
        labels = find(objs, "Job", "vigil-db-upgrade")["spec"]["template"]["metadata"]["labels"]
        labels["app.kubernetes.io/version"] = "0.0.9"

    assert_catches(
        lambda objs: policy.check_images(objs, vigil_version), production, stale, "version label"
    )


def test_images_pinned_by_digest_pass(production: list[Manifest], vigil_version: str) -> None:
    objs = copy.deepcopy(production)
    container(objs, "Deployment", "vigil-worker")["image"] = (
        "registry.example.com/vigil/vigil@sha256:" + "0" * 64
    )
    assert policy.check_images(objs, vigil_version) == []


def test_references_catch_a_secret_key_typo(production: list[Manifest]) -> None:
    def typo(objs: list[Manifest]) -> None:
        env = container(objs, "Deployment", "vigil-api")["env"]
        env[0]["valueFrom"]["secretKeyRef"]["key"] = "database_url"

    assert_catches(policy.check_references, production, typo, "has no key database_url")

    def keda_typo(objs: list[Manifest]) -> None:
        auth = find(objs, "TriggerAuthentication", "vigil-redis")
        auth["spec"]["secretTargetRef"][1]["key"] = "redis-pass"

    assert_catches(policy.check_references, production, keda_typo, "has no key redis-pass")

    def config_typo(objs: list[Manifest]) -> None:
        container(objs, "Deployment", "vigil-worker")["envFrom"][0]["configMapRef"]["name"] = "x"

    assert_catches(policy.check_references, production, config_typo, "ConfigMap x does not")


def test_namespaces_catch_a_stray_object(production: list[Manifest]) -> None:
    def stray(objs: list[Manifest]) -> None:
        del find(objs, "Service", "vigil-api")["metadata"]["namespace"]

    assert_catches(policy.check_namespaces, production, stray, "Service/vigil-api: namespace")
