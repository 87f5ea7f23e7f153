"""deploy/: every manifest is parsed and checked against its schema, offline.

Docker and Kubernetes cannot run here, so this is what stands between a typo and a
broken rollout:

* Kubernetes objects: the JSON schemas bundled by ``kubernetes-validate``, strict (an
  unknown or misspelt field fails), for the oldest and the newest Kubernetes we claim.
  CRDs (the KubeRay RayJob) are checked structurally, their pod templates as core
  PodTemplates. Kustomizations are rendered with ``kubectl kustomize`` when kubectl is
  installed and the output is validated too.
* ``compose.yaml``: the Compose Specification schema vendored by ``check-jsonschema``.
* Dockerfiles: parsed with ``dockerfile-parse`` and held to the rules of docs/operations.md
  (multi-stage, non-root, health check, the bundled model inside, nothing excluded that a
  COPY needs).
* Settings: every ``EMOTION_*`` variable and the ConfigMap's TOML are loaded with the
  service's own ``Settings``, so a misspelt setting fails here and not in a pod.
* The health probe (``deploy/docker/healthcheck.py``) runs against a real gRPC health
  server: plaintext, TLS and mTLS.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from concurrent import futures
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from kubernetes_validate.utils import latest_version

from emotion_service.paths import BUNDLED_MODEL, REPO_ROOT
from emotion_service.server.config import Settings
from emotion_service.tuning.sweep import load_sweep_file
from tests.certs import make_certs
from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKER = DEPLOY / "docker"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile.cpu", "cuda": DOCKER / "Dockerfile.cuda"}
# The oldest Kubernetes the manifests claim (docs/operations.md) and the newest bundled.
K8S_VERSIONS = ("1.29", latest_version())
OVERLAYS = {"cpu": K8S, "gpu": K8S / "gpu"}
SECRETS_EXAMPLE = K8S / "secrets.example.yaml"
RAYJOB = K8S / "kuberay-tune-job.yaml"
TRAIN_RAYJOB = K8S / "kuberay-train-job.yaml"
GRPC_PORT = 50051
PROBE_SCRIPT = "/app/healthcheck.py"


# ----------------------------------------------------------------------------- helpers


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert all(isinstance(d, dict) for d in docs), f"{path}: every YAML document must be a mapping"
    return docs


def kind_of(path: Path) -> str:
    rel = path.relative_to(DEPLOY)
    if rel == Path("compose.yaml"):
        return "compose"
    if rel.parts[0] == "prometheus":
        return "prometheus"
    if path.name == "kustomization.yaml":
        return "kustomization"
    if rel.parts[0] == "k8s":
        return "kubernetes"
    return "unknown"


def k8s_files() -> list[Path]:
    return [p for p in yaml_files() if kind_of(p) == "kubernetes"]


def is_builtin(api_version: str) -> bool:
    """Core Kubernetes API groups (v1, apps/v1, policy/v1, *.k8s.io) as opposed to CRDs."""
    if "/" not in api_version:
        return True
    group = api_version.split("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def validate_k8s(obj: dict[str, Any], where: str) -> None:
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(map(str, exc.path))
            pytest.fail(f"{where}: {obj['kind']} {obj['metadata'].get('name')} invalid for Kubernetes {version} at {path}: {exc.message}")


def validate_pod_template(template: dict[str, Any], where: str) -> None:
    """A pod template inside a CRD, validated as the template of a core PodTemplate object."""
    validate_k8s({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}, where)


def objects(path: Path, kind: str) -> list[dict[str, Any]]:
    return [d for d in documents(path) if d.get("kind") == kind]


def one(path: Path, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in objects(path, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{path}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any], name: str = "emotion") -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def literal_env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e}


def render(overlay: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, f"kubectl kustomize {overlay} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@dataclasses.dataclass
class Dockerfile:
    path: Path
    stages: list[list[dict[str, Any]]]  # instructions per FROM
    envs: dict[str, str]  # of the final stage
    args: dict[str, str]  # every ARG default of the file

    def final(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.stages[-1] if i["instruction"] == instruction]


def parse_dockerfile(path: Path) -> Dockerfile:
    with path.open("rb") as f:
        parser = DockerfileParser(fileobj=f)
        structure = parser.structure
        envs = dict(parser.envs)
    stages: list[list[dict[str, Any]]] = []
    args: dict[str, str] = {}
    for instr in structure:
        if instr["instruction"] == "FROM":
            stages.append([])
        elif instr["instruction"] == "ARG" and "=" in instr["value"]:
            key, _, value = instr["value"].partition("=")
            args[key.strip()] = value.strip().strip('"')
        if stages:
            stages[-1].append(instr)
    return Dockerfile(path, stages, envs, args)


def image_dockerfile(image: str) -> Dockerfile:
    tag = image.rsplit(":", 1)[-1]
    variant = "cuda" if "cuda" in tag else "cpu"
    return parse_dockerfile(DOCKERFILES[variant])


def dockerignore_patterns(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_matches(path: str, pattern: str) -> bool:
    """A .dockerignore pattern matches the path or one of its parent folders."""
    parts = path.split("/")
    for end in range(1, len(parts) + 1):
        prefix = "/".join(parts[:end])
        if fnmatch.fnmatchcase(prefix, pattern):
            return True
        if pattern.startswith("**/") and any(
            fnmatch.fnmatchcase("/".join(parts[start:end]), pattern[3:]) for start in range(end)
        ):
            return True
    return False


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins, ``!`` re-includes (simplified matcher)."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if _pattern_matches(path, pattern.lstrip("!").strip("/")):
            result = not negate
    return result


def copy_sources(df: Dockerfile) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context (not --from=stage)."""
    pairs = []
    for stage in df.stages:
        for instr in stage:
            if instr["instruction"] != "COPY":
                continue
            words = shlex.split(instr["value"])
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            pairs += [(src, words[-1]) for src in words[:-1]]
    return pairs


def known_env_names() -> set[str]:
    """Every EMOTION_* variable something reads: settings, plugins used here, the probe."""
    names = {"EMOTION_" + f.name.upper() for f in dataclasses.fields(Settings)}
    names |= {"EMOTION_CONFIG", "EMOTION_PLUGINS"}
    names |= set(load_probe().PROBE_ENV)
    from emotion_service.whisper_encoder import CACHE_ENV  # where the Whisper weights are joined

    names.add(CACHE_ENV)
    from emotion_service.plugins.builtin.reports import NAME as REPORTS
    from emotion_service.plugins.builtin.reports import ReportsConfig
    from emotion_service.plugins.builtin.store import NAME as STORE
    from emotion_service.plugins.builtin.store import StoreConfig
    from emotion_service.settings import plugin_env_var

    for plugin, cls in ((REPORTS, ReportsConfig), (STORE, StoreConfig)):
        names |= {plugin_env_var(plugin, f) for f in dataclasses.fields(cls)}
    return names


def load_probe() -> Any:
    spec = importlib.util.spec_from_file_location("emotion_healthcheck", DOCKER / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_settings(environ: dict[str, str], toml_text: str | None, tmp_path: Path) -> Settings:
    config = None
    if toml_text is not None:
        config = tmp_path / "emotion.toml"
        config.write_text(toml_text)
    return Settings.load(environ={k: v for k, v in environ.items() if k != "EMOTION_CONFIG"}, config_file=config)


def under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")


# ------------------------------------------------------------------ inventory and schemas


def test_every_yaml_file_parses_and_is_known() -> None:
    files = yaml_files()
    assert files, "no YAML under deploy/"
    for path in files:
        assert kind_of(path) != "unknown", f"{path}: no validation covers this file; add it to tests/test_deploy.py"
        docs = documents(path)
        assert docs, f"{path}: empty"
        if kind_of(path) == "kubernetes":
            for doc in docs:
                assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path}: a document lacks apiVersion/kind/metadata"
                assert doc["metadata"].get("name"), f"{path}: a {doc['kind']} has no name"


@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_kubernetes_objects_match_their_schemas(path: Path) -> None:
    for doc in documents(path):
        if is_builtin(doc["apiVersion"]):
            validate_k8s(doc, str(path.relative_to(ROOT)))
        else:
            assert doc["kind"] == "RayJob", f"{path}: custom resource {doc['kind']} has no check here"


def test_kustomizations_reference_existing_files_and_nothing_is_orphaned() -> None:
    referenced: set[Path] = set()
    for kfile in K8S.rglob("kustomization.yaml"):
        k = documents(kfile)[0]
        assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
        for entry in k.get("resources", []):
            target = (kfile.parent / entry).resolve()
            assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{kfile}: resource {entry} missing"
            referenced.add(target)
        for patch in k.get("patches", []):
            if "path" in patch:
                target = (kfile.parent / patch["path"]).resolve()
                assert target.is_file(), f"{kfile}: patch {patch['path']} missing"
                referenced.add(target)
            else:
                assert patch.get("target") and patch.get("patch"), f"{kfile}: inline patch needs target and patch"
                yaml.safe_load(patch["patch"])
    standalone = {SECRETS_EXAMPLE.resolve(), RAYJOB.resolve(), TRAIN_RAYJOB.resolve()}
    assert not standalone & referenced, "secrets.example.yaml / the RayJob must stay out of the kustomizations"
    orphans = [p for p in k8s_files() if p.resolve() not in referenced | standalone]
    assert not orphans, f"manifests no kustomization uses: {orphans}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for kustomize) not installed")
@pytest.mark.parametrize("variant", sorted(OVERLAYS))
def test_kustomize_renders_valid_objects(variant: str) -> None:
    rendered = render(OVERLAYS[variant])
    kinds = sorted(d["kind"] for d in rendered)
    for doc in rendered:
        validate_k8s(doc, f"kubectl kustomize {variant}")
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "emotion", f"{doc['kind']} {doc['metadata']['name']} outside emotion"
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "PodDisruptionBudget"} <= set(kinds)
    assert "Secret" not in kinds, "Secrets are created by the operator, never by the kustomization"
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    c = container(deployment)
    gpus = c["resources"].get("limits", {}).get("nvidia.com/gpu")
    if variant == "gpu":
        assert gpus == 1 and "cuda" in c["image"] and literal_env(c).get("EMOTION_DEVICE") == "cuda"
        assert deployment["spec"]["template"]["spec"].get("tolerations")
    else:
        assert gpus is None and c["image"].endswith("-cpu")


# ------------------------------------------------------------------ the Deployments


@pytest.mark.parametrize("path", [K8S / "base" / "deployment.yaml", K8S / "gpu" / "deployment-gpu.yaml"], ids=["cpu", "gpu"])
def test_deployment_settings_probes_and_security(path: Path, tmp_path: Path) -> None:
    deployment = one(path, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    df = image_dockerfile(c["image"])
    configmap = one(K8S / "base" / "configmap.yaml", "ConfigMap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
    assert len(mounts) == len(c["volumeMounts"]), "a volume mounted twice at one path"
    for m in c["volumeMounts"]:
        assert m["name"] in volumes, f"volumeMount {m['name']} has no volume"

    # The settings the pod really starts with: image ENV < ConfigMap TOML < container env.
    env = {**{k: v for k, v in df.envs.items() if k.startswith("EMOTION_")}, **literal_env(c)}
    unknown = {k for k in env if k.startswith("EMOTION_")} - known_env_names()
    assert not unknown, f"{path}: unknown settings {unknown}"
    config_path = env["EMOTION_CONFIG"]
    config_mount = next(m for m in mounts if under(config_path, m))
    assert mounts[config_mount]["configMap"]["name"] == configmap["metadata"]["name"]
    toml_key = Path(config_path).name
    assert toml_key in configmap["data"], f"EMOTION_CONFIG names {toml_key}, the ConfigMap lacks it"
    settings = load_settings(env, configmap["data"][toml_key], tmp_path)
    from emotion_service.plugins.builtin.reports import NAME, ReportsConfig
    from emotion_service.settings import load_plugin_config

    reports = load_plugin_config(NAME, ReportsConfig, environ=env, config_file=tmp_path / "emotion.toml")

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert settings.port == ports["grpc"] == GRPC_PORT
    assert settings.metrics_port == ports["metrics"] and settings.metrics_port > 0
    assert settings.host == "0.0.0.0"
    assert settings.tls and settings.auth_tokens_file, "the Kubernetes deployment runs with TLS and tokens"
    for name in ("tls_cert_file", "tls_key_file", "auth_tokens_file"):
        value = getattr(settings, name)
        mount = next((m for m in mounts if under(value, m)), None)
        assert mount and "secret" in mounts[mount], f"{name}={value} is not on a Secret volume"
    secret_names = {s["metadata"]["name"] for s in objects(SECRETS_EXAMPLE, "Secret")}
    for v in volumes.values():
        if "secret" in v:
            assert v["secret"]["secretName"] in secret_names, f"{v['secret']['secretName']} missing from secrets.example.yaml"
    for e in c["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            example = one(SECRETS_EXAMPLE, "Secret", ref["name"])
            assert ref["key"] in example["stringData"], f"secret {ref['name']} has no key {ref['key']}"

    # Read-only root: whatever the service writes must be a mounted volume.
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    workdir = df.final("WORKDIR")[-1]
    writable = [m for m, v in mounts.items() if "emptyDir" in v or "persistentVolumeClaim" in v]
    for path_needed in (workdir, "/tmp", reports.output_dir, *(df.envs[k] for k in ("HF_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"))):
        assert any(under(path_needed, m) for m in writable), f"{path_needed} is not writable with a read-only root"
    psc = pod["securityContext"]
    uid = int(df.final("USER")[-1].split(":")[0])
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == uid != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False

    # Probes: the image's probe script, enough time to load the model, drain outlives grace.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = c[probe]["exec"]["command"]
        assert command[:2] == ["python", PROBE_SCRIPT], f"{probe}: {command}"
    assert c["livenessProbe"]["exec"]["command"][2:] == ["--liveness"], "liveness must not fail on NOT_SERVING (drain)"
    assert c["readinessProbe"]["exec"]["command"][2:] == []
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + settings.grace_period_s + 5
    # A draining server refuses new connections, probes included: liveness must not kill it first.
    liveness = c["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > pod["terminationGracePeriodSeconds"]
    assert any(src.endswith("healthcheck.py") and dst == PROBE_SCRIPT for src, dst in copy_sources(df))

    # The HPA needs CPU requests; the Deployment leaves replicas to it.
    assert "replicas" not in deployment["spec"]
    assert c["resources"]["requests"]["cpu"]


def test_gpu_deployment_differs_only_where_it_should() -> None:
    cpu = one(K8S / "base" / "deployment.yaml", "Deployment")
    gpu = one(K8S / "gpu" / "deployment-gpu.yaml", "Deployment")
    assert cpu["metadata"]["name"] == gpu["metadata"]["name"], "the GPU patch must target the base Deployment"
    cpu_pod, gpu_pod = cpu["spec"]["template"]["spec"], gpu["spec"]["template"]["spec"]
    for key in ("volumes", "securityContext", "serviceAccountName", "terminationGracePeriodSeconds"):
        assert cpu_pod[key] == gpu_pod[key], f"GPU Deployment drifted from the CPU one in {key}"
    c_cpu, c_gpu = container(cpu), container(gpu)
    for key in ("ports", "volumeMounts", "readinessProbe", "livenessProbe", "lifecycle", "securityContext"):
        assert c_cpu[key] == c_gpu[key], f"GPU container drifted from the CPU one in {key}"
    assert c_gpu["resources"]["limits"]["nvidia.com/gpu"] == c_gpu["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert gpu_pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in gpu_pod["tolerations"])


def test_service_hpa_pdb_and_network_policy_point_at_the_pods() -> None:
    base = K8S / "base"
    deployment = one(base / "deployment.yaml", "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {p["name"] for p in container(deployment)["ports"]}
    for service in objects(base / "service.yaml", "Service"):
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
    hpa = one(base / "hpa.yaml", "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = one(base / "pdb.yaml", "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "the PDB would block every node drain"
    policy = one(base / "networkpolicy.yaml", "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in port_names


def test_example_secrets_are_placeholders_of_the_right_shape(tmp_path: Path) -> None:
    from emotion_service.server.auth import load_keys

    secrets = objects(SECRETS_EXAMPLE, "Secret")
    assert secrets
    for secret in secrets:
        assert secret["metadata"]["annotations"]["example.emotion/placeholder"] == "true"
        assert any("PLACEHOLDER" in str(v) for v in secret["stringData"].values()), secret["metadata"]["name"]
    tls = one(SECRETS_EXAMPLE, "Secret", "emotion-tls")
    assert tls["type"] == "kubernetes.io/tls" and {"tls.crt", "tls.key", "ca.crt"} <= set(tls["stringData"])
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(one(SECRETS_EXAMPLE, "Secret", "emotion-tokens")["stringData"]["tokens.toml"])
    keys = load_keys(tokens)
    assert {scope for key in keys for scope in key.scopes} == {"classify", "admin"}


# ------------------------------------------------------------------ KubeRay


def test_rayjob_runs_emotion_tune_on_gpu_workers(tmp_path: Path) -> None:
    job = one(RAYJOB, "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    entry = shlex.split(spec["entrypoint"])
    assert entry[:2] == ["emotion", "tune"] and "--address" in entry and "--config" in entry
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec.get("submissionMode", "K8sJobMode") in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
    cluster = spec["rayClusterSpec"]
    cuda = parse_dockerfile(DOCKERFILES["cuda"])
    assert cluster["rayVersion"] == cuda.args["RAY_VERSION"], "rayVersion must match the image's Ray"
    head = cluster["headGroupSpec"]
    templates = [("head", head["template"]), ("submitter", spec["submitterPodTemplate"])]
    assert all(isinstance(v, str) for v in head["rayStartParams"].values()), "rayStartParams values are strings"
    assert cluster["workerGroupSpecs"]
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"] and all(isinstance(v, str) for v in group["rayStartParams"].values())
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        templates.append((group["groupName"], group["template"]))
    for name, template in templates:
        validate_pod_template(template, f"{RAYJOB.name} {name}")
    images = {c["image"] for _, t in templates for c in t["spec"]["containers"]}
    assert len(images) == 1 and next(iter(images)).endswith("-cuda-tune"), images
    gpu_groups = [g for g in cluster["workerGroupSpecs"] if any(
        c["resources"]["limits"].get("nvidia.com/gpu") for c in g["template"]["spec"]["containers"])]
    assert gpu_groups, "no worker group asks for a GPU"
    # The search space the entrypoint names is mounted from the ConfigMap of this file.
    config_path = entry[entry.index("--config") + 1]
    head_container = head["template"]["spec"]["containers"][0]
    head_volumes = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
    mount = next(m for m in head_container["volumeMounts"] if under(config_path, m["mountPath"]))
    configmap = one(RAYJOB, "ConfigMap", head_volumes[mount["name"]]["configMap"]["name"])
    # The same checks `emotion tune` runs before starting Ray: tables, [tune] keys, `emotion train` flags.
    (tmp_path / "search-space.toml").write_text(configmap["data"][Path(config_path).name])
    load_sweep_file(tmp_path / "search-space.toml")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in head_volumes.values() if "persistentVolumeClaim" in v}
    assert "ReadWriteMany" in one(RAYJOB, "PersistentVolumeClaim")["spec"]["accessModes"]
    assert one(RAYJOB, "PersistentVolumeClaim")["metadata"]["name"] in claims


def test_train_rayjob_runs_distributed_emotion_train_with_one_worker_per_gpu_pod() -> None:
    from emotion_service.tuning.finetune import parse_args

    job = one(TRAIN_RAYJOB, "RayJob")
    spec = job["spec"]
    entry = shlex.split(spec["entrypoint"])
    assert entry[:2] == ["emotion", "train"]
    flags = entry[2:]
    # TrainingArguments refuses --bf16 on a machine without a bf16 GPU (this one): parse the rest.
    at = flags.index("--bf16")
    _, _, training = parse_args(flags[:at] + flags[at + 2 :])  # the flags `emotion train` accepts, none unknown
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == parse_dockerfile(DOCKERFILES["cuda"]).args["RAY_VERSION"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    (group,) = cluster["workerGroupSpecs"]
    (container,) = group["template"]["spec"]["containers"]
    assert training.use_gpu and training.address == "auto"
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert group["replicas"] == group["minReplicas"] == training.num_workers, "one worker per GPU pod"
    assert float(container["resources"]["requests"]["cpu"]) >= training.cpus_per_worker
    for name, template in [("head", cluster["headGroupSpec"]["template"]), (group["groupName"], group["template"])]:
        validate_pod_template(template, f"{TRAIN_RAYJOB.name} {name}")
        mounts = {m["mountPath"]: m["name"] for c in template["spec"]["containers"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        # Checkpoints and the model go to a volume every node mounts: the RWX claim of this file.
        for path in (training.storage_path, training.output_dir):
            mount = next(m for m in mounts if under(path, m))
            claim = volumes[mounts[mount]]["persistentVolumeClaim"]["claimName"]
            pvc = one(TRAIN_RAYJOB, "PersistentVolumeClaim", claim)
            assert "ReadWriteMany" in pvc["spec"]["accessModes"]


# ------------------------------------------------------------------ compose and Prometheus


def test_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    schema = json.loads((resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    compose = documents(DEPLOY / "compose.yaml")[0]
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "compose.yaml: " + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)

    services = compose["services"]
    assert {"emotion", "postgres", "prometheus"} <= set(services)
    service = services["emotion"]
    build = service["build"]
    dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == DOCKERFILES["cpu"].resolve()
    df = parse_dockerfile(dockerfile)
    env = {**{k: v for k, v in df.envs.items() if k.startswith("EMOTION_")}, **{k: str(v) for k, v in service["environment"].items()}}
    unknown = {k for k in env if k.startswith("EMOTION_")} - known_env_names()
    assert not unknown, f"compose.yaml: unknown settings {unknown}"
    settings = load_settings(env, None, tmp_path)
    published = {p.split(":")[-1] for p in service["ports"]}
    assert {str(settings.port), str(settings.metrics_port)} <= published
    assert all(p.startswith("127.0.0.1:") for p in service["ports"]), "plaintext ports only on the host's loopback"
    assert float(service["stop_grace_period"].rstrip("s")) > settings.grace_period_s
    assert service["healthcheck"]["test"][-1] == PROBE_SCRIPT
    url = env["EMOTION_DATABASE_URL"]
    pg = services["postgres"]["environment"]
    assert url.startswith(f"postgresql+psycopg://{pg['POSTGRES_USER']}:") and url.endswith(f"@postgres:5432/{pg['POSTGRES_DB']}")
    for volume in services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).is_file(), f"compose mounts missing {source}"


def _exported_metric_names() -> set[str]:
    from prometheus_client.metrics import MetricWrapperBase

    from emotion_service.server import metrics

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",), "info": ("_info",), "summary": ("", "_count", "_sum", "_created")}
    names = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                names |= {family.name + s for s in suffixes[family.type]}
    return names


def test_prometheus_scrapes_the_service_and_alerts_on_real_metrics(tmp_path: Path) -> None:
    compose = documents(DEPLOY / "compose.yaml")[0]
    metrics_port = str(compose["services"]["emotion"]["environment"]["EMOTION_METRICS_PORT"])
    config = documents(DEPLOY / "prometheus" / "prometheus.yml")[0]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "emotion")
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"emotion:{metrics_port}"]
    mounted = {v.split(":")[1] for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./")}
    for rule_file in config["rule_files"]:
        assert rule_file in mounted, f"rule file {rule_file} is not mounted into Prometheus"

    exported = _exported_metric_names()
    rules = [r for g in documents(DEPLOY / "prometheus" / "alerts.yml")[0]["groups"] for r in g["rules"]]
    assert len(rules) >= 5
    for rule in rules:
        assert rule["alert"] and rule["expr"] and rule["labels"]["severity"] in ("critical", "warning", "info")
        used = set(re.findall(r"\bemotion_[a-z_]+\b", rule["expr"]))
        assert used <= exported, f"alert {rule['alert']} uses metrics the service does not export: {used - exported}"
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
    for name in ("emotion_requests_total", "emotion_request_latency_seconds_bucket", "emotion_queue_depth", "emotion_model_info"):
        assert name in exported


# ------------------------------------------------------------------ Dockerfiles


@pytest.mark.parametrize("variant", sorted(DOCKERFILES))
def test_dockerfile_is_multistage_non_root_with_model_and_healthcheck(variant: str) -> None:
    df = parse_dockerfile(DOCKERFILES[variant])
    assert len(df.stages) >= 2, "multi-stage: a builder and a runtime"
    user = df.final("USER")
    assert user, "the runtime stage sets no USER"
    uid = user[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user[-1]}: numeric and not root (runAsNonRoot checks a number)"
    healthcheck = df.final("HEALTHCHECK")
    assert healthcheck and PROBE_SCRIPT in healthcheck[-1]
    assert json.loads(df.final("ENTRYPOINT")[-1]) == ["emotion", "serve"]
    exposed = set(" ".join(df.final("EXPOSE")).split())
    assert {str(GRPC_PORT), df.envs["EMOTION_METRICS_PORT"]} <= exposed
    assert any("--from=builder" in c for c in df.final("COPY")), "the runtime copies the builder's venv"
    assert df.envs["EMOTION_HOST"] == "0.0.0.0"
    assert "EMOTION_INSECURE" not in df.envs, "plaintext must be asked for at run time, not baked in"

    # The bundled model, at the path the server would look for it, and where EMOTION_MODEL points.
    bundled = BUNDLED_MODEL.relative_to(REPO_ROOT).as_posix()
    model_copies = [(s, d) for s, d in copy_sources(df) if s.rstrip("/") == bundled]
    assert model_copies, f"no COPY of {bundled}"
    assert model_copies[0][1].rstrip("/") == df.envs["EMOTION_MODEL"]

    # torch pinned like the service pins it.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"torch=={df.args['TORCH_VERSION']}" in pyproject["project"]["dependencies"]

    # Every file a COPY needs is in the context: present (the model may be built later) and
    # not excluded by the Dockerfile's own .dockerignore.
    ignore = DOCKERFILES[variant].with_name(DOCKERFILES[variant].name + ".dockerignore")
    patterns = dockerignore_patterns(ignore)
    for must_go in (".venv", ".git", "runs", "tests"):
        assert ignored(must_go, patterns), f"{ignore.name} lets {must_go} into the build context"
    for source, _ in copy_sources(df):
        path = ROOT / source
        if source.rstrip("/") == bundled and not path.exists():
            continue
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for f in files:
            rel = f.relative_to(ROOT).as_posix()
            if any(part.startswith(".") or part == "__pycache__" or part.endswith(".egg-info") for part in rel.split("/")):
                continue  # caches and tool state: excluded on purpose
            assert not ignored(rel, patterns), f"{ignore.name} excludes {rel}, which COPY {source} needs"


# ------------------------------------------------------------------ the health probe


class _HealthServer:
    def __init__(self, credentials: grpc.ServerCredentials | None = None) -> None:
        self.servicer = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        address = "127.0.0.1:0"
        self.port = self.server.add_secure_port(address, credentials) if credentials else self.server.add_insecure_port(address)
        self.server.start()

    def set(self, status: int) -> None:
        for service in ("", "emotion.v1.EmotionService"):
            self.servicer.set(service, status)

    def stop(self) -> None:
        self.server.stop(None)


@pytest.fixture
def running() -> Iterator[list[_HealthServer]]:
    servers: list[_HealthServer] = []
    yield servers
    for server in servers:
        server.stop()


def test_health_probe_plaintext(running: list[_HealthServer]) -> None:
    probe = load_probe()
    server = _HealthServer()
    running.append(server)
    env = {"EMOTION_HOST": "0.0.0.0", "EMOTION_INSECURE": "true", "EMOTION_PORT": str(server.port)}
    server.set(health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe.check(env) == (False, f"127.0.0.1:{server.port} emotion.v1.EmotionService: NOT_SERVING")
    assert probe.check(env, liveness=True)[0], "a draining or loading server is alive"
    server.set(health_pb2.HealthCheckResponse.SERVING)
    assert probe.check(env)[0]
    assert probe.check({**env, "EMOTION_PROBE_SERVICE": ""})[0]
    down = {**env, "EMOTION_PORT": str(free_port())}
    assert not probe.check(down)[0] and not probe.check(down, liveness=True)[0]
    assert probe.check({"EMOTION_HOST": "0.0.0.0"})[1].startswith("settings: "), "plaintext off-loopback refused"
    assert probe.main(["--bogus"]) == 2


def test_health_probe_tls_and_mtls(running: list[_HealthServer], tmp_path: Path) -> None:
    probe = load_probe()
    certs = make_certs(tmp_path)
    key, cert = certs.server_key.read_bytes(), certs.server_cert.read_bytes()
    tls = _HealthServer(grpc.ssl_server_credentials([(key, cert)]))
    mtls = _HealthServer(grpc.ssl_server_credentials([(key, cert)], certs.ca.read_bytes(), require_client_auth=True))
    running += [tls, mtls]
    for server in (tls, mtls):
        server.set(health_pb2.HealthCheckResponse.SERVING)
    env = {
        "EMOTION_HOST": "0.0.0.0",
        "EMOTION_TLS_CERT_FILE": str(certs.server_cert),
        "EMOTION_TLS_KEY_FILE": str(certs.server_key),
        "EMOTION_PROBE_CA_FILE": str(certs.ca),
    }
    assert probe.check({**env, "EMOTION_PORT": str(tls.port)})[0]
    # A CA file named ca.crt beside the certificate (as in a kubernetes.io/tls Secret) is found alone.
    beside = tmp_path / "ca.crt"
    beside.write_bytes(certs.ca.read_bytes())
    no_ca = {k: v for k, v in env.items() if k != "EMOTION_PROBE_CA_FILE"}
    assert probe.check({**no_ca, "EMOTION_PORT": str(tls.port)})[0]
    # The wrong name for the certificate fails the check.
    assert not probe.check({**env, "EMOTION_PORT": str(tls.port), "EMOTION_PROBE_SERVER_NAME": "other.example"})[0]
    # mTLS: with a client certificate the CA signed, SERVING; this server certificate may
    # not act as a client (serverAuth only), so the default is refused.
    client = {
        **env,
        "EMOTION_PORT": str(mtls.port),
        "EMOTION_TLS_CLIENT_CA_FILE": str(certs.ca),
        "EMOTION_PROBE_CERT_FILE": str(certs.client_cert),
        "EMOTION_PROBE_KEY_FILE": str(certs.client_key),
    }
    assert probe.check(client)[0]
    without = {k: v for k, v in client.items() if not k.startswith(("EMOTION_PROBE_CERT", "EMOTION_PROBE_KEY"))}
    assert not probe.check(without)[0]
