"""The DAG's failure alerts reach a real webhook (an HTTP server) and a real SNS topic (moto
server, with an SQS queue subscribed to read the message back); a dead endpoint is logged, not
raised, so the alert never hides the failure it reports."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from pipeline.config import Settings
from pipeline.orchestrate.alerts import failure_alert, notify_failure, send_alert
from tests.support.ports import free_port
from tests.support.webhook import Webhook


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def task_failure_context() -> dict[str, Any]:
    """What Airflow hands a task's on_failure_callback (the fields the alert reads)."""
    return {
        "dag_run": SimpleNamespace(dag_id="pinpipe_batch", run_id="scheduled__2026-03-02"),
        "ti": SimpleNamespace(
            task_id="check_data_quality", try_number=1, log_url="http://airflow/log"
        ),
        "exception": RuntimeError("1 data-quality check(s) failed: silver.pin"),
        "data_interval_start": "2026-03-01T00:00:00+00:00",
        "data_interval_end": "2026-03-02T00:00:00+00:00",
    }


def test_the_alert_names_the_run_the_task_and_the_reason() -> None:
    alert = failure_alert(task_failure_context())
    assert alert["text"] == (
        "pinpipe: task check_data_quality of pinpipe_batch failed (run scheduled__2026-03-02): "
        "1 data-quality check(s) failed: silver.pin"
    )
    assert alert["data_interval_end"] == "2026-03-02T00:00:00+00:00"
    run_failure = failure_alert(
        {"dag_run": SimpleNamespace(dag_id="pinpipe_batch", run_id="r1"), "reason": "timed_out"}
    )
    assert run_failure["text"].startswith("pinpipe: DAG run of pinpipe_batch failed (run r1)")
    assert run_failure["task_id"] is None


def test_a_failure_is_logged_and_posted_to_the_webhook(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PINPIPE_ALERT_WEBHOOK_URL", webhook.url)
    with caplog.at_level(logging.ERROR, logger="pipeline.orchestrate.alerts"):
        notify_failure(task_failure_context())
    assert "task check_data_quality of pinpipe_batch failed" in caplog.text
    (body,) = webhook.received
    assert body["task_id"] == "check_data_quality" and body["run_id"] == "scheduled__2026-03-02"
    assert "silver.pin" in body["text"]


def test_a_failure_is_published_to_the_sns_topic(moto_server: str) -> None:
    settings = Settings(aws_endpoint_url=moto_server, aws_region="us-east-1")
    sns = boto3.client("sns", **settings.boto3_kwargs("sns"))
    sqs = boto3.client("sqs", **settings.boto3_kwargs("sns"))  # same moto server
    topic = sns.create_topic(Name="pinpipe-alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName="alarm-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    alert = failure_alert(task_failure_context())
    delivered = send_alert(alert, settings.model_copy(update={"alert_sns_topic_arn": topic}))
    assert delivered == ["sns"]
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Subject"].startswith("pinpipe: task check_data_quality")
    assert json.loads(envelope["Message"])["task_id"] == "check_data_quality"


def test_an_unreachable_endpoint_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    settings = Settings(alert_webhook_url=dead)
    with caplog.at_level(logging.ERROR, logger="pipeline.orchestrate.alerts"):
        assert send_alert(failure_alert(task_failure_context()), settings) == []
    assert f"alert webhook {dead} failed" in caplog.text
