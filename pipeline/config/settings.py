"""Settings read from the environment and `.env`.

The usaspending-api pattern: one `Settings` class describes every knob; a subclass per target
(`local`, `docker`, `aws`) only changes defaults. `get_settings()` picks the subclass from
`PINPIPE_TARGET`. Job code reads `Settings` and never branches on the target itself; local-only
details (path-style S3, the S3 and Kinesis servers, dummy credentials) live in the local/docker
defaults.

AWS values use the names the AWS SDKs read themselves (`AWS_ENDPOINT_URL`, the per-service
`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_KINESIS`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...), so
boto3, Spark's S3A and Kafka Connect all agree on them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Target = Literal["local", "docker", "aws"]
AwsService = Literal["s3", "kinesis", "sns"]
TABLES: tuple[str, ...] = ("pin", "geo", "user")

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def topic_names(prefix: str) -> dict[str, str]:
    """Kafka topic per table: `<prefix>.pin|geo|user` (data contract §2.5)."""
    return {table: f"{prefix}.{table}" for table in TABLES}


def stream_names(prefix: str) -> dict[str, str]:
    """Kinesis stream per table: `streaming-<prefix>-pin|geo|user`."""
    return {table: f"streaming-{prefix}-{table}" for table in TABLES}


class Settings(BaseSettings):
    """Every endpoint and name the pipeline uses. Field docs double as `.env.example` docs."""

    model_config = SettingsConfigDict(
        env_prefix="PINPIPE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    target: Target = Field(default="local", description="which target's defaults apply")

    # -- where the local stack keeps its state --------------------------------------------
    run_dir: Path = Field(default=PROJECT_ROOT / ".run", description="logs, data, pid files")
    cache_dir: Path = Field(default=PROJECT_ROOT / ".cache", description="resolved JVM jars")

    # -- Kafka (MSK in the cloud) -----------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="brokers the clients connect to (MSK on aws)"
    )
    kafka_port: int = Field(default=9092, description="local broker's client port")
    kafka_controller_port: int = Field(default=9093, description="local KRaft controller port")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka clients' protocol; SASL_SSL for MSK"
    )
    kafka_sasl_mechanism: Literal["", "OAUTHBEARER"] = Field(
        default="", description="OAUTHBEARER: MSK IAM tokens signed from the AWS credential chain"
    )
    kafka_topic_partitions: int = Field(default=3, description="partitions of each topic")
    kafka_heap: str = Field(default="512m", description="JVM heap of the local broker")

    # -- Kafka Connect (MSK Connect) ---------------------------------------------------------
    connect_url: str = Field(
        default="http://127.0.0.1:8083", description="Kafka Connect's REST API"
    )
    connect_port: int = Field(default=8083, description="local Connect worker's REST port")
    connect_heap: str = Field(default="512m", description="JVM heap of the local Connect worker")

    # -- the landing zone (Kafka Connect S3 sink; MSK Connect in the cloud) ---------------
    connector_name: str = Field(
        default="pinpipe-s3-sink", description="the S3 sink connector's name"
    )
    landing_flush_max_records: int = Field(default=500, description="records per S3 object")
    landing_flush_max_bytes: int = Field(
        default=16 * 1024 * 1024, description="bytes per S3 object: a larger window lands in parts"
    )
    landing_flush_interval_ms: int = Field(
        default=60_000, description="longest wait before a quiet topic's records land"
    )
    kafka_replication_factor: int = Field(
        default=1, description="copies of each topic's records (and of the dead-letter topic)"
    )

    # -- S3 and Kinesis (S3Proxy and kinesalite locally, persisted in the run folder) -------
    # As in the AWS SDKs: a service's own endpoint (AWS_ENDPOINT_URL_S3, ..._KINESIS) wins over
    # AWS_ENDPOINT_URL, which applies to every service; `endpoint_url(service)` resolves them.
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL", "PINPIPE_AWS_ENDPOINT_URL"),
        description="one endpoint for every AWS service (e.g. LocalStack); unset: AWS itself",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "PINPIPE_S3_ENDPOINT_URL"),
        description="S3 endpoint; on local it follows the S3 port",
    )
    kinesis_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL_KINESIS", "PINPIPE_KINESIS_ENDPOINT_URL"),
        description="Kinesis endpoint; on local it follows the Kinesis port",
    )
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "PINPIPE_AWS_REGION"),
        description="AWS region",
    )
    aws_access_key_id: str | None = Field(
        default="test",
        validation_alias=AliasChoices("AWS_ACCESS_KEY_ID"),
        description="the local servers accept any; on aws the standard credential chain",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=SecretStr("test"),
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY"),
        description="goes with AWS_ACCESS_KEY_ID",
    )
    s3_port: int = Field(default=4566, description="local S3 server (S3Proxy)")
    kinesis_port: int = Field(default=4568, description="local Kinesis server (kinesalite), HTTP")
    s3_heap: str = Field(default="256m", description="JVM heap of the local S3 server")
    s3_path_style: bool = Field(default=True, description="path-style S3 requests (local servers)")
    lake_bucket: str = Field(
        default="pinpipe-lake", description="the lake bucket: landing zone and Delta tables"
    )
    kinesis_shards: int = Field(default=1, description="shards of each stream")

    # -- names of data contract §2.5 -----------------------------------------------------------
    topic_prefix: str = Field(
        default="pinpipe",
        description="topics `<prefix>.pin|geo|user`, streams `streaming-<prefix>-pin|geo|user`",
    )

    # -- the ingestion API -----------------------------------------------------------------
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="where the emulator posts (the ingestion API)"
    )
    api_port: int = Field(default=8000, description="port the ingestion API listens on")
    api_keys: list[str] = Field(default_factory=list, description="x-api-key values; empty = open")
    api_timeout_s: float = Field(
        default=5.0, gt=0, description="max wait for Kafka/Kinesis before the API answers 503"
    )
    api_max_body_bytes: int = Field(
        default=5 * 2**20, gt=0, description="larger request bodies get 413"
    )
    api_max_records: int = Field(
        default=1000, gt=0, description="records per Kafka produce request; more get 422"
    )
    api_shutdown_flush_s: float = Field(
        default=3.0, ge=0, description="on shutdown, max wait for the Kafka producer's flush"
    )
    api_transactional_id: str = Field(
        default="",
        description="transactional.id of the API's Kafka producer, `<prefix>-api` if empty; "
        "stable across restarts (a new API aborts what a killed one left open), one per live API",
    )
    api_idempotency_hours: float = Field(
        default=24.0,
        gt=0,
        description="how long an Idempotency-Key's answer is kept (retention of the "
        "`<prefix>.api-requests` topic); a retry after that is a new request",
    )
    api_pause_before_commit_s: float = Field(
        default=0.0,
        ge=0,
        description="tests only: the API's transaction thread waits this long before each "
        "commit, so a test can kill it between produce and commit; keep 0",
    )

    # -- Spark (Databricks in the cloud) ----------------------------------------------------
    spark_master: str = Field(default="local[2]", description="Spark master of local jobs")
    spark_driver_memory: str = Field(
        default="2g", description="Spark driver memory of the batch job (and other one-shot jobs)"
    )
    stream_driver_memory: str = Field(
        default="640m",
        description="Spark driver heap of the long-running stream job (its own, not the batch "
        "job's); on Databricks the cluster's node type sets it",
    )
    spark_shuffle_partitions: int = Field(default=4, description="spark.sql.shuffle.partitions")
    lake_root: str = Field(
        default="", description="Delta lake root; `s3a://<lake_bucket>/lake` if empty"
    )
    stream_enabled: bool = Field(
        default=True, description="run the streaming job as part of the local stack"
    )
    stream_metrics_port: int = Field(
        default=9464, ge=0, description="the stream job's Prometheus /metrics; 0 serves none"
    )
    stream_metrics_host: str = Field(
        default="127.0.0.1", description="address the stream job's /metrics listens on"
    )

    # -- the emulator feed `make up` runs (the original posts about one row id per second) ----
    feed_ids_per_second: float = Field(
        default=1.0, ge=0, description="row ids drawn per second per layer; 0 turns the feed off"
    )
    feed_modes: str = Field(default="batch,stream", description="layers fed: batch, stream")
    feed_seed_rows: int = Field(default=11_153, description="rows seeded into an empty source")

    # -- orchestration: the daily batch DAG on Airflow (MWAA in the cloud) ----------------------
    airflow_enabled: bool = Field(default=True, description="run Airflow in the local stack")
    airflow_port: int = Field(default=8080, description="Airflow api-server port (UI, REST API)")
    airflow_url: str = Field(
        default="http://127.0.0.1:8080", description="Airflow's UI and REST API"
    )
    airflow_db_url: SecretStr | None = Field(
        default=None, description="Airflow metadata DB (SQLAlchemy URL); SQLite in the run folder"
    )
    airflow_parallelism: int = Field(default=2, ge=1, description="task slots (a 2-core machine)")
    batch_runner: Literal["spark-submit", "databricks"] = Field(
        default="spark-submit", description="how the DAG runs Spark jobs"
    )
    landed_wait_timeout_s: int = Field(default=6 * 3600, gt=0, description="sensor gives up after")
    landed_poke_interval_s: int = Field(default=60, gt=0, description="sensor checks this often")
    dag_task_timeout_s: int = Field(
        default=2 * 3600, gt=0, description="a DAG task running longer fails (execution_timeout)"
    )
    dag_run_timeout_s: int = Field(
        default=20 * 3600, gt=0, description="a DAG run longer fails, before the next day's is due"
    )
    alert_webhook_url: str = Field(
        default="", description="a failed DAG task or run POSTs a JSON alert here (e.g. Slack)"
    )
    alert_sns_topic_arn: str = Field(
        default="", description="a failed DAG task or run is published to this SNS topic"
    )
    quality_max_reject_rate: float = Field(
        default=0.05, ge=0, le=1, description="most rejected/landed rows in a run's window"
    )
    quality_max_staleness_s: int = Field(
        default=12 * 3600, gt=0, description="newest landed row at most this old at window end"
    )
    table_catalog: str = Field(
        default="", description="catalog of the tables by name (Unity Catalog); empty: session's"
    )
    table_schema_prefix: str = Field(
        default="", description="schemas are <prefix><layer>: bronze, silver, gold, stream"
    )
    databricks_conn_id: str = Field(
        default="databricks_default", description="Airflow connection to Databricks (aws)"
    )
    databricks_cluster_id: str = Field(default="", description="existing cluster the jobs run on")
    databricks_code_root: str = Field(
        default="", description="Databricks folder (workspace, Volume, S3) holding pipeline/"
    )
    databricks_wheel: str = Field(default="", description="pinpipe wheel installed on the cluster")

    # -- the source database (RDS MySQL in the cloud original) ----------------------------
    source_db_url: str = Field(
        default="", description="SQLAlchemy URL of the source database; SQLite in the run folder"
    )

    @property
    def topics(self) -> dict[str, str]:
        """Kafka topic per table: `<prefix>.pin|geo|user`."""
        return topic_names(self.topic_prefix)

    @property
    def api_requests_topic(self) -> str:
        """The API's answers to requests that carried an Idempotency-Key (compacted)."""
        return f"{self.topic_prefix}.api-requests"

    @property
    def api_transaction_id(self) -> str:
        """The API producer's transactional.id: `api_transactional_id`, or `<prefix>-api`."""
        return self.api_transactional_id or f"{self.topic_prefix}-api"

    @property
    def dlq_topic(self) -> str:
        """Dead-letter topic of the S3 sink: records it cannot land, with the reason in headers."""
        return f"{self.topic_prefix}.dlq"

    @property
    def streams(self) -> dict[str, str]:
        """Kinesis stream per table: `streaming-<prefix>-pin|geo|user`."""
        return stream_names(self.topic_prefix)

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of the local stack: config, metadata DB (SQLite), task logs."""
        return self.run_dir / "airflow"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def jvm_dir(self) -> Path:
        return self.cache_dir / "jvm"

    @property
    def source_url(self) -> str:
        """SQLAlchemy URL of the source database; a SQLite file in the run folder by default."""
        return self.source_db_url or f"sqlite:///{self.data_dir / 'source.db'}"

    @property
    def lake_uri(self) -> str:
        """Where Delta tables live (bronze/silver/gold/stream)."""
        return self.lake_root or f"s3a://{self.lake_bucket}/lake"

    @property
    def landing_uri(self) -> str:
        """Root of the landing zone written by the S3 sink (`<root>/topics/<topic>/...`)."""
        return f"s3a://{self.lake_bucket}"

    def endpoint_url(self, service: AwsService) -> str | None:
        """The endpoint of `service`: its own, else AWS_ENDPOINT_URL, else None (real AWS)."""
        own = {"s3": self.s3_endpoint_url, "kinesis": self.kinesis_endpoint_url}.get(service)
        return own or self.aws_endpoint_url

    def boto3_kwargs(self, service: AwsService) -> dict[str, Any]:
        """Keyword arguments for `boto3.client(service, ...)`: endpoint and region from config.

        Credentials are passed only when configured; otherwise boto3's own chain decides.
        """
        kwargs: dict[str, Any] = {"region_name": self.aws_region}
        endpoint = self.endpoint_url(service)
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if self.aws_access_key_id and self.aws_secret_access_key:
            kwargs["aws_access_key_id"] = self.aws_access_key_id
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key.get_secret_value()
        return kwargs

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by every Kafka client of the pipeline.

        With SASL OAUTHBEARER (the aws target: MSK with IAM auth) the clients get an `oauth_cb`
        that signs MSK IAM tokens with the standard AWS credential chain.
        """
        config: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap_servers}
        if self.kafka_security_protocol != "PLAINTEXT":
            config["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_mechanism == "OAUTHBEARER":
            from pipeline.config.kafka_auth import msk_iam_oauth_cb

            config["oauth_cb"] = msk_iam_oauth_cb(self.aws_region)
        return config


class LocalSettings(Settings):
    """Real components as local processes; S3 and Kinesis servers on loopback.

    URLs not set explicitly follow the configured ports, so changing a port is one setting.
    """

    target: Target = "local"
    # A partly filled window lands after 10 s, not 60: on one machine a rewrite is cheap, and
    # `make demo` waits for the landing of its last records (issue #15).
    landing_flush_interval_ms: int = Field(
        default=10_000, description="longest wait before a quiet topic's records land"
    )

    @model_validator(mode="after")
    def _urls_follow_ports(self) -> LocalSettings:
        explicit = self.model_fields_set
        if "kafka_bootstrap_servers" not in explicit:
            self.kafka_bootstrap_servers = f"127.0.0.1:{self.kafka_port}"
        if "connect_url" not in explicit:
            self.connect_url = f"http://127.0.0.1:{self.connect_port}"
        # AWS_ENDPOINT_URL set alone still points both services at one server (e.g. LocalStack)
        if "s3_endpoint_url" not in explicit and "aws_endpoint_url" not in explicit:
            self.s3_endpoint_url = f"http://127.0.0.1:{self.s3_port}"
        if "kinesis_endpoint_url" not in explicit and "aws_endpoint_url" not in explicit:
            self.kinesis_endpoint_url = f"http://127.0.0.1:{self.kinesis_port}"
        if "api_url" not in explicit:
            self.api_url = f"http://127.0.0.1:{self.api_port}"
        if "airflow_url" not in explicit:
            self.airflow_url = f"http://127.0.0.1:{self.airflow_port}"
        return self


class DockerSettings(Settings):
    """The compose stack: services reach each other by name."""

    target: Target = "docker"
    kafka_bootstrap_servers: str = "kafka:9092"
    connect_url: str = "http://connect:8083"
    api_url: str = "http://api:8000"
    airflow_url: str = "http://airflow:8080"

    @model_validator(mode="after")
    def _servers_by_name(self) -> DockerSettings:
        # the `s3` and `kinesis` services, unless AWS_ENDPOINT_URL names one server for both
        explicit = self.model_fields_set
        if "aws_endpoint_url" not in explicit:
            if "s3_endpoint_url" not in explicit:
                self.s3_endpoint_url = "http://s3:4566"
            if "kinesis_endpoint_url" not in explicit:
                self.kinesis_endpoint_url = "http://kinesis:4568"
        return self


class AwsSettings(Settings):
    """Real AWS: no endpoint override, virtual-hosted S3, credentials from the standard chain."""

    target: Target = "aws"
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL", "PINPIPE_AWS_ENDPOINT_URL"),
    )
    aws_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY")
    )
    s3_path_style: bool = False
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "SASL_SSL"
    kafka_sasl_mechanism: Literal["", "OAUTHBEARER"] = "OAUTHBEARER"
    batch_runner: Literal["spark-submit", "databricks"] = "databricks"


_BY_TARGET: dict[str, type[Settings]] = {
    "local": LocalSettings,
    "docker": DockerSettings,
    "aws": AwsSettings,
}


def local_port_variables() -> dict[str, int]:
    """Every port the local stack listens on, as its `PINPIPE_*` variable and default: tests and
    benches move them all by an offset to run stacks apart from a developer's."""
    return {
        f"PINPIPE_{name.upper()}": int(field.default)
        for name, field in Settings.model_fields.items()
        if name.endswith("_port")
    }


def _target_from_env() -> str:
    target = os.environ.get("PINPIPE_TARGET")
    if target is None:
        # `.env` may name the target too; read just that key without building a full object.
        target = Settings().target
    if target not in _BY_TARGET:
        raise ValueError(f"PINPIPE_TARGET must be one of {sorted(_BY_TARGET)}, got {target!r}")
    return target


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of the configured target (cached: tests call `get_settings.cache_clear()`)."""
    return _BY_TARGET[_target_from_env()]()
