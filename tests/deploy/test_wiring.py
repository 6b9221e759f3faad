"""What the manifests wire together: which ports the network policy opens for each component,
that the command lines listen where the probes and Services look, and that the environment
they set is what Vigil's Settings read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel

from tests.deploy import policy
from tests.deploy.conftest import DEPLOY, find
from tests.deploy.kustomize import Manifest
from vigil.config import Settings

Port = tuple[str, int]
DNS = {("UDP", 53), ("TCP", 53)}
DATABASE_AND_QUEUE = {("TCP", 5432), ("TCP", 6379)}
NOTIFICATIONS = {("TCP", p) for p in (443, 80, 587, 465, 25)}


def pod_labels(objects: list[Manifest], kind: str, name: str) -> dict[str, str]:
    labels: dict[str, str] = find(objects, kind, name)["spec"]["template"]["metadata"]["labels"]
    return labels


def allowed_ports(objects: list[Manifest], labels: dict[str, str], direction: str) -> set[Port]:
    """Ports the NetworkPolicies selecting a pod open in one direction (union of rules)."""
    rule_key = direction.lower()
    opened: set[Port] = set()
    for netpol in policy.of_kind(objects, "NetworkPolicy"):
        spec = netpol["spec"]
        if direction not in spec.get("policyTypes", []):
            continue
        if not policy.selector_matches(spec["podSelector"], labels):
            continue
        for rule in spec.get(rule_key) or []:
            for port in rule.get("ports") or []:
                opened.add((port.get("protocol", "TCP"), int(port["port"])))
    return opened


def container_ports(objects: list[Manifest], kind: str, name: str) -> set[Port]:
    spec = find(objects, kind, name)["spec"]["template"]["spec"]
    return {
        (p.get("protocol", "TCP"), p["containerPort"])
        for c in spec["containers"]
        for p in c.get("ports") or []
    }


@pytest.mark.parametrize(
    ("kind", "name", "egress"),
    [
        ("Deployment", "vigil-api", DNS | DATABASE_AND_QUEUE | NOTIFICATIONS),
        ("Deployment", "vigil-worker", DNS | DATABASE_AND_QUEUE | NOTIFICATIONS),
        ("Job", "vigil-db-upgrade", DNS | {("TCP", 5432)}),
    ],
)
def test_egress_is_exactly_what_each_component_needs(
    view: list[Manifest], kind: str, name: str, egress: set[Port]
) -> None:
    assert allowed_ports(view, pod_labels(view, kind, name), "Egress") == egress


@pytest.mark.parametrize(
    ("kind", "name", "ingress"),
    [
        ("Deployment", "vigil-api", {("TCP", 8900)}),
        ("Deployment", "vigil-worker", {("TCP", 8901)}),
        ("Job", "vigil-db-upgrade", set()),
    ],
)
def test_ingress_reaches_only_the_listening_port(
    view: list[Manifest], kind: str, name: str, ingress: set[Port]
) -> None:
    labels = pod_labels(view, kind, name)
    assert allowed_ports(view, labels, "Ingress") & container_ports(view, kind, name) == ingress


def test_api_clients_are_the_ingress_controller_and_opted_in_namespaces(
    production: list[Manifest],
) -> None:
    rule = find(production, "NetworkPolicy", "vigil-api-ingress")["spec"]["ingress"][0]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {"vigil/api-client": "true"}}},
    ]


def test_webhook_egress_excludes_instance_metadata(production: list[Manifest]) -> None:
    rules = find(production, "NetworkPolicy", "vigil-allow-notifications")["spec"]["egress"]
    blocks = [peer["ipBlock"] for rule in rules for peer in rule.get("to") or []]
    assert {b["cidr"] for b in blocks} == {"0.0.0.0/0", "::/0"}
    excluded = {cidr for b in blocks for cidr in b.get("except", [])}
    assert {"169.254.169.254/32", "fd00:ec2::254/128"} <= excluded


def arg_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_commands_listen_where_probes_and_services_look(production: list[Manifest]) -> None:
    api = find(production, "Deployment", "vigil-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["command"] == ["vigil"]
    assert api["args"][:3] == ["serve", "--role", "api"]
    assert int(arg_after(api["args"], "--port")) == api["ports"][0]["containerPort"] == 8900
    worker = find(production, "Deployment", "vigil-worker")["spec"]["template"]["spec"]
    worker_container = worker["containers"][0]
    assert worker_container["args"][0] == "worker"
    assert int(arg_after(worker_container["args"], "--port")) == 8901
    assert worker_container["ports"][0]["containerPort"] == 8901
    # Kubelet probes and Services reach the pod IP, not loopback.
    assert arg_after(api["args"], "--host") == arg_after(worker_container["args"], "--host")
    assert arg_after(api["args"], "--host") == "0.0.0.0"
    job = find(production, "Job", "vigil-db-upgrade")["spec"]["template"]["spec"]
    assert job["initContainers"][0]["args"] == ["db", "upgrade"]
    assert job["containers"][0]["args"] == ["audit", "init-key"]


def vigil_containers(objects: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{pod.name}/{c['name']}", c)
        for pod in policy.pod_templates(objects)
        if pod.labels.get("app.kubernetes.io/name") == "vigil"
        for c in pod.containers()
    ]


def environment(objects: list[Manifest], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, with Secret references resolved from the view's Secret."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env") or []:
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = find(objects, "Secret", ref["name"])["stringData"][ref["key"]]
    return env


def test_every_vigil_variable_is_a_setting(view: list[Manifest]) -> None:
    """Settings ignore unknown VIGIL_* variables, so a misspelt one would silently do nothing."""
    for where, container in vigil_containers(view):
        for name in environment(view, container):
            if not name.startswith("VIGIL_"):
                continue
            field, _, nested = name.removeprefix("VIGIL_").lower().partition("__")
            assert field in Settings.model_fields, f"{where}: {name} is not a Vigil setting"
            if nested:
                model = Settings.model_fields[field].annotation
                assert isinstance(model, type) and issubclass(model, BaseModel), name
                assert nested in model.model_fields, f"{where}: {name} is not a Vigil setting"


def test_settings_load_from_the_manifest_environment(
    view: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    for where, container in vigil_containers(view):
        env = environment(view, container)
        for name in list(Settings.model_fields):
            monkeypatch.delenv(f"VIGIL_{name.upper()}", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings()
        assert settings.home == Path("/var/lib/vigil"), where
        assert settings.database_url and settings.database_url.startswith("postgresql+psycopg://")
        mounts = {m["mountPath"] for m in container.get("volumeMounts") or []}
        assert str(settings.home) in mounts, f"{where}: VIGIL_HOME is not a writable volume"
        role = container["args"][0]
        if role in ("serve", "worker"):
            assert settings.queue_url and settings.queue_url.startswith("redis")
            assert settings.audit_signing_key
            assert settings.rules_dirs == [Path("/etc/vigil/rules")]
            assert "/etc/vigil/rules" in mounts, where
            # Secrets every replica must share instead of inventing one in its own VIGIL_HOME.
            assert len(settings.notify.secret_keys) == 1, where
        if role == "serve":
            assert settings.identity.jwt_secret and settings.identity.secret, where


def test_rules_dirs_is_a_json_list(production: list[Manifest]) -> None:
    data = find(production, "ConfigMap", "vigil-config")["data"]
    assert json.loads(data["VIGIL_RULES_DIRS"]) == ["/etc/vigil/rules"]


def test_dev_signing_key_parses_and_is_marked_public(dev: list[Manifest]) -> None:
    from vigil.ledger.keys import parse_configured_key

    secret = find(dev, "Secret", "vigil-secrets")
    key = parse_configured_key(secret["stringData"]["audit-signing-key"])
    assert key.name == "dev.vigil.local/audit"
    Fernet(json.loads(secret["stringData"]["notify-secret-keys"])[0])
    assert secret["metadata"]["annotations"]["vigil/not-for-production"] == "true"


def dockerfile_instructions() -> dict[str, list[str]]:
    """Last-stage instructions of deploy/docker/Dockerfile, by keyword (continuations joined)."""
    text = (DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8")
    text = text.replace("\\\n", " ")
    stages = re.split(r"(?m)^FROM ", text)
    found: dict[str, list[str]] = {}
    for line in stages[-1].splitlines()[1:]:
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.setdefault(keyword.upper(), []).append(rest.strip())
    return found


def test_image_matches_what_the_manifests_expect(view: list[Manifest]) -> None:
    docker = dockerfile_instructions()
    assert json.loads(docker["ENTRYPOINT"][-1]) == ["vigil"]
    user, _, group = docker["USER"][-1].partition(":")
    exposed = {int(p) for line in docker["EXPOSE"] for p in line.split()}
    for pod in policy.pod_templates(view):
        if pod.labels.get("app.kubernetes.io/name") != "vigil":
            continue
        context = pod.spec["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (int(user), int(group))
        for container in pod.containers():
            assert container["command"] == ["vigil"]
            assert {p["containerPort"] for p in container.get("ports") or []} <= exposed
    assert "VIGIL_HOME=/var/lib/vigil" in " ".join(docker["ENV"])
