"""The Kubernetes manifests (deploy/kubernetes): valid against the Kubernetes JSON schemas
(kubernetes-validate ships them, so this runs offline), consistent with each other, with the
image and with the gateway's config; rendered by kustomize too where kubectl is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossroads.config import load_config, parse_config
from crossroads.conflicts import find_conflicts

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason='the schema check needs pip install "crossroads[dev]"'
)

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
BASE = KUBE / "base"
OVERLAY = KUBE / "overlays" / "shared-state"
# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
VERSIONS = ["1.27", kubernetes_validate.latest_version()]
LABELS = {"app.kubernetes.io/name": "crossroads", "app.kubernetes.io/component": "gateway"}
# Environment the configs read, as the Deployment provides it.
POD_ENV = {
    "UPSTREAM_API_KEY": "sk-test",
    "CROSSROADS_CLIENT_KEY": "client-test",
    "CROSSROADS_POSTGRES_URL": "postgresql://crossroads:pw@postgres:5432/crossroads",
    "CROSSROADS_REDIS_URL": "redis://:pw@redis:6379/0",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[Path]:
    """Every Kubernetes resource file (kustomizations and gateway configs are not)."""
    skip = {"kustomization.yaml", "crossroads.yaml"}
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name not in skip)


def _resources() -> dict[str, dict[str, Any]]:
    """The base's resources by kind."""
    found = {}
    for entry in _docs(BASE / "kustomization.yaml")[0]["resources"]:
        for doc in _docs(BASE / entry):
            found[doc["kind"]] = doc
    return found


def _container() -> dict[str, Any]:
    pod = _resources()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def _validate(doc: dict[str, Any], where: str) -> None:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(
                f"{where}: {doc['kind']} invalid for Kubernetes {version}: {path}: {exc.message}"
            )


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: str(p.relative_to(KUBE)))
def test_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} holds no resource"
    for doc in docs:
        _validate(doc, str(path.relative_to(ROOT)))


def test_the_schema_check_rejects_a_broken_manifest() -> None:
    broken = _resources()["Deployment"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomizations_name_files_that_exist() -> None:
    for kustomization in KUBE.rglob("kustomization.yaml"):
        spec = _docs(kustomization)[0]
        for entry in spec.get("resources", []):
            assert (kustomization.parent / entry).exists(), f"{kustomization}: {entry}"
        for generator in spec.get("configMapGenerator", []):
            for name in generator["files"]:
                assert (kustomization.parent / name).is_file(), f"{kustomization}: {name}"
    base_generators = {
        g["name"] for g in _docs(BASE / "kustomization.yaml")[0]["configMapGenerator"]
    }
    for generator in _docs(OVERLAY / "kustomization.yaml")[0]["configMapGenerator"]:
        assert generator["behavior"] == "replace" and generator["name"] in base_generators


def test_the_deployment_probes_the_gateway_and_stays_available() -> None:
    resources = _resources()
    deployment, container = resources["Deployment"], _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in container["env"]}
    assert ports["http"] == int(env["CROSSROADS_PORT"]["value"])
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb, hpa = resources["PodDisruptionBudget"], resources["HorizontalPodAutoscaler"]
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert container["resources"]["requests"]["cpu"], "the HPA's CPU target needs a CPU request"


def test_selectors_reach_the_pods() -> None:
    resources = _resources()
    deployment = resources["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == LABELS
    assert deployment["spec"]["selector"]["matchLabels"] == LABELS
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == LABELS
    service = resources["Service"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in _container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_the_pod_runs_as_the_images_unprivileged_user() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user, "the Dockerfile must set a numeric USER uid:gid"
    pod = _resources()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user.group(1) != "0"
    assert str(pod["securityContext"]["runAsGroup"]) == user.group(2)
    security = _container()["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in _container()["volumeMounts"]}
    data_dir = re.search(r"CROSSROADS_DATA_DIR=(\S+)", (ROOT / "Dockerfile").read_text())
    assert data_dir and {data_dir.group(1), "/tmp"} <= mounts  # writable under a read-only root


def test_the_config_volume_is_the_generated_config_file() -> None:
    container = _container()
    pod = _resources()["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    generator = _docs(BASE / "kustomization.yaml")[0]["configMapGenerator"][0]
    assert volumes["config"]["configMap"]["name"] == generator["name"]
    config_file = {e["name"]: e.get("value") for e in container["env"]}["CROSSROADS_CONFIG_FILE"]
    assert config_file == f"{mount['mountPath']}/{generator['files'][0]}"


def test_shutdown_fits_in_the_grace_period() -> None:
    pod = _resources()["Deployment"]["spec"]["template"]["spec"]
    command = _container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    for config in (BASE / "crossroads.yaml", OVERLAY / "crossroads.yaml"):
        drain = yaml.safe_load(config.read_text())["server"]["shutdown_timeout_s"]
        assert int(command[1]) + drain < pod["terminationGracePeriodSeconds"], config


def test_every_secret_the_pod_reads_is_in_the_example_secret() -> None:
    (secret,) = _docs(KUBE / "secret.example.yaml")
    refs = [e["valueFrom"]["secretKeyRef"] for e in _container()["env"] if "valueFrom" in e]
    assert refs
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"], ref


@pytest.mark.parametrize("config", [BASE / "crossroads.yaml", OVERLAY / "crossroads.yaml"])
def test_every_variable_a_config_reads_comes_from_the_pod(config: Path) -> None:
    text = config.read_text()
    wanted = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    wanted |= set(re.findall(r"(?:key_env|api_key_env): (\w+)", text))
    provided = {e["name"] for e in _container()["env"]}
    assert wanted and wanted <= provided, f"{config.name} reads {sorted(wanted - provided)}"


def test_the_base_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in POD_ENV.items():
        monkeypatch.setenv(name, value)
    cfg = load_config(BASE / "crossroads.yaml")
    assert {m.name for m in cfg.models} == {"small", "big"}
    assert cfg.server.api_keys[0].key_env == "CROSSROADS_CLIENT_KEY"
    assert find_conflicts(cfg) == []


def _overlay_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((OVERLAY / "crossroads.yaml").read_text())
    return data


def test_the_shared_state_config_is_valid_but_for_its_pending_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in POD_ENV.items():
        monkeypatch.setenv(name, value)
    data = _overlay_config()
    assert data.pop("state") == {"backend": "${CROSSROADS_REDIS_URL}"}
    assert data["store"]["traces"] == "${CROSSROADS_POSTGRES_URL}"
    data["store"]["traces"] = "memory"
    parse_config(data)  # everything else in the recipe works today
    base = yaml.safe_load((BASE / "crossroads.yaml").read_text())
    for section in ("upstreams", "models", "signals", "decisions", "default"):
        assert data[section] == base[section], f"the overlay's {section} drifted from the base"


def test_the_shared_state_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in POD_ENV.items():
        monkeypatch.setenv(name, value)
    load_config(OVERLAY / "crossroads.yaml")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) is not installed")
@pytest.mark.parametrize("tree", [BASE, OVERLAY], ids=["base", "shared-state"])
def test_kustomize_renders_valid_resources(tree: Path) -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(tree)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(done.stdout) if doc}
    assert set(docs) == {"ConfigMap", *_resources()}
    for doc in docs.values():
        _validate(doc, f"kubectl kustomize {tree.relative_to(ROOT)}")
    configmap = docs["ConfigMap"]
    assert configmap["data"]["crossroads.yaml"] == (tree / "crossroads.yaml").read_text()
    volumes = docs["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": configmap["metadata"]["name"]} == next(
        v["configMap"] for v in volumes if v["name"] == "config"
    )  # the hashed name: a config change rolls the pods
