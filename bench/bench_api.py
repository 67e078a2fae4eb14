"""Ingestion API throughput and latency, side by side with a raw producer to the same broker.

Needs the local stack (`make up`). By default it starts its own `pinpipe api` (gunicorn, exactly
as the stack runs it) with topic prefix `bench`, so benchmark rows stay out of the pipeline's
topics; `--api-url` measures an API that is already running (its own topics) instead.

    uv run python bench/bench_api.py
    uv run python bench/bench_api.py --records 100000 --rate 200

Figures (records/s): raw confluent-kafka producer (acks=all, idempotent, like the API's),
single-record POSTs, batched POSTs; then p50/p99 latency of single-record POSTs sent at a fixed
rate (measured from each request's scheduled start, so a stall is not hidden).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import psutil
import requests
import typer
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from pipeline.config import Settings, get_settings
from pipeline.stack.components import kafka_ready
from pipeline.stack.provision import ensure_topics

KAFKA_JSON = "application/vnd.kafka.json.v2+json"
console = Console()


def pin_row(index: int) -> dict[str, Any]:
    return {
        "index": index,
        "unique_id": str(uuid.UUID(int=index, version=4)),
        "title": "Watercolor Painting Ideas for Beginners",
        "description": "Easy watercolor painting ideas: loose florals, landscapes and more.",
        "poster_name": "The Artful Studio",
        "follower_count": "15k",
        "tag_list": "Watercolor Art,Painting Ideas,Art Tutorials,Easy Painting",
        "is_image_or_video": "image",
        "image_src": f"https://i.pinimg.com/originals/{index:08x}.jpg",
        "downloaded": 1,
        "save_location": "Local save in /data/art",
        "category": "art",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def own_api(settings: Settings, prefix: str) -> Iterator[tuple[str, int | None]]:
    """`pinpipe api` on a free port serving `<prefix>.*` topics (created if missing)."""
    ensure_topics(settings.model_copy(update={"topic_prefix": prefix}))
    port = _free_port()
    env = {**os.environ, "PINPIPE_TOPIC_PREFIX": prefix, "PINPIPE_API_PORT": str(port)}
    env.pop("PINPIPE_API_URL", None)
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "api", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start; see {log.name}")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)
        Path(log.name).unlink(missing_ok=True)


# -- measurements --------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by a process tree (the API: gunicorn master + worker) between marks;
    a figure the other load on a shared machine does not distort as much as wall time."""

    def __init__(self, pid: int | None) -> None:
        self.process = psutil.Process(pid) if pid else None

    def seconds(self) -> float:
        if self.process is None:
            return float("nan")
        tree = [self.process, *self.process.children(recursive=True)]
        return sum(p.cpu_times().user + p.cpu_times().system for p in tree)


def raw_producer(settings: Settings, topic: str, records: int) -> tuple[float, float]:
    """(records/s, CPU µs per record of the producing process)."""
    producer = Producer(
        {**settings.kafka_client_config(), "acks": "all", "enable.idempotence": True}
    )
    values = [json.dumps(pin_row(i), separators=(",", ":")).encode() for i in range(records)]
    failed = 0

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal failed
        failed += error is not None

    started = time.perf_counter()
    cpu = time.process_time()
    for value in values:
        while True:
            try:
                producer.produce(topic, value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if failed:
        raise RuntimeError(f"raw producer: {failed} records failed")
    return records / elapsed, cpu / records * 1e6


def _post_all(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Seconds to POST every body (closed loop, `concurrency` keep-alive sessions)."""
    sessions = threading.local()
    errors: list[str] = []

    def post(body: bytes) -> None:
        session = getattr(sessions, "session", None)
        if session is None:
            session = sessions.session = requests.Session()
        response = session.post(url, data=body, headers={"Content-Type": KAFKA_JSON}, timeout=60)
        if response.status_code != 200:
            errors.append(response.text[:200])

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, bodies))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return elapsed


def _body(indexes: range) -> bytes:
    return json.dumps({"records": [{"value": pin_row(i)} for i in indexes]}).encode()


def api_single(url: str, requests_count: int, concurrency: int) -> float:
    bodies = [_body(range(i, i + 1)) for i in range(requests_count)]
    return requests_count / _post_all(url, bodies, concurrency)


def api_batched(url: str, records: int, batch: int, concurrency: int) -> float:
    bodies = [_body(range(start, start + batch)) for start in range(0, records, batch)]
    return len(bodies) * batch / _post_all(url, bodies, concurrency)


def latency_at_rate(url: str, rate: float, duration_s: float) -> tuple[float, float, int, int]:
    """(p50 ms, p99 ms, sent, failed) of single-record POSTs started at a fixed rate."""
    count = int(rate * duration_s)
    body = json.dumps({"records": [{"value": pin_row(1)}]}).encode()
    sessions = threading.local()
    latencies: list[float] = []
    failed = 0
    start = time.perf_counter() + 0.5

    def send(index: int) -> None:
        nonlocal failed
        scheduled = start + index / rate
        time.sleep(max(scheduled - time.perf_counter(), 0))
        session = getattr(sessions, "session", None)
        if session is None:
            session = sessions.session = requests.Session()
        response = session.post(url, data=body, headers={"Content-Type": KAFKA_JSON}, timeout=60)
        latencies.append(time.perf_counter() - scheduled)
        failed += response.status_code != 200

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(send, range(count)))
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000, count, failed


def main(
    records: Annotated[int, typer.Option(help="records for raw and batched runs")] = 50_000,
    batch: Annotated[int, typer.Option(help="records per batched request")] = 500,
    single: Annotated[int, typer.Option(help="single-record requests")] = 3_000,
    concurrency: Annotated[int, typer.Option(help="client threads (closed loop)")] = 8,
    rate: Annotated[float, typer.Option(help="requests/s for the latency run")] = 100.0,
    duration: Annotated[float, typer.Option(help="seconds of the latency run")] = 10.0,
    api_url: Annotated[str, typer.Option(help="measure this running API instead")] = "",
    prefix: Annotated[str, typer.Option(help="topic prefix of the API started here")] = "bench",
) -> None:
    settings = get_settings()
    if not kafka_ready(settings):
        console.print(f"[red]no broker at {settings.kafka_bootstrap_servers}: run `make up`[/]")
        raise typer.Exit(1)
    with own_api(settings, prefix) if not api_url else _existing(api_url) as (url, pid):
        topic = f"{prefix}.pin" if not api_url else settings.topics["pin"]
        produce_url = f"{url}/topics/{topic}"
        console.print(f"API {url}, topic {topic}, broker {settings.kafka_bootstrap_servers}")
        api_batched(produce_url, batch * 4, batch, concurrency)  # warm up: producer, metadata
        meter = CpuMeter(pid)

        raw, raw_cpu = raw_producer(settings, topic, records)
        mark = meter.seconds()
        single_rate = api_single(produce_url, single, concurrency)
        single_cpu = (meter.seconds() - mark) / single * 1e6
        mark = meter.seconds()
        batched = api_batched(produce_url, records, batch, min(concurrency, 4))
        batched_cpu = (meter.seconds() - mark) / records * 1e6
        p50, p99, sent, failed = latency_at_rate(produce_url, rate, duration)

    table = Table(title=f"ingest API vs raw producer ({os.cpu_count()} cores, same broker)")
    table.add_column("path")
    table.add_column("records/s", justify="right")
    table.add_column("vs raw", justify="right")
    table.add_column("CPU µs/record", justify="right")
    table.add_row(
        "raw confluent-kafka producer (acks=all)", f"{raw:,.0f}", "100%", f"{raw_cpu:.1f}"
    )
    table.add_row(
        f"API, 1 record/request, {concurrency} clients",
        f"{single_rate:,.0f}",
        f"{single_rate / raw:.1%}",
        f"{single_cpu:.0f}",
    )
    table.add_row(
        f"API, {batch} records/request, {min(concurrency, 4)} clients",
        f"{batched:,.0f}",
        f"{batched / raw:.1%}",
        f"{batched_cpu:.1f}",
    )
    console.print(table)
    console.print(
        "CPU µs/record: the producing process (raw) or the API's processes (API), excluding the "
        f"broker and the HTTP client; load average now {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    console.print(
        f"latency of single-record POSTs at {rate:g} req/s for {duration:g}s: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({sent} sent, {failed} failed)"
    )
    verdict = "meets" if batched >= 0.5 * raw else "misses"
    console.print(f"batched API reaches {batched / raw:.0%} of raw: {verdict} the 50% target")
    figures = {
        "load_average": round(os.getloadavg()[0], 1),
        "raw_records_per_s": round(raw),
        "raw_cpu_us_per_record": round(raw_cpu, 1),
        "batched_records_per_s": round(batched),
        "batch_records_per_request": batch,
        "batched_clients": min(concurrency, 4),
        "batched_cpu_us_per_record": round(batched_cpu, 1),
        "single_requests_per_s": round(single_rate),
        "single_clients": concurrency,
        "single_cpu_us_per_request": round(single_cpu),
        "latency_rate_per_s": rate,
        "latency_p50_ms": round(p50, 1),
        "latency_p99_ms": round(p99, 1),
        "latency_sent": sent,
        "latency_failed": failed,
    }
    print(json.dumps(figures))  # last, for scripts (bench/run_all.py)


@contextmanager
def _existing(url: str) -> Iterator[tuple[str, int | None]]:
    yield url.rstrip("/"), None


if __name__ == "__main__":
    typer.run(main)
