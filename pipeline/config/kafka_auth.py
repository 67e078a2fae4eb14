"""SASL/OAUTHBEARER tokens for MSK IAM authentication (librdkafka's `oauth_cb`).

MSK accepts, on its IAM listener (port 9098), a token that is a SigV4-presigned
`kafka-cluster:Connect` request signed with the caller's AWS credentials (the standard chain:
instance profile on EC2). `aws-msk-iam-sasl-signer-python` builds it; librdkafka calls the
callback from its background thread whenever the token is about to expire.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # type: ignore[import-untyped]


def msk_iam_oauth_cb(region: str) -> Callable[[str], tuple[str, float]]:
    """`oauth_cb` for confluent-kafka: returns (token, expiry as seconds since the epoch)."""

    def oauth_cb(_oauthbearer_config: str) -> tuple[str, float]:
        token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return token, expiry_ms / 1000

    return oauth_cb
