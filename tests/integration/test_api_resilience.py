"""The API when its sinks go away and come back, and when it shuts down."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from pipeline.config import Settings
from pipeline.ingest.app import create_app, ingest_of
from pipeline.ingest.kafka import KafkaDelivery, OutgoingRecord
from pipeline.stack.components import kafka_ready
from pipeline.stack.supervisor import Supervisor
from tests.support.api import (
    apart,
    api_process,
    assert_error,
    geo_row,
    post_topic,
    read_kafka,
)
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_broker_stopped_gives_503_quickly_and_recovers_without_restart(stack: Settings) -> None:
    supervisor = Supervisor(stack)
    api_pid = supervisor.info()["api"]["pid"]
    topic = stack.topics["geo"]
    body = {"records": [{"value": geo_row(81)}]}
    assert post_topic(stack, topic, body).status_code == 200
    try:
        supervisor.stop("kafka")

        started = time.monotonic()
        response = post_topic(stack, topic, body)
        elapsed = time.monotonic() - started
        error = assert_error(response, 503, 50003)
        assert "Kafka" in error["message"]
        # answered within the configured timeout (plus HTTP overhead), never hanging
        assert elapsed < stack.api_timeout_s + 3, elapsed

        ready = requests.get(f"{stack.api_url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"]["ok"] is False
        assert requests.get(f"{stack.api_url}/healthz", timeout=5).status_code == 200
    finally:
        supervisor.start("kafka")
        wait_for(lambda: kafka_ready(stack), 120, "the broker", interval_s=0.5)

    deadline = time.monotonic() + 90
    while True:
        response = post_topic(stack, topic, body)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        assert_error(response, 503, 50003)
        time.sleep(1)
    assert response.status_code == 200, response.text
    entry = response.json()["offsets"][0]
    assert read_kafka(stack, topic, entry["partition"], entry["offset"]) == (None, geo_row(81))
    assert supervisor.info()["api"]["pid"] == api_pid  # recovered by itself
    assert requests.get(f"{stack.api_url}/readyz", timeout=30).status_code == 200


def test_kinesis_unreachable_gives_503_and_recovers(stack: Settings) -> None:
    """An API whose Kinesis endpoint is down (a private moto server, so the stack's stays up)."""
    port = free_port()
    settings = stack.model_copy(
        update={"kinesis_endpoint_url": f"http://127.0.0.1:{port}", "api_timeout_s": 2.0}
    )
    app = create_app(settings)
    client = app.test_client()
    stream = settings.streams["geo"]
    body = {"Data": geo_row(91), "PartitionKey": "p"}

    started = time.monotonic()
    response = client.put(f"/streams/{stream}/record", json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json is not None and response.json["error_code"] == 50301
    assert elapsed < settings.api_timeout_s + 3, elapsed
    assert client.get("/readyz").status_code == 503

    kinesis_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    kinesis_server.start()
    try:
        kinesis_client = boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
        kinesis_client.create_stream(StreamName=stream, ShardCount=1)
        wait_for(
            lambda: (
                kinesis_client.describe_stream_summary(StreamName=stream)[
                    "StreamDescriptionSummary"
                ]["StreamStatus"]
                == "ACTIVE"
            ),
            30,
            "the stream",
            interval_s=0.5,
        )
        response = client.put(f"/streams/{stream}/record", json=body)
        assert response.status_code == 200, response.text
        assert response.json is not None and response.json["SequenceNumber"]
    finally:
        kinesis_server.stop()
        ingest_of(app).close()


def test_close_commits_the_transaction_it_holds(stack: Settings) -> None:
    """Graceful shutdown with a group between produce and commit: close() lets the transaction
    thread commit it, and the request gets its offsets."""
    delivery = KafkaDelivery(apart(stack))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(60)

    delivery.before_commit = hold
    topic = stack.topics["geo"]
    outcome: dict[str, Any] = {}
    records = [OutgoingRecord(value=b'{"ind": 101}'), OutgoingRecord(value=b'{"ind": 102}')]
    producing = threading.Thread(
        target=lambda: outcome.update(offsets=delivery.produce(topic, records)), daemon=True
    )
    producing.start()
    assert held.wait(60), "the transaction thread never reached the commit"
    closing = threading.Thread(
        target=lambda: outcome.update(undelivered=delivery.close()), daemon=True
    )
    closing.start()
    release.set()
    closing.join(90)
    producing.join(90)

    assert outcome["undelivered"] == 0
    for number, (partition, offset) in zip((101, 102), outcome["offsets"], strict=True):
        # read_kafka reads read_committed (librdkafka's default): committed, so there
        assert read_kafka(stack, topic, partition, offset) == (None, {"ind": number})


def test_gunicorn_shutdown_flushes_the_producer(stack: Settings, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with api_process(stack, log) as (url, process):
        response = requests.post(
            f"{url}/topics/{stack.topics['geo']}",
            json={"records": [{"value": geo_row(111)}]},
            headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    assert process.returncode == 0, log.read_text()
    assert "kafka producer closed; 0 records undelivered" in log.read_text()


# -- a frozen broker (SIGSTOP: connections stay open, nothing answers) -----------------------------


@contextmanager
def frozen_broker(settings: Settings) -> Iterator[None]:
    """The test stack's broker stopped with SIGSTOP, and always resumed afterwards."""
    pid = Supervisor(settings).info()["kafka"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class Posts:
    """Produce requests sent concurrently from threads; each keeps its answer (or exception)."""

    def __init__(self, url: str, topic: str, first_ind: int, count: int) -> None:
        self.answers: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._post, args=(url, topic, first_ind + i), daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _post(self, url: str, topic: str, ind: int) -> None:
        try:
            answer: Any = requests.post(
                f"{url}/topics/{topic}",
                data=json.dumps({"records": [{"value": geo_row(ind)}]}),
                headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
                timeout=120,
            )
        except requests.RequestException as error:
            answer = error
        with self._lock:
            self.answers[ind] = answer

    def finished(self) -> dict[int, Any]:
        with self._lock:
            return dict(self.answers)

    def join(self) -> dict[int, Any]:
        for thread in self._threads:
            thread.join(timeout=180)
        return self.finished()


def _in_flight(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("pinpipe_api_sink_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no pinpipe_api_sink_requests_in_flight in /metrics")


def _error_code(answer: Any) -> int | None:
    if isinstance(answer, requests.Response) and answer.status_code >= 400:
        code: int = answer.json()["error_code"]
        return code
    return None


def test_frozen_broker_does_not_starve_health_checks(stack: Settings, tmp_path: Path) -> None:
    """Every sink slot waits for a frozen broker, more clients keep posting: /healthz and
    /metrics still answer while those requests wait, and each 200 was really delivered."""
    log = tmp_path / "api.log"
    topic = stack.topics["geo"]
    # deliveries wait long enough that nothing times out while the test looks
    with api_process(stack, log, PINPIPE_API_TIMEOUT_S="60") as (url, _process):
        warm = requests.post(  # caches the topic's metadata: later posts only wait for acks
            f"{url}/topics/{topic}",
            json={"records": [{"value": geo_row(400)}]},
            headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
            timeout=60,
        )
        assert warm.status_code == 200, warm.text
        threads = 8  # `pinpipe api` default
        with frozen_broker(stack):
            posts = Posts(url, topic, 401, threads + 4)
            wait_for(
                lambda: _in_flight(url) == threads, 60, "every sink slot taken", interval_s=0.5
            )
            wait_for(
                lambda: len(posts.finished()) == 4, 60, "the extra requests refused", interval_s=0.5
            )

            health = requests.get(f"{url}/healthz", timeout=30)

            assert health.status_code == 200 and health.json() == {"status": "ok"}
            waiting = [ind for ind in range(401, 401 + threads + 4) if ind not in posts.answers]
            assert len(waiting) == threads  # answered while every slot still waits for acks
            for answer in posts.finished().values():
                assert _error_code(answer) == 50302, answer.text
                assert answer.headers["Retry-After"] == "1"
        answers = posts.join()
    for ind in waiting:
        answer = answers[ind]
        assert isinstance(answer, requests.Response), answer
        assert answer.status_code == 200, answer.text
        entry = answer.json()["offsets"][0]
        assert read_kafka(stack, topic, entry["partition"], entry["offset"]) == (
            None,
            geo_row(ind),
        )


def test_sigterm_finishes_in_flight_requests_with_their_real_outcome(
    stack: Settings, tmp_path: Path
) -> None:
    """SIGTERM while requests wait for a frozen broker that comes back: the API stops accepting,
    answers them 200 once delivered, flushes and exits 0."""
    log = tmp_path / "api.log"
    topic = stack.topics["geo"]
    with api_process(stack, log, PINPIPE_API_TIMEOUT_S="60") as (url, process):
        assert post_topic_to(url, topic, 410).status_code == 200
        with frozen_broker(stack):
            posts = Posts(url, topic, 411, 3)
            wait_for(lambda: _in_flight(url) == 3, 60, "three requests waiting", interval_s=0.5)
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: not _serves(url), 60, "new requests no longer served", interval_s=0.5)
            assert posts.finished() == {}  # still waiting, not dropped
        answers = posts.join()
        process.wait(timeout=120)
    assert process.returncode == 0, log.read_text()
    assert "kafka producer closed; 0 records undelivered" in log.read_text()
    for ind, answer in answers.items():
        assert isinstance(answer, requests.Response), answer
        assert answer.status_code == 200, answer.text
        entry = answer.json()["offsets"][0]
        assert read_kafka(stack, topic, entry["partition"], entry["offset"]) == (
            None,
            geo_row(ind),
        )


def test_sigterm_with_a_frozen_broker_answers_503_and_exits(
    stack: Settings, tmp_path: Path
) -> None:
    """The broker never comes back during shutdown: in-flight requests get 503 (never 2xx) at
    their deadline, the producer's flush is bounded by api_shutdown_flush_s, the API exits 0."""
    log = tmp_path / "api.log"
    topic = stack.topics["geo"]
    environment = {"PINPIPE_API_TIMEOUT_S": "10", "PINPIPE_API_SHUTDOWN_FLUSH_S": "1"}
    with api_process(stack, log, **environment) as (url, process):
        assert post_topic_to(url, topic, 420).status_code == 200
        with frozen_broker(stack):
            posts = Posts(url, topic, 421, 3)
            wait_for(lambda: _in_flight(url) == 3, 60, "three requests waiting", interval_s=0.5)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)  # a hang guard: in-flight requests take 10 s
            answers = posts.join()
    assert process.returncode == 0, log.read_text()
    assert len(answers) == 3
    for answer in answers.values():
        assert _error_code(answer) == 50003, answer
    assert "kafka producer closed;" in log.read_text()


def post_topic_to(url: str, topic: str, ind: int) -> requests.Response:
    return requests.post(
        f"{url}/topics/{topic}",
        json={"records": [{"value": geo_row(ind)}]},
        headers={"Content-Type": "application/vnd.kafka.json.v2+json"},
        timeout=60,
    )


def _serves(url: str) -> bool:
    try:
        requests.get(f"{url}/healthz", timeout=2)
    except requests.RequestException:  # refused, or left in the closed listener's backlog
        return False
    return True


def test_readiness_is_503_not_500_when_a_probe_fails_unexpectedly(stack: Settings) -> None:
    """A bootstrap address the Kafka client rejects outright (port out of range) makes its probe
    raise something other than "unavailable": still "not ready", never an error page."""
    settings = stack.model_copy(
        update={"kafka_bootstrap_servers": "127.0.0.1:99999", "api_timeout_s": 2.0}
    )
    client = create_app(settings).test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 503, answer.text
    assert answer.json is not None and answer.json["checks"]["kafka"]["ok"] is False
