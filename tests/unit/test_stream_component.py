"""The streaming job as a stack component: left out when disabled, ready on a fresh heartbeat."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.stream.component import progress_path, stream_components, stream_ready
from pipeline.stream.job import Heartbeat
from tests.support.waiting import wait_for


def settings_in(run_dir: Path, **extra: Any) -> Settings:
    return Settings(run_dir=run_dir, topic_prefix="unit", **extra)


def wait_for_file(path: Path) -> dict[str, object]:
    wait_for(path.exists, 10, f"{path} to be written", interval_s=0.05)
    state: dict[str, object] = json.loads(path.read_text())
    return state


def test_component_follows_the_setting(tmp_path: Path) -> None:
    assert stream_components(settings_in(tmp_path, stream_enabled=False)) == []
    (component,) = stream_components(settings_in(tmp_path, stream_enabled=True))
    assert component.name == "spark-stream"
    assert component.ports == []
    assert component.command[2:] == [
        "pipeline.cli",
        "stream",
        "--progress-file",
        str(progress_path(settings_in(tmp_path))),
    ]
    assert component.environment["PINPIPE_TOPIC_PREFIX"] == "unit"


def test_ready_once_running_three_active_queries(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    path = progress_path(settings)
    assert not stream_ready(settings)  # no heartbeat yet

    heartbeat = Heartbeat(path, interval_s=0.05)
    heartbeat.update(state="waiting", waiting_for=["stream streaming-unit-pin (absent)"])
    heartbeat.start()
    try:
        assert wait_for_file(path)["waiting_for"] == ["stream streaming-unit-pin (absent)"]
        assert not stream_ready(settings)

        active = {"active": True, "input_rows": 0}
        heartbeat.update(state="running", queries={"pin": active, "geo": active, "user": active})
        time.sleep(0.2)
        assert stream_ready(settings)

        heartbeat.update(queries={"pin": active, "geo": {"active": False}, "user": active})
        time.sleep(0.2)
        assert not stream_ready(settings)
    finally:
        heartbeat.stop()
    assert not path.exists()  # a stopped job leaves no heartbeat behind


def test_a_stale_or_orphaned_heartbeat_is_not_ready(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    path = progress_path(settings)
    path.parent.mkdir(parents=True)
    active = {"active": True}
    queries = {"pin": active, "geo": active, "user": active}
    beat = {"state": "running", "queries": queries, "updated_epoch": time.time()}
    path.write_text(json.dumps({**beat, "pid": 2**22 + 12345}))  # no such process
    assert not stream_ready(settings)
    path.write_text(json.dumps({**beat, "pid": os.getpid(), "updated_epoch": time.time() - 60}))
    assert not stream_ready(settings)
    path.write_text(json.dumps({**beat, "pid": os.getpid()}))
    assert stream_ready(settings)
