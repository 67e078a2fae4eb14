"""What `pinpipe status` lists beyond its table: whole URLs, the API docs, the S3 and Kinesis
servers, the stream job's Spark UI and metrics, and where the Airflow password is (never the
password)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.config import LocalSettings
from pipeline.stack.airflow import PASSWORDS_FILE, login_hint
from pipeline.stack.links import print_links, print_whole, stack_links
from pipeline.stack.provision import describe_created
from pipeline.stream.component import progress_path


def _settings(tmp_path: Path) -> LocalSettings:
    return LocalSettings(run_dir=tmp_path, api_port=18000, s3_port=14566, kinesis_port=14568)


def test_links_of_running_components(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    heartbeat = progress_path(settings)
    heartbeat.parent.mkdir(parents=True)
    heartbeat.write_text(
        json.dumps(
            {
                "state": "running",
                "spark_ui": "http://localhost:4041",
                "metrics_url": "http://127.0.0.1:9464/metrics",
            }
        )
    )
    running = {"api", "s3", "kinesis", "connect", "spark-stream"}
    links = {link.what: link.url for link in stack_links(settings, running)}
    assert links == {
        "API docs (Swagger UI)": "http://127.0.0.1:18000/openapi/swagger",
        "API metrics (Prometheus)": "http://127.0.0.1:18000/metrics",
        "S3 (S3Proxy)": "http://127.0.0.1:14566",
        "Kinesis (kinesalite)": "http://127.0.0.1:14568",
        "Kafka Connect REST": "http://127.0.0.1:8083/connectors",
        "stream job Spark UI": "http://localhost:4041",
        "stream job metrics (Prometheus)": "http://127.0.0.1:9464/metrics",
    }


def test_no_links_for_stopped_components(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert stack_links(settings, set()) == []
    # the stream job running but without a heartbeat yet: no Spark UI to show
    assert stack_links(settings, {"spark-stream"}) == []


def test_long_urls_are_printed_whole_off_a_terminal(tmp_path: Path) -> None:
    url = "http://127.0.0.1:18000/" + "a-rather-long-path/" * 6
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    table = Table()
    for column in ("component", "state", "ready", "url", "pid", "RSS MB"):
        table.add_column(column)
    table.add_row("airflow-dag-processor", "RUNNING", "yes", url, "12345", "1024")
    print_whole(console, table)
    print_links(console, stack_links(_settings(tmp_path), {"api"}))
    text = out.getvalue()
    assert url in text and "…" not in text
    assert "API docs (Swagger UI): http://127.0.0.1:18000/openapi/swagger\n" in text
    assert console.width == 80  # the console is left as it was


def test_login_hint_says_where_the_password_is_not_what(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.airflow_home.mkdir(parents=True)
    (settings.airflow_home / PASSWORDS_FILE).write_text(json.dumps({"admin": "s3cr3t-pw"}))
    hint = login_hint(settings, running=True)
    assert hint is not None
    assert "s3cr3t-pw" not in hint
    assert str(settings.airflow_home / PASSWORDS_FILE) in hint and "admin" in hint
    assert login_hint(settings, running=False) is None
    assert login_hint(settings.model_copy(update={"airflow_enabled": False})) is None


def test_provisioning_line_names_what_was_created() -> None:
    created = {"topics": ["p.pin", "p.geo"], "streams": []}
    assert describe_created(created) == "created topics p.pin, p.geo"
    both = {"topics": ["p.pin"], "streams": ["streaming-p-pin"]}
    assert describe_created(both) == "created topics p.pin; streams streaming-p-pin"
    assert describe_created({"topics": [], "streams": []}) == "already there"
