"""The docker target end to end: the compose stack of compose/docker-compose.yml, built and
started on a Docker engine, driven from the host through its published ports only.

`make test-compose` starts a Docker engine of its own and builds the base images the Dockerfiles
start FROM, then the project's images (scripts/test-compose.sh); the `compose_stack` fixture
brings the stack up waiting on its healthchecks, and takes it down with its volumes at the end,
also after a failure. The scenarios are the local target's (tests/e2e, tests/integration), with
the same assertions.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pyspark.sql import SparkSession

from pipeline.config import LocalSettings
from pipeline.config.settings import PROJECT_ROOT
from pipeline.landing import not_landed, read_ledger
from pipeline.transform.job import Row, read_gold, run_batch
from tests.support.waiting import wait_for

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
# The long-running services brought up; their one-shot init services (provision,
# register-connector, seed) run as their dependencies.
SERVICES = [
    *("s3", "kinesis", "kafka", "connect", "api", "spark-stream"),
    *("airflow", "airflow-scheduler", "airflow-dag-processor"),
]
LEFT_OUT = {
    "kafka-ui": "profile `ui`: its upstream image (ghcr.io/kafbat/kafka-ui) can be neither pulled"
    " nor rebuilt from Debian packages here",
    "localstack": "profile `localstack`: S3Proxy and kinesis-mock (services s3, kinesis) are the"
    " default S3 and Kinesis servers; test_localstack.py runs a stack of its own on LocalStack",
    "emulator-batch, emulator-stream": "not as endless feeds: the tests run these services as"
    " one-shots posting a counted number of records",
}


def pytest_report_header() -> list[str]:
    return [f"compose stack {PROJECT}: left out {name} ({why})" for name, why in LEFT_OUT.items()]


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
            pytest.fail(f"`compose {' '.join(arguments)}` failed:\n{output[-6000:]}")
        return output

    def one_shot(self, service: str, *command: str, timeout_s: float = 900) -> str:
        """`compose run` of a service with `command`, this run's folder mounted at /out."""
        return self.run(
            "run", "--rm", "--volume", f"{self.out}:/out", service, *command, timeout_s=timeout_s
        )

    def diagnostics(self) -> str:
        status = subprocess.run(self.command("ps", "--all"), capture_output=True, text=True)
        logs = subprocess.run(
            self.command("logs", "--no-color", "--tail", "40"), capture_output=True, text=True
        )
        return status.stdout + status.stderr + logs.stdout[-12000:]


def engine_reachable() -> None:
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail(
            "no Docker engine answers at DOCKER_HOST="
            f"{os.environ.get('DOCKER_HOST', '(default)')}: run `make test-compose`, which starts"
            f" one and builds the base images first.\n{info.stderr[-800:]}"
        )


@pytest.fixture(scope="session")
def compose_stack() -> Iterator[ComposeStack]:
    engine_reachable()
    folder = Path(tempfile.mkdtemp(prefix="pinpipe-compose-test-"))
    out = folder / "out"
    out.mkdir()
    out.chmod(0o777)  # the containers' non-root user writes ledgers and results here
    ports = {key: port + PORT_OFFSET for key, port in PORTS.items()}
    env_file = folder / "compose.env"
    env_file.write_text(
        "".join(
            f"{key}={value}\n"
            for key, value in {
                "COMPOSE_PROFILES": "airflow",
                "PINPIPE_LANDING_FLUSH_INTERVAL_MS": FLUSH_INTERVAL_MS,
                **ports,
            }.items()
        )
    )
    host = LocalSettings(
        run_dir=folder / "run",
        kafka_port=ports["PINPIPE_KAFKA_PORT"],
        connect_port=ports["PINPIPE_CONNECT_PORT"],
        s3_port=ports["PINPIPE_S3_PORT"],
        kinesis_port=ports["PINPIPE_KINESIS_PORT"],
        api_port=ports["PINPIPE_API_PORT"],
        airflow_port=ports["PINPIPE_AIRFLOW_PORT"],
        stream_metrics_port=ports["PINPIPE_STREAM_METRICS_PORT"],
        topic_prefix="pinpipe",
        lake_bucket="pinpipe-lake",
        lake_root="",
        landing_flush_interval_ms=FLUSH_INTERVAL_MS,
        aws_region="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key=SecretStr("test"),
        api_keys=[],
        spark_driver_memory="1g",
    )
    stack = ComposeStack(env_file=env_file, host=host, out=out)
    try:
        up = subprocess.run(
            # images missing are built; `make test-compose` (re)builds them all beforehand
            stack.command("up", "--wait", "--wait-timeout", "900", *SERVICES),
            capture_output=True,
            text=True,
            timeout=2400,
        )
        if up.returncode != 0:
            pytest.fail(
                "the compose stack did not become healthy:\n"
                f"{(up.stdout + up.stderr)[-3000:]}\n{stack.diagnostics()}"
            )
        yield stack
    finally:
        subprocess.run(
            stack.command("down", "--volumes", "--remove-orphans", "--timeout", "30"),
            capture_output=True,
            timeout=600,
        )
        shutil.rmtree(folder, ignore_errors=True)


DRAWS = 100  # about 300 records


@pytest.fixture(scope="session")
def ledger(compose_stack: ComposeStack) -> list[dict[str, Any]]:
    """The emulator service, run once for a counted number of draws, all landed in S3."""
    return post_and_land(compose_stack, DRAWS)


def post_and_land(stack: ComposeStack, draws: int) -> list[dict[str, Any]]:
    """The emulator service run once for `draws` draws; its ledger, once every entry landed."""
    stack.one_shot(
        "emulator-batch",
        *("pinpipe", "emulate", "--mode", "batch", "--count", str(draws), "--seed", "23"),
        *("--concurrency", "4", "--records-per-request", "10", "--no-progress"),
        *("--ledger", "/out/batch-ledger.jsonl", "--summary-json", "/out/batch-summary.json"),
    )
    summary = json.loads((stack.out / "batch-summary.json").read_text())
    assert summary["accepted"] == summary["sent"] > 0, summary
    assert summary["rejected"] == summary["failed"] == 0, summary
    entries = read_ledger(stack.out / "batch-ledger.jsonl")
    assert len(entries) == summary["accepted"]
    host = stack.host
    wait_for(
        lambda: not not_landed(host, entries),
        host.landing_flush_interval_ms / 1000 + 120,
        "every acknowledged record to land",
        interval_s=2,
        on_timeout=lambda: f"{len(not_landed(host, entries))} acknowledged records never landed",
    )
    return entries


@pytest.fixture(scope="session")
def spark_settings(compose_stack: ComposeStack) -> LocalSettings:
    """`spark` (tests/conftest.py) reads the stack's lake through the published S3 port."""
    return compose_stack.host


@pytest.fixture(scope="session")
def direct_gold(
    compose_stack: ComposeStack, ledger: list[dict[str, Any]], spark: SparkSession
) -> dict[str, list[Row]]:
    """The gold tables the batch job computes on the host, directly on the landed objects."""
    host = compose_stack.host
    direct_lake = f"s3a://{host.lake_bucket}/direct-lake"
    run_batch(spark, host.landing_uri, direct_lake, host.topics)
    return read_gold(spark, direct_lake)
