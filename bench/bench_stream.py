"""Streaming job latency and throughput: API accept → row readable in Delta.

Needs the local stack (`make up`: broker, S3/Kinesis emulator). It starts its own `pinpipe api`
and its own `pinpipe stream`, both with prefix `bench` (streams `streaming-bench-*`, tables under
`s3a://<lake bucket>/bench-stream/<run>/lake`), so the pipeline's own streams and tables are not
touched. If the stack's own stream job is running it competes for the same CPU: the figures
say so.

    uv run python bench/bench_stream.py
    uv run python bench/bench_stream.py --rate 20 --duration 60 --records 4000

The defaults were set with kinesis-mock, the local Kinesis server before kinesalite, which kept
every record and rewrote its whole state every 2 s: on this 2-core machine it stopped answering
under 500-row requests from three clients (5,000 rows per table; once the stream job then failed
on a sequence number kinesis-mock no longer had). So the throughput phase posts 2,000 rows per
table in 100-row requests by default, and the bench deletes its streams before and after.

Phases:
1. latency: one row per table every 1/rate s, each a single `PUT /streams/<s>/record`; a row's
   latency runs from the API's 200 to the moment its Delta commit can be read (the commit file
   is polled in S3 every 100 ms and its new data files read), p50/p95/max;
2. throughput: `--records` rows per table posted in `--per-request`-row requests, one client per
   table, as fast as the API takes them; rows/s from the first request until every row is
   readable, the job's CPU per row and the median time of each micro-batch phase (its log).

Prints one JSON object last, for scripts.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import boto3
import psutil
import pyarrow.parquet as pq
import requests
import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import Settings, get_settings
from pipeline.stack.components import kafka_ready
from pipeline.stack.provision import ensure_bucket, ensure_streams, ensure_topics
from pipeline.stack.servers import kinesis_ready, s3_ready

TABLES = ("pin", "geo", "user")
RETRY_FOR_S = 180.0  # how long a request is retried while the API answers 503
console = Console()


def rows(ind: int) -> dict[str, dict[str, Any]]:
    return {
        "pin": {
            "index": ind,
            "unique_id": str(uuid.UUID(int=ind, version=4)),
            "title": "Watercolor Painting Ideas for Beginners",
            "description": "Easy watercolor painting ideas: loose florals, landscapes and more.",
            "poster_name": "The Artful Studio",
            "follower_count": "15k",
            "tag_list": "Watercolor Art,Painting Ideas,Art Tutorials,Easy Painting",
            "is_image_or_video": "image",
            "image_src": f"https://i.pinimg.com/originals/{ind:08x}.jpg",
            "downloaded": 1,
            "save_location": "Local save in /data/art",
            "category": "art",
        },
        "geo": {
            "ind": ind,
            "timestamp": "2020-08-28T03:52:47",
            "latitude": -5.8,
            "longitude": 120.4,
            "country": "Indonesia",
        },
        "user": {
            "ind": ind,
            "first_name": "Ann",
            "last_name": "Lee",
            "age": 33,
            "date_joined": "2016-05-03 10:12:00",
        },
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(check: Any, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{process.args} did not get ready:\n{tail}")
        time.sleep(0.5)


@contextmanager
def own_api(settings: Settings, prefix: str, workdir: Path) -> Iterator[str]:
    """`pinpipe api` on a free port serving prefix `prefix` (its streams created if missing)."""
    bench = settings.model_copy(update={"topic_prefix": prefix})
    ensure_topics(bench)
    drop_streams(bench)  # an earlier run's records would only make the emulator's state bigger
    ensure_streams(bench)
    port = _free_port()
    env = {**os.environ, "PINPIPE_TOPIC_PREFIX": prefix, "PINPIPE_API_PORT": str(port)}
    env.pop("PINPIPE_API_URL", None)
    url = f"http://127.0.0.1:{port}"
    log = workdir / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def healthy() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        _wait(healthy, process, 60, log)
        yield url
    finally:
        process.terminate()
        process.wait(60)
        drop_streams(bench)


def drop_streams(settings: Settings, timeout_s: float = 60) -> None:
    """Delete the streams `settings` names and wait until they are gone.

    The bench leaves none behind in the stack's Kinesis server, a habit from kinesis-mock (the
    server before kinesalite), which rewrote its whole state on every persist.
    """
    kinesis = boto3.client("kinesis", **settings.boto3_kwargs("kinesis"))
    names = set(settings.streams.values())
    for name in names & set(kinesis.list_streams()["StreamNames"]):
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    deadline = time.monotonic() + timeout_s
    while names & set(kinesis.list_streams()["StreamNames"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"streams {sorted(names)} still listed after {timeout_s:.0f}s")
        time.sleep(0.5)


@contextmanager
def own_stream_job(
    prefix: str, lake: str, trigger_seconds: float, workdir: Path
) -> Iterator[psutil.Process]:
    """`pinpipe stream` for `prefix`, reading what arrives from now on (earlier runs' records
    stay unread); ready once its three queries are active."""
    # A fixed instant rather than `latest`: rows posted while the queries initialise count too.
    from_now = json.dumps({"at_timestamp": datetime.now(UTC).isoformat()})
    progress = workdir / "progress.json"
    log = workdir / "stream.log"
    command = [
        sys.executable, "-m", "pipeline.cli", "stream",
        "--prefix", prefix, "--lake", lake,
        "--trigger-seconds", str(trigger_seconds),
        "--initial-position", from_now,
        "--progress-file", str(progress),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def active() -> bool:
        try:
            state = json.loads(progress.read_text())
        except (OSError, ValueError):
            return False
        queries = state["queries"].values()
        return state["state"] == "running" and all(query["active"] for query in queries)

    try:
        _wait(active, process, 300, log)
        yield psutil.Process(process.pid)
    except BaseException:
        console.print(f"[red]stream job log ({log}):[/]")
        console.print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


class DeltaWatcher:
    """When each `ind` became readable: new commits of the tables' Delta logs, polled in S3."""

    def __init__(self, settings: Settings, lake_key: str, prefix: str, job: psutil.Process):
        self.s3 = boto3.client("s3", **settings.boto3_kwargs("s3"))
        self.bucket = settings.lake_bucket
        self.roots = {table: f"{lake_key}/stream/{prefix}_{table}_table" for table in TABLES}
        self.visible: dict[str, dict[int, float]] = {table: {} for table in TABLES}
        self.commits = {table: 0 for table in TABLES}
        self._seen: set[str] = set()
        self._job = job
        self.peak_rss_mb = 0.0
        self.last_rss_mb = 0.0  # the latest sample: with the peak, shows whether memory settles
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DeltaWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for table in TABLES:
                    self._poll(table)
                self._sample_memory()
                self._stop.wait(0.1)
        except BaseException as error:  # reported by wait_all
            self.error = error
            raise

    def _sample_memory(self) -> None:
        try:
            tree = [self._job, *self._job.children(recursive=True)]
            rss = sum(process.memory_info().rss for process in tree) / 2**20
        except psutil.Error:
            return
        self.peak_rss_mb = max(self.peak_rss_mb, rss)
        self.last_rss_mb = rss

    def _poll(self, table: str) -> None:
        log_prefix = f"{self.roots[table]}/_delta_log/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=log_prefix
        )
        commits = sorted(
            item["Key"]
            for page in pages
            for item in page.get("Contents", [])
            if item["Key"].endswith(".json") and item["Key"] not in self._seen
        )
        for key in commits:
            seen_at = time.perf_counter()
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            for line in body.decode().splitlines():
                add = json.loads(line).get("add")
                if add and add.get("dataChange", True):
                    data_key = f"{self.roots[table]}/{unquote(add['path'])}"
                    data = self.s3.get_object(Bucket=self.bucket, Key=data_key)["Body"].read()
                    ids = pq.read_table(io.BytesIO(data), columns=["ind"])["ind"].to_pylist()
                    for ind in ids:
                        self.visible[table].setdefault(ind, seen_at)
            self._seen.add(key)
            self.commits[table] += 1

    def wait_all(self, ids: list[int], timeout_s: float) -> float:
        """Wait until every id is readable in every table; the time the last one became so."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.error is not None:
                raise RuntimeError(f"watching the Delta logs failed: {self.error}")
            missing = {t: sum(i not in self.visible[t] for i in ids) for t in TABLES}
            if not any(missing.values()):
                return max(self.visible[t][i] for t in TABLES for i in ids)
            if time.monotonic() > deadline:
                raise RuntimeError(f"rows not readable after {timeout_s}s: missing {missing}")
            time.sleep(0.2)


def cpu_seconds(job: psutil.Process) -> float:
    tree = [job, *job.children(recursive=True)]
    total = 0.0
    for process in tree:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def latency_phase(
    api: str, streams: dict[str, str], first_id: int, rate: float, duration_s: float
) -> tuple[list[int], dict[str, dict[int, float]]]:
    """One single-record PUT per table every 1/rate s; the accept time of each row."""
    count = max(int(rate * duration_s), 1)
    ids = list(range(first_id, first_id + count))
    accepted: dict[str, dict[int, float]] = {table: {} for table in TABLES}
    session = requests.Session()
    start = time.perf_counter() + 0.2
    for position, ind in enumerate(ids):
        time.sleep(max(start + position / rate - time.perf_counter(), 0))
        for table, row in rows(ind).items():
            answer = session.put(
                f"{api}/streams/{streams[table]}/record",
                json={"Data": row, "PartitionKey": str(ind)},
                timeout=30,
            )
            if answer.status_code != 200:
                raise RuntimeError(f"API answered {answer.status_code}: {answer.text[:200]}")
            accepted[table][ind] = time.perf_counter()
    return ids, accepted


def throughput_phase(
    api: str, streams: dict[str, str], first_id: int, records: int, per_request: int
) -> tuple[list[int], float, float, int]:
    """Post `records` rows per table, `per_request` a request; (ids, started, seconds, retries).

    One client per stream, requests in sequence: moto's Kinesis shard assigns sequence numbers
    without a lock, so concurrent PutRecords to one shard of the emulator can lose records.
    """
    ids = list(range(first_id, first_id + records))

    def post_table(table: str) -> None:
        session = requests.Session()
        for n in range(0, len(ids), per_request):
            chunk = ids[n : n + per_request]
            body = [{"Data": rows(i)[table], "PartitionKey": str(i)} for i in chunk]
            send(session, table, body)

    def send(session: requests.Session, table: str, records_body: list[dict[str, Any]]) -> None:
        # as a client must: retry what failed, and back off while the API answers 503 (seen with
        # kinesis-mock, the server before kinesalite, which stalled under bursts); stalls count in
        # the figures
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            answer = session.put(
                f"{api}/streams/{streams[table]}/records",
                json={"Records": records_body},
                timeout=60,
            )
            if answer.status_code == 200 and answer.json()["FailedRecordCount"] == 0:
                return
            if answer.status_code == 200:
                results = answer.json()["Records"]
                records_body = [
                    record
                    for record, result in zip(records_body, results, strict=True)
                    if "ErrorCode" in result
                ]
            elif answer.status_code != 503 or time.monotonic() > deadline:
                raise RuntimeError(
                    f"could not post to {table}: {answer.status_code} {answer.text[:200]}"
                )
            retries[table] += 1
            time.sleep(1)

    retries = dict.fromkeys(TABLES, 0)
    started = time.perf_counter()
    with ThreadPoolExecutor(len(TABLES)) as pool:
        list(pool.map(post_table, TABLES))
    return ids, started, time.perf_counter() - started, sum(retries.values())


# the job's line per micro-batch with input (pipeline.stream.job.ProgressListener): its phases
MICRO_BATCH = re.compile(r"batch \d+: \d+ rows in [\d.]+s \(([^)]*)\)")


def micro_batch_phases(log: str) -> dict[str, float]:
    """Median seconds of each phase of the job's micro-batches with input (its progress lines)."""
    phases: dict[str, list[float]] = {}
    for durations in MICRO_BATCH.findall(log):
        for name, seconds in re.findall(r"(\w+) ([\d.]+)s", durations):
            phases.setdefault(name, []).append(float(seconds))
    return {name: round(statistics.median(values), 2) for name, values in phases.items()}


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return cuts[49], cuts[94], max(values)


def main(
    rate: Annotated[float, typer.Option(help="rows per table per second, latency phase")] = 10.0,
    duration: Annotated[float, typer.Option(help="seconds of the latency phase")] = 30.0,
    records: Annotated[int, typer.Option(help="rows per table, throughput phase")] = 2_000,
    per_request: Annotated[int, typer.Option(help="rows per request, throughput phase")] = 100,
    trigger_seconds: Annotated[float, typer.Option(help="the job's micro-batch interval")] = 1.0,
    prefix: Annotated[str, typer.Option(help="prefix of the API and job started here")] = "bench",
) -> None:
    # Stopped from outside (timeout, Ctrl-C): still stop the API and the job started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = get_settings()
    if not (s3_ready(settings) and kinesis_ready(settings) and kafka_ready(settings)):
        console.print("[red]the local stack is not running: run `make up` first[/]")
        raise typer.Exit(1)
    ensure_bucket(settings)
    run = uuid.uuid4().hex[:8]
    lake_key = f"bench-stream/{run}/lake"
    lake = f"s3a://{settings.lake_bucket}/{lake_key}"
    streams = {table: f"streaming-{prefix}-{table}" for table in TABLES}
    other_jobs = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "stream" in (p.info["cmdline"] or [])[3:4] and p.pid != os.getpid()
    ]
    # The job starts at the streams' end and writes new tables: ids need only be unique here.
    first_id = 1

    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        with own_api(settings, prefix, workdir) as api:
            console.print(f"API {api}; starting the stream job (lake {lake}) ...")
            started = time.perf_counter()
            with own_stream_job(prefix, lake, trigger_seconds, workdir) as job:
                startup_s = time.perf_counter() - started
                console.print(f"stream job ready in {startup_s:.0f}s")
                with DeltaWatcher(settings, lake_key, prefix, job) as watcher:
                    # warm-up: the first micro-batches load classes and JIT-compile
                    warm_ids, _ = latency_phase(api, streams, first_id, 5, 2)
                    watcher.wait_all(warm_ids, 600)
                    warm_up_s = time.perf_counter() - started - startup_s
                    console.print(f"warm-up batches done in {warm_up_s:.0f}s")
                    first_id += len(warm_ids)
                    # latency
                    ids, accepted = latency_phase(api, streams, first_id, rate, duration)
                    watcher.wait_all(ids, 300)
                    latencies = [
                        watcher.visible[table][ind] - accepted[table][ind]
                        for table in TABLES
                        for ind in ids
                    ]
                    p50, p95, worst = _quantiles(latencies)
                    # throughput
                    cpu_before = cpu_seconds(job)
                    big_ids, posted_at, posting_s, retries = throughput_phase(
                        api, streams, first_id + len(ids), records, per_request
                    )
                    done_at = watcher.wait_all(big_ids, 900)
                    cpu_used = cpu_seconds(job) - cpu_before
                    total_s = done_at - posted_at
                    commits = dict(watcher.commits)
                    peak_rss = watcher.peak_rss_mb
                    end_rss = watcher.last_rss_mb
        phases = micro_batch_phases((workdir / "stream.log").read_text(errors="replace"))

    rows_total = 3 * records
    figures = {
        "cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1),
        "other_stream_jobs_running": len(other_jobs),
        "trigger_seconds": trigger_seconds,
        "job_startup_s": round(startup_s, 1),
        "warm_up_s": round(warm_up_s, 1),
        "latency_rows": len(latencies),
        "latency_rate_rows_per_s": rate * 3,
        "latency_p50_s": round(p50, 2),
        "latency_p95_s": round(p95, 2),
        "latency_max_s": round(worst, 2),
        "throughput_rows": rows_total,
        "throughput_rows_per_request": per_request,
        "api_post_rows_per_s": round(rows_total / posting_s),
        "api_post_retries": retries,
        "end_to_end_rows_per_s": round(rows_total / total_s),
        "job_cpu_ms_per_1000_rows": round(cpu_used / rows_total * 1e6, 1),
        "job_peak_rss_mb": round(peak_rss),
        "job_end_rss_mb": round(end_rss),
        "delta_commits": commits,
        "micro_batch_median_s": phases,
    }
    table = Table(title=f"stream job: API accept → readable in Delta ({os.cpu_count()} cores)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("job start-up (JVM, Delta, 3 queries)", f"{startup_s:.0f} s")
    table.add_row(
        f"latency p50 / p95 / max ({len(latencies)} rows at {rate * 3:g} rows/s)",
        f"{p50:.2f} / {p95:.2f} / {worst:.2f} s",
    )
    table.add_row(
        f"API posting ({rows_total:,} rows, {per_request}/request)",
        f"{rows_total / posting_s:,.0f} rows/s",
    )
    table.add_row("sustained end to end (post → readable)", f"{rows_total / total_s:,.0f} rows/s")
    table.add_row("job CPU per 1,000 rows", f"{cpu_used / rows_total * 1e6:.0f} ms")
    table.add_row(
        "job RSS (driver + JVM + Python workers), peak / at the end",
        f"{peak_rss:,.0f} / {end_rss:,.0f} MB",
    )
    console.print(table)
    console.print(
        f"trigger {trigger_seconds:g}s; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores; other stream jobs running: {len(other_jobs)}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    typer.run(main)
