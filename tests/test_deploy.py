"""The deploy files pass the validators that run offline, and use only real flags and settings.

No Docker engine nor Kubernetes cluster runs here: hadolint lints the Dockerfile, the
Compose Specification's JSON schema checks the compose file, kubernetes-validate checks the
manifests against the API's schemas, yamllint the YAML, `systemd-analyze verify` the units,
and the embedded server binary loads deploy/redis.conf.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis as redis_sync
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from gateway.ops import flags as settings_flags
from gateway.ops.embedded import free_port, server_binary
from gateway.settings import Settings
from gateway.worker.settings import WorkerSettings
from tests.helpers.processes import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
YAML_FILES = sorted(DEPLOY.rglob("*.yaml"))
UNITS = sorted(DEPLOY.glob("*.service"))
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
"""The oldest Kubernetes the manifests are meant for, and the newest the validator knows."""
INSTALLED_GATEWAY = "/opt/gateway/.venv/bin/gateway"
"""Where the units expect the package (not installed on this machine)."""


def tool(name: str) -> str:
    """A command installed by the test extra: beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]'"
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest(kind: str, name: str) -> dict[str, Any]:
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind} {name} in {KUBERNETES}")


# -- validators ------------------------------------------------------------------------------


def test_yaml_files_pass_yamllint() -> None:
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    assert YAML_FILES
    problems = [
        f"{path.relative_to(ROOT)}:{problem.line}: {problem.desc} ({problem.rule})"
        for path in YAML_FILES
        for problem in linter.run(path.read_text(), config, str(path))
    ]
    assert problems == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_kubernetes_manifests_are_valid(path: Path, version: str) -> None:
    for doc in documents(path):
        # strict: an unknown or misspelt field is an error, not silently dropped.
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_refuses_a_misspelt_field() -> None:
    deployment = manifest("Deployment", "gateway")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install gateway\n")
    result = run(tool("hadolint"), str(careless))
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest`


def test_compose_file_matches_the_compose_specification() -> None:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    result = run(sys.executable, "-m", "check_jsonschema", *schema, str(DEPLOY / "compose.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_refuses_a_mistake(tmp_path: Path) -> None:
    compose = documents(DEPLOY / "compose.yaml")[0]
    compose["services"]["gateway"]["depends_on"]["redis"]["condition"] = "service_up"
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(compose))
    schema = ["--builtin-schema", "vendor.compose-spec"]
    result = run(sys.executable, "-m", "check_jsonschema", *schema, str(broken))
    assert result.returncode != 0


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_units_verify(unit: Path, tmp_path: Path) -> None:
    # A template is verified as an instance of it.
    name = unit.name.replace("@.", "@example.")
    copy = tmp_path / name
    copy.write_text(unit.read_text())
    result = run(tool("systemd-analyze"), "--man=no", "verify", str(copy))
    # The one complaint expected here: the package is not installed where the unit runs it.
    problems = [
        line
        for line in result.stderr.splitlines()
        if line
        and not line.endswith(
            f"Command {INSTALLED_GATEWAY} is not executable: No such file or directory"
        )
    ]
    assert problems == []
    assert f"ExecStart={INSTALLED_GATEWAY} " in unit.read_text()


@pytest.fixture
def redis_on_deploy_conf(tmp_path: Path) -> Iterator[redis_sync.Redis]:
    """The server binary started with deploy/redis.conf, as a deployment starts Redis."""
    port = free_port()
    args = [server_binary(), str(DEPLOY / "redis.conf"), "--port", str(port)]
    args += ["--bind", "127.0.0.1", "--dir", str(tmp_path), "--daemonize", "no"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = redis_sync.Redis(port=port, socket_connect_timeout=1)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                assert process.stdout is not None
                pytest.fail(f"the server refused deploy/redis.conf:\n{process.stdout.read()!r}")
            try:
                client.ping()
                break
            except redis_sync.ConnectionError:
                assert time.monotonic() < deadline, "the server did not answer in 10 s"
                time.sleep(0.05)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def test_redis_conf_is_what_durability_assumes(redis_on_deploy_conf: redis_sync.Redis) -> None:
    config = redis_on_deploy_conf.config_get("append*") | redis_on_deploy_conf.config_get(
        "maxmemory-policy"
    )
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "always"
    assert config["maxmemory-policy"] == "noeviction"


# -- what the files say ------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_checks_health() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    healthcheck = next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK "))
    assert "/health" in " ".join(lines[healthcheck : healthcheck + 2])


def test_compose_runs_redis_with_aof_a_gateway_and_a_worker() -> None:
    services = documents(DEPLOY / "compose.yaml")[0]["services"]
    assert "./redis.conf:/etc/valkey/redis.conf:ro" in services["redis"]["volumes"]
    assert "/etc/valkey/redis.conf" in services["redis"]["command"]
    assert services["gateway"]["command"][0] == "serve"
    assert services["worker"]["command"][0] == "worker"


def test_kubernetes_gateway_probes_health_and_readiness() -> None:
    deployment = manifest("Deployment", "gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The sources Secret is mounted where GATEWAY_SOURCES points.
    env = {item["name"]: item.get("value") for item in container["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    secret = next(volume for volume in pod["volumes"] if "secret" in volume)
    file = secret["secret"]["items"][0]["path"]
    assert env["GATEWAY_SOURCES"] == f"{mounts[secret['name']]}/{file}"
    sources = manifest("Secret", "gateway-sources")
    assert secret["secret"]["secretName"] == sources["metadata"]["name"]
    assert file in sources["stringData"]
    # Stopping takes longer than the preStop pause plus the gateway's own grace.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pause + float(env["GATEWAY_SHUTDOWN_GRACE"])


def test_kubernetes_service_pdb_and_autoscaler_point_at_the_gateway() -> None:
    deployment = manifest("Deployment", "gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = manifest("Service", "gateway")["spec"]["selector"]
    assert selector.items() <= labels.items()
    pdb = manifest("PodDisruptionBudget", "gateway")["spec"]["selector"]["matchLabels"]
    assert pdb.items() <= labels.items()
    target = manifest("HorizontalPodAutoscaler", "gateway")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "gateway")
    port = manifest("Service", "gateway")["spec"]["ports"][0]["targetPort"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert port in {p["name"] for p in container["ports"]}
    worker = manifest("Deployment", "gateway-worker")["spec"]["template"]["spec"]
    assert worker["containers"][0]["args"][0] == "worker"


# -- every flag and variable exists ------------------------------------------------------------


def commands() -> list[tuple[str, list[str]]]:
    """Every `gateway` command line in deploy/: (where, arguments after `gateway`)."""
    found: list[tuple[str, list[str]]] = []
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd
    found.append(("Dockerfile CMD", yaml.safe_load(cmd.group(1))))
    for name, service in documents(DEPLOY / "compose.yaml")[0]["services"].items():
        if "command" in service and service.get("image", "").startswith("event-gateway"):
            found.append((f"compose {name}", service["command"]))
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    found.append((f"{path.name} {container['name']}", container["args"]))
    for unit in UNITS:
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                program, *args = line.removeprefix("ExecStart=").split()
                assert program == INSTALLED_GATEWAY
                found.append((unit.name, args))
    return found


@functools.cache
def flags_of(command: str) -> frozenset[str]:
    """The flags `gateway COMMAND --help` lists."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout))


def variables_read() -> set[str]:
    """Every `GATEWAY_*` variable a command reads: serve's settings and the worker's."""
    return {
        *settings_flags.flags(Settings).values(),
        *settings_flags.flags(WorkerSettings).values(),
    }


def test_every_flag_the_deploy_files_pass_exists() -> None:
    found = commands()
    assert {args[0] for _, args in found} == {"serve", "worker"}
    for where, args in found:
        command, *rest = args
        flags = {arg.split("=")[0] for arg in rest if arg.startswith("--")}
        unknown = flags - flags_of(command)
        assert not unknown, f"{where}: gateway {command} has no {sorted(unknown)}"


def test_every_variable_the_deploy_files_set_exists() -> None:
    used: dict[str, set[str]] = {}
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            for name in re.findall(r"\bGATEWAY_[A-Z0-9_]+", path.read_text()):
                used.setdefault(name, set()).add(path.name)
    assert "GATEWAY_REDIS_URL" in used
    read = variables_read()
    unknown = {name: sorted(files) for name, files in used.items() if name not in read}
    assert unknown == {}
