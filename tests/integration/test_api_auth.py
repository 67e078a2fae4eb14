"""API keys in `x-api-key`, as API Gateway checks them: an app configured with keys, against the
real broker of the stack (the stack's own API runs without keys)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from pipeline.config import Settings
from pipeline.ingest.app import create_app, ingest_of
from tests.support.api import KAFKA_JSON, apart, geo_row, read_kafka

pytestmark = pytest.mark.integration

KEYS = ["first-key", "second-key"]


@pytest.fixture(scope="module")
def client(stack: Settings) -> Iterator[FlaskClient]:
    app = create_app(apart(stack.model_copy(update={"api_keys": KEYS})))
    yield app.test_client()
    ingest_of(app).close()


def _produce(client: FlaskClient, topic: str, headers: dict[str, str]) -> Any:
    return client.post(
        f"/topics/{topic}",
        json={"records": [{"value": geo_row(121)}]},
        headers={"Content-Type": KAFKA_JSON, **headers},
    )


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": ""}])
def test_missing_or_wrong_key_is_403(client: FlaskClient, stack: Settings, headers: Any) -> None:
    response = _produce(client, stack.topics["geo"], headers)
    assert response.status_code == 403
    assert response.json == {
        "error_code": 40301,
        "message": "Forbidden: missing or wrong x-api-key",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/topics/test.unknown"),
        ("put", "/streams/streaming-test-geo/record"),
        ("get", "/streams"),
        ("delete", "/streams/streaming-test-geo"),
    ],
)
def test_every_data_route_checks_the_key_first(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path, data=b"not json", content_type="text/plain")
    assert response.status_code == 403


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_is_accepted(client: FlaskClient, stack: Settings, key: str) -> None:
    topic = stack.topics["geo"]
    response = _produce(client, topic, {"x-api-key": key})
    assert response.status_code == 200, response.text
    assert response.json is not None
    entry = response.json["offsets"][0]
    assert read_kafka(stack, topic, entry["partition"], entry["offset"]) == (None, geo_row(121))


def test_operations_and_docs_need_no_key(client: FlaskClient) -> None:
    for path in ("/healthz", "/metrics", "/openapi/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_document_declares_the_key(client: FlaskClient, stack: Settings) -> None:
    document: Any = client.get("/openapi/openapi.json").json
    assert document["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    produce = document["paths"][f"/topics/{stack.topics['geo']}"]["post"]
    assert produce["security"] == [{"api_key": []}]
    assert "403" in produce["responses"]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_readiness_details_only_for_key_holders(client: FlaskClient, stack: Settings) -> None:
    """/readyz names brokers and endpoints: an anonymous caller sees only the verdicts."""
    anonymous: Any = client.get("/readyz")
    holder: Any = client.get("/readyz", headers={"x-api-key": KEYS[0]})
    assert anonymous.status_code == holder.status_code == 200
    assert anonymous.json["status"] == holder.json["status"] == "ready"
    assert {check["detail"] for check in anonymous.json["checks"].values()} == {""}
    broker = stack.kafka_bootstrap_servers.split(",")[0]
    assert broker not in anonymous.text
    assert all(check["detail"] for check in holder.json["checks"].values())
