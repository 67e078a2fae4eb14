"""`make demo TARGET=docker` on the compose stack: the Makefile's own `demo-docker` commands
(`pinpipe demo` in the airflow-scheduler container, then `compose cp` of its ledger and report),
pointed at this run's stack. As on the local target (tests/e2e/test_demo.py): every step ends,
and the ledger and the HTML report reach the host.

The demo's DAG run is also the test of the daily DAG on the compose stack's Airflow (MWAA on
aws): triggered through the REST API of the `airflow` service and run by the
`airflow-scheduler` container (the sensor on the lake, then `spark-submit` of the batch job and
the quality checks), every task succeeds, and the gold tables it publishes equal what the batch
job computes directly on the same landed objects. It runs after test_batch_path.py (file order),
so the DAG's batch job goes on incrementally from the lake the spark-batch service wrote."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from pipeline.config.settings import PROJECT_ROOT
from pipeline.landing import read_ledger
from tests.support import batch_scenario
from tests.support.compose import ComposeStack
from tests.support.demo import assert_demo_ran_the_dag

pytestmark = [pytest.mark.compose, pytest.mark.timeout(2400)]

RECORDS = 300


def demo_commands(stack: ComposeStack, out: Path) -> list[str]:
    """The recipe of `make demo-docker` with this stack's compose command (`make -n`), minus
    the `up` it depends on: the fixture brought the stack up with its own service list."""
    compose = shlex.join(stack.command())
    result = subprocess.run(
        [
            *("make", "-n", "--no-print-directory", "demo-docker"),
            f"COMPOSE={compose}",
            f"N={RECORDS}",
            f"DEMO_OUT={out}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(compose)]
    return [line for line in lines if " up " not in line and not line.endswith(" ps")]


def test_make_demo_runs_end_to_end_on_the_compose_stack(
    compose_stack: ComposeStack, spark: SparkSession, tmp_path: Path
) -> None:
    commands = demo_commands(compose_stack, tmp_path)
    assert [("pinpipe demo" in c, " cp " in c) for c in commands] == [(True, False), (False, True)]
    demo = subprocess.run(commands[0], shell=True, capture_output=True, text=True, timeout=2400)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-8000:]
    assert "Using the compose stack" in output
    assert "succeeded" in output, output[-8000:]
    assert_demo_ran_the_dag(output)
    copy = subprocess.run(commands[1], shell=True, capture_output=True, text=True, timeout=300)
    assert copy.returncode == 0, copy.stdout + copy.stderr
    ledgers = sorted(tmp_path.glob("ledger-*.jsonl"))
    reports = sorted(tmp_path.glob("report-*.html"))
    assert ledgers and reports, sorted(path.name for path in tmp_path.iterdir())
    assert len(read_ledger(ledgers[-1])) >= RECORDS
    assert "<html" in reports[-1].read_text().lower()

    # the DAG's published gold = the batch job run directly on every landed object (the demo's
    # records and the earlier tests'), into a lake of its own
    host = compose_stack.host
    direct = batch_scenario.gold_computed_directly(spark, host, "direct-lake-after-demo")
    batch_scenario.assert_gold_as_computed_directly(spark, host.lake_uri, direct)
