"""Policy checks over rendered manifests. Each check returns a list of problems (empty = pass),
so the tests can show that a deliberately broken copy is caught, not only that ours pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Manifest = dict[str, Any]

NAMESPACE = "vigil"
TIER_LABEL = "vigil/tier"

# The design's resource tiers: (requests, limits).
TIERS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "critical": ({"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "4Gi"}),
    "standard": ({"cpu": "250m", "memory": "512Mi"}, {"cpu": "1", "memory": "2Gi"}),
}
# Which tier each Vigil component belongs to (docs/operations.md, "Resource tiers").
COMPONENT_TIERS = {"worker": "critical", "api": "standard", "migrate": "standard"}

# Volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUME_TYPES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
     "projected", "secret"}
)  # fmt: skip
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"})
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"})

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([a-zA-Z]*)$")


def quantity(value: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("500m", "1Gi", "2") as a number."""
    match = _QUANTITY.match(str(value))
    if match is None or (match.group(2) and match.group(2) not in _SUFFIXES):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = match.groups()
    return Decimal(number) * Decimal(_SUFFIXES.get(suffix, 1))


@dataclass(frozen=True)
class PodTemplate:
    owner: Manifest
    labels: dict[str, str]
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.owner['kind']}/{self.owner['metadata']['name']}"

    @property
    def namespace(self) -> str:
        return str(self.owner["metadata"].get("namespace", ""))

    def containers(self) -> Iterator[dict[str, Any]]:
        yield from self.spec.get("initContainers") or []
        yield from self.spec.get("containers") or []


def pod_templates(objects: list[Manifest]) -> list[PodTemplate]:
    found = []
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            template = obj["spec"]["template"]
            labels = template.get("metadata", {}).get("labels", {})
            found.append(PodTemplate(obj, labels, template["spec"]))
    return found


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _pods_selected(objects: list[Manifest], namespace: str, selector: dict[str, Any]) -> list[str]:
    return [
        pod.name
        for pod in pod_templates(objects)
        if pod.namespace == namespace and selector_matches(selector, pod.labels)
    ]


# --- checks ---------------------------------------------------------------------------------


def check_namespaces(objects: list[Manifest]) -> list[str]:
    """Every namespaced object names the Vigil namespace explicitly (no kustomize namespace
    transformer is used)."""
    return [
        f"{obj['kind']}/{obj['metadata']['name']}: namespace "
        f"{obj['metadata'].get('namespace')!r}, expected {NAMESPACE!r}"
        for obj in objects
        if obj["kind"] not in CLUSTER_SCOPED and obj["metadata"].get("namespace") != NAMESPACE
    ]


def check_tier_resources(objects: list[Manifest]) -> list[str]:
    problems = []
    for pod in pod_templates(objects):
        tier = pod.labels.get(TIER_LABEL)
        if tier not in TIERS:
            problems.append(f"{pod.name}: pod label {TIER_LABEL}={tier!r} is not a known tier")
            continue
        component = pod.labels.get("app.kubernetes.io/component")
        if pod.labels.get("app.kubernetes.io/name") == "vigil":
            expected_tier = COMPONENT_TIERS.get(str(component))
            if expected_tier != tier:
                problems.append(f"{pod.name}: component {component} belongs to {expected_tier}")
        requests, limits = TIERS[tier]
        for container in pod.containers():
            resources = container.get("resources") or {}
            for section, wanted in (("requests", requests), ("limits", limits)):
                have = resources.get(section) or {}
                for resource, amount in wanted.items():
                    if resource not in have or quantity(have[resource]) != quantity(amount):
                        problems.append(
                            f"{pod.name}/{container['name']}: {section}.{resource} is "
                            f"{have.get(resource)!r}, {tier} tier wants {amount}"
                        )
    return problems


def _container_port(pod: PodTemplate, container: dict[str, Any], port: int | str) -> int | None:
    if isinstance(port, int):
        declared = {p["containerPort"] for p in container.get("ports") or []}
        return port if port in declared else None
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    return None


def check_probes(objects: list[Manifest], expected: dict[str, int]) -> list[str]:
    """Each named Deployment's containers have startup, liveness and readiness probes on
    /health/live, /health/live and /health/ready at the expected container port."""
    problems = []
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    for name, port in expected.items():
        if name not in deployments:
            problems.append(f"Deployment/{name}: missing")
            continue
        pod = pod_templates([deployments[name]])[0]
        for container in pod.spec["containers"]:
            for probe_name, path in (
                ("startupProbe", "/health/live"),
                ("livenessProbe", "/health/live"),
                ("readinessProbe", "/health/ready"),
            ):
                http = (container.get(probe_name) or {}).get("httpGet")
                where = f"Deployment/{name}/{container['name']}.{probe_name}"
                if http is None:
                    problems.append(f"{where}: no HTTP probe")
                    continue
                if http.get("path") != path:
                    problems.append(f"{where}: path {http.get('path')!r}, expected {path}")
                resolved = _container_port(pod, container, http["port"])
                if resolved != port:
                    problems.append(f"{where}: port {http['port']!r} is {resolved}, not {port}")
    return problems


def _resource_targets(hpa: Manifest) -> dict[str, tuple[str, int]]:
    targets = {}
    for metric in hpa["spec"].get("metrics") or []:
        if metric.get("type") == "Resource":
            target = metric["resource"]["target"]
            targets[metric["resource"]["name"]] = (
                target.get("type"),
                target.get("averageUtilization"),
            )
    return targets


def check_autoscaling(objects: list[Manifest]) -> list[str]:
    """The API's HPA targets 70 % CPU and 80 % memory; the workers are scaled by KEDA on the
    stream lag and by nothing else; every scale target exists; minimums leave room for the
    PDBs."""
    problems = []
    deployments = {d["metadata"]["name"] for d in of_kind(objects, "Deployment")}
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    scaled = of_kind(objects, "ScaledObject")
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"]: h for h in hpas}
    keda_targets = {s["spec"]["scaleTargetRef"]["name"]: s for s in scaled}
    for target in [*hpa_targets, *keda_targets]:
        if target not in deployments:
            problems.append(f"autoscaler target Deployment/{target} does not exist")
    for both in hpa_targets.keys() & keda_targets.keys():
        problems.append(f"Deployment/{both} has an HPA and a KEDA ScaledObject (they fight)")
    api = hpa_targets.get("vigil-api")
    if api is None:
        problems.append("no HorizontalPodAutoscaler for vigil-api")
    else:
        wanted = {"cpu": ("Utilization", 70), "memory": ("Utilization", 80)}
        if _resource_targets(api) != wanted:
            problems.append(f"vigil-api HPA targets {_resource_targets(api)}, wanted {wanted}")
        if api["spec"].get("minReplicas", 1) < 2:
            problems.append("vigil-api HPA allows fewer than 2 replicas")
    worker = keda_targets.get("vigil-worker")
    if worker is None:
        problems.append("no KEDA ScaledObject for vigil-worker")
    else:
        if worker["spec"].get("minReplicaCount", 0) < 2:
            problems.append("vigil-worker ScaledObject allows fewer than 2 replicas")
        streams = [t for t in worker["spec"]["triggers"] if t["type"] == "redis-streams"]
        meta = streams[0]["metadata"] if streams else {}
        if (meta.get("stream"), meta.get("consumerGroup")) != ("vigil:events", "vigil-workers"):
            problems.append(f"vigil-worker trigger reads {meta}, not vigil:events/vigil-workers")
        if "lagCount" not in meta:
            problems.append("vigil-worker trigger does not scale on the consumer-group lag")
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        if (name in hpa_targets or name in keda_targets) and "replicas" in deployment["spec"]:
            problems.append(f"Deployment/{name}: spec.replicas fights its autoscaler")
    return problems


def minimum_replicas(objects: list[Manifest], workload: Manifest) -> int:
    name = workload["metadata"]["name"]
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return int(hpa["spec"].get("minReplicas", 1))
    for so in of_kind(objects, "ScaledObject"):
        if so["spec"]["scaleTargetRef"]["name"] == name:
            return int(so["spec"].get("minReplicaCount", 0))
    return int(workload["spec"].get("replicas", 1))


def check_disruption_budgets(objects: list[Manifest], required: set[str]) -> list[str]:
    """The named Deployments each have a PDB with minAvailable 1 selecting their pods, and
    their minimum replica count exceeds it (else every voluntary eviction is blocked)."""
    problems = []
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        if name not in required:
            continue
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if selector_matches(p["spec"].get("selector"), labels)]
        if len(covering) != 1:
            problems.append(f"Deployment/{name}: {len(covering)} PDBs select its pods, want 1")
            continue
        min_available = covering[0]["spec"].get("minAvailable")
        if min_available != 1:
            problems.append(f"Deployment/{name}: PDB minAvailable {min_available!r}, want 1")
        elif minimum_replicas(objects, deployment) <= 1:
            problems.append(f"Deployment/{name}: 1 replica minimum with minAvailable 1")
    return problems


def check_selectors(objects: list[Manifest]) -> list[str]:
    """Every Service, PDB and NetworkPolicy selector (and same-namespace peer pod selector)
    matches at least one pod template; every workload's selector matches its own template."""
    problems = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace", "")
        selectors: list[tuple[str, dict[str, Any]]] = []
        if kind == "Service" and obj["spec"].get("selector"):
            selectors.append(("spec.selector", {"matchLabels": obj["spec"]["selector"]}))
        elif kind == "PodDisruptionBudget":
            selectors.append(("spec.selector", obj["spec"]["selector"]))
        elif kind == "NetworkPolicy":
            selectors.append(("spec.podSelector", obj["spec"]["podSelector"]))
            for direction, peer_key in (("ingress", "from"), ("egress", "to")):
                for i, rule in enumerate(obj["spec"].get(direction) or []):
                    for j, peer in enumerate(rule.get(peer_key) or []):
                        if "podSelector" in peer and "namespaceSelector" not in peer:
                            where = f"spec.{direction}[{i}].{peer_key}[{j}].podSelector"
                            selectors.append((where, peer["podSelector"]))
        elif kind in WORKLOAD_KINDS and kind != "Job":
            labels = obj["spec"]["template"]["metadata"]["labels"]
            if not selector_matches(obj["spec"]["selector"], labels):
                problems.append(f"{kind}/{name}: spec.selector does not match its pod template")
        for where, selector in selectors:
            if not _pods_selected(objects, namespace, selector):
                problems.append(f"{kind}/{name}: {where} {selector} selects no pods")
    return problems


def check_service_ports(objects: list[Manifest]) -> list[str]:
    """Every Service port's targetPort exists on every pod the Service selects."""
    problems = []
    for service in of_kind(objects, "Service"):
        selector = {"matchLabels": service["spec"].get("selector") or {}}
        for pod in pod_templates(objects):
            if pod.namespace != service["metadata"]["namespace"]:
                continue
            if not selector_matches(selector, pod.labels):
                continue
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if not any(_container_port(pod, c, target) for c in pod.spec["containers"]):
                    problems.append(
                        f"Service/{service['metadata']['name']}: targetPort {target!r} is "
                        f"not a port of {pod.name}"
                    )
    return problems


def check_default_deny(objects: list[Manifest]) -> list[str]:
    for policy in of_kind(objects, "NetworkPolicy"):
        spec = policy["spec"]
        if (
            spec.get("podSelector") == {}
            and {"Ingress", "Egress"} <= set(spec.get("policyTypes") or [])
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            return []
    return ["no NetworkPolicy denies all ingress and egress for every pod"]


def check_pod_security(objects: list[Manifest]) -> list[str]:
    """Non-root, unprivileged, read-only root filesystem, no capabilities, RuntimeDefault
    seccomp, no host namespaces, a writable /tmp (emptyDir) for every container."""
    problems = []
    for pod in pod_templates(objects):
        spec = pod.spec
        pod_sc = spec.get("securityContext") or {}
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{pod.name}: {host}")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{pod.name}: seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{pod.name}: mounts a service-account token it does not need")
        empty_dirs = {v["name"] for v in spec.get("volumes") or [] if "emptyDir" in v}
        for volume in spec.get("volumes") or []:
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUME_TYPES:
                problems.append(f"{pod.name}: volume {volume['name']} is {sorted(kinds)}")
        for container in pod.containers():
            sc = container.get("securityContext") or {}
            where = f"{pod.name}/{container['name']}"
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
                problems.append(f"{where}: no non-zero runAsUser")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
                problems.append(f"{where}: capabilities are not dropped (ALL)")
            tmp = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
            is_vigil = pod.labels.get("app.kubernetes.io/name") == "vigil"
            if is_vigil and (not tmp or tmp[0]["name"] not in empty_dirs):
                problems.append(f"{where}: no emptyDir at /tmp")
    return problems


def split_image(image: str) -> tuple[str, str, str]:
    """``registry/repo:tag@digest`` → (repository, tag, digest); missing parts are ""."""
    name, _, digest = image.partition("@")
    if ":" in name.rsplit("/", 1)[-1]:
        repository, tag = name.rsplit(":", 1)
        return repository, tag, digest
    return name, "", digest


def check_images(objects: list[Manifest], vigil_version: str) -> list[str]:
    """Images are pinned to a tag or digest, never `latest`; Vigil's image is the release the
    manifests belong to."""
    problems = []
    for pod in pod_templates(objects):
        label = pod.labels.get("app.kubernetes.io/version")
        if pod.labels.get("app.kubernetes.io/name") == "vigil" and label != vigil_version:
            problems.append(f"{pod.name}: version label {label!r} is not {vigil_version}")
        for container in pod.containers():
            image = container["image"]
            where = f"{pod.name}/{container['name']}"
            repository, tag, digest = split_image(image)
            if not digest and (not tag or tag == "latest"):
                problems.append(f"{where}: image {image!r} is not pinned to a tag")
            if repository.endswith("/vigil") and tag and tag != vigil_version:
                problems.append(f"{where}: image tag {tag} is not the release {vigil_version}")
            if container.get("imagePullPolicy") == "Always" and not digest:
                problems.append(f"{where}: imagePullPolicy Always with a mutable tag")
    return problems


def check_references(objects: list[Manifest]) -> list[str]:
    """Secrets, secret keys, ConfigMaps and ServiceAccounts that pods use exist (optional
    ConfigMap volumes excepted)."""
    problems = []
    secrets = {
        s["metadata"]["name"]: {**(s.get("data") or {}), **(s.get("stringData") or {})}
        for s in of_kind(objects, "Secret")
    }
    configmaps = {c["metadata"]["name"] for c in of_kind(objects, "ConfigMap")}
    accounts = {a["metadata"]["name"] for a in of_kind(objects, "ServiceAccount")}
    for auth in of_kind(objects, "TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef") or []:
            if ref["key"] not in secrets.get(ref["name"], {}):
                problems.append(
                    f"TriggerAuthentication/{auth['metadata']['name']}: secret "
                    f"{ref['name']} has no key {ref['key']}"
                )
    for pod in pod_templates(objects):
        account = pod.spec.get("serviceAccountName")
        if account and account not in accounts:
            problems.append(f"{pod.name}: ServiceAccount {account} does not exist")
        for volume in pod.spec.get("volumes") or []:
            cm = volume.get("configMap")
            if cm and not cm.get("optional") and cm["name"] not in configmaps:
                problems.append(f"{pod.name}: ConfigMap volume {cm['name']} does not exist")
        for container in pod.containers():
            where = f"{pod.name}/{container['name']}"
            for source in container.get("envFrom") or []:
                ref = source.get("configMapRef")
                if ref and not ref.get("optional") and ref["name"] not in configmaps:
                    problems.append(f"{where}: ConfigMap {ref['name']} does not exist")
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref is None:
                    continue
                if ref["name"] not in secrets:
                    problems.append(f"{where}: Secret {ref['name']} does not exist")
                elif ref["key"] not in secrets[ref["name"]]:
                    problems.append(f"{where}: Secret {ref['name']} has no key {ref['key']}")
    return problems
