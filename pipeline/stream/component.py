"""The streaming job as a component of the local stack, started once the streams and the lake
bucket are provisioned.

It is ready once its heartbeat file is fresh and shows three active queries (before that it
reports `waiting` for its inputs or `starting`). Set `PINPIPE_STREAM_ENABLED=false` to leave it
out of the stack (tests start their own job).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from pipeline.config import Settings
from pipeline.config.environment import settings_environment
from pipeline.workload import PRIORITY_PRODUCER, Component

HEARTBEAT_MAX_AGE_S = 15.0


def progress_path(settings: Settings) -> Path:
    return settings.data_dir / "stream" / f"{settings.topic_prefix}-progress.json"


def read_progress(settings: Settings) -> dict[str, Any] | None:
    """The stream job's heartbeat (state, queries, last micro-batches); None without one."""
    try:
        state: dict[str, Any] = json.loads(progress_path(settings).read_text())
    except (OSError, ValueError):
        return None
    return state


def progress_age_s(state: Mapping[str, Any]) -> float:
    return time.time() - float(state.get("updated_epoch", 0))


def stream_ready(settings: Settings) -> bool:
    state = read_progress(settings)
    if state is None:
        return False
    fresh = progress_age_s(state) < HEARTBEAT_MAX_AGE_S
    if not (fresh and psutil.pid_exists(int(state.get("pid", 0)))):
        return False
    queries = state.get("queries", {})
    return (
        state.get("state") == "running"
        and len(queries) == 3
        and all(query.get("active") for query in queries.values())
    )


def stream_components(settings: Settings) -> list[Component]:
    if not settings.stream_enabled:
        return []
    # Non-secret settings travel explicitly (as for the API); credentials are inherited.
    environment = settings_environment(settings)
    return [
        Component(
            name="spark-stream",
            command=[
                sys.executable,
                "-m",
                "pipeline.cli",
                "stream",
                "--progress-file",
                str(progress_path(settings)),
            ],
            ports=[],
            url=f"{settings.lake_uri}/stream",
            ready=stream_ready,
            environment=environment,
            # a JVM, Delta and three queries to start on a small, busy machine
            ready_timeout_s=300,
            # a micro-batch in flight finishes its commit before the JVM exits; under load one
            # can take longer than the default allowance
            stop_timeout_s=60,
            # SIGINT, not SIGTERM: supervisord signals the whole process group, and pyspark starts
            # its JVM ignoring SIGINT, so the job stops its queries while the JVM is still there
            # (on SIGTERM the JVM went down under them and the job exited 1)
            stop_signal="INT",
            priority=PRIORITY_PRODUCER,
            # it reads the streams and writes to the lake bucket: both must exist first
            after_provision=True,
        )
    ]
