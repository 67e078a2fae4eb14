"""Static checks of compose/docker-compose.yml, with no Docker engine: Compose v2 itself
(`docker-compose config`, from PyPI) resolves it for each profile, the compose-spec JSON schema
validates it, and the resolved model is checked for what `make up TARGET=docker` relies on:
healthchecks behind every `service_healthy`, one-shot init services adopted so `up --wait` ends,
commands the images can run, service names the docker settings expect, memory for a laptop.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from pipeline.config.environment import variable_name
from pipeline.config.settings import DockerSettings, Settings
from tests.support.dockerfiles import (
    ROOT,
    command_problem,
    parse_dockerfile,
    venv_tool,
)

COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# The profile sets `up` is meant for. `batch` is run, not upped: `docker compose run spark-batch`.
UP_PROFILES: list[tuple[str, ...]] = [(), ("ui",), ("ui", "airflow"), ("ui", "localstack")]
ALL_PROFILES: tuple[str, ...] = ("*",)
# The most the limits may add up to (a guard against creep). The containers never all peak at
# once: `make test-compose` measured at most 4.8 GiB in use together (docs/docker.md).
MEMORY_BUDGET = int(8.75 * 2**30)
PIPELINE_IMAGES = ("images/pipeline/Dockerfile",)
# The target of images/pipeline/Dockerfile each pipeline service runs: Spark only where it runs.
PIPELINE_TARGETS = {
    "provision": "api",
    "register-connector": "api",
    "seed": "api",
    "api": "api",
    "emulator-batch": "api",
    "emulator-stream": "api",
    "spark-stream": "spark",
    "spark-batch": "spark",
    "airflow": "airflow",
    "airflow-scheduler": "airflow",
    "airflow-dag-processor": "airflow",
}

Service = dict[str, Any]


def compose(
    *args: str, profiles: tuple[str, ...] = (), env_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Compose v2 on our file, with profiles given here only (none from the environment)."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")
    }
    command = [str(venv_tool("docker-compose")), "-f", str(COMPOSE_FILE)]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    for profile in profiles:
        command += ["--profile", profile]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=environment, check=False, timeout=60
    )


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.env.example without COMPOSE_PROFILES (each test picks its profiles), and with the kind of
    AWS credentials a developer may keep in .env for the aws target: they must stay out."""
    lines = [
        line
        for line in ENV_EXAMPLE.read_text().splitlines()
        if not line.startswith(("COMPOSE_", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="))
    ]
    lines += ["AWS_ACCESS_KEY_ID=AKIA-for-aws-only", "AWS_SECRET_ACCESS_KEY=secret-for-aws-only"]
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


@cache
def _resolved(profiles: tuple[str, ...], env_file: Path) -> dict[str, Any]:
    result = compose("config", "--format", "json", profiles=profiles, env_file=env_file)
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def services(profiles: tuple[str, ...], env_file: Path) -> dict[str, Service]:
    found: dict[str, Service] = _resolved(profiles, env_file)["services"]
    return found


def is_one_shot(service: Service) -> bool:
    return bool(service.get("restart", "no") == "no")


def dockerfile_of(service: Service) -> tuple[Path, str | None] | None:
    build = service.get("build")
    if not build:
        return None
    return Path(build["context"]) / build.get("dockerfile", "Dockerfile"), build.get("target")


def image_healthcheck(service: Service) -> str | None:
    built = dockerfile_of(service)
    if built is None:
        return None
    parsed = parse_dockerfile(built[0])
    return parsed.last(parsed.stage(built[1]), "HEALTHCHECK")


def has_healthcheck(service: Service) -> bool:
    own = service.get("healthcheck")
    if own is not None:
        return not own.get("disable", False) and bool(own.get("test"))
    return image_healthcheck(service) is not None


def command_of(service: Service) -> list[str]:
    """What the container runs: the service's command, or its image's CMD."""
    assert service.get("entrypoint") is None, "keep commands plain: no entrypoint overrides"
    if service.get("command") is not None:
        command: list[str] = service["command"]
        return command
    built = dockerfile_of(service)
    assert built is not None, "an upstream image without a command: nothing to check"
    parsed = parse_dockerfile(built[0])
    cmd = parsed.last(parsed.stage(built[1]), "CMD")
    assert cmd is not None
    argv: list[str] = json.loads(cmd)
    return argv


def memory_bytes(service: Service) -> int:
    return int(service["mem_limit"])


def jvm_size(value: str) -> int:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


# -- Compose itself and the compose-spec schema ------------------------------------------------


@pytest.mark.parametrize("profiles", [*UP_PROFILES, ("batch",), ALL_PROFILES], ids=str)
def test_compose_config_resolves(profiles: tuple[str, ...], env_file: Path) -> None:
    result = compose("config", "--quiet", profiles=profiles, env_file=env_file)
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr


def test_compose_file_and_resolved_model_match_the_compose_spec(
    env_file: Path, tmp_path: Path
) -> None:
    resolved = compose("config", profiles=ALL_PROFILES, env_file=env_file)
    assert resolved.returncode == 0, resolved.stderr
    (tmp_path / "resolved.yml").write_text(resolved.stdout)
    for document in (COMPOSE_FILE, tmp_path / "resolved.yml"):
        check = subprocess.run(
            [
                str(venv_tool("check-jsonschema")),
                "--builtin-schema",
                "vendor.compose-spec",
                str(document),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, f"{document}:\n{check.stdout}{check.stderr}"


def test_env_example_turns_on_kafka_ui_and_airflow(tmp_path: Path) -> None:
    """A Docker user's stack has the daily DAG: .env.example's profiles (and `make up`, which
    adds the `airflow` profile itself, whatever an older .env says)."""
    result = compose("config", "--services", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    names = set(result.stdout.split())
    assert {"kafka-ui", "airflow", "airflow-scheduler", "airflow-dag-processor"} <= names
    assert not names & {"localstack", "spark-batch"}
    makefile = (ROOT / "Makefile").read_text()
    assert "$(COMPOSE) --profile airflow up --detach --build --wait" in makefile


def test_pipeline_services_build_their_images_target(env_file: Path) -> None:
    everything = services(ALL_PROFILES, env_file)
    targets = {}
    for name, service in everything.items():
        built = dockerfile_of(service)
        if built is not None and built[0] == ROOT / PIPELINE_IMAGES[0]:
            targets[name] = built[1]
    assert targets == PIPELINE_TARGETS
    for name, target in PIPELINE_TARGETS.items():
        assert everything[name]["image"].startswith(f"pinpipe/{target}:"), name


def test_builds_need_only_docker(env_file: Path) -> None:
    """The base images a build starts from are the pinned defaults, overridable per machine."""
    for name, service in services(ALL_PROFILES, env_file).items():
        build = service.get("build")
        if not build:
            continue
        parsed = parse_dockerfile(Path(build["context"]) / build["dockerfile"])
        for arg in build.get("args", {}):
            assert arg in parsed.global_args, (
                f"{name}: build arg {arg} is not one its Dockerfile takes"
            )
        args = build.get("args", {})
        for arg, default in parsed.global_args.items():
            if arg.endswith("_IMAGE"):
                assert args.get(arg) == default, f"{name}: {arg}={args.get(arg)}, not {default}"


def test_services_the_issue_names_are_there(env_file: Path) -> None:
    names = set(services(ALL_PROFILES, env_file))
    assert names >= {
        "kafka",
        "connect",
        "s3",
        "kinesis",
        "localstack",
        "api",
        "emulator-batch",
        "emulator-stream",
        "spark-batch",
        "spark-stream",
        "airflow",
        "airflow-scheduler",
        "airflow-dag-processor",
        "kafka-ui",
        "provision",
        "register-connector",
        "seed",
    }


# -- health and start-up order ---------------------------------------------------------------


def test_services_waited_on_as_healthy_have_a_healthcheck(env_file: Path) -> None:
    everything = services(ALL_PROFILES, env_file)
    for name, service in everything.items():
        for dependency, how in service.get("depends_on", {}).items():
            if how["condition"] == "service_healthy":
                assert dependency in everything, f"{name} waits on unknown {dependency}"
                assert has_healthcheck(everything[dependency]), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )


def test_every_long_running_service_has_a_healthcheck(env_file: Path) -> None:
    for name, service in services(ALL_PROFILES, env_file).items():
        if not is_one_shot(service):
            assert has_healthcheck(service), f"{name} runs on without a healthcheck"


def test_one_shot_services_are_awaited_to_completion(env_file: Path) -> None:
    everything = services(ALL_PROFILES, env_file)
    one_shots = {name for name, service in everything.items() if is_one_shot(service)}
    assert one_shots >= {"provision", "register-connector", "seed", "spark-batch"}
    for name, service in everything.items():
        for dependency, how in service.get("depends_on", {}).items():
            if dependency in one_shots:
                assert how["condition"] == "service_completed_successfully", (
                    f"{name} must wait for one-shot {dependency} to complete, not to be healthy"
                )


@pytest.mark.parametrize("profiles", UP_PROFILES, ids=str)
def test_up_wait_can_finish(profiles: tuple[str, ...], env_file: Path) -> None:
    """`up --wait` fails on an exited one-shot unless a running service depends on it."""
    active = services(profiles, env_file)
    adopted = {
        dependency
        for service in active.values()
        if not is_one_shot(service)
        for dependency, how in service.get("depends_on", {}).items()
        if how["condition"] == "service_completed_successfully"
    }
    orphans = {name for name, service in active.items() if is_one_shot(service)} - adopted
    assert not orphans, f"with profiles {profiles}, nothing long-running waits for {orphans}"


def test_optional_dependencies_are_only_profiled_services(env_file: Path) -> None:
    everything = services(ALL_PROFILES, env_file)
    default = services((), env_file)
    for name, service in everything.items():
        for dependency, how in service.get("depends_on", {}).items():
            if not how.get("required", True):
                assert dependency not in default, f"{name}: {dependency} is always there"
                assert everything[dependency].get("profiles"), dependency


# -- what the containers run ------------------------------------------------------------------


def test_every_command_exists_in_its_image(env_file: Path) -> None:
    problems = {}
    for name, service in services(ALL_PROFILES, env_file).items():
        if dockerfile_of(service) is None:
            continue  # upstream images (Kafka UI, LocalStack) run their own
        problem = command_problem(command_of(service))
        if problem:
            problems[name] = problem
    assert not problems, problems


def test_python_healthchecks_run(env_file: Path, tmp_path: Path) -> None:
    """`python3 -c` healthchecks import real code: run each where nothing is up (→ exit 1)."""
    for name, service in services(ALL_PROFILES, env_file).items():
        test = service.get("healthcheck", {}).get("test", [])
        if test[:3] != ["CMD", "python3", "-c"]:
            continue
        result = subprocess.run(
            [sys.executable, "-c", test[3]],
            capture_output=True,
            text=True,
            env={**os.environ, **service["environment"], "PINPIPE_RUN_DIR": str(tmp_path)},
            check=False,
            timeout=60,
        )
        assert result.returncode == 1, f"{name}: {result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr, f"{name}: {result.stderr}"


def test_healthcheck_probes_use_the_script_the_images_copy(env_file: Path) -> None:
    for name, service in services(ALL_PROFILES, env_file).items():
        test = service.get("healthcheck", {}).get("test", [])
        if dockerfile_of(service) is not None and "/opt/pinpipe/healthcheck.py" in test:
            assert test[:3] == ["CMD", "python3", "/opt/pinpipe/healthcheck.py"], name
            assert test[3] in ("http", "json", "kafka", "kinesis"), name


# -- configuration: settings, credentials, ports, volumes, memory -----------------------------


def test_service_names_are_the_docker_settings_endpoints(env_file: Path) -> None:
    everything = services(ALL_PROFILES, env_file)
    settings = DockerSettings()
    endpoints = {
        "kafka": settings.kafka_bootstrap_servers,
        "connect": settings.connect_url,
        "s3": settings.endpoint_url("s3") or "",
        "kinesis": settings.endpoint_url("kinesis") or "",
        "api": settings.api_url,
    }
    for name, address in endpoints.items():
        parsed = urlparse(address if "//" in address else f"//{address}")
        assert parsed.hostname == name, f"DockerSettings points at {address}, not `{name}`"
        assert name in everything
        healthcheck = json.dumps(
            everything[name].get("healthcheck") or image_healthcheck(everything[name])
        )
        assert f"127.0.0.1:{parsed.port}" in healthcheck, f"{name} listens on {parsed.port}"


def test_pipeline_containers_run_the_docker_target_with_dummy_credentials(env_file: Path) -> None:
    settings = DockerSettings()
    for name, service in services(ALL_PROFILES, env_file).items():
        built = dockerfile_of(service)
        if built is None or str(built[0].relative_to(ROOT)) not in PIPELINE_IMAGES:
            continue
        environment = service["environment"]
        assert environment["PINPIPE_TARGET"] == "docker", name
        # each service's own endpoint, as the SDKs read it; none for all services at once
        assert environment["AWS_ENDPOINT_URL_S3"] == settings.endpoint_url("s3") == "http://s3:4566"
        assert environment["AWS_ENDPOINT_URL_KINESIS"] == settings.endpoint_url("kinesis"), name
        assert "AWS_ENDPOINT_URL" not in environment, name
        assert environment["AWS_ACCESS_KEY_ID"] == environment["AWS_SECRET_ACCESS_KEY"] == "test"


# Variables compose itself reads, never a container: images and their tag, ports published only
# by compose services, the endpoint choice (passed on as AWS_ENDPOINT_URL_S3/_KINESIS) and the
# broker's cluster id (KAFKA_CLUSTER_ID of the Kafka image).
COMPOSE_ONLY_VARIABLES = {
    "PINPIPE_PYTHON_IMAGE",
    "PINPIPE_MAVEN_IMAGE",
    "PINPIPE_NODE_IMAGE",
    "PINPIPE_IMAGE_TAG",
    "PINPIPE_KAFKA_UI_PORT",
    "PINPIPE_LOCALSTACK_PORT",
    "PINPIPE_DOCKER_S3_URL",
    "PINPIPE_DOCKER_KINESIS_URL",
    "PINPIPE_KAFKA_CLUSTER_ID",
}


def test_every_pinpipe_variable_is_a_setting_or_compose_only(env_file: Path) -> None:
    """What a container reads is a Settings field (one name, documented, in pipeline.env); what
    the compose file interpolates is too, unless compose alone reads it."""
    settings_variables = {
        variable
        for name, field in Settings.model_fields.items()
        for variable in (f"PINPIPE_{name.upper()}", variable_name(name))
    }
    for name, service in services(ALL_PROFILES, env_file).items():
        read = {key for key in service.get("environment", {}) if key.startswith("PINPIPE_")}
        assert read <= settings_variables, f"{name} reads {read - settings_variables}"
    interpolated = set(re.findall(r"\$\{(PINPIPE_\w+)", COMPOSE_FILE.read_text()))
    assert interpolated - settings_variables <= COMPOSE_ONLY_VARIABLES, (
        interpolated - settings_variables - COMPOSE_ONLY_VARIABLES
    )


def test_containers_publish_ports_on_loopback_only(env_file: Path) -> None:
    for name, service in services(ALL_PROFILES, env_file).items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_state_lives_in_named_volumes(env_file: Path) -> None:
    model = _resolved(ALL_PROFILES, env_file)
    declared = set(model.get("volumes", {}))
    used = set()
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "volume":
                used.add(volume["source"])
            else:  # a bind mount: the repository's own files, read-only
                assert volume.get("read_only"), f"{name} writes to the host: {volume}"
                assert Path(volume["source"]).is_relative_to(ROOT), volume
    assert used == declared, f"declared but unused or undeclared volumes: {used ^ declared}"
    assert used >= {"kafka-data", "source-data", "airflow-home", "s3-data", "kinesis-data"}


def test_every_service_has_a_memory_limit(env_file: Path) -> None:
    for name, service in services(ALL_PROFILES, env_file).items():
        assert memory_bytes(service) > 0, f"{name} has no mem_limit"


# Init services finish within seconds of the stack's start, before the Spark and Airflow
# services have warmed up, so they do not count; the batch job (a one-shot too) does.
INIT_SERVICES = {"provision", "register-connector", "seed"}


@pytest.mark.parametrize("profiles", [*UP_PROFILES, ("ui", "batch")], ids=str)
def test_the_memory_limits_stay_within_the_budget(
    profiles: tuple[str, ...], env_file: Path
) -> None:
    """Every container but the init services at its limit at once stays within the budget."""
    total = sum(
        memory_bytes(service)
        for name, service in services(profiles, env_file).items()
        if name not in INIT_SERVICES
    )
    assert total <= MEMORY_BUDGET, f"{profiles}: {total / 2**30:.2f} GiB of limits"


def test_spark_drivers_fit_their_containers(env_file: Path) -> None:
    """Where Spark drivers run (the jobs; Airflow's scheduler runs the DAG's `spark-submit`)."""
    for name, service in services(ALL_PROFILES, env_file).items():
        command = command_of(service)[:2] if dockerfile_of(service) else []
        if command not in (["pinpipe", "batch"], ["pinpipe", "stream"], ["airflow", "scheduler"]):
            continue
        # the stream job has a heap setting of its own (a long-running driver)
        stream = command == ["pinpipe", "stream"]
        variable = "PINPIPE_STREAM_DRIVER_MEMORY" if stream else "PINPIPE_SPARK_DRIVER_MEMORY"
        driver = service["environment"][variable]
        # the driver's heap plus the JVM's own memory and the Python process
        assert jvm_size(driver) + 384 * 2**20 <= memory_bytes(service), name


def test_images_are_built_from_the_repository_or_pinned(env_file: Path) -> None:
    for name, service in services(ALL_PROFILES, env_file).items():
        built = dockerfile_of(service)
        image = service["image"]
        if built is None:
            tag = image.rpartition(":")[2]
            assert ":" in image and tag not in ("latest", "main"), f"{name}: pin {image}"
            assert tag[0].isdigit() or tag.startswith("v"), f"{name}: {image} is no release"
        else:
            assert str(built[0].relative_to(ROOT)) in (
                *PIPELINE_IMAGES,
                "images/kafka/Dockerfile",
                "images/kinesis/Dockerfile",
            )
            assert built[0].parent.parent == ROOT / "images"
            assert Path(service["build"]["context"]) == ROOT, "context = repository root"


def test_stream_heartbeat_is_where_its_healthcheck_looks(env_file: Path) -> None:
    from pipeline.stream.component import progress_path

    service = services(ALL_PROFILES, env_file)["spark-stream"]
    environment = service["environment"]
    settings = DockerSettings(
        run_dir=Path(environment["PINPIPE_RUN_DIR"]),
        topic_prefix=environment["PINPIPE_TOPIC_PREFIX"],
    )
    command = service["command"]
    assert command[command.index("--progress-file") + 1] == str(progress_path(settings))


# Where a container must differ from the local stack's Airflow: addresses and image paths.
AIRFLOW_CONTAINER_KEYS = {
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__API__HOST",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
}


@pytest.mark.parametrize("name", ["airflow", "airflow-scheduler", "airflow-dag-processor"])
def test_airflow_runs_with_the_local_stacks_settings(name: str, env_file: Path) -> None:
    from pipeline.stack.airflow import airflow_environment

    service = services(ALL_PROFILES, env_file)[name]
    ours = {
        key: value for key, value in service["environment"].items() if key.startswith("AIRFLOW")
    }
    settings = DockerSettings(run_dir=Path(service["environment"]["PINPIPE_RUN_DIR"]))
    local = {
        key: value
        for key, value in airflow_environment(settings).items()
        if key.startswith("AIRFLOW")
    }
    differing = {key for key in ours.keys() | local.keys() if ours.get(key) != local.get(key)}
    assert differing <= AIRFLOW_CONTAINER_KEYS, {
        key: (ours.get(key), local.get(key)) for key in differing - AIRFLOW_CONTAINER_KEYS
    }
    assert ours["AIRFLOW_HOME"] in ours["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    volumes = {volume["target"]: volume for volume in service["volumes"]}
    assert volumes[ours["AIRFLOW_HOME"]]["source"] == "airflow-home", "one home, shared"
    assert volumes[ours["AIRFLOW__CORE__DAGS_FOLDER"]]["source"] == str(ROOT / "dags")
