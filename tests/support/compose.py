"""The compose stack of compose/docker-compose.yml as tests drive it: the compose command, one
start-up for every stack the tests bring up (tests/compose: the default one and the one on
LocalStack), and what the host needs to reach it through its published ports."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipeline.config import LocalSettings
from pipeline.config.settings import PROJECT_ROOT
from pipeline.landing import read_ledger
from tests.support import batch_scenario

COMPOSE_FILE = PROJECT_ROOT / "compose" / "docker-compose.yml"
PROJECT = os.environ.get("PINPIPE_COMPOSE_TEST_PROJECT", "pinpipe-test")
# Published ports apart from a developer's compose stack and from the local test stack (+10000).
PORT_OFFSET = int(os.environ.get("PINPIPE_COMPOSE_TEST_PORT_OFFSET", "20000"))
PORTS = {
    "PINPIPE_KAFKA_PORT": 9092,
    "PINPIPE_CONNECT_PORT": 8083,
    "PINPIPE_S3_PORT": 4566,
    "PINPIPE_KINESIS_PORT": 4568,
    "PINPIPE_API_PORT": 8000,
    "PINPIPE_AIRFLOW_PORT": 8080,
    "PINPIPE_STREAM_METRICS_PORT": 9464,
}
FLUSH_INTERVAL_MS = 5000


def compose_cli() -> list[str]:
    """Docker's compose plugin when installed, else the same Compose v2 from PyPI (dev group)."""
    configured = os.environ.get("COMPOSE_CLI")
    if configured:
        return shlex.split(configured)
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if shutil.which("docker") and plugin.returncode == 0:
        return ["docker", "compose"]
    return [str(Path(sys.executable).parent / "docker-compose")]


@dataclass
class ComposeStack:
    """The running stack: how the host reaches it, and a folder one-shots write to (/out)."""

    env_file: Path
    host: LocalSettings
    out: Path
    # a second stack (tests/compose/test_localstack.py) runs under a project name of its own
    project: str = PROJECT

    def command(self, *arguments: str) -> list[str]:
        return [
            *compose_cli(),
            "--project-name",
            self.project,
            "--file",
            str(COMPOSE_FILE),
            "--env-file",
            str(self.env_file),
            *arguments,
        ]

    def run(self, *arguments: str, timeout_s: float = 900) -> str:
        """A compose command; fails the test with its output when it fails."""
        result = subprocess.run(
            self.command(*arguments), capture_output=True, text=True, timeout=timeout_s
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            pytest.fail(
                f"`compose {' '.join(arguments)}` failed:\n{output[-6000:]}\n{self.diagnostics()}"
            )
        return output

    def one_shot(self, service: str, *command: str, timeout_s: float = 900) -> str:
        """`compose run` of a service with `command`, this run's folder mounted at /out."""
        return self.run(
            "run", "--rm", "--volume", f"{self.out}:/out", service, *command, timeout_s=timeout_s
        )

    def container_ids(self) -> list[str]:
        """Every container of the stack, running or not, by its full id."""
        listed = subprocess.run(
            self.command("ps", "--all", "--quiet", "--no-trunc"), capture_output=True, text=True
        )
        return listed.stdout.split()

    def oom_killed(self) -> dict[str, int]:
        """Containers of the stack in which the kernel OOM-killed a process, with the count:
        a child process (the cgroup's counter, while the container runs) or its main process
        (Docker's `OOMKilled`, which outlives the restart that resets the cgroup)."""
        killed = {}
        for info in filter(None, map(inspect_container, self.container_ids())):
            count = max(oom_kills(info["Id"]) or 0, int(info["State"]["OOMKilled"]))
            if count:
                killed[info["Name"].lstrip("/")] = count
        return killed

    def diagnostics(self) -> str:
        """What a failure needs to be understood after the stack is gone: each container's state
        (restarts, OOM kill, exit code), its healthcheck's failing streak and last outputs, and
        the last lines of every log."""
        states = [container_state(container) for container in self.container_ids()]
        logs = subprocess.run(
            self.command("logs", "--no-color", "--timestamps", "--tail", "40"),
            capture_output=True,
            text=True,
        )
        return "\n".join(["containers:", *states, "logs:", logs.stdout[-12000:]])


# where the engine keeps a container's memory cgroup: cgroup v1 or v2, cgroupfs or systemd driver
CGROUP_MEMORY_EVENTS = (
    "/sys/fs/cgroup/memory/docker/{id}/memory.oom_control",
    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.oom_control",
    "/sys/fs/cgroup/docker/{id}/memory.events",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.events",
)


def oom_kills(container_id: str) -> int | None:
    """How many processes the kernel OOM-killed in the container's memory cgroup (any process,
    not only the main one Docker's `OOMKilled` reports); None where the cgroup is not readable
    (an engine on another host)."""
    for pattern in CGROUP_MEMORY_EVENTS:
        path = Path(pattern.format(id=container_id))
        if path.exists():
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return None


def inspect_container(container: str) -> dict[str, Any] | None:
    """`docker inspect` of one container; None once it is gone."""
    inspected = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=False
    )
    return dict(json.loads(inspected.stdout)[0]) if inspected.returncode == 0 else None


def container_state(container: str) -> str:
    """One container's state and health in a few lines."""
    info = inspect_container(container)
    if info is None:
        return f"  {container}: gone"
    state = info["State"]
    lines = [
        f"  {info['Name'].lstrip('/')}: {state['Status']} (exit {state['ExitCode']},"
        f" OOM-killed {state['OOMKilled']}, restarts {info['RestartCount']},"
        f" started {state['StartedAt']}, finished {state['FinishedAt']})"
    ]
    health = state.get("Health")
    if health:
        lines.append(f"    health {health['Status']}, failing streak {health['FailingStreak']}")
        lines += [
            f"    check {check['Start']}: exit {check['ExitCode']} {check['Output'].strip()[:300]}"
            for check in health.get("Log", [])[-3:]
        ]
    return "\n".join(lines)


def engine_reachable() -> None:
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail(
            "no Docker engine answers at DOCKER_HOST="
            f"{os.environ.get('DOCKER_HOST', '(default)')}: run `make test-compose`, which starts"
            f" one and builds the base images first.\n{info.stderr[-800:]}"
        )


def published_ports(port_offset: int, extra: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every published port (PORTS and `extra`) moved by `port_offset`."""
    return {key: port + port_offset for key, port in {**PORTS, **(extra or {})}.items()}


def host_settings(folder: Path, ports: Mapping[str, int], **overrides: Any) -> LocalSettings:
    """How the host reaches the stack: its published ports, the compose file's defaults."""
    values: dict[str, Any] = {
        "run_dir": folder / "run",
        "kafka_port": ports["PINPIPE_KAFKA_PORT"],
        "connect_port": ports["PINPIPE_CONNECT_PORT"],
        "s3_port": ports["PINPIPE_S3_PORT"],
        "kinesis_port": ports["PINPIPE_KINESIS_PORT"],
        "api_port": ports["PINPIPE_API_PORT"],
        "airflow_port": ports["PINPIPE_AIRFLOW_PORT"],
        "stream_metrics_port": ports["PINPIPE_STREAM_METRICS_PORT"],
        "topic_prefix": "pinpipe",
        "lake_bucket": "pinpipe-lake",
        "lake_root": "",
        "landing_flush_interval_ms": FLUSH_INTERVAL_MS,
        "aws_region": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": SecretStr("test"),
        "api_keys": [],
        "spark_driver_memory": "1g",
        **overrides,
    }
    return LocalSettings(**values)


@contextmanager
def start_compose_stack(
    project: str,
    port_offset: int,
    env: Mapping[str, object],
    services: Sequence[str],
    extra_ports: Mapping[str, int] | None = None,
    **host: Any,
) -> Iterator[ComposeStack]:
    """`compose up --wait` of `services` under `project`, with `env` and the published ports
    (moved by `port_offset`) in its env file; `host`: settings the host reaches it with that
    differ from the defaults. Taken down with its volumes on exit, also after a failure."""
    engine_reachable()
    folder = Path(tempfile.mkdtemp(prefix=f"{project}-"))
    out = folder / "out"
    out.mkdir()
    out.chmod(0o777)  # the containers' non-root user writes ledgers and results here
    ports = published_ports(port_offset, extra_ports)
    env_file = folder / "compose.env"
    values = {**env, "PINPIPE_LANDING_FLUSH_INTERVAL_MS": FLUSH_INTERVAL_MS, **ports}
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    stack = ComposeStack(env_file, host_settings(folder, ports, **host), out, project)
    try:
        up = subprocess.run(
            # images missing are built; `make test-compose` (re)builds them all beforehand
            stack.command("up", "--wait", "--wait-timeout", "900", *services),
            capture_output=True,
            text=True,
            timeout=2400,
        )
        if up.returncode != 0:
            pytest.fail(
                f"the compose stack {project} did not become healthy:\n"
                f"{(up.stdout + up.stderr)[-3000:]}\n{stack.diagnostics()}"
            )
        yield stack
        # a service restarted by the kernel's OOM killer fails the run even where the tests
        # passed: a memory limit too tight for what the stack does (docs/docker.md)
        killed = stack.oom_killed()
        if killed:
            pytest.fail(
                f"the kernel OOM-killed processes in {project}'s containers {killed}: raise their"
                f" mem_limit in compose/docker-compose.yml\n{stack.diagnostics()}"
            )
    finally:
        subprocess.run(
            stack.command("down", "--volumes", "--remove-orphans", "--timeout", "30"),
            capture_output=True,
            timeout=600,
        )
        shutil.rmtree(folder, ignore_errors=True)


def post_and_land(stack: ComposeStack, draws: int) -> list[dict[str, Any]]:
    """The batch scenario's posting on this target: the emulator service run once for `draws`
    draws; its ledger, once every entry landed."""

    def post() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        stack.one_shot(
            "emulator-batch",
            *("pinpipe", "emulate", "--mode", "batch", "--count", str(draws), "--seed", "23"),
            *("--concurrency", "4", "--records-per-request", "10", "--no-progress"),
            *("--ledger", "/out/batch-ledger.jsonl", "--summary-json", "/out/batch-summary.json"),
        )
        summary = json.loads((stack.out / "batch-summary.json").read_text())
        return summary, read_ledger(stack.out / "batch-ledger.jsonl")

    return batch_scenario.post_and_land(stack.host, post)
