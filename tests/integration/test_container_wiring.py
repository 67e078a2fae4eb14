"""The compose stack's wiring, run for real without a Docker engine.

`docker compose config` resolves compose/docker-compose.yml; then, in a private network, mount
and PID namespace (`unshare`, so nothing touches this machine's ports or files), the S3 and
Kinesis servers, broker, Connect worker, init services, API and both emulators run with their
compose commands and environment in their images' file layout
(tests/integration/container_wiring.py). Each
long-running one must pass its own healthcheck, each one-shot must exit 0 (and again, as on a
second `up`), and events posted by the emulators must land in S3 and Kinesis.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dockerfiles import ROOT, venv_tool

pytestmark = pytest.mark.integration


def _resolved_config(tmp_path: Path) -> Path:
    env_file = tmp_path / ".env"
    lines = (ROOT / ".env.example").read_text().splitlines()
    env_file.write_text("\n".join(line for line in lines if not line.startswith("COMPOSE_")))
    # as a user's shell would: the test session's own settings (its ports, feeds off, the stream
    # job left out) must not leak into the compose file's ${PINPIPE_...} interpolation
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COMPOSE_", "PINPIPE_", "AWS_"))
    }
    result = subprocess.run(
        [
            str(venv_tool("docker-compose")),
            "-f",
            str(ROOT / "compose/docker-compose.yml"),
            "--env-file",
            str(env_file),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    config = json.loads(result.stdout)
    # land within seconds rather than the default minute (a setting, as a user would change it)
    config["services"]["register-connector"]["environment"]["PINPIPE_LANDING_FLUSH_INTERVAL_MS"] = (
        "4000"
    )
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_compose_services_start_healthy_and_carry_events_end_to_end(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("this test needs root, unshare (util-linux) and ip (iproute2), as CI has")
    work = tmp_path / "work"
    result = subprocess.run(
        [
            "unshare",
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-m",
            "tests.integration.container_wiring",
            str(_resolved_config(tmp_path)),
            str(work),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    logs = "".join(
        f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        for log in sorted((work / "logs").glob("*.log"))
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}{logs}"
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert set(report["ready_s"]) == {
        "s3",
        "kinesis",
        "kafka",
        "connect",
        "api",
        "emulator-batch",
        "emulator-stream",
    }
    assert report["exit"] == {"provision": 0, "register-connector": 0, "seed": 0}
    rerun = report["rerun"]
    assert rerun["provision"]["exit"] == 0 and "already there" in rerun["provision"]["output"]
    assert rerun["seed"]["exit"] == 0 and rerun["seed"]["seconds"] < 5, "a seeded db is kept"
    # SIGINT, the compose stop signal, is the emulator's clean stop (its summary, exit 130)
    assert report["emulator_exit"] == {"emulator-batch": 130, "emulator-stream": 130}, logs
    assert all(count > 0 for count in report["landed"].values()), (report["landed"], logs)
    assert all(count > 0 for count in report["streamed"].values()), (report["streamed"], logs)
