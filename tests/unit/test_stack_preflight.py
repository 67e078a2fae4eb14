"""`pinpipe up` refuses to start with one clear line when something is missing or in the way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import LocalSettings
from pipeline.stack.components import core_components
from pipeline.stack.jvm import StackError


def _up(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "up"],
        env={**os.environ, "COLUMNS": "300", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_port_in_use_gives_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _up({"PINPIPE_RUN_DIR": str(tmp_path), "PINPIPE_S3_PORT": str(port)})
    assert result.returncode == 1
    assert f"port {port} (s3) is in use" in result.stdout
    assert not (tmp_path / "supervisord.pid").exists(), "nothing may start"


def test_missing_jars_say_run_make_setup(tmp_path: Path) -> None:
    settings = LocalSettings(cache_dir=tmp_path / "empty-cache", run_dir=tmp_path / "run")
    with pytest.raises(StackError, match=r"Kafka jars missing in .*: run `make setup`"):
        core_components(settings)


def test_missing_java_says_install_a_jdk(tmp_path: Path) -> None:
    # A PATH holding only python: no java anywhere.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    result = _up({"PATH": str(bin_dir), "PINPIPE_RUN_DIR": str(tmp_path / "run")})
    assert result.returncode == 1
    assert "java not found: install a JDK 17+" in result.stdout
