"""AWS sessions for a stage, and the preflight that fails in one line.

Credentials come from the standard chain only (`--profile`/AWS_PROFILE, environment, SSO,
instance role); the deploy never reads keys from the repository or from `.env` defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ProfileNotFound,
)

from pipeline.deploy.errors import DeployError
from pipeline.deploy.stage import StageConfig

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_kafka import KafkaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient


@dataclass
class Aws:
    """boto3 clients of one stage's account and region."""

    session: boto3.Session
    endpoint_url: str | None = None

    def client(self, service: str) -> Any:
        kwargs: dict[str, Any] = {"config": Config(retries={"mode": "standard"})}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return self.session.client(service, **kwargs)  # type: ignore[call-overload]

    @property
    def cloudformation(self) -> CloudFormationClient:
        client: CloudFormationClient = self.client("cloudformation")
        return client

    @property
    def s3(self) -> S3Client:
        client: S3Client = self.client("s3")
        return client

    @property
    def ecr(self) -> ECRClient:
        client: ECRClient = self.client("ecr")
        return client

    @property
    def kafka(self) -> KafkaClient:
        client: KafkaClient = self.client("kafka")
        return client

    @property
    def secretsmanager(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self.client("secretsmanager")
        return client


def connect(config: StageConfig) -> tuple[Aws, str]:
    """A session for the stage and the account id; DeployError (one line) when that fails."""
    try:
        session = boto3.Session(profile_name=config.profile) if config.profile else boto3.Session()
    except ProfileNotFound:
        raise DeployError(
            f"AWS profile {config.profile!r} not found: create it with "
            f"`aws configure --profile {config.profile}` or pass another PROFILE"
        ) from None
    region = config.region or session.region_name or ""
    if not region:
        raise DeployError("no AWS region: pass REGION=... or set AWS_REGION / the profile's region")
    known = session.get_available_regions("cloudformation")
    known += session.get_available_regions("cloudformation", partition_name="aws-cn")
    known += session.get_available_regions("cloudformation", partition_name="aws-us-gov")
    if region not in known:
        raise DeployError(f"{region!r} is not an AWS region (e.g. us-east-1, eu-west-1)")
    config.region = region
    session = (
        boto3.Session(profile_name=config.profile, region_name=region)
        if config.profile
        else boto3.Session(region_name=region)
    )
    aws = Aws(session, config.endpoint_url)
    try:
        account: str = aws.client("sts").get_caller_identity()["Account"]
    except NoCredentialsError:
        raise DeployError(
            "no AWS credentials: set AWS_PROFILE (or PROFILE=...), or log in with `aws sso login`"
        ) from None
    except (ClientError, BotoCoreError) as error:
        raise DeployError(f"AWS rejected the credentials in {region}: {error}") from None
    return aws, account
