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


def test_every_role_has_policies_and_a_service_principal() -> None:
    roles = {
        logical_id: resource["Properties"]
        for logical_id, resource in templates.load("iam")["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert set(roles) == {"ApiRole", "ConnectRole", "MwaaRole", "DatabricksRole"}
    for logical_id, role in roles.items():
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        assert all("Service" in statement["Principal"] for statement in trust), logical_id
        assert role["Policies"], logical_id


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
                    assert text.endswith(("/${TopicPrefix}.*", "/__amazon_msk_connect_*"))


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
