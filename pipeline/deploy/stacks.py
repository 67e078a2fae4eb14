"""Each stack of a stage: its template and its parameters, taken from earlier stacks' outputs.

A stack's parameters raise KeyError while an input is not known yet (the stack it comes from
is not deployed, an artifact is not uploaded): the plan then shows that stack from its
template alone, and the apply computes it once the inputs exist.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable

from pipeline.deploy import templates
from pipeline.deploy.components import api_env, connector_config, env_file
from pipeline.deploy.stage import StageState

Parameters = dict[str, str]


def _network(state: StageState) -> Parameters:
    return {"Stage": state.config.stage}


def _storage(state: StageState) -> Parameters:
    return {"Stage": state.config.stage}


def _streams(state: StageState) -> Parameters:
    return {
        "Stage": state.config.stage,
        "TopicPrefix": state.config.topic_prefix,
        "ShardCount": str(state.config.kinesis_shards),
    }


def _iam(state: StageState) -> Parameters:
    config = state.config
    return {
        "Stage": config.stage,
        "TopicPrefix": config.topic_prefix,
        "LakeBucketArn": state.output("storage", "LakeBucketArn"),
        "ArtifactsBucketArn": state.output("storage", "ArtifactsBucketArn"),
        "RepositoryArn": state.output("storage", "RepositoryArn"),
        "StreamArns": state.output("streams", "StreamArns"),
        "MskClusterName": config.cluster_name,
        "MwaaEnvironmentName": config.mwaa_environment,
        "SecretPrefix": config.secret_prefix,
    }


def _msk(state: StageState) -> Parameters:
    config = state.config
    return {
        "Stage": config.stage,
        "ClusterName": config.cluster_name,
        "VpcId": state.output("network", "VpcId"),
        "VpcCidr": state.output("network", "VpcCidr"),
        "BrokerSubnetIds": state.output("network", "BrokerSubnetIds"),
        "BrokerCount": str(config.msk_brokers),
        "ReplicationFactor": str(config.kafka_replication_factor),
        "MinInsyncReplicas": str(config.min_insync_replicas),
    }


def _api(state: StageState) -> Parameters:
    return {
        "Stage": state.config.stage,
        "VpcId": state.output("network", "VpcId"),
        "VpcCidr": state.output("network", "VpcCidr"),
        "PrivateSubnetIds": state.output("network", "PrivateSubnetIds"),
        "InstanceProfileName": state.output("iam", "ApiInstanceProfileName"),
        "ApiRoleArn": state.output("iam", "ApiRoleArn"),
        "ProvisionRoleArn": state.output("iam", "ProvisionRoleArn"),
        "ImageUri": state.image_uri,
        "InstanceType": state.config.api_instance_type,
        "ApiEnvironment": base64.b64encode(env_file(api_env(state)).encode()).decode(),
    }


def _gateway(state: StageState) -> Parameters:
    return {
        "Stage": state.config.stage,
        "LoadBalancerArn": state.output("api", "LoadBalancerArn"),
        "LoadBalancerDnsName": state.output("api", "LoadBalancerDnsName"),
    }


def _alarms(state: StageState) -> Parameters:
    """Alarms name their metrics by the stage's names: no other stack's outputs needed."""
    config = state.config
    deployed = set(config.components)
    return {
        "Stage": config.stage,
        "TopicPrefix": config.topic_prefix,
        "MskClusterName": config.cluster_name,
        "ConsumerGroup": config.sink_consumer_group,
        "MwaaEnvironmentName": config.mwaa_environment,
        "NotificationEmail": config.alarm_email,
        "WithApi": str("gateway" in deployed).lower(),
        "WithConnect": str("connect" in deployed).lower(),
        "WithMwaa": str("mwaa" in deployed).lower(),
    }


def _connect(state: StageState) -> Parameters:
    return {
        "Stage": state.config.stage,
        "BootstrapServers": state.bootstrap_servers or _missing("bootstrap_servers"),
        "PrivateSubnetIds": state.output("network", "PrivateSubnetIds"),
        "VpcId": state.output("network", "VpcId"),
        "ServiceExecutionRoleArn": state.output("iam", "ConnectRoleArn"),
        "ArtifactsBucketArn": state.output("storage", "ArtifactsBucketArn"),
        "PluginKey": state.artifacts.plugin_key or _missing("plugin_key"),
    }


def _mwaa(state: StageState) -> Parameters:
    artifacts = state.artifacts
    return {
        "Stage": state.config.stage,
        "EnvironmentName": state.config.mwaa_environment,
        "VpcId": state.output("network", "VpcId"),
        "PrivateSubnetIds": state.output("network", "PrivateSubnetIds"),
        "ExecutionRoleArn": state.output("iam", "MwaaRoleArn"),
        "ArtifactsBucketArn": state.output("storage", "ArtifactsBucketArn"),
        "RequirementsVersion": artifacts.requirements_version or _missing("requirements"),
        "StartupScriptVersion": artifacts.startup_version or _missing("startup script"),
        "SecretPrefix": state.config.secret_prefix,
        "AirflowVersion": state.config.airflow_version,
    }


def _missing(what: str) -> str:
    raise KeyError(what)


PARAMETERS: dict[str, Callable[[StageState], Parameters]] = {
    "network": _network,
    "storage": _storage,
    "streams": _streams,
    "iam": _iam,
    "msk": _msk,
    "api": _api,
    "gateway": _gateway,
    "connect": _connect,
    "mwaa": _mwaa,
    "alarms": _alarms,
}

# stacks that create named IAM resources must acknowledge it
CAPABILITIES: dict[str, list[str]] = {"iam": ["CAPABILITY_NAMED_IAM"]}


def template(component: str, state: StageState | None = None) -> templates.Template:
    """The template sent for `component`; connect's connector config is filled in here."""
    document = templates.load(component)
    if component == "connect" and state is not None:
        document = copy.deepcopy(document)
        connector = document["Resources"]["SinkConnector"]["Properties"]
        connector["ConnectorConfiguration"] = connector_config(state)
    return document


def parameters(component: str, state: StageState) -> Parameters:
    """The stack's parameters; KeyError names the first input not known yet."""
    return PARAMETERS[component](state)
