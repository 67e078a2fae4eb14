"""What the daily DAG does when a task or the whole run fails: log it, and tell someone.

`notify_failure` is the DAG's and every task's `on_failure_callback`. It always logs an ERROR
line; with `PINPIPE_ALERT_WEBHOOK_URL` it POSTs the alert as JSON (a Slack-style `text` field
plus the details), with `PINPIPE_ALERT_SNS_TOPIC_ARN` it publishes it to that SNS topic. A failed
notification is logged, never raised: it must not hide the failure it reports.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pipeline.config import Settings, get_settings

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_S = 10


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def failure_alert(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert's fields from an Airflow callback context (task or DAG run)."""
    dag_run = context.get("dag_run")
    instance = context.get("ti") or context.get("task_instance")
    task_id = getattr(instance, "task_id", None)
    dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
    reason = context.get("exception") or context.get("reason") or "failed"
    what = f"task {task_id}" if task_id else "DAG run"
    alert = {
        "text": f"pinpipe: {what} of {dag_id} failed (run {run_id}): {reason}",
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "try_number": getattr(instance, "try_number", None),
        "reason": str(reason),
        "data_interval_start": _text(context.get("data_interval_start")),
        "data_interval_end": _text(context.get("data_interval_end")),
        "log_url": getattr(instance, "log_url", None),
    }
    return alert


def send_alert(alert: Mapping[str, Any], settings: Settings) -> list[str]:
    """Deliver `alert` to the configured webhook and SNS topic; returns where it went."""
    delivered = []
    if settings.alert_webhook_url:
        import requests

        try:
            response = requests.post(
                settings.alert_webhook_url, json=dict(alert), timeout=WEBHOOK_TIMEOUT_S
            )
            response.raise_for_status()
            delivered.append("webhook")
        except requests.RequestException as error:
            log.error("alert webhook %s failed: %s", settings.alert_webhook_url, error)
    if settings.alert_sns_topic_arn:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            publish_to_sns(alert, settings)
            delivered.append("sns")
        except (BotoCoreError, ClientError) as error:
            log.error("alert to SNS topic %s failed: %s", settings.alert_sns_topic_arn, error)
    return delivered


def publish_to_sns(alert: Mapping[str, Any], settings: Settings) -> None:
    """`alert` to the configured SNS topic (on aws the stage's alarm topic); raises on failure."""
    import boto3

    sns = boto3.client("sns", **settings.boto3_kwargs("sns"))
    sns.publish(
        TopicArn=settings.alert_sns_topic_arn,
        Subject=str(alert["text"])[:100],  # SNS subjects are at most 100 characters
        Message=json.dumps(dict(alert), indent=2),
    )


def notify_failure(context: Mapping[str, Any]) -> None:
    """The DAG's `on_failure_callback`: log the failure, then alert where configured."""
    alert = failure_alert(context)
    log.error("%s", alert["text"])
    send_alert(alert, get_settings())
