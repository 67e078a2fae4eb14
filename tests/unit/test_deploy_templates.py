"""The CloudFormation templates of deploy/: cfn-lint clean, least-privilege IAM, safe storage."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint, lint_by_config, lint_file

from pipeline.deploy import stacks, templates
from pipeline.deploy.stage import COMPONENTS, StageConfig, StageState

TEMPLATE_FILES = sorted(templates.TEMPLATES_DIR.glob("*.yaml"))


def problems(matches: list[Any]) -> list[str]:
    return [str(match) for match in matches]


def test_there_is_one_template_per_component() -> None:
    assert sorted(path.stem for path in TEMPLATE_FILES) == sorted(COMPONENTS)


def test_cfn_lint_is_clean_on_every_template() -> None:
    assert problems(lint_by_config(ManualArgs(templates=[str(p) for p in TEMPLATE_FILES]))) == []


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (templates.TEMPLATES_DIR / "streams.yaml")
        .read_text()
        .replace("ShardCount: !Ref ShardCount", "ShardCount: !Ref NoSuchParameter", 1)
    )
    assert any("NoSuchParameter" in problem for problem in problems(lint_file(broken)))


def rendered_connect_template(tmp_path: Path) -> Path:
    """The connect template as deploy sends it: connector config rendered from connectors/."""
    state = StageState(StageConfig(stage="dev", region="eu-west-1"), account="123456789012")
    state.outputs["storage"] = {"LakeBucketName": "pinpipe-dev-lake-123456789012-eu-west-1"}
    state.bootstrap_servers = "b-1.example.kafka.eu-west-1.amazonaws.com:9098"
    path = tmp_path / "connect.json"
    path.write_text(templates.body(stacks.template("connect", state)))
    return path


def test_cfn_lint_is_clean_on_the_rendered_connect_template(tmp_path: Path) -> None:
    path = rendered_connect_template(tmp_path)
    config = json.loads(path.read_text())["Resources"]["SinkConnector"]["Properties"][
        "ConnectorConfiguration"
    ]
    assert config["connector.class"] == "io.pinpipe.connect.s3.JsonLinesS3SinkConnector"
    assert problems(lint(path.read_text())) == []


# -- IAM: no wildcard action on a wildcard resource ------------------------------------------
WILDCARD_ACTION = re.compile(r"^(\*|[a-z0-9-]+:\*)$")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every permission policy of a template: inline role/user/group policies and policy
    resources (AWS::IAM::Policy, AWS::IAM::ManagedPolicy), with where each comes from."""
    found = []
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for policy in properties.get("Policies", []):
                found.append((f"{logical_id}/{policy['PolicyName']}", policy["PolicyDocument"]))
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found.append((logical_id, properties["PolicyDocument"]))
    return found


def wildcard_grants(document: dict[str, Any]) -> list[str]:
    """Allow statements granting `*` or `service:*` on resource `*` (or any NotAction)."""
    bad = []
    for statement in _as_list(document["Statement"]):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            bad.append(f"{statement.get('Sid')}: NotAction")
            continue
        actions = [a for a in _as_list(statement["Action"]) if isinstance(a, str)]
        resources = _as_list(statement.get("Resource", []))
        if "*" in resources and any(WILDCARD_ACTION.match(a) for a in actions):
            bad.append(f"{statement.get('Sid')}: {actions} on *")
    return bad


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.stem)
def test_no_policy_grants_a_wildcard_action_on_a_wildcard_resource(path: Path) -> None:
    for where, document in policy_documents(templates.load(path.stem)):
        assert wildcard_grants(document) == [], f"{path.name} {where}"


def test_the_iam_check_catches_wildcards() -> None:
    assert wildcard_grants({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    assert wildcard_grants(
        {"Statement": {"Effect": "Allow", "Action": ["s3:GetObject", "s3:*"], "Resource": ["*"]}}
    )
    assert wildcard_grants({"Statement": [{"Effect": "Allow", "NotAction": "iam:*"}]})
    scoped = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket/*"}
    specific = {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
    assert wildcard_grants({"Statement": [scoped, specific]}) == []


def test_every_role_has_policies_and_a_service_or_the_api_host_as_principal() -> None:
    roles = {
        logical_id: resource["Properties"]
        for logical_id, resource in templates.load("iam")["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert set(roles) == {
        "ApiHostRole",
        "ApiRole",
        "ProvisionRole",
        "ConnectRole",
        "MwaaRole",
        "DatabricksRole",
    }
    for logical_id, role in roles.items():
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        for statement in trust:
            principal = statement["Principal"]
            assert "Service" in principal or principal == {
                "AWS": {"Fn::GetAtt": ["ApiHostRole", "Arn"]}
            }, logical_id
        assert role["Policies"], logical_id


def statements_of(role: str) -> dict[str, dict[str, Any]]:
    policies = templates.load("iam")["Resources"][role]["Properties"]["Policies"]
    return {s["Sid"]: s for p in policies for s in _as_list(p["PolicyDocument"]["Statement"])}


def actions_of(role: str) -> set[str]:
    return {a for s in statements_of(role).values() for a in _as_list(s["Action"])}


def test_only_provisioning_creates_topics_and_the_api_host_holds_no_data_access() -> None:
    assert "kafka-cluster:CreateTopic" not in actions_of("ApiRole")
    assert "kafka-cluster:CreateTopic" in actions_of("ProvisionRole")
    host = actions_of("ApiHostRole")
    assert not any(a.startswith(("kinesis:", "kafka-cluster:", "s3:")) for a in host)
    assert statements_of("ApiHostRole")["ReadTheApiKey"]["Resource"]["Fn::Sub"].endswith(
        ":secret:pinpipe/${Stage}/api-key-*"
    )


def test_no_s3_action_wildcards_and_mwaa_may_list_the_landing_zone() -> None:
    for _, document in policy_documents(templates.load("iam")):
        for statement in _as_list(document["Statement"]):
            for action in _as_list(statement["Action"]):
                assert not (action.startswith("s3:") and "*" in action), statement["Sid"]
    sensor = statements_of("MwaaRole")["SensorListsTheLandingZone"]
    assert sensor["Action"] == "s3:ListBucket"
    assert sensor["Resource"] == {"Ref": "LakeBucketArn"}
    code = statements_of("DatabricksRole")["ReadTheWheelAndTheJobScripts"]["Resource"]
    assert {r["Fn::Sub"] for r in code} == {
        "${ArtifactsBucketArn}/wheels/*",
        "${ArtifactsBucketArn}/code/*",
    }


def test_kafka_permissions_are_scoped_to_the_stage_cluster_and_prefix() -> None:
    for _, document in policy_documents(templates.load("iam")):
        for statement in _as_list(document["Statement"]):
            actions = _as_list(statement["Action"])
            if not any(str(a).startswith("kafka-cluster:") for a in actions):
                continue
            for resource in _as_list(statement["Resource"]):
                text = resource["Fn::Sub"]
                assert "/${MskClusterName}/" in text, statement["Sid"]
                if ":topic/" in text:
                    assert text.endswith(
                        (
                            "/${TopicPrefix}.*",
                            "/${TopicPrefix}.api-requests",
                            "/__amazon_msk_connect_*",
                        )
                    )
                if ":transactional-id/" in text:
                    assert text.endswith("/${TopicPrefix}-api"), statement["Sid"]


# -- storage ---------------------------------------------------------------------------------
def test_buckets_are_versioned_encrypted_private_and_the_lake_is_kept() -> None:
    resources = templates.load("storage")["Resources"]
    for logical_id in ("LakeBucket", "ArtifactsBucket"):
        properties = resources[logical_id]["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert resources["LakeBucket"]["DeletionPolicy"] == "Retain"
    assert resources["LakeBucket"]["UpdateReplacePolicy"] == "Retain"
    assert "DeletionPolicy" not in resources["ArtifactsBucket"]


def test_msk_uses_iam_auth_and_tls_only() -> None:
    cluster = templates.load("msk")["Resources"]["Cluster"]["Properties"]
    assert cluster["ClientAuthentication"] == {
        "Sasl": {"Iam": {"Enabled": True}},
        "Unauthenticated": {"Enabled": False},
    }
    assert cluster["EncryptionInfo"]["EncryptionInTransit"]["ClientBroker"] == "TLS"
    connector = templates.load("connect")["Resources"]["SinkConnector"]["Properties"]
    assert connector["KafkaClusterClientAuthentication"] == {"AuthenticationType": "IAM"}
    assert connector["KafkaClusterEncryptionInTransit"] == {"EncryptionType": "TLS"}


def test_short_form_intrinsics_become_long_form() -> None:
    document = templates.loads(
        "Resources:\n  A:\n    Type: X\n    Properties:\n"
        "      B: !GetAtt C.Arn\n      D: !Sub 'x-${E}'\n      F: !Select [0, !GetAZs '']\n"
    )
    properties = document["Resources"]["A"]["Properties"]
    assert properties == {
        "B": {"Fn::GetAtt": ["C", "Arn"]},
        "D": {"Fn::Sub": "x-${E}"},
        "F": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
    }
    with pytest.raises(ValueError):
        templates.loads("just: text\n")


# -- the API: closed, reachable only through the gateway, TLS on every hop -------------------
def test_the_api_host_is_private_hardened_and_runs_no_host_network() -> None:
    resources = templates.load("api")["Resources"]
    ingress = resources["ApiSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "IpProtocol": "tcp",
            "FromPort": 8443,
            "ToPort": 8443,
            "CidrIp": {"Ref": "VpcCidr"},
            "Description": ingress[0]["Description"],
        }
    ]
    instance = resources["ApiInstance"]["Properties"]
    assert instance["SubnetId"] == {"Fn::Select": [0, {"Ref": "PrivateSubnetIds"}]}
    assert instance["MetadataOptions"] == {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
    }
    assert [m["Ebs"]["Encrypted"] for m in instance["BlockDeviceMappings"]] == [True]
    user_data = instance["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert "--network host" not in user_data and "--net=host" not in user_data
    assert "-p 127.0.0.1:8000:8000" in user_data  # published on loopback, for nginx only
    assert "listen 8443 ssl;" in user_data
    assert "PINPIPE_API_KEYS=" in user_data and "secretsmanager get-secret-value" in user_data
    # the containers' credentials are their roles', never the instance's
    assert "credential_process" in user_data and "role_arn = ${ApiRoleArn}" in user_data
    balancer = resources["LoadBalancer"]["Properties"]
    assert (balancer["Type"], balancer["Scheme"]) == ("network", "internal")
    assert "0.0.0.0/0" not in json.dumps(templates.load("api"))


def test_the_gateway_requires_the_api_key_and_throttles_the_stage() -> None:
    resources = templates.load("gateway")["Resources"]
    body = resources["RestApi"]["Properties"]["Body"]
    method = body["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]
    assert method["security"] == [{"api_key": []}]
    assert body["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    integration = method["x-amazon-apigateway-integration"]
    assert integration["connectionType"] == "VPC_LINK"
    assert integration["uri"]["Fn::Sub"].startswith("https://")
    plan = resources["UsagePlan"]["Properties"]
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    assert plan["Quota"]["Period"] == "DAY"
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "RestApi"}, "Stage": {"Ref": "ApiStage"}}]
    assert resources["UsagePlanKey"]["Properties"]["KeyId"] == {"Ref": "ApiKey"}
    key = resources["ApiKey"]["Properties"]["Value"]["Fn::Sub"]
    assert key == "{{resolve:secretsmanager:${ApiKeySecret}:SecretString}}"
    secret = resources["ApiKeySecret"]["Properties"]
    assert secret["Name"] == {"Fn::Sub": "pinpipe/${Stage}/api-key"}
    assert secret["GenerateSecretString"]["PasswordLength"] >= 20  # API Gateway's minimum


# -- MSK durability ------------------------------------------------------------------------------
def test_msk_keeps_three_copies_in_three_zones_by_default() -> None:
    template = templates.load("msk")
    parameters = template["Parameters"]
    assert parameters["BrokerCount"]["Default"] == "3"
    assert parameters["ReplicationFactor"]["Default"] == "3"
    assert parameters["MinInsyncReplicas"]["Default"] == "2"
    properties = template["Resources"]["BrokerConfiguration"]["Properties"]["ServerProperties"]
    assert "default.replication.factor=${ReplicationFactor}" in properties["Fn::Sub"]
    assert "min.insync.replicas=${MinInsyncReplicas}" in properties["Fn::Sub"]
    cluster = template["Resources"]["Cluster"]["Properties"]
    assert cluster["NumberOfBrokerNodes"] == {"Ref": "BrokerCount"}
    network = templates.load("network")
    assert network["Outputs"]["BrokerSubnetIds"]["Value"]["Fn::Join"][1] == [
        {"Ref": f"PrivateSubnet{n}"} for n in (1, 2, 3)
    ]


# -- alarms --------------------------------------------------------------------------------------
def _metrics(alarm: dict[str, Any]) -> set[tuple[str, str]]:
    properties = alarm["Properties"]
    if "Metrics" not in properties:
        return {(properties["Namespace"], properties["MetricName"])}
    return {
        (q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"])
        for q in properties["Metrics"]
        if "MetricStat" in q
    }


def test_alarms_cover_sink_lag_stream_age_failed_dag_runs_and_api_5xx() -> None:
    resources = templates.load("alarms")["Resources"]
    alarms = {k: r for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched = set().union(*(_metrics(alarm) for alarm in alarms.values()))
    assert watched == {
        ("AWS/Kafka", "EstimatedMaxTimeLag"),
        ("AWS/Kafka", "SumOffsetLag"),
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),
        ("AmazonMWAA", "DAGDurationFailed"),
        ("AWS/ApiGateway", "5XXError"),
    }
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
    assert resources["EmailSubscription"]["Condition"] == "HasEmail"


# -- checkov: every suppression says why --------------------------------------------------------
def test_every_checkov_suppression_gives_a_reason() -> None:
    skips = [
        line.strip()
        for path in TEMPLATE_FILES
        for line in path.read_text().splitlines()
        if "checkov:skip" in line
    ]
    assert skips
    for skip in skips:
        assert re.fullmatch(r"# checkov:skip=CKV2?_AWS_\d+:\S.{20,}", skip), skip
