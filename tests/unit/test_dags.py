"""The DAG folder as Airflow's DagBag sees it: imports, DAG ids, task graph, operator per target;
and the MWAA bundle, parsed the same way from its own folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import get_settings
from pipeline.config.settings import PROJECT_ROOT

DAGS_FOLDER = PROJECT_ROOT / "dags"
EXPECTED_TASKS = {
    "wait_for_landed_data": set(),
    "run_batch_job": {"wait_for_landed_data"},
    "check_data_quality": {"run_batch_job"},
    "publish_gold": {"check_data_quality"},
    "write_report": {"publish_gold"},
}
AWS_ENV = {
    "PINPIPE_TARGET": "aws",
    "PINPIPE_DATABRICKS_CLUSTER_ID": "0101-123456-abcdefgh",
    "PINPIPE_DATABRICKS_CODE_ROOT": "/Workspace/Repos/ci/pinpipe",
    "PINPIPE_LAKE_BUCKET": "prod-lake",
}


@pytest.fixture(scope="module", autouse=True)
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Airflow reads its config on first import: give it a home of its own, no examples."""
    home = tmp_path_factory.mktemp("airflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(home))
        patch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        patch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
        yield home


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set settings through the environment, as a deployment would; clean cache around it."""
    monkeypatch.delenv("AIRFLOW_CONN_PINPIPE_SPARK", raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def spark_submit_options(arguments: list[str]) -> dict[str, str]:
    """`--name value` pairs of a spark-submit command line; repeated `--conf`s joined by `;`."""
    options: dict[str, str] = {}
    for name, value in zip(arguments[::2], arguments[1::2], strict=True):
        options[name] = f"{options[name]};{value}" if name in options else value
    return options


def load_dagbag(folder: Path = DAGS_FOLDER) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    get_settings.cache_clear()
    return DagBag(dag_folder=str(folder))


def test_the_dag_folder_imports_without_errors_and_holds_one_dag(
    target: pytest.MonkeyPatch,
) -> None:
    target.setenv("PINPIPE_TARGET", "local")
    bag = load_dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"pinpipe_batch"}


def test_the_task_graph_and_the_run_policy(target: pytest.MonkeyPatch) -> None:
    target.setenv("PINPIPE_TARGET", "local")
    target.setenv("PINPIPE_LANDED_WAIT_TIMEOUT_S", "900")
    dag = load_dagbag().dags["pinpipe_batch"]
    assert {task.task_id: task.upstream_task_ids for task in dag.tasks} == EXPECTED_TASKS
    assert dag.catchup is False and dag.max_active_runs == 1
    assert "0 0 * * *" in str(dag.timetable)  # daily
    # each run covers the day before it: the interval the sensor and the checks look at
    assert dag.timetable.interval == timedelta(days=1) and str(dag.timetable.timezone) == "UTC"
    assert dag.doc_md and "check_data_quality" in dag.doc_md and "write_report" in dag.doc_md
    assert {"pinpipe", "batch"} <= set(dag.tags)

    sensor = dag.get_task("wait_for_landed_data")
    assert sensor.mode == "reschedule" and sensor.timeout == 900 and sensor.retries == 0
    batch = dag.get_task("run_batch_job")
    assert batch.owner == "pinpipe" and batch.retries == 2 and batch.retry_delay.total_seconds() > 0
    # a failed quality check fails the run at once
    assert dag.get_task("check_data_quality").retries == 0


def test_every_task_and_the_run_have_time_limits_and_alert_on_failure(
    target: pytest.MonkeyPatch,
) -> None:
    from pipeline.orchestrate.alerts import notify_failure

    target.setenv("PINPIPE_TARGET", "local")
    target.setenv("PINPIPE_DAG_TASK_TIMEOUT_S", "1800")
    target.setenv("PINPIPE_DAG_RUN_TIMEOUT_S", "36000")
    dag = load_dagbag().dags["pinpipe_batch"]
    assert dag.dagrun_timeout == timedelta(hours=10)
    assert dag.on_failure_callback == notify_failure
    for task in dag.tasks:
        assert task.execution_timeout is not None, task.task_id
        assert task.on_failure_callback == [notify_failure], task.task_id
    assert dag.get_task("run_batch_job").execution_timeout == timedelta(minutes=30)
    # the sensor's limit is per poke; its whole wait is `timeout`
    assert dag.get_task("wait_for_landed_data").execution_timeout == timedelta(minutes=10)


@pytest.mark.parametrize("name", ["local", "docker"])
def test_local_and_docker_targets_run_spark_jobs_with_spark_submit(
    target: pytest.MonkeyPatch, name: str
) -> None:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from pipeline.orchestrate.dag import WINDOW_END, WINDOW_START

    target.setenv("PINPIPE_TARGET", name)
    target.setenv("PINPIPE_LAKE_BUCKET", "unit-lake")
    dag = load_dagbag().dags["pinpipe_batch"]
    batch = dag.get_task("run_batch_job")
    quality = dag.get_task("check_data_quality")
    assert isinstance(batch, SparkSubmitOperator) and isinstance(quality, SparkSubmitOperator)
    assert batch.application == str(PROJECT_ROOT / "pipeline/transform/job.py")
    assert quality.application == str(PROJECT_ROOT / "pipeline/transform/quality.py")
    assert Path(batch.application).is_file() and Path(quality.application).is_file()
    assert batch.application_args == [
        "--input",
        "s3a://unit-lake",
        "--lake",
        "s3a://unit-lake/lake",
        "--prefix",
        "pinpipe",
        "--stage-gold",
    ]
    assert quality.application_args == [
        "--lake",
        "s3a://unit-lake/lake",
        "--window-start",
        WINDOW_START,
        "--window-end",
        WINDOW_END,
        "--staged",
    ]
    publish = dag.get_task("publish_gold")
    assert isinstance(publish, SparkSubmitOperator)
    assert publish.application == str(PROJECT_ROOT / "pipeline/orchestrate/publish.py")
    assert publish.application_args == ["--lake", "s3a://unit-lake/lake"]
    # the spark-submit command line the task will run
    command = batch._get_hook()._build_spark_submit_command(batch.application)
    assert Path(command[0]).name == "spark-submit"
    application_at = command.index(batch.application)
    assert command[application_at + 1 :] == batch.application_args
    options = spark_submit_options(command[1:application_at])
    assert options["--master"] == get_settings().spark_master  # from settings, via the connection
    assert options["--driver-memory"] == get_settings().spark_driver_memory
    # jars for the driver JVM go on the command line: Delta and S3A among them
    jars = options["--jars"].split(",")
    assert any("delta-spark" in jar for jar in jars) and any("hadoop-aws" in jar for jar in jars)
    assert all(Path(jar).is_file() for jar in jars)
    assert f"spark.pyspark.python={sys.executable}" in options["--conf"]


def test_aws_target_runs_spark_jobs_on_databricks(target: pytest.MonkeyPatch) -> None:
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    from pipeline.orchestrate.dag import RUN_DATE, WINDOW_END, WINDOW_START

    for key, value in AWS_ENV.items():
        target.setenv(key, value)
    bag = load_dagbag()
    assert bag.import_errors == {}
    dag = bag.dags["pinpipe_batch"]
    for task_id, script, arguments in [
        (
            "run_batch_job",
            "pipeline/transform/job.py",
            [
                *("--input", "s3a://prod-lake", "--lake", "s3a://prod-lake/lake"),
                *("--prefix", "pinpipe", "--stage-gold"),
            ],
        ),
        (
            "check_data_quality",
            "pipeline/transform/quality.py",
            [
                *("--lake", "s3a://prod-lake/lake", "--window-start", WINDOW_START),
                *("--window-end", WINDOW_END, "--staged"),
            ],
        ),
        ("publish_gold", "pipeline/orchestrate/publish.py", ["--lake", "s3a://prod-lake/lake"]),
        (
            "write_report",
            "pipeline/report/cli.py",
            ["--lake", "s3a://prod-lake/lake", "--run-date", RUN_DATE],
        ),
    ]:
        task = dag.get_task(task_id)
        assert isinstance(task, DatabricksSubmitRunOperator)
        assert task.existing_cluster_id == AWS_ENV["PINPIPE_DATABRICKS_CLUSTER_ID"]
        assert task.spark_python_task == {
            "python_file": f"{AWS_ENV['PINPIPE_DATABRICKS_CODE_ROOT']}/{script}",
            "parameters": arguments,
        }
    assert "AIRFLOW_CONN_PINPIPE_SPARK" not in os.environ


def test_aws_target_without_a_cluster_is_an_import_error_that_says_what_to_set(
    target: pytest.MonkeyPatch,
) -> None:
    target.setenv("PINPIPE_TARGET", "aws")
    target.delenv("PINPIPE_DATABRICKS_CLUSTER_ID", raising=False)
    target.setenv("PINPIPE_DATABRICKS_CODE_ROOT", "/Workspace/pinpipe")
    bag = load_dagbag()
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert "PINPIPE_DATABRICKS_CLUSTER_ID" in error


def test_the_batch_runner_is_a_setting_independent_of_the_target(
    target: pytest.MonkeyPatch,
) -> None:
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    for key, value in AWS_ENV.items():
        target.setenv(key, value)
    target.setenv("PINPIPE_TARGET", "local")
    target.setenv("PINPIPE_BATCH_RUNNER", "databricks")
    dag = load_dagbag().dags["pinpipe_batch"]
    assert isinstance(dag.get_task("run_batch_job"), DatabricksSubmitRunOperator)


def test_the_mwaa_bundle_parses_on_its_own(tmp_path: Path) -> None:
    """The bundle's DAG imports the vendored modules, not this checkout's package."""
    bundle = tmp_path / "mwaa"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "mwaa-bundle", "--out", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **AWS_ENV, "AWS_SECRET_ACCESS_KEY": "sentinel-secret-value"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    requirements = (bundle / "requirements.txt").read_text()
    assert (
        '--constraint "https://raw.githubusercontent.com/apache/airflow/'
        'constraints-3.0.6/constraints-3.12.txt"' in requirements
    )
    assert "apache-airflow-providers-databricks" in requirements.splitlines()
    assert "apache-airflow\n" not in requirements and "pyspark" not in requirements
    startup = (bundle / "startup.sh").read_text()
    assert "export PINPIPE_TARGET=aws" in startup
    assert "export PINPIPE_DATABRICKS_CLUSTER_ID=0101-123456-abcdefgh" in startup
    for written in bundle.rglob("*"):
        if written.is_file():
            assert "sentinel-secret-value" not in written.read_text(), written

    probe = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "from airflow.dag_processing.dagbag import DagBag;"
        "bag = DagBag(dag_folder=sys.argv[1]);"
        "import pipeline;"
        "print(json.dumps({'errors': bag.import_errors, 'dags': bag.dag_ids,"
        " 'package': pipeline.__file__,"
        " 'modules': sorted(m for m in sys.modules if m.startswith('pipeline'))}))"
    )
    parsed = subprocess.run(
        [sys.executable, "-c", probe, str(bundle / "dags")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **AWS_ENV, "AIRFLOW_HOME": str(tmp_path / "home")},
        cwd=tmp_path,
    )
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    found = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert found["errors"] == {} and found["dags"] == ["pinpipe_batch"]
    assert found["package"].startswith(str(bundle / "dags"))
    assert not any(m.startswith(("pipeline.transform", "pipeline.stack")) for m in found["modules"])


def test_a_manual_run_looks_at_the_day_before_it_was_triggered_whatever_its_logical_date() -> None:
    """The demo triggers its run with the due tick's logical date (so that the scheduler does not
    run that tick again): its sensor and checks must still see what landed just before."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    import jinja2
    from airflow.sdk.api.datamodels._generated import DagRunType
    from airflow.sdk.execution_time.context import MacrosAccessor

    from pipeline.orchestrate.dag import WINDOW_END, WINDOW_START, run_window

    triggered = datetime(2026, 12, 5, 8, 25, tzinfo=UTC)
    due_interval = (datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC))
    for run_type, expected in (
        (DagRunType.MANUAL, (triggered - timedelta(days=1), triggered)),
        (DagRunType.SCHEDULED, due_interval),
    ):
        context: dict[str, Any] = {
            "dag_run": SimpleNamespace(run_type=run_type, run_after=triggered),
            "data_interval_start": due_interval[0],
            "data_interval_end": due_interval[1],
            "macros": MacrosAccessor(),
        }
        window = run_window(context)
        assert (window.start, window.end) == expected, run_type
        rendered = [jinja2.Template(t).render(**context) for t in (WINDOW_START, WINDOW_END)]
        assert rendered == [moment.isoformat() for moment in expected], run_type
