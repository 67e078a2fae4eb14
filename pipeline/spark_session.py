"""Build the SparkSession for whichever place the job runs in.

On Databricks the session, Delta and S3 access already exist: we take the active session and
change nothing. Elsewhere (local processes, the Spark container) we start a session with Delta,
the Maven-resolved extra jars and S3A settings, all from `Settings` — job code never sees them.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_VERSION_SUFFIX = re.compile(r"-\d[\w.\-]*\.jar$")
LOOPBACK = "127.0.0.1"


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def _artifact_name(jar: Path) -> str:
    return _VERSION_SUFFIX.sub("", jar.name)


def extra_jars(settings: Settings) -> list[Path]:
    """The resolved Spark extras minus artifacts pyspark already bundles (no duplicate classes)."""
    import pyspark

    extras_dir = settings.jvm_dir / "spark"
    if not extras_dir.is_dir():
        raise FileNotFoundError(f"Spark extra jars missing in {extras_dir}: run `make setup`")
    bundled_dir = Path(pyspark.__file__).parent / "jars"
    bundled = {_artifact_name(jar) for jar in bundled_dir.glob("*.jar")}
    return sorted(jar for jar in extras_dir.glob("*.jar") if _artifact_name(jar) not in bundled)


def s3a_options(settings: Settings) -> dict[str, str]:
    """Hadoop S3A options derived from config (endpoint, path style, credentials provider)."""
    options = {"spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem"}
    endpoint = settings.endpoint_url("s3")
    if endpoint:
        options["spark.hadoop.fs.s3a.endpoint"] = endpoint
        options["spark.hadoop.fs.s3a.endpoint.region"] = settings.aws_region
        ssl = endpoint.startswith("https")
        options["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(ssl).lower()
    options["spark.hadoop.fs.s3a.path.style.access"] = str(settings.s3_path_style).lower()
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        options["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        )
        options["spark.hadoop.fs.s3a.access.key"] = settings.aws_access_key_id
        options["spark.hadoop.fs.s3a.secret.key"] = (
            settings.aws_secret_access_key.get_secret_value()
        )
    return options


def long_running_options(settings: Settings) -> dict[str, str]:
    """Session options of a driver that runs for days (the stream job): its own heap, and a
    short history.

    The heap: G1 commits heap up to `-Xmx` whenever it helps its pause goal and keeps it; with
    the batch job's 2g the stream job's JVM reached 1.7 GB with 150-310 MB live (issue #15).
    The history: Spark keeps the jobs, stages, tasks and SQL executions of the application for
    its UI (1,000 each, 100,000 tasks by default); a micro-batch every few seconds per query
    adds several of each, so the live heap would grow for hours before those caps. The last
    few minutes are what anyone looks at in the UI of a stream.
    """
    return {
        "spark.driver.memory": settings.stream_driver_memory,
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.ui.retainedTasks": "2000",
        "spark.ui.retainedDeadExecutors": "10",
        "spark.ui.dagGraph.retainedRootRDDs": "100",
        "spark.sql.ui.retainedExecutions": "50",
        "spark.sql.streaming.ui.retainedQueries": "20",
        "spark.sql.streaming.ui.retainedProgressUpdates": "60",
        "spark.sql.streaming.numRecentProgressUpdates": "60",
        # the context cleaner frees broadcasts and shuffles of past micro-batches after a GC:
        # ask for one every 5 minutes, not every 30
        "spark.cleaner.periodicGC.interval": "5min",
    }


def get_spark(
    app_name: str = "pinpipe",
    settings: Settings | None = None,
    options: Mapping[str, str] | None = None,
) -> SparkSession:
    """The active Databricks session, or a local session with Delta and S3A configured;
    `options` (e.g. `long_running_options`) override the defaults of a local session."""
    from pyspark.sql import SparkSession

    if on_databricks():
        return SparkSession.builder.getOrCreate()
    settings = settings or get_settings()
    if settings.target == "local":
        # the driver, its block manager and the Spark UI listen on loopback, like every other
        # server of the local stack (Spark binds its UI to SPARK_LOCAL_IP, else all interfaces)
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    # Python workers (UDFs, the Python Kinesis source) run this interpreter, the one with the
    # project's packages, not the first `python3` on PATH (a supervised job's PATH has no venv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.jars", ",".join(str(jar) for jar in extra_jars(settings)))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        # schemas of the tables by name (pipeline.tables) go here, not into the working directory
        .config("spark.sql.warehouse.dir", str(settings.run_dir / "spark-warehouse"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.databricks.delta.snapshotPartitions", "2")
    )
    for key, value in {**s3a_options(settings), **(options or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
