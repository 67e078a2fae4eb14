"""Reading small Delta tables with delta-rs (the `deltalake` package): no JVM, no Spark session.

Lake roots are folders or `s3://` / `s3a://` URIs (Spark's scheme is read as plain S3); S3
access follows the settings: endpoint (moto or S3Proxy locally), region and keys when set, else
the usual AWS credential chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from pipeline.config import Settings

Row = dict[str, Any]
S3_SCHEMES = ("s3", "s3a", "s3n")


def is_s3(uri: str) -> bool:
    return urlparse(uri).scheme in S3_SCHEMES


def s3_location(uri: str) -> tuple[str, str]:
    """Bucket and key of an `s3://` or `s3a://` URI."""
    parsed = urlparse(uri)
    if parsed.scheme not in S3_SCHEMES or not parsed.netloc:
        raise ValueError(f"not an S3 URI: {uri}")
    return parsed.netloc, parsed.path.lstrip("/")


def delta_rs_uri(uri: str) -> str:
    """delta-rs knows `s3://`, not Hadoop's `s3a://`."""
    if is_s3(uri):
        bucket, key = s3_location(uri)
        return f"s3://{bucket}/{key}".rstrip("/")
    return uri


def storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs (object_store) options for the settings' S3: endpoint, region, keys."""
    options = {
        "AWS_REGION": settings.aws_region,
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": str(not settings.s3_path_style).lower(),
    }
    endpoint = settings.endpoint_url("s3")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        # local S3 servers answer plain HTTP
        options["AWS_ALLOW_HTTP"] = "true"
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        options["AWS_ACCESS_KEY_ID"] = settings.aws_access_key_id
        options["AWS_SECRET_ACCESS_KEY"] = settings.aws_secret_access_key.get_secret_value()
    return options


@dataclass(frozen=True)
class LakeReader:
    """Reads the Delta tables of one lake; a missing table reads as None."""

    settings: Settings

    def table(self, uri: str) -> DeltaTable | None:
        options = storage_options(self.settings) if is_s3(uri) else None
        try:
            return DeltaTable(delta_rs_uri(uri), storage_options=options)
        except TableNotFoundError:
            return None

    def arrow(self, uri: str, columns: list[str] | None = None) -> Any:
        """A pyarrow Table (pyarrow ships no type hints), or None without a table."""
        table = self.table(uri)
        return None if table is None else table.to_pyarrow_table(columns=columns)

    def rows(self, uri: str, columns: list[str] | None = None) -> list[Row] | None:
        data = self.arrow(uri, columns)
        return None if data is None else list(data.to_pylist())

    def count(self, uri: str) -> int | None:
        table = self.table(uri)
        return None if table is None else int(table.to_pyarrow_dataset().count_rows())


def write_text(target: str, text: str, settings: Settings, content_type: str) -> str:
    """Write `text` to a local path or an S3 URI; returns where it went (an `s3://` URI for S3)."""
    if is_s3(target):
        bucket, key = s3_location(target)
        s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)
        return f"s3://{bucket}/{key}"
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path.resolve())
