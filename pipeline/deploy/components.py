"""Stage outputs → the configuration each component receives on aws.

Every component runs the same code as on the local and docker targets; what differs is only
this environment (`PINPIPE_TARGET=aws` plus names and endpoints from the stage's stacks), read
by `pipeline.config.get_settings()` like anywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pipeline.config.settings import AwsSettings
from pipeline.deploy.stage import StageState
from pipeline.land.connector import render
from pipeline.orchestrate.mwaa import startup_sh

Env = dict[str, str]


def base_env(state: StageState) -> Env:
    """What every component shares: target, region, names of data contract §2.5, the lake bucket."""
    return {
        "PINPIPE_TARGET": "aws",
        "AWS_REGION": state.region,
        "PINPIPE_TOPIC_PREFIX": state.config.topic_prefix,
        "PINPIPE_LAKE_BUCKET": state.lake_bucket,
    }


def kafka_env(state: StageState) -> Env:
    """Clients of MSK: SASL/IAM bootstrap brokers, TLS, OAUTHBEARER tokens signed by IAM."""
    if not state.bootstrap_servers:
        raise KeyError("bootstrap_servers")
    return {
        "PINPIPE_KAFKA_BOOTSTRAP_SERVERS": state.bootstrap_servers,
        "PINPIPE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "PINPIPE_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        # topics created by `pinpipe provision` and the sink's DLQ: as many copies as the stage's
        # brokers' default (min.insync.replicas comes from the cluster's configuration)
        "PINPIPE_KAFKA_REPLICATION_FACTOR": str(state.config.kafka_replication_factor),
    }


def api_env(state: StageState) -> Env:
    """The API container on EC2 (also runs `pinpipe provision` for the topics)."""
    return {**base_env(state), **kafka_env(state)}


def connect_env(state: StageState) -> Env:
    """The settings the S3 sink's config is rendered with for MSK Connect."""
    return {
        **base_env(state),
        **kafka_env(state),
        "PINPIPE_CONNECTOR_NAME": f"pinpipe-{state.config.stage}-s3-sink",
    }


def databricks_env(state: StageState) -> Env:
    """Spark environment of the Databricks job clusters (S3 and Kinesis by instance profile);
    the tables are registered by name in the stage's catalog when one is configured."""
    env = base_env(state)
    if state.config.table_catalog:
        env["PINPIPE_TABLE_CATALOG"] = state.config.table_catalog
    return env


def alarm_topic_arn(state: StageState) -> str:
    """The stage's alarm topic (deploy/cloudformation/alarms.yaml names it by the stage), where
    the DAG's failure alerts go too."""
    return f"arn:aws:sns:{state.region}:{state.account}:pinpipe-{state.config.stage}-alarms"


def mwaa_env(state: StageState) -> Env:
    """The MWAA workers (the startup script exports it): the DAG runs the batch on Databricks,
    as a run of the job script from the code root with the wheel, on the stage's cluster."""
    env = {
        **base_env(state),
        "PINPIPE_BATCH_RUNNER": "databricks",
        "PINPIPE_DATABRICKS_CONN_ID": "databricks_default",
        "PINPIPE_DATABRICKS_WHEEL": state.wheel_uri,
        "PINPIPE_DATABRICKS_CODE_ROOT": state.code_root,
    }
    if state.config.databricks_cluster_id:
        env["PINPIPE_DATABRICKS_CLUSTER_ID"] = state.config.databricks_cluster_id
    if "alarms" in state.config.components:
        env["PINPIPE_ALERT_SNS_TOPIC_ARN"] = alarm_topic_arn(state)
    return env


@contextmanager
def _only_env(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ holding exactly `env` for PINPIPE_*/AWS_* keys (restored afterwards)."""
    ours = {k: v for k, v in os.environ.items() if k.startswith(("PINPIPE_", "AWS_"))}
    for key in ours:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(ours)


def settings_from_env(env: Mapping[str, str]) -> AwsSettings:
    """The Settings a component builds from `env` (no .env file), as get_settings() would."""
    if env.get("PINPIPE_TARGET") != "aws":
        raise ValueError("a component on aws runs with PINPIPE_TARGET=aws")
    with _only_env(env):
        return AwsSettings(_env_file=None)  # type: ignore[call-arg]


def connector_config(state: StageState) -> dict[str, str]:
    """The S3 sink's config for MSK Connect, rendered from connectors/s3-sink.json."""
    rendered: dict[str, Any] = render(settings_from_env(connect_env(state)))
    # MSK Connect takes no empty values: an empty endpoint/key means "the SDK's default"
    # locally, and leaving the key out means the same on MSK Connect.
    return {key: str(value) for key, value in rendered["config"].items() if value != ""}


def env_file(env: Mapping[str, str]) -> str:
    """KEY=VALUE lines, as docker's --env-file reads them."""
    return "".join(f"{key}={value}\n" for key, value in sorted(env.items()))


def startup_script(env: Mapping[str, str]) -> str:
    """MWAA's startup script for these settings, as the MWAA packaging target writes it."""
    return startup_sh(settings_from_env(env))
