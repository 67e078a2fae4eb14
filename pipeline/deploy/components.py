"""Stage outputs → the configuration each component receives on aws.

Every component runs the same code as on the local and docker targets; what differs is only
this environment (`PINPIPE_TARGET=aws` plus names and endpoints from the stage's stacks), read
by `pipeline.config.get_settings()` like anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config.environment import (
    env_file_text,
    settings_environment,
    settings_from_environment,
    settings_with,
)
from pipeline.config.settings import AwsSettings
from pipeline.deploy.stage import StageState
from pipeline.land.connector import render
from pipeline.orchestrate.mwaa import startup_sh

Env = dict[str, str]
Values = dict[str, Any]


def component_settings(values: Values) -> AwsSettings:
    """A component's settings: the aws target's defaults with `values`, nothing from this shell."""
    return settings_with(AwsSettings, **values)


def component_env(values: Values) -> Env:
    """The environment a component reads `values` from (with PINPIPE_TARGET=aws)."""
    return settings_environment(component_settings(values), only=values)


def base_values(state: StageState) -> Values:
    """What every component shares: region, names of data contract §2.5, the lake bucket."""
    return {
        "aws_region": state.region,
        "topic_prefix": state.config.topic_prefix,
        "lake_bucket": state.lake_bucket,
    }


def kafka_values(state: StageState) -> Values:
    """Clients of MSK: SASL/IAM bootstrap brokers, TLS, OAUTHBEARER tokens signed by IAM."""
    if not state.bootstrap_servers:
        raise KeyError("bootstrap_servers")
    return {
        "kafka_bootstrap_servers": state.bootstrap_servers,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "OAUTHBEARER",
        # topics created by `pinpipe provision` and the sink's DLQ: as many copies as the stage's
        # brokers' default (min.insync.replicas comes from the cluster's configuration)
        "kafka_replication_factor": state.config.kafka_replication_factor,
    }


def base_env(state: StageState) -> Env:
    return component_env(base_values(state))


def api_env(state: StageState) -> Env:
    """The API container on EC2 (also runs `pinpipe provision` for the topics)."""
    return component_env({**base_values(state), **kafka_values(state)})


def connect_values(state: StageState) -> Values:
    """The settings the S3 sink's config is rendered with for MSK Connect."""
    return {
        **base_values(state),
        **kafka_values(state),
        "connector_name": f"pinpipe-{state.config.stage}-s3-sink",
    }


def connect_env(state: StageState) -> Env:
    return component_env(connect_values(state))


def databricks_env(state: StageState) -> Env:
    """Spark environment of the Databricks job clusters (S3 and Kinesis by instance profile);
    the tables are registered by name in the stage's catalog when one is configured."""
    values = base_values(state)
    if state.config.table_catalog:
        values["table_catalog"] = state.config.table_catalog
    return component_env(values)


def alarm_topic_arn(state: StageState) -> str:
    """The stage's alarm topic (deploy/cloudformation/alarms.yaml names it by the stage), where
    the DAG's failure alerts go too."""
    return f"arn:aws:sns:{state.region}:{state.account}:pinpipe-{state.config.stage}-alarms"


def mwaa_values(state: StageState) -> Values:
    """The MWAA workers (the startup script exports them): the DAG runs the batch on Databricks,
    as a run of the job script from the code root with the wheel, on the stage's cluster."""
    values = {
        **base_values(state),
        "batch_runner": "databricks",
        "databricks_conn_id": "databricks_default",
        "databricks_wheel": state.wheel_uri,
        "databricks_code_root": state.code_root,
    }
    if state.config.databricks_cluster_id:
        values["databricks_cluster_id"] = state.config.databricks_cluster_id
    if "alarms" in state.config.components:
        values["alert_sns_topic_arn"] = alarm_topic_arn(state)
    return values


def mwaa_env(state: StageState) -> Env:
    return component_env(mwaa_values(state))


def settings_from_env(env: Mapping[str, str]) -> AwsSettings:
    """The Settings a component builds from `env` alone (no .env file, nothing of this shell)."""
    if env.get("PINPIPE_TARGET") != "aws":
        raise ValueError("a component on aws runs with PINPIPE_TARGET=aws")
    return settings_from_environment(AwsSettings, env)


def connector_config(state: StageState) -> dict[str, str]:
    """The S3 sink's config for MSK Connect, rendered from connectors/s3-sink.json."""
    rendered: dict[str, Any] = render(component_settings(connect_values(state)))
    # MSK Connect takes no empty values: an empty endpoint/key means "the SDK's default"
    # locally, and leaving the key out means the same on MSK Connect.
    return {key: str(value) for key, value in rendered["config"].items() if value != ""}


def env_file(env: Mapping[str, str]) -> str:
    """KEY=VALUE lines, as docker's --env-file reads them."""
    return env_file_text(env)


def startup_script(state: StageState) -> str:
    """MWAA's startup script for the stage, as the MWAA packaging target writes it."""
    return startup_sh(component_settings(mwaa_values(state)))
