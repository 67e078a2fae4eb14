"""`pinpipe demo` on the test stack, with Airflow added to it as `make up` adds it: the scheduler
runs the DAG triggered through the REST API; stopping Airflow's programs leaves no process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.config import Settings
from pipeline.lake import QUERY_COLUMNS
from pipeline.stack.airflow import airflow_components
from pipeline.stack.supervisor import Supervisor
from tests.support.demo import assert_demo_ran_the_dag

# a DAG run and a Spark job each take minutes on a busy 2-core machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]


def test_the_demo_runs_the_batch_path_through_the_stacks_airflow(stack: Settings) -> None:
    env = {**os.environ, "PINPIPE_AIRFLOW_ENABLED": "true", "COLUMNS": "200"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo", "--records", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    output = result.stdout + result.stderr
    print(output[-6000:])
    print(f"pinpipe demo: {time.monotonic() - started:.0f}s")
    assert result.returncode == 0, output[-4000:]
    for step in range(1, 8):
        assert f"{step}/7" in output
    assert "airflow: ready" in output and "airflow-scheduler: ready" in output
    assert "300 records acknowledged" in output
    assert_demo_ran_the_dag(output)
    for query_id in QUERY_COLUMNS:
        assert query_id in output
    assert "demo done in" in output and "300 records posted, 300 landed" in output
    assert "Why silver has fewer rows than records posted" in output
    # the report: a local file with the ledger's count and the DAG's tasks in it
    report = Path(re.findall(r"^  report: (\S+)$", output, re.MULTILINE)[-1])
    html = report.read_text(encoding="utf-8")
    assert all(f'data-query-id="{query_id}"' in html for query_id in QUERY_COLUMNS)
    assert "DAG task: run_batch_job" in html


def test_stopping_airflow_stops_every_process_it_started(stack: Settings) -> None:
    """After the demo: each Airflow program's process tree ends with its stop (process group)."""
    supervisor = Supervisor(stack)
    with_airflow = stack.model_copy(update={"airflow_enabled": True})
    programs = [component.name for component in airflow_components(with_airflow)]
    info = supervisor.info()
    assert all(info[name]["statename"] == "RUNNING" for name in programs), info
    tree: list[psutil.Process] = []
    for name in programs:
        parent = psutil.Process(info[name]["pid"])
        tree += [parent, *parent.children(recursive=True)]
    assert len(tree) > len(programs)  # the scheduler's executor workers at least
    for name in programs:
        supervisor.stop(name)
    _gone, alive = psutil.wait_procs(tree, timeout=30)
    assert alive == [], [p.cmdline()[:3] for p in alive]
