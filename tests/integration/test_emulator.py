"""The emulator against a local HTTP server answering like data contract §2 (told to fail or not).

The real API is a separate component; `FakeApi` implements just the data contract §2 shapes on
127.0.0.1 and records what it received, so these tests check what goes over the wire.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from werkzeug.serving import BaseWSGIServer, make_server

from pipeline.config import Settings
from pipeline.source import database
from pipeline.source.emulator import (
    EmulationConfig,
    EmulationSummary,
    SourceNotReadyError,
    run_emulation,
)
from pipeline.source.loader import seed_database
from tests.support.api import KAFKA_JSON
from tests.support.fake_api import FakeApi

SOURCE_ROWS = 400
TOPICS = {"pin": "t.pin", "geo": "t.geo", "user": "t.user"}
STREAMS = {"pin": "streaming-t-pin", "geo": "streaming-t-geo", "user": "streaming-t-user"}


@pytest.fixture
def fake_api() -> Iterator[tuple[FakeApi, str]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    fake = FakeApi()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, fake, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("source") / "source.db"
    engine = database.connect(f"sqlite:///{path}")
    seed_database(engine, SOURCE_ROWS, seed=7, workers=0)
    yield engine
    engine.dispose()


def config(api_url: str, mode: str = "batch", **options: Any) -> EmulationConfig:
    values: dict[str, Any] = {
        "destinations": TOPICS if mode == "batch" else STREAMS,
        "mode": mode,
        "api_url": api_url,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "timeout": 5.0,
    }
    return EmulationConfig(**(values | options))


def ledger_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def source_value(engine: Engine, table: str, row_id: int) -> dict[str, Any]:
    row = database.fetch_rows(engine, table, [row_id])[row_id]
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def check_totals(summary: EmulationSummary) -> None:
    assert summary.sent == summary.accepted + summary.rejected + summary.failed


# -- request formats and exact counts ----------------------------------------------------------


def test_batch_sends_exact_counts_in_rest_proxy_format(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path
) -> None:
    fake, url = fake_api
    ledger = tmp_path / "ledger.jsonl"
    summary = run_emulation(source, config(url, count=40, ledger=ledger))

    received = fake.answers()
    assert len(received) == 120
    assert Counter(r.path for r in received) == {f"/topics/{t}": 40 for t in TOPICS.values()}
    assert {r.method for r in received} == {"POST"}
    assert {r.content_type for r in received} == {KAFKA_JSON}
    for r in received:
        assert list(r.body) == ["records"] and len(r.body["records"]) == 1
    # Each draw posts its pin, geo and user rows, which are the source rows of one id.
    by_topic = {
        table: [r.body["records"][0]["value"] for r in received if r.path == f"/topics/{topic}"]
        for table, topic in TOPICS.items()
    }
    pin_ids = [value["index"] for value in by_topic["pin"]]
    assert pin_ids == [value["ind"] for value in by_topic["geo"]]
    assert pin_ids == [value["ind"] for value in by_topic["user"]]
    for table, values in by_topic.items():
        for value in values[:10]:
            row_id = value[database.ID_COLUMN[table]]
            assert value == source_value(source, table, row_id)
            assert list(value) == list(database.COLUMNS[table])
    datetime.fromisoformat(by_topic["geo"][0]["timestamp"])
    assert "T" in by_topic["user"][0]["date_joined"]

    assert (summary.draws, summary.sent, summary.accepted, summary.requests) == (40, 120, 120, 120)
    assert (summary.rejected, summary.failed, summary.retried, summary.unsent) == (0, 0, 0, 0)
    check_totals(summary)
    # The ledger holds exactly the accepted records, with the offsets the API returned.
    lines = ledger_lines(ledger)
    assert len(lines) == 120
    assert sorted((line["topic"], line["offset"]) for line in lines) == sorted(
        (r.path.removeprefix("/topics/"), r.answer["offsets"][0]["offset"]) for r in received
    )
    assert Counter(line["table"] for line in lines) == {"pin": 40, "geo": 40, "user": 40}
    assert sorted(line["id"] for line in lines if line["table"] == "pin") == sorted(pin_ids)
    assert all(line["partition"] == 0 for line in lines)


def test_stream_sends_single_records_in_kinesis_format(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path
) -> None:
    fake, url = fake_api
    ledger = tmp_path / "ledger.jsonl"
    summary = run_emulation(source, config(url, "stream", count=25, ledger=ledger))

    received = fake.answers()
    assert len(received) == 75
    assert Counter(r.path for r in received) == {
        f"/streams/{s}/record": 25 for s in STREAMS.values()
    }
    assert {r.method for r in received} == {"PUT"}
    for r in received:
        stream = r.path.split("/")[2]
        assert set(r.body) == {"StreamName", "Data", "PartitionKey"}
        assert r.body["StreamName"] == stream
        table = next(t for t, s in STREAMS.items() if s == stream)
        row_id = r.body["Data"][database.ID_COLUMN[table]]
        assert r.body["PartitionKey"] == str(row_id)
        assert r.body["Data"] == source_value(source, table, row_id)
    assert (summary.sent, summary.accepted, summary.requests) == (75, 75, 75)
    check_totals(summary)
    lines = ledger_lines(ledger)
    assert sorted(line["sequence_number"] for line in lines) == sorted(
        r.answer["SequenceNumber"] for r in received
    )
    assert {line["stream"] for line in lines} == set(STREAMS.values())
    assert {line["shard_id"] for line in lines} == {"shardId-000000000000"}


def test_stream_groups_records_with_put_records(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path
) -> None:
    fake, url = fake_api
    ledger = tmp_path / "ledger.jsonl"
    summary = run_emulation(
        source, config(url, "stream", count=10, records_per_request=4, ledger=ledger)
    )

    received = fake.answers()
    # 10 records per stream in requests of 4, 4 and 2.
    assert len(received) == 9
    assert {r.path.rsplit("/", 1)[1] for r in received} == {"records"}
    for stream in STREAMS.values():
        sizes = [len(r.body["Records"]) for r in received if r.body["StreamName"] == stream]
        assert sorted(sizes) == [2, 4, 4]
    for r in received:
        assert set(r.body) == {"StreamName", "Records"}
        assert all(set(entry) == {"Data", "PartitionKey"} for entry in r.body["Records"])
    assert (summary.sent, summary.accepted, summary.requests) == (30, 30, 9)
    assert len(ledger_lines(ledger)) == 30


def test_batch_groups_records_per_request(fake_api: tuple[FakeApi, str], source: Engine) -> None:
    fake, url = fake_api
    summary = run_emulation(source, config(url, count=12, records_per_request=5, concurrency=3))

    received = fake.answers()
    for topic in TOPICS.values():
        sizes = [len(r.body["records"]) for r in received if r.path == f"/topics/{topic}"]
        assert sorted(sizes) == [2, 5, 5]
    assert (summary.sent, summary.accepted, summary.requests) == (36, 36, 9)


def test_draws_are_seeded_uniform_and_with_replacement(
    fake_api: tuple[FakeApi, str], source: Engine
) -> None:
    fake, url = fake_api

    def pin_ids(seed: int) -> list[int]:
        before = len(fake.answers())
        run_emulation(source, config(url, count=300, records_per_request=300, seed=seed))
        new = fake.answers()[before:]
        pins = [r for r in new if r.path == "/topics/t.pin"]
        return [record["value"]["index"] for record in pins[0].body["records"]]

    first, again, other = pin_ids(1), pin_ids(1), pin_ids(2)
    assert first == again
    assert first != other
    assert all(0 <= row_id < SOURCE_ROWS for row_id in first)
    assert len(set(first)) < len(first)  # 300 draws out of 400 ids repeat some (p > 0.9999)
    assert min(first) < SOURCE_ROWS // 4 and max(first) > 3 * SOURCE_ROWS // 4


def test_api_key_header(fake_api: tuple[FakeApi, str], source: Engine) -> None:
    fake, url = fake_api
    fake.api_key = "secret-key"
    refused = run_emulation(source, config(url, count=2))
    assert (refused.accepted, refused.rejected) == (0, 6)
    assert any("403" in reason for reason in refused.reasons)
    accepted = run_emulation(source, config(url, count=2, api_key="secret-key"))
    assert accepted.accepted == 6
    assert {r.api_key for r in fake.answers(200)} == {"secret-key"}


# -- retries, rejections, failures -------------------------------------------------------------


def test_retries_on_503_until_accepted(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path
) -> None:
    fake, url = fake_api
    fake.fail_next(503, 503, 503)
    ledger = tmp_path / "ledger.jsonl"
    summary = run_emulation(source, config(url, count=10, ledger=ledger))

    assert len(fake.answers(503)) == 3
    assert len(fake.answers(200)) == 30
    assert (summary.sent, summary.accepted, summary.retried, summary.requests) == (30, 30, 3, 30)
    assert (summary.rejected, summary.failed) == (0, 0)
    assert len(ledger_lines(ledger)) == 30


def test_never_retries_400_and_reports_rejections(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path
) -> None:
    fake, url = fake_api
    fake.always["t.pin"] = 400
    ledger = tmp_path / "ledger.jsonl"
    summary = run_emulation(source, config(url, count=10, ledger=ledger))

    assert len(fake.answers(400)) == 10  # one attempt per pin record, no retry
    assert (summary.accepted, summary.rejected, summary.failed, summary.retried) == (20, 10, 0, 0)
    assert summary.reasons == {"HTTP 400 40001: told to answer 400": 10}
    check_totals(summary)
    assert {line["table"] for line in ledger_lines(ledger)} == {"geo", "user"}
    assert len(ledger_lines(ledger)) == 20


def test_gives_up_after_max_retries_on_persistent_5xx(
    fake_api: tuple[FakeApi, str], source: Engine
) -> None:
    fake, url = fake_api
    fake.always["t.geo"] = 503
    summary = run_emulation(source, config(url, count=3, max_retries=2))

    assert len(fake.answers(503)) == 9  # 3 geo requests x (1 attempt + 2 retries)
    assert (summary.accepted, summary.failed, summary.rejected, summary.retried) == (6, 3, 0, 6)
    assert summary.reasons == {"gave up: HTTP 503 50301: told to answer 503": 3}


def test_retries_connection_errors_then_fails(source: Engine) -> None:
    # Nothing listens on port 9 of loopback (discard service, not run here).
    summary = run_emulation(source, config("http://127.0.0.1:9", count=2, max_retries=2))
    assert (summary.sent, summary.failed, summary.accepted) == (6, 6, 0)
    assert summary.retried == 12
    assert summary.reasons == {"gave up: ConnectionError": 6}


@pytest.mark.parametrize("mode", ["batch", "stream"])
def test_per_record_errors_in_a_2xx_answer_are_rejections(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path, mode: str
) -> None:
    fake, url = fake_api
    destinations = TOPICS if mode == "batch" else STREAMS
    # Refuse every pin record of the even ids.
    fake.bad_records = {(destinations["pin"], row_id) for row_id in range(0, SOURCE_ROWS, 2)}
    ledger = tmp_path / "ledger.jsonl"
    summary = run_emulation(
        source, config(url, mode, count=50, records_per_request=10, ledger=ledger)
    )
    lines = ledger_lines(ledger)
    refused = [line for line in lines if line["table"] == "pin" and line["id"] % 2 == 0]
    assert refused == []
    pins_sent = sum(
        len(r.body["records" if mode == "batch" else "Records"])
        for r in fake.answers()
        if destinations["pin"] in r.path
    )
    assert pins_sent == 50
    assert summary.rejected == 50 - sum(1 for line in lines if line["table"] == "pin")
    assert summary.rejected > 0
    assert summary.accepted == len(lines) == 150 - summary.rejected
    check_totals(summary)


# -- rate, duration, stopping ------------------------------------------------------------------


def test_paces_posts_at_no_more_than_the_requested_rate(
    fake_api: tuple[FakeApi, str], source: Engine
) -> None:
    fake, url = fake_api
    summary = run_emulation(source, config(url, count=100, rate=150.0, concurrency=2))

    assert summary.accepted == 300
    arrivals = sorted(r.at for r in fake.answers())
    server_rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    # The limiter never goes over the rate (an unthrottled run posts thousands per second here);
    # under it, only by what a loaded machine costs: the floor is loose on purpose, because a busy
    # 2-core CI box (images building beside the tests) measured 119/s for 150/s asked.
    for measured in (summary.records_per_s, server_rate):
        assert 0.5 * 150.0 <= measured <= 1.10 * 150.0, measured


def test_duration_bounds_the_run(fake_api: tuple[FakeApi, str], source: Engine) -> None:
    fake, url = fake_api
    summary = run_emulation(source, config(url, duration=1.0, rate=90.0))

    assert 0.9 < summary.elapsed_s < 2.0
    assert summary.sent == summary.accepted == len(fake.answers())
    assert 70 <= summary.sent <= 100


def test_stop_event_ends_the_run_cleanly(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path
) -> None:
    fake, url = fake_api
    stop = threading.Event()
    ledger = tmp_path / "ledger.jsonl"
    threading.Timer(0.5, stop.set).start()
    summary = run_emulation(source, config(url, rate=100.0, ledger=ledger), stop=stop)

    assert summary.interrupted
    assert summary.elapsed_s < 3.0
    assert summary.accepted == len(fake.answers(200)) == len(ledger_lines(ledger)) > 0


# -- source problems ---------------------------------------------------------------------------


def test_draws_only_existing_ids_when_ids_have_gaps(
    fake_api: tuple[FakeApi, str], source: Engine, tmp_path: Path
) -> None:
    fake, url = fake_api
    engine = database.connect(f"sqlite:///{tmp_path / 'gaps.db'}")
    database.prepare_tables(engine, replace=False)
    rows = {
        table: [
            next(iter(database.fetch_rows(source, table, [row_id]).values())).values()
            for row_id in (3, 50, 51)
        ]
        for table in database.TABLES
    }
    database.insert_rows(
        engine, {table: [tuple(v) for v in values] for table, values in rows.items()}
    )
    summary = run_emulation(engine, config(url, count=30))
    ids = {r.body["records"][0]["value"]["index"] for r in fake.answers() if "pin" in r.path}
    assert ids == {3, 50, 51}
    assert summary.accepted == 90


def test_empty_source_is_a_clear_error(tmp_path: Path) -> None:
    engine = database.connect(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SourceNotReadyError, match="pinpipe seed"):
        run_emulation(engine, config("http://127.0.0.1:9", count=1))
    database.prepare_tables(engine, replace=False)
    with pytest.raises(SourceNotReadyError, match="empty"):
        run_emulation(engine, config("http://127.0.0.1:9", count=1))


def test_config_from_settings_uses_topics_streams_and_first_key() -> None:
    settings = Settings(topic_prefix="p", api_url="http://api:1", api_keys=["k1", "k2"])
    batch = EmulationConfig.from_settings(settings, "batch", count=3)
    stream = EmulationConfig.from_settings(settings, "stream")
    assert dict(batch.destinations) == {"pin": "p.pin", "geo": "p.geo", "user": "p.user"}
    assert dict(stream.destinations) == settings.streams
    assert (batch.api_url, batch.api_key, batch.count) == ("http://api:1", "k1", 3)
    with pytest.raises(ValueError, match="records_per_request"):
        EmulationConfig.from_settings(settings, "batch", records_per_request=0)


def test_a_failing_progress_callback_does_not_stall_the_run(
    fake_api: tuple[FakeApi, str], source: Engine
) -> None:
    _, url = fake_api

    def broken(records: int, live: EmulationSummary) -> None:
        raise RuntimeError("display gone")

    summary = run_emulation(source, config(url, count=5), on_progress=broken)
    assert (summary.sent, summary.accepted) == (15, 15)
