"""The API as a component of the local stack (started after the broker and the emulator)."""

from __future__ import annotations

import sys

import requests

from pipeline.config import Settings
from pipeline.config.environment import settings_environment
from pipeline.workload import PRIORITY_PRODUCER, Component


def api_ready(settings: Settings) -> bool:
    try:
        return requests.get(f"{settings.api_url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def api_components(settings: Settings) -> list[Component]:
    # Non-secret settings travel explicitly (timeouts, limits, names); credentials and API keys
    # are inherited from the environment, never written into the supervisord config.
    environment = settings_environment(settings)
    return [
        Component(
            name="api",
            command=[
                sys.executable,
                "-m",
                "pipeline.cli",
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.api_port),
            ],
            ports=[settings.api_port],
            url=settings.api_url,
            ready=api_ready,
            environment=environment,
            ready_timeout_s=60,
            # gunicorn's graceful shutdown: in-flight requests (up to 2 x api_timeout_s), then
            # the bounded producer flush; SIGKILL only after that
            stop_timeout_s=2 * settings.api_timeout_s + settings.api_shutdown_flush_s + 10,
            priority=PRIORITY_PRODUCER,
        )
    ]
