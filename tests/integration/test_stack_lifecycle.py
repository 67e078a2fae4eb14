"""`pinpipe up` twice is harmless; `pinpipe down` leaves no process and no listening port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import TEST_PORTS

pytestmark = pytest.mark.integration

# The session's test stack may be up: this one sits 100 ports above it.
PORTS = {
    "kafka": TEST_PORTS["PINPIPE_KAFKA_PORT"] + 100,
    "controller": TEST_PORTS["PINPIPE_KAFKA_CONTROLLER_PORT"] + 100,
    "connect": TEST_PORTS["PINPIPE_CONNECT_PORT"] + 100,
    "emulator": TEST_PORTS["PINPIPE_EMULATOR_PORT"] + 100,
    "api": TEST_PORTS["PINPIPE_API_PORT"] + 100,
    "airflow": TEST_PORTS["PINPIPE_AIRFLOW_PORT"] + 100,
}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pinpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _stack_processes(run_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line or working files mention this run folder."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(run_dir) in cmdline or any(str(p) in cmdline for p in PORTS.values()):
            found.append(proc)
    return found


def test_up_twice_is_harmless_and_down_leaves_nothing(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PINPIPE_", "AWS_"))},
        "PINPIPE_RUN_DIR": str(tmp_path / "run"),
        "PINPIPE_KAFKA_PORT": str(PORTS["kafka"]),
        "PINPIPE_KAFKA_CONTROLLER_PORT": str(PORTS["controller"]),
        "PINPIPE_CONNECT_PORT": str(PORTS["connect"]),
        "PINPIPE_EMULATOR_PORT": str(PORTS["emulator"]),
        "PINPIPE_API_PORT": str(PORTS["api"]),
        "PINPIPE_AIRFLOW_PORT": str(PORTS["airflow"]),
        "COLUMNS": "200",
    }
    assert not any(_listening(p) for p in PORTS.values()), "test ports busy before the test"
    try:
        first = _pinpipe(env, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        pids_before = {p.pid for p in _stack_processes(tmp_path / "run")}
        assert all(_listening(p) for p in PORTS.values())

        second = _pinpipe(env, "up")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already running" in second.stdout
        pids_after = {p.pid for p in _stack_processes(tmp_path / "run")}
        assert pids_after == pids_before, "a second `up` must not restart or duplicate anything"
    finally:
        down = _pinpipe(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not _stack_processes(tmp_path / "run"), "processes left behind"
    assert not [p for p in PORTS.values() if _listening(p)], "ports still listening"
