"""Static checks of images/*/Dockerfile and docker/: lint, pinned bases, non-root, healthchecks,
entry commands that exist, build-context sources (nothing from the host's .cache/: the builds
resolve jars, Node and Python packages themselves), one Dockerfile with a target per Python image,
and container configs in step with the local stack's. No Docker engine needed. The parsing and
command checks are in tests/support/dockerfiles.py (test_compose.py uses them too).
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from pipeline.config.settings import DockerSettings
from pipeline.stack.configs import LOG4J2_CONSOLE, connect_properties, kafka_properties
from tests.support.dockerfiles import (
    ROOT,
    Stage,
    command_problem,
    exec_form,
    healthcheck_argv,
    parse_dockerfile,
    venv_tool,
)
from tests.support.kinesis_server import kinesis_server

DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
BASE_IMAGE = "python:3.11-slim-bookworm"
# Images only build stages start FROM (their output is copied into a runtime image), by the build
# arg naming them: scripts/build-base-images.sh builds look-alikes under these tags.
BUILD_IMAGES = {"MAVEN_IMAGE": "maven:3-eclipse-temurin-17", "NODE_IMAGE": "node:18-bookworm-slim"}
PIPELINE_DOCKERFILE = ROOT / "images" / "pipeline" / "Dockerfile"
HEALTHCHECK_SCRIPT = "/opt/pinpipe/healthcheck.py"


# -- the tests ------------------------------------------------------------------------------------


def test_every_image_has_a_dockerfile() -> None:
    assert {path.parent.name for path in DOCKERFILES} == {"pipeline", "kafka", "kinesis"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [venv_tool("hadolint"), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_one_pinned_base_image(dockerfile: Path) -> None:
    """Every image runs on the one pinned Python base; build-only stages start from a pinned
    Maven or Node image (or from an earlier stage)."""
    parsed = parse_dockerfile(dockerfile)
    assert parsed.global_args.get("PYTHON_IMAGE") == BASE_IMAGE
    names = {stage.name for stage in parsed.stages}
    for stage in parsed.stages:
        if stage.base in names:
            continue
        arg = stage.base.removeprefix("${").removesuffix("}")
        assert arg == "PYTHON_IMAGE" or parsed.global_args.get(arg) == BUILD_IMAGES.get(arg), (
            f"{dockerfile}: stage {stage.name or '?'} is built FROM {stage.base}"
        )
    for stage in parsed.runtime_stages():
        assert parsed.chain(stage)[-1].base == "${PYTHON_IMAGE}", f"{dockerfile}: {stage.name}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_builds_need_no_image_but_the_base(dockerfile: Path) -> None:
    """No `# syntax=` frontend (BuildKit would pull it) and no COPY --from an image: a machine
    that has only the base image (built locally, say) can build every image."""
    text = dockerfile.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    stages = {stage.name for stage in parse_dockerfile(dockerfile).stages}
    for source in re.findall(r"--from=(\S+)", text):
        assert source in stages, f"{dockerfile}: COPY --from={source} is no stage of this file"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_runtime_stages_run_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    parsed = parse_dockerfile(dockerfile)
    assert parsed.runtime_stages()
    for stage in parsed.runtime_stages():
        user = parsed.last(stage, "USER")
        assert user is not None, f"{dockerfile} {stage.name}: no USER, so it runs as root"
        assert user.split(":")[0] not in ("root", "0"), f"{dockerfile} {stage.name}: USER {user}"
        assert parsed.global_args.get("UID", "0").isdigit() and user == "${UID}:${UID}"
        assert int(parsed.global_args["UID"]) >= 1000


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_runtime_stages_have_a_healthcheck_that_is_copied_in(dockerfile: Path) -> None:
    parsed = parse_dockerfile(dockerfile)
    for stage in parsed.runtime_stages():
        healthcheck = parsed.last(stage, "HEALTHCHECK")
        assert healthcheck is not None, f"{dockerfile} {stage.name}: no HEALTHCHECK"
        argv = healthcheck_argv(healthcheck)
        assert argv[:2] == ["python3", HEALTHCHECK_SCRIPT], argv
        copies = [args for member in parsed.chain(stage) for args in member.all("COPY")]
        assert f"docker/healthcheck.py {HEALTHCHECK_SCRIPT}" in copies


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_entry_commands_exist(dockerfile: Path) -> None:
    parsed = parse_dockerfile(dockerfile)
    for stage in parsed.runtime_stages():
        assert parsed.last(stage, "ENTRYPOINT") is None, "commands are plain CMDs"
        command = parsed.last(stage, "CMD")
        assert command is not None
        problem = command_problem(exec_form(command))
        assert problem is None, f"{dockerfile} {stage.name}: {problem}"


def dockerignore_allows(path: str) -> bool:
    """.dockerignore is an allowlist: `*`, then `!` exceptions (checked to stay that simple)."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore must start by excluding everything"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    return any(path == entry or path.startswith(entry + "/") for entry in allowed)


def copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for stage in parse_dockerfile(dockerfile).stages:
        for args in stage.all("COPY"):
            words = [word for word in args.split() if not word.startswith("--")]
            if "--from=" not in args:
                sources += [word.rstrip("/") for word in words[:-1]]
    return sources


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_copy_sources_exist_and_are_in_the_build_context(dockerfile: Path) -> None:
    for source in copy_sources(dockerfile):
        assert not source.startswith(".cache"), (
            f"{dockerfile}: COPY {source}: a clone has no .cache/; resolve it in a build stage"
        )
        assert (ROOT / source).exists(), f"{dockerfile}: COPY {source}: missing"
        assert dockerignore_allows(source), f"{dockerfile}: {source} is excluded by .dockerignore"


def test_build_context_keeps_secrets_and_local_state_out() -> None:
    for path in (
        *(".env", ".venv/bin/python", ".run/logs", ".git/config", "tests/unit", "bench"),
        # what `make setup` resolved on the host: the builds resolve their own
        *(
            ".cache/jvm/kafka",
            ".cache/node/node_modules",
            "jvm/s3-sink/target",
            "jvm/s3-sink/src/test",
        ),
    ):
        assert not dockerignore_allows(path), f"{path} would be sent to the Docker daemon"


def test_the_builds_resolve_every_jvm_profile_the_local_setup_resolves() -> None:
    """The Maven stages run the profiles of scripts/resolve-jvm.sh, and the images copy each
    profile's output to where the local stack's .cache/jvm/<component> is used."""
    script = (ROOT / "scripts/resolve-jvm.sh").read_text()
    loop = re.search(r"for profile in ([\w\s-]+); do", script)
    assert loop is not None, "scripts/resolve-jvm.sh no longer loops over the profiles"
    local = set(loop.group(1).split())
    built: set[str] = set()
    for dockerfile in DOCKERFILES:
        for stage in parse_dockerfile(dockerfile).stages:
            for run in stage.all("RUN"):
                if run.startswith("mvn "):
                    assert "-s settings.xml" in run and "-Djvm.out=/jars" in run, run
                    built.update(re.findall(r"-P ([\w-]+)", run))
    assert built == local == {"kafka", "s3-sink", "spark", "s3proxy"}
    copies = [
        args
        for path in DOCKERFILES
        for s in parse_dockerfile(path).stages
        for args in s.all("COPY")
    ]
    for expected in (
        "--from=kafka-jars /jars/kafka/ /opt/kafka/libs/",
        "--from=plugin-jars /jars/plugins/ /opt/kafka/plugins/",
        "--from=s3proxy-jars /jars/s3proxy/ /opt/s3proxy/libs/",
        # where settings' jvm_dir (PROJECT_ROOT/.cache/jvm) points in the image
        "--from=spark-jars /jars/spark/ /app/.cache/jvm/spark/",
    ):
        assert expected in copies


# What each Python image installs from uv.lock besides the package: the API image runs the `pinpipe`
# CLI's API, emulator and provisioning commands and no Spark job, so it leaves Spark out.
IMAGE_SYNC_OPTIONS = {
    "api": "--no-default-groups --extra api --extra source --extra stack",
    "spark": "--no-default-groups --all-extras",
    "airflow": "--no-default-groups --all-extras --group airflow",
}


def sync_options(stage: Stage) -> list[str]:
    return re.findall(
        r"uv sync --frozen (.*?)(?: --no-install-project)?$", "\n".join(stage.all("RUN")), re.M
    )


def test_one_dockerfile_builds_the_python_images_as_targets() -> None:
    """api, spark and airflow are targets of images/pipeline/Dockerfile; each target's venv
    installs the locked dependencies (then the package) with that image's options only, and
    the runtime image copies that venv."""
    parsed = parse_dockerfile(PIPELINE_DOCKERFILE)
    targets = {stage.name for stage in parsed.runtime_stages()}
    assert targets == set(IMAGE_SYNC_OPTIONS)
    for image, options in IMAGE_SYNC_OPTIONS.items():
        deps, venv = parsed.stage(f"{image}-deps"), parsed.stage(f"{image}-venv")
        assert venv.base == deps.name
        assert sync_options(deps) == [options] and sync_options(venv) == [options], image
        assert "--no-install-project" in deps.all("RUN")[0]
        # the editable install is built without the code: code edits reuse the venv layers
        assert not venv.all("COPY"), f"{image}: the venv stage copies {venv.all('COPY')}"
        runtime = parsed.stage(image)
        assert f"--from={venv.name} /opt/venv /opt/venv" in runtime.all("COPY")
        jvm = any(member.name == "jvm-runtime" for member in parsed.chain(runtime))
        assert jvm == (image != "api"), f"{image}: Java only where Spark runs"
    assert not any(path.parent.name in IMAGE_SYNC_OPTIONS for path in DOCKERFILES), (
        "one Dockerfile for the Python images, not a copy per image"
    )


@cache
def locked_packages(options: str) -> frozenset[str]:
    """The packages uv.lock resolves for `uv sync --frozen OPTIONS` (uv export, no install)."""
    result = subprocess.run(
        ["uv", "export", "--frozen", "--no-hashes", "--no-emit-project", *options.split()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return frozenset(
        re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower()
        for line in result.stdout.splitlines()
        if line and not line.startswith(("#", " "))
    )


def test_each_image_gets_what_it_runs_and_the_api_image_no_spark() -> None:
    api, spark, airflow = (
        locked_packages(IMAGE_SYNC_OPTIONS[i]) for i in ("api", "spark", "airflow")
    )
    assert {"flask-openapi3", "gunicorn", "confluent-kafka", "faker", "sqlalchemy"} <= api
    assert not api & {"pyspark", "delta-spark", "apache-airflow", "pytest", "mypy"}, api
    assert {"pyspark", "delta-spark"} <= spark and "apache-airflow" not in spark
    assert {"pyspark", "apache-airflow"} <= airflow
    # each dependency stage adds to the one it starts FROM
    assert api <= spark <= airflow
    parsed = parse_dockerfile(PIPELINE_DOCKERFILE)
    assert parsed.stage("spark-deps").base == "api-deps"
    assert parsed.stage("airflow-deps").base == "spark-deps"


def test_the_dependency_layers_copy_only_what_they_install_from() -> None:
    """Before the dependency installs only the manifest and the lock are copied, so editing the
    README or the code reuses the cached dependency layers of every Python image."""
    parsed = parse_dockerfile(PIPELINE_DOCKERFILE)
    for image in IMAGE_SYNC_OPTIONS:
        copied = [
            args
            for member in parsed.chain(parsed.stage(f"{image}-deps"))
            for key, args in member.instructions
            if key == "COPY"
        ]
        assert copied == ["pyproject.toml uv.lock ./"], f"{image}: copied first: {copied}"


# -- container configs stay in step with the local stack's -------------------------------------


def properties(text: str) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


# Addresses and paths are the only things a container may set differently.
KAFKA_CONTAINER_KEYS = {
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "listener.security.protocol.map",
    "log.dirs",
}
CONNECT_CONTAINER_KEYS = {
    "listeners",
    "plugin.path",
    "rest.advertised.host.name",
    "rest.advertised.port",
}


@pytest.mark.parametrize(
    ("path", "local", "container_keys"),
    [
        ("docker/kafka/server.properties", kafka_properties, KAFKA_CONTAINER_KEYS),
        (
            "docker/connect/connect-distributed.properties",
            connect_properties,
            CONNECT_CONTAINER_KEYS,
        ),
    ],
    ids=["kafka", "connect"],
)
def test_container_configs_match_the_local_stack(
    path: str, local: object, container_keys: set[str]
) -> None:
    assert callable(local)
    ours = properties((ROOT / path).read_text())
    theirs = properties(local(DockerSettings()))
    differing = {key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key)}
    assert differing <= container_keys, f"{path} differs from the local stack in {differing}"


def test_container_logging_matches_the_local_stack() -> None:
    ours = properties((ROOT / "docker/log4j2.properties").read_text())
    assert ours == properties(LOG4J2_CONSOLE)


def test_broker_advertises_the_compose_address_and_the_published_port() -> None:
    config = properties((ROOT / "docker/kafka/server.properties").read_text())
    script = (ROOT / "docker/kafka/start-broker.sh").read_text()
    bootstrap = DockerSettings().kafka_bootstrap_servers
    assert f"PLAINTEXT://{bootstrap}" in config["advertised.listeners"]
    assert f"PLAINTEXT://{bootstrap}," in script, "the start script's override keeps it"
    assert "HOST://0.0.0.0:19092" in config["listeners"]


# -- the healthcheck script, against real sockets on loopback -----------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path in ("/ok", "/health") else 503)
        self.end_headers()
        if self.path == "/health":  # the shape of Airflow's /api/v2/monitor/health
            body = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy"}}
            self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "docker/healthcheck.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_http_probe_is_healthy_only_on_2xx(http_server: str) -> None:
    assert _probe("http", f"http://{http_server}/ok").returncode == 0
    unhealthy = _probe("http", f"http://{http_server}/busy")
    assert unhealthy.returncode == 1
    assert "answered 503" in unhealthy.stdout


def test_json_probe_checks_a_value_in_the_body(http_server: str) -> None:
    url = f"http://{http_server}/health"
    assert _probe("json", url, "metadatabase.status=healthy").returncode == 0
    unhealthy = _probe("json", url, "scheduler.status=healthy")
    assert unhealthy.returncode == 1
    assert "scheduler.status is 'unhealthy'" in unhealthy.stdout
    assert _probe("json", url, "dag_processor.status=healthy").returncode == 1
    assert _probe("json", f"http://{http_server}/ok", "a=b").returncode == 1  # no JSON


def test_kinesis_probe_asks_the_real_server_for_its_streams(
    http_server: str, tmp_path: Path
) -> None:
    with kinesis_server(tmp_path / "kinesis", tmp_path / "kinesis.log") as server:
        assert _probe("kinesis", f"{server.url}/").returncode == 0
    not_kinesis = _probe("kinesis", f"http://{http_server}/")  # answers POST with 501
    assert not_kinesis.returncode == 1
    assert "answered ListStreams with 501" in not_kinesis.stdout


def test_probes_fail_with_a_reason_when_nothing_listens(http_server: str) -> None:
    not_kafka = _probe("kafka", http_server)  # an HTTP server drops the Kafka request
    assert not_kafka.returncode == 1
    assert "unreachable" in not_kafka.stdout
    closed = _probe("http", "http://127.0.0.1:9/")
    assert closed.returncode == 1
    assert "unreachable" in closed.stdout


def test_probe_usage_errors_exit_2() -> None:
    assert _probe("ftp", "x").returncode == 2
    assert _probe("json", "http://127.0.0.1:9/").returncode == 2
