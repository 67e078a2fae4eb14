"""The daily DAG on the compose stack's Airflow (MWAA on aws): triggered through the REST API of
the `airflow` service, run by the `airflow-scheduler` container (the sensor on the lake, then
`spark-submit` of the batch job and of the quality checks). As on the local target
(tests/e2e/test_demo.py, tests/e2e/test_batch_dag.py): every task succeeds and the DAG's gold
tables equal what the batch job computes directly on the same landed objects. It runs before the
spark-batch service's test, on a lake only the DAG has written to."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from pyspark.sql import SparkSession

from pipeline.orchestrate.client import AirflowClient
from pipeline.orchestrate.component import ADMIN_USER, PASSWORDS_FILE
from pipeline.orchestrate.dag import DAG_ID, TASK_IDS
from pipeline.orchestrate.demo import trigger_single_run
from pipeline.transform.job import Row, read_gold
from tests.compose.conftest import ComposeStack

pytestmark = [pytest.mark.compose, pytest.mark.timeout(2400)]

FINISHED = {"success", "failed"}


@pytest.fixture(scope="module")
def dag_run(compose_stack: ComposeStack, ledger: list[dict[str, Any]]) -> dict[str, str]:
    """One run of the DAG over the landed data; its tasks' final states (logs when failed)."""
    generated = compose_stack.run(
        "exec", "-T", "airflow", "cat", f"/var/lib/pinpipe/airflow/{PASSWORDS_FILE}"
    )
    client = AirflowClient(compose_stack.host, ADMIN_USER, json.loads(generated)[ADMIN_USER])
    deadline = time.monotonic() + 300
    while client.dag(DAG_ID) is None:
        errors = client.import_errors()
        assert not errors, errors
        assert time.monotonic() < deadline, f"the dag-processor never parsed {DAG_ID}"
        time.sleep(3)
    run_id = trigger_single_run(client)
    deadline = time.monotonic() + 1800
    while client.dag_run(DAG_ID, run_id)["state"] not in FINISHED:
        assert time.monotonic() < deadline, f"DAG run {run_id} did not finish"
        time.sleep(5)
    states = {}
    for instance in client.task_instances(DAG_ID, run_id):
        states[instance["task_id"]] = instance.get("state") or "none"
        if states[instance["task_id"]] != "success":
            try_number = int(instance.get("try_number") or 1)
            log = client.task_log(DAG_ID, run_id, instance["task_id"], try_number)
            print(f"--- {instance['task_id']} ({states[instance['task_id']]}):")
            print("\n".join(log[-40:]))
    return states


def test_every_task_of_the_dag_run_succeeds(dag_run: dict[str, str]) -> None:
    assert dag_run == dict.fromkeys(TASK_IDS, "success")


def test_the_dag_computes_what_the_batch_job_computes_directly(
    compose_stack: ComposeStack,
    dag_run: dict[str, str],
    direct_gold: dict[str, list[Row]],
    spark: SparkSession,
) -> None:
    from_dag = read_gold(spark, compose_stack.host.lake_uri)
    assert len(from_dag) == 9 and all(from_dag.values())
    assert from_dag == direct_gold
