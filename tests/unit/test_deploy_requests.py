"""Requests to what moto does not implement, validated against the real request models.

- MSK (AWS::MSK::Cluster, AWS::MSK::Configuration), MSK Connect (AWS::KafkaConnect::*) and MWAA
  (AWS::MWAA::Environment): each resource of the templates, with the parameters the deploy
  computes for a stage, is converted to the service's Create* request and checked by botocore's
  ParamValidator against the service model (strict: a property the API lacks fails).
- Every stack's CreateChangeSet request is checked against CloudFormation's model, and its
  parameters against the template's (none missing, none unknown).
- The Databricks jobs round-trip through the SDK's `JobSettings` (unknown fields would be lost).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator
from databricks.sdk.service.jobs import JobSettings

from pipeline.deploy import components, databricks, stacks, templates
from pipeline.deploy.stage import COMPONENTS, StageConfig, StageState

ACCOUNT = "123456789012"
REGION = "eu-west-1"
SESSION = botocore.session.get_session()

# CloudFormation property names that differ from the API's (beyond letter case)
RENAMED = {
    "AWS::MSK::Configuration": {"KafkaVersionsList": "KafkaVersions"},
    "AWS::ApiGateway::UsagePlan": {"UsagePlanName": "name"},
}
# resource type → (service, operation) that creates it
OPERATIONS = {
    "AWS::MSK::Cluster": ("kafka", "CreateCluster"),
    "AWS::MSK::Configuration": ("kafka", "CreateConfiguration"),
    "AWS::KafkaConnect::Connector": ("kafkaconnect", "CreateConnector"),
    "AWS::KafkaConnect::CustomPlugin": ("kafkaconnect", "CreateCustomPlugin"),
    "AWS::KafkaConnect::WorkerConfiguration": ("kafkaconnect", "CreateWorkerConfiguration"),
    "AWS::MWAA::Environment": ("mwaa", "CreateEnvironment"),
    "AWS::ApiGateway::VpcLink": ("apigateway", "CreateVpcLink"),
    "AWS::ApiGateway::ApiKey": ("apigateway", "CreateApiKey"),
    "AWS::ApiGateway::UsagePlan": ("apigateway", "CreateUsagePlan"),
    "AWS::CloudWatch::Alarm": ("cloudwatch", "PutMetricAlarm"),
}


def deployed_stage(**options: Any) -> StageState:
    """A stage whose earlier stacks are deployed (outputs in the shape the templates give)."""
    config = StageConfig(stage="dev", region=REGION, **options)
    state = StageState(config, account=ACCOUNT)
    arn = f"arn:aws:s3:::pinpipe-dev-%s-{ACCOUNT}-{REGION}"
    state.outputs = {
        "network": {
            "VpcId": "vpc-0a1b2c3d4e5f60718",
            "VpcCidr": "10.42.0.0/16",
            "PublicSubnetId": "subnet-0a1b2c3d4e5f60001",
            "PrivateSubnetIds": "subnet-0a1b2c3d4e5f60010,subnet-0a1b2c3d4e5f60011",
            "BrokerSubnetIds": (
                "subnet-0a1b2c3d4e5f60010,subnet-0a1b2c3d4e5f60011,subnet-0a1b2c3d4e5f60012"
            ),
        },
        "storage": {
            "LakeBucketName": f"pinpipe-dev-lake-{ACCOUNT}-{REGION}",
            "LakeBucketArn": arn % "lake",
            "ArtifactsBucketName": f"pinpipe-dev-artifacts-{ACCOUNT}-{REGION}",
            "ArtifactsBucketArn": arn % "artifacts",
            "RepositoryName": "pinpipe-dev/api",
            "RepositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/pinpipe-dev/api",
            "RepositoryUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/pinpipe-dev/api",
        },
        "streams": {
            "StreamArns": ",".join(
                f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/streaming-pinpipe-{t}"
                for t in ("pin", "geo", "user")
            )
        },
        "iam": {
            "ApiInstanceProfileName": "pinpipe-dev-api",
            "ApiRoleArn": f"arn:aws:iam::{ACCOUNT}:role/pinpipe-dev-api",
            "ProvisionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/pinpipe-dev-provision",
            "ConnectRoleArn": f"arn:aws:iam::{ACCOUNT}:role/pinpipe-dev-connect",
            "MwaaRoleArn": f"arn:aws:iam::{ACCOUNT}:role/pinpipe-dev-mwaa",
            "DatabricksInstanceProfileArn": f"arn:aws:iam::{ACCOUNT}:instance-profile/x",
        },
        "api": {
            "LoadBalancerArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:"
            "loadbalancer/net/pinpipe-dev-api/0123456789abcdef",
            "LoadBalancerDnsName": f"pinpipe-dev-api-0123456789abcdef.elb.{REGION}.amazonaws.com",
        },
    }
    state.bootstrap_servers = "b-1.c.kafka.eu-west-1.amazonaws.com:9098"
    state.artifacts.plugin_key = "connect/pinpipe-s3-sink-0123456789abcdef.zip"
    state.artifacts.wheel_key = "wheels/0123456789abcdef/pinpipe-0.1.0-py3-none-any.whl"
    state.artifacts.image_tag = "src-0123456789abcdef"
    state.artifacts.requirements_version = "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    state.artifacts.startup_version = "8tN5lrsKmcqYspEUEnK.snTqYe4eJcsIZ"
    return state


# -- resolving a template with the stage's parameters ----------------------------------------
def resolver(template: dict[str, Any], parameters: dict[str, str]) -> Any:
    declared = template.get("Parameters", {})
    values: dict[str, Any] = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::StackName": "pinpipe-dev-x",
        "AWS::URLSuffix": "amazonaws.com",
    }
    for name, spec in declared.items():
        value = parameters.get(name, spec.get("Default"))
        assert value is not None, f"parameter {name} has no value"
        is_list = spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList"
        values[name] = value.split(",") if is_list else value

    def attribute(resource: str, name: str) -> Any:
        if name.endswith("Revision"):
            return 1
        return f"arn:aws:kafkaconnect:{REGION}:{ACCOUNT}:{resource.lower()}/{name.lower()}/1"

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                if arg in values:
                    return values[arg]
                assert arg in template["Resources"], f"Ref to unknown {arg}"
                return f"arn:aws:resource:{REGION}:{ACCOUNT}:{arg.lower()}"
            if key == "Fn::GetAtt":
                return attribute(*arg)
            if key == "Fn::Sub":
                return re.sub(
                    r"\$\{([^}!]+)\}",
                    lambda m: str(
                        attribute(*m.group(1).split(".", 1))
                        if "." in m.group(1)
                        else resolve({"Ref": m.group(1)})
                    ),
                    arg,
                )
            if key == "Fn::Base64":
                return base64.b64encode(str(resolve(arg)).encode()).decode()
            if key == "Fn::Join":
                return arg[0].join(str(part) for part in resolve(arg[1]))
            if key == "Fn::Select":
                return resolve(arg[1])[int(arg[0])]
            if key == "Fn::If":
                return resolve(arg[1] if holds(arg[0]) else arg[2])
        return {key: resolve(value) for key, value in node.items()}

    def evaluate(node: Any) -> Any:
        ((key, arg),) = node.items()
        if key == "Fn::Equals":
            left, right = (resolve(x) for x in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not evaluate(arg[0])
        if key == "Fn::And":
            return all(evaluate(x) for x in arg)
        if key == "Fn::Or":
            return any(evaluate(x) for x in arg)
        if key == "Condition":
            return holds(arg)
        raise AssertionError(f"condition function {key}")

    def holds(condition: str) -> bool:
        return bool(evaluate(template["Conditions"][condition]))

    resolve.holds = holds  # type: ignore[attr-defined]
    return resolve


def to_request(value: Any, shape: Shape, where: str, renamed: dict[str, str]) -> Any:
    """A resolved CloudFormation property value in the API's shape (names matched by case)."""
    if shape.type_name == "structure":
        assert isinstance(value, dict), f"{where}: expected an object"
        members = {name.lower(): name for name in shape.members}
        request = {}
        for key, item in value.items():
            name = members.get(renamed.get(key, key).lower())
            assert name is not None, f"{where}.{key}: the API has no such member"
            request[name] = to_request(item, shape.members[name], f"{where}.{key}", renamed)
        return request
    if shape.type_name == "list":
        return [to_request(i, shape.member, f"{where}[]", renamed) for i in value]  # type: ignore[attr-defined]
    if shape.type_name == "map":
        return {
            str(k): to_request(v, shape.value, f"{where}.{k}", renamed)  # type: ignore[attr-defined]
            for k, v in value.items()
        }
    if shape.type_name in ("integer", "long"):
        return int(value)
    if shape.type_name in ("double", "float"):
        return float(value)
    if shape.type_name == "boolean":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if shape.type_name == "blob":
        return str(value).encode()
    return value


def validate(resource_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    service, operation = OPERATIONS[resource_type]
    shape = SESSION.get_service_model(service).operation_model(operation).input_shape
    request = to_request(properties, shape, resource_type, RENAMED.get(resource_type, {}))
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert isinstance(request, dict)
    return request


def requests_of(component: str, state: StageState) -> dict[str, dict[str, Any]]:
    template = stacks.template(component, state)
    resolve = resolver(template, stacks.parameters(component, state))
    return {
        logical_id: validate(resource["Type"], resolve(resource["Properties"]))
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] in OPERATIONS
        and ("Condition" not in resource or resolve.holds(resource["Condition"]))
    }


# -- MSK, MSK Connect, MWAA ----------------------------------------------------------------------
def test_msk_cluster_and_configuration_fit_the_kafka_api() -> None:
    created = requests_of("msk", deployed_stage())
    cluster = created["Cluster"]
    assert cluster["ClientAuthentication"]["Sasl"]["Iam"]["Enabled"] is True
    # three brokers in three zones, three copies, two needed to acknowledge a write
    assert cluster["NumberOfBrokerNodes"] == 3
    assert cluster["BrokerNodeGroupInfo"]["ClientSubnets"] == [
        "subnet-0a1b2c3d4e5f60010",
        "subnet-0a1b2c3d4e5f60011",
        "subnet-0a1b2c3d4e5f60012",
    ]
    assert cluster["BrokerNodeGroupInfo"]["StorageInfo"]["EbsStorageInfo"]["VolumeSize"] == 20
    assert cluster["LoggingInfo"]["BrokerLogs"]["CloudWatchLogs"]["Enabled"] is True
    properties = created["BrokerConfiguration"]["ServerProperties"]
    assert b"default.replication.factor=3\n" in properties
    assert b"min.insync.replicas=2\n" in properties
    assert components.api_env(deployed_stage())["PINPIPE_KAFKA_REPLICATION_FACTOR"] == "3"


def test_a_cheap_dev_stage_may_run_two_brokers_with_two_copies() -> None:
    state = deployed_stage(msk_brokers=2, kafka_replication_factor=2)
    created = requests_of("msk", state)
    assert created["Cluster"]["NumberOfBrokerNodes"] == 2
    assert created["Cluster"]["BrokerNodeGroupInfo"]["ClientSubnets"] == [
        "subnet-0a1b2c3d4e5f60010",
        "subnet-0a1b2c3d4e5f60011",
    ]
    properties = created["BrokerConfiguration"]["ServerProperties"]
    assert b"default.replication.factor=2\n" in properties
    assert b"min.insync.replicas=1\n" in properties
    with pytest.raises(ValueError, match="needs as many brokers"):
        StageConfig(stage="dev", msk_brokers=2, kafka_replication_factor=3)


def test_the_gateway_and_its_key_fit_the_apigateway_api() -> None:
    state = deployed_stage()
    created = requests_of("gateway", state)
    assert created["VpcLink"]["targetArns"] == [state.output("api", "LoadBalancerArn")]
    plan = created["UsagePlan"]
    assert plan["throttle"] == {"rateLimit": 200.0, "burstLimit": 400}
    assert plan["quota"] == {"limit": 2000000, "period": "DAY"}
    assert created["ApiKey"]["enabled"] is True


def test_the_alarms_fit_put_metric_alarm_and_follow_the_deployed_components() -> None:
    created = requests_of("alarms", deployed_stage())
    assert set(created) == {
        "SinkTimeLagAlarm",
        "SinkOffsetLagAlarm",
        "StreamIteratorAgeAlarm",
        "DagRunFailedAlarm",
        "Api5xxRateAlarm",
    }
    lag = created["SinkTimeLagAlarm"]["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"]
    assert lag == [
        {"Name": "Cluster Name", "Value": "pinpipe-dev"},
        {"Name": "Consumer Group", "Value": "connect-pinpipe-dev-s3-sink"},
        {"Name": "Topic", "Value": "pinpipe.pin"},
    ]
    assert created["Api5xxRateAlarm"]["Dimensions"] == [
        {"Name": "ApiName", "Value": "pinpipe-dev"},
        {"Name": "Stage", "Value": "dev"},
    ]
    age = created["StreamIteratorAgeAlarm"]["Metrics"][1]["MetricStat"]["Metric"]
    assert age["Dimensions"] == [{"Name": "StreamName", "Value": "streaming-pinpipe-pin"}]
    # a stage without the API, the connector and MWAA has only the Kinesis alarm
    fewer = requests_of("alarms", deployed_stage(skip="api,connect,mwaa"))
    assert set(fewer) == {"StreamIteratorAgeAlarm"}


def test_the_connector_fits_the_kafkaconnect_api_with_config_from_connectors_dir() -> None:
    state = deployed_stage()
    created = requests_of("connect", state)
    connector = created["SinkConnector"]
    config = connector["connectorConfiguration"]
    assert config == components.connector_config(state)
    assert config["topics"] == "pinpipe.pin,pinpipe.geo,pinpipe.user"
    assert config["s3.bucket.name"] == state.lake_bucket
    assert config["s3.region"] == REGION
    # no endpoint and no keys on aws: the S3 client uses the connector's IAM role
    assert not {"s3.endpoint", "aws.access.key.id", "aws.secret.access.key"} & set(config)
    assert config["s3.path.style.access"] == "false"
    assert config["errors.deadletterqueue.topic.replication.factor"] == "3"
    assert connector["kafkaCluster"]["apacheKafkaCluster"]["bootstrapServers"] == (
        state.bootstrap_servers
    )
    assert connector["kafkaClusterClientAuthentication"] == {"authenticationType": "IAM"}
    assert connector["serviceExecutionRoleArn"] == state.output("iam", "ConnectRoleArn")
    plugin = created["SinkPlugin"]["location"]["s3Location"]
    assert plugin == {
        "bucketArn": state.output("storage", "ArtifactsBucketArn"),
        "fileKey": state.artifacts.plugin_key,
    }
    worker = base64.b64decode(created["WorkerConfiguration"]["propertiesFileContent"]).decode()
    assert "value.converter=org.apache.kafka.connect.storage.StringConverter" in worker


def test_the_mwaa_environment_fits_the_mwaa_api() -> None:
    state = deployed_stage()
    environment = requests_of("mwaa", state)["Environment"]
    assert environment["SourceBucketArn"] == state.output("storage", "ArtifactsBucketArn")
    assert environment["RequirementsS3ObjectVersion"] == state.artifacts.requirements_version
    assert environment["StartupScriptS3Path"] == "mwaa/startup.sh"
    assert environment["NetworkConfiguration"]["SubnetIds"] == [
        "subnet-0a1b2c3d4e5f60010",
        "subnet-0a1b2c3d4e5f60011",
    ]
    kwargs = json.loads(environment["AirflowConfigurationOptions"]["secrets.backend_kwargs"])
    assert kwargs["connections_prefix"] == "pinpipe/dev/airflow/connections"
    assert state.config.databricks_secret_name.startswith(kwargs["connections_prefix"] + "/")


def test_the_validation_rejects_what_the_api_lacks() -> None:
    with pytest.raises(AssertionError, match="no such member"):
        validate("AWS::MWAA::Environment", {"Name": "x", "NoSuchProperty": 1})
    with pytest.raises(AssertionError, match="Missing required parameter"):
        validate("AWS::KafkaConnect::CustomPlugin", {"Name": "x"})


# -- every stack: CreateChangeSet and its parameters -------------------------------------------
@pytest.mark.parametrize("component", COMPONENTS)
def test_change_set_request_is_valid_and_supplies_exactly_the_parameters(component: str) -> None:
    state = deployed_stage()
    template = stacks.template(component, state)
    parameters = stacks.parameters(component, state)
    declared = template["Parameters"]
    required = {name for name, spec in declared.items() if "Default" not in spec}
    assert required <= set(parameters) <= set(declared)
    for name, value in parameters.items():
        pattern = declared[name].get("AllowedPattern")
        assert pattern is None or re.match(pattern, value), f"{name}={value!r} vs {pattern}"
        assert (
            value == ""
            or "AllowedValues" not in declared[name]
            or (value in declared[name]["AllowedValues"])
        )
    request = {
        "StackName": state.config.stack_name(component),
        "ChangeSetName": "pinpipe-0123456789ab",
        "ChangeSetType": "CREATE",
        "TemplateBody": templates.body(template),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": stacks.CAPABILITIES.get(component, []),
    }
    model = SESSION.get_service_model("cloudformation").operation_model("CreateChangeSet")
    report = ParamValidator().validate(request, model.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert len(request["TemplateBody"]) <= 51_200  # CloudFormation's TemplateBody limit


def test_stacks_wait_for_inputs_they_cannot_have_yet() -> None:
    state = StageState(StageConfig(stage="dev", region=REGION), account=ACCOUNT)
    assert stacks.parameters("network", state) == {"Stage": "dev"}
    for component in ("iam", "msk", "api", "gateway", "connect", "mwaa"):
        with pytest.raises(KeyError):
            stacks.parameters(component, state)


def test_the_bootstrap_brokers_request_fits_the_kafka_api() -> None:
    model = SESSION.get_service_model("kafka").operation_model("GetBootstrapBrokers")
    arn = "arn:aws:kafka:eu-west-1:123456789012:cluster/pinpipe-dev/0f1e2d3c-1111-2222-3333-4444"
    assert not ParamValidator().validate({"ClusterArn": arn}, model.input_shape).has_errors()
    assert "BootstrapBrokerStringSaslIam" in model.output_shape.members


# -- Databricks ---------------------------------------------------------------------------------
def test_databricks_jobs_are_valid_job_settings_running_the_wheel() -> None:
    state = deployed_stage()
    jobs = databricks.job_settings(state)
    assert set(jobs) == {"batch", "stream"}
    for key, settings in jobs.items():
        as_dict = settings.as_dict()
        assert JobSettings.from_dict(as_dict).as_dict() == as_dict
        task = as_dict["tasks"][0]
        assert task["python_wheel_task"]["package_name"] == "pinpipe"
        assert task["python_wheel_task"]["parameters"][0] == key
        assert task["libraries"] == [{"whl": state.wheel_uri}]
        cluster = as_dict["job_clusters"][0]["new_cluster"]
        assert cluster["spark_env_vars"]["PINPIPE_LAKE_BUCKET"] == state.lake_bucket
        assert cluster["spark_version"] == "17.3.x-scala2.13"
    stream_parameters = jobs["stream"].as_dict()["tasks"][0]["python_wheel_task"]["parameters"]
    assert stream_parameters == [
        "stream",
        "--lake",
        f"s3a://{state.lake_bucket}/lake",
        "--prefix",
        "pinpipe",
    ]


def test_databricks_jobs_can_run_on_an_existing_cluster() -> None:
    jobs = databricks.job_settings(deployed_stage(databricks_cluster_id="0101-123456-abcdefgh"))
    for settings in jobs.values():
        as_dict = settings.as_dict()
        assert "job_clusters" not in as_dict
        assert as_dict["tasks"][0]["existing_cluster_id"] == "0101-123456-abcdefgh"


def test_a_job_the_service_filled_with_defaults_is_unchanged() -> None:
    wanted = {"name": "j", "tasks": [{"task_key": "t", "libraries": [{"whl": "s3://w"}]}]}
    current = {**wanted, "format": "MULTI_TASK", "timeout_seconds": 0}
    assert databricks._contains(current, wanted)
    changed = {**current, "tasks": [{"task_key": "t", "libraries": [{"whl": "s3://v"}]}]}
    assert not databricks._contains(changed, wanted)
