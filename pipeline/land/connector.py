"""Render, register and watch the S3 sink connector through the Connect REST API.

The one definition in `connectors/s3-sink.json` holds every setting; only target-specific values
(endpoint, bucket, region, credentials, topics) are filled in from `Settings`. The same rendered
config serves the local worker, the compose worker and MSK Connect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import requests
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from pipeline.config import Settings
from pipeline.config.settings import PROJECT_ROOT
from pipeline.landing import LANDING_PREFIX

DEFINITION = PROJECT_ROOT / "connectors" / "s3-sink.json"


def render(settings: Settings, definition: Path = DEFINITION) -> dict[str, Any]:
    """The connector `{"name", "config"}` with this target's values substituted."""
    secret = settings.aws_secret_access_key
    values = {
        "connector_name": settings.connector_name,
        "tasks_max": "1",
        "topics": ",".join(settings.topics.values()),
        "lake_bucket": settings.lake_bucket,
        "landing_prefix": LANDING_PREFIX,  # the landing contract's folder (pipeline.landing)
        "aws_region": settings.aws_region,
        "s3_endpoint": settings.endpoint_url("s3") or "",
        "s3_path_style": str(settings.s3_path_style).lower(),
        # empty → the worker's default AWS credential chain (the MSK Connect service role)
        "aws_access_key_id": settings.aws_access_key_id or "",
        "aws_secret_access_key": secret.get_secret_value() if secret else "",
        "flush_max_records": str(settings.landing_flush_max_records),
        "flush_max_bytes": str(settings.landing_flush_max_bytes),
        "flush_interval_ms": str(settings.landing_flush_interval_ms),
        "dlq_topic": settings.dlq_topic,
        "replication_factor": str(settings.kafka_replication_factor),
    }
    rendered: dict[str, Any] = json.loads(Template(definition.read_text()).substitute(values))
    return rendered


@dataclass
class ConnectorStatus:
    name: str
    state: str
    worker: str
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_tasks(self) -> list[int]:
        return [int(task["id"]) for task in self.tasks if task["state"] == "FAILED"]


class ConnectClient:
    """The few Connect REST calls the pipeline needs."""

    def __init__(self, settings: Settings, timeout_s: float = 15) -> None:
        self.base = settings.connect_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, f"{self.base}{path}", timeout=self.timeout_s, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(
                f"Connect {method} {path} → {response.status_code}: {response.text[:500]}"
            )
        return response

    # Connect answers 409 while a rebalance is in progress: retry for a while.
    @retry(
        retry=retry_if_exception_type(RuntimeError),
        wait=wait_exponential(multiplier=0.5, max=5),
        stop=stop_after_delay(60),
        reraise=True,
    )
    def put_config(self, name: str, config: dict[str, str]) -> bool:
        """Create or update (idempotent); True when the connector was created."""
        return self._call("PUT", f"/connectors/{name}/config", json=config).status_code == 201

    def status(self, name: str) -> ConnectorStatus:
        body = self._call("GET", f"/connectors/{name}/status").json()
        return ConnectorStatus(
            name=body["name"],
            state=body["connector"]["state"],
            worker=body["connector"]["worker_id"],
            tasks=body["tasks"],
        )

    def restart(self, name: str, only_failed: bool = True) -> None:
        flag = "true" if only_failed else "false"
        self._call("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed={flag}")

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/connectors/{name}")


def register(settings: Settings) -> bool:
    """Register the S3 sink (PUT config): safe to run any number of times."""
    connector = render(settings)
    return ConnectClient(settings).put_config(connector["name"], connector["config"])
