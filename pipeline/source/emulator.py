"""The posting emulator of data contract §2.1: draw row ids, post their pin, geo, user rows.

`run_emulation(engine, config)` is the whole job; the CLI only adds a progress bar and a summary.
The calling thread reads the source database and builds requests (one table's records per request),
a pool of worker threads sends them through a shared `Pacer`, retrying 5xx answers and connection
errors with exponential backoff (never 4xx). Every accepted record can be written to a ledger:
one JSON line with its table, id, topic or stream and the offset or sequence number returned.

Ids are drawn uniformly between the smallest and largest pin id with a seeded generator, with
replacement, like the original; ids missing from every table (gaps in loaded data) are drawn again.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from random import Random
from typing import IO, Any

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import Engine, inspect
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)

from pipeline.config import Settings
from pipeline.source import database
from pipeline.source.pacing import LatencyRecorder, Pacer
from pipeline.source.posting import (
    MODES,
    ApiRequest,
    Mode,
    Outcome,
    Record,
    RecordResult,
    UnexpectedResponseError,
    build_request,
    error_reason,
    read_success,
    row_value,
)

log = logging.getLogger(__name__)

DEFAULT_SEED = 100  # the original emulator seeds its generator with 100
DRAWS_PER_QUERY = 64


class SourceNotReadyError(RuntimeError):
    """The source database has no tables or no rows: run `pinpipe seed` first."""


@dataclass(frozen=True)
class EmulationConfig:
    """What to post, where, how fast. `count` counts draws: each posts up to three records."""

    destinations: Mapping[str, str]  # table (pin|geo|user) -> topic or stream
    mode: Mode = "batch"
    api_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    count: int | None = None
    duration: float | None = None
    rate: float | None = None  # records per second; None = as fast as possible
    concurrency: int = 1
    records_per_request: int = 1
    seed: int = DEFAULT_SEED
    ledger: Path | None = None
    max_retries: int = 5
    timeout: float = 10.0
    backoff_initial: float = 0.2
    backoff_max: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        missing = set(database.TABLES) - set(self.destinations)
        if missing:
            raise ValueError(f"destinations lacks tables {sorted(missing)}")
        checks = {
            "count": self.count is None or self.count >= 0,
            "duration": self.duration is None or self.duration > 0,
            "rate": self.rate is None or self.rate > 0,
            "concurrency": self.concurrency >= 1,
            "records_per_request": self.records_per_request >= 1,
            "max_retries": self.max_retries >= 0,
            "timeout": self.timeout > 0,
        }
        for name, valid in checks.items():
            if not valid:
                raise ValueError(f"invalid {name}: {getattr(self, name)!r}")

    @classmethod
    def from_settings(
        cls, settings: Settings, mode: Mode = "batch", **options: Any
    ) -> EmulationConfig:
        """Topics or streams, API URL and key from settings; `options` override any field."""
        values: dict[str, Any] = {
            "destinations": settings.topics if mode == "batch" else settings.streams,
            "mode": mode,
            "api_url": settings.api_url,
            "api_key": settings.api_keys[0] if settings.api_keys else None,
        }
        values |= options
        return cls(**values)


@dataclass
class EmulationSummary:
    """Counts of one run. Every sent record ends accepted, rejected (4xx or a per-record error
    in a 2xx answer) or failed (retries exhausted, or an answer of unknown shape)."""

    mode: str
    draws: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    unsent: int = 0  # drawn but never sent: the run was stopped or its duration was over
    requests: int = 0
    retried: int = 0  # extra attempts after a 5xx answer or a connection error
    elapsed_s: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    interrupted: bool = False
    reasons: dict[str, int] = field(default_factory=dict)  # why records were rejected or failed

    @property
    def records_per_s(self) -> float:
        """Records sent per second of the run."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"records_per_s": round(self.records_per_s, 3)}


ProgressCallback = Callable[[int, EmulationSummary], None]


# Retried like 5xx answers. A retried timeout may duplicate a record the API did take: delivery
# is at least once, as with any producer retry (duplicates are normal downstream anyway).
_CONNECTION_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _RetryableAnswerError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run_emulation(
    engine: Engine,
    config: EmulationConfig,
    *,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> EmulationSummary:
    """Post `config.count` draws (or for `config.duration` seconds, or until `stop` is set or
    Ctrl-C) and return the summary. Ctrl-C stops cleanly: in-flight requests finish."""
    bounds = _source_bounds(engine)
    run = _Run(config, stop or threading.Event(), on_progress)
    return run.execute(engine, bounds)


def _source_bounds(engine: Engine) -> tuple[int, int]:
    tables = set(inspect(engine).get_table_names())
    missing = [table.name for table in database.TABLES.values() if table.name not in tables]
    if missing:
        raise SourceNotReadyError(
            f"the source database lacks tables {missing}: run `pinpipe seed` first"
        )
    bounds = database.id_range(engine)
    if bounds is None:
        raise SourceNotReadyError("the source table pinterest_data is empty: run `pinpipe seed`")
    return bounds


class _Run:
    def __init__(
        self, config: EmulationConfig, stop: threading.Event, on_progress: ProgressCallback | None
    ) -> None:
        self.config = config
        self.stop = stop
        self.on_progress = on_progress
        self.summary = EmulationSummary(mode=config.mode)
        self.reasons: Counter[str] = Counter()
        self.latency = LatencyRecorder()
        self.pacer = Pacer(config.rate)
        self.lock = threading.Lock()
        self.work: queue.Queue[ApiRequest | None] = queue.Queue(maxsize=2 * config.concurrency)
        self.deadline: float | None = None
        self.ledger: IO[str] | None = None

    # -- the calling thread: draw, read, enqueue ------------------------------------------------
    def execute(self, engine: Engine, bounds: tuple[int, int]) -> EmulationSummary:
        config = self.config
        if config.ledger is not None:
            config.ledger.parent.mkdir(parents=True, exist_ok=True)
            self.ledger = config.ledger.open("w", encoding="utf-8")
        workers = [
            threading.Thread(target=self._worker, name=f"emulate-{n}", daemon=True)
            for n in range(config.concurrency)
        ]
        started = time.monotonic()
        if config.duration is not None:
            self.deadline = started + config.duration
        for worker in workers:
            worker.start()
        try:
            for request in self._requests(engine, bounds):
                if not self._enqueue(request):
                    self._count_unsent(len(request.records))
        except KeyboardInterrupt:
            self.stop.set()
            self.summary.interrupted = True
        finally:
            self._finish(workers)
            self.summary.elapsed_s = time.monotonic() - started
            if self.ledger is not None:
                self.ledger.close()
        # Stopped early: by Ctrl-C here, or by the caller's `stop` event.
        self.summary.interrupted = self.summary.interrupted or self.stop.is_set()
        p50, p99 = self.latency.percentile(0.5), self.latency.percentile(0.99)
        self.summary.latency_p50_ms = None if p50 is None else p50 * 1000
        self.summary.latency_p99_ms = None if p99 is None else p99 * 1000
        self.summary.reasons = dict(self.reasons.most_common())
        return self.summary

    def _over(self) -> bool:
        return self.stop.is_set() or (
            self.deadline is not None and time.monotonic() >= self.deadline
        )

    def _requests(self, engine: Engine, bounds: tuple[int, int]) -> Iterator[ApiRequest]:
        config = self.config
        rng = Random(config.seed)
        low, high = bounds
        pending: dict[str, list[Record]] = {table: [] for table in database.TABLES}
        draws = 0
        while not self._over() and (config.count is None or draws < config.count):
            wanted = (
                DRAWS_PER_QUERY
                if config.count is None
                else min(DRAWS_PER_QUERY, config.count - draws)
            )
            candidates = [rng.randint(low, high) for _ in range(wanted)]
            rows = {
                table: database.fetch_rows(engine, table, candidates) for table in database.TABLES
            }
            for row_id in candidates:
                if self._over():
                    break
                present = [table for table in database.TABLES if row_id in rows[table]]
                if not present:
                    continue  # a gap in the ids: the next query draws again
                draws += 1
                with self.lock:
                    self.summary.draws = draws
                for table in present:
                    pending[table].append(
                        Record(draws, table, row_id, row_value(rows[table][row_id]))
                    )
                    if len(pending[table]) >= config.records_per_request:
                        yield self._request(table, pending[table])
                        pending[table] = []
        for table, records in pending.items():
            if records:
                yield self._request(table, records)

    def _request(self, table: str, records: list[Record]) -> ApiRequest:
        config = self.config
        return build_request(
            config.mode, config.api_url, config.destinations[table], tuple(records), config.api_key
        )

    def _enqueue(self, request: ApiRequest) -> bool:
        while not self._over():
            try:
                self.work.put(request, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _finish(self, workers: list[threading.Thread]) -> None:
        for _ in workers:
            while True:
                try:
                    self.work.put(None, timeout=0.05)
                    break
                except queue.Full:
                    continue
                except KeyboardInterrupt:
                    self._interrupted()
        while any(worker.is_alive() for worker in workers):
            try:
                for worker in workers:
                    worker.join(timeout=0.05)
            except KeyboardInterrupt:
                self._interrupted()

    def _interrupted(self) -> None:
        self.stop.set()
        self.summary.interrupted = True

    # -- worker threads: pace, send, retry, account ----------------------------------------------
    def _worker(self) -> None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        with session:
            while True:
                request = self.work.get()
                if request is None:
                    return
                size = len(request.records)
                if self._over() or not self.pacer.wait(size, self.stop) or self._over():
                    self._count_unsent(size)
                    continue
                try:
                    results = self._send(session, request)
                except Exception as error:  # keep the worker alive: a dead one stalls the run
                    results = _all(request, f"internal error: {error!r}")
                self._account(request, results)

    def _send(self, session: requests.Session, request: ApiRequest) -> list[RecordResult]:
        config = self.config

        def attempt() -> requests.Response:
            began = time.perf_counter()
            response = session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=config.timeout,
            )
            self.latency.add(time.perf_counter() - began)
            if response.status_code >= 500:
                raise _RetryableAnswerError(error_reason(response.status_code, response.content))
            return response

        retrying = Retrying(
            retry=retry_if_exception_type((_RetryableAnswerError, *_CONNECTION_ERRORS)),
            stop=stop_after_attempt(config.max_retries + 1) | stop_when_event_set(self.stop),
            # backoff_initial x 2^n (capped), plus up to backoff_initial of jitter.
            wait=wait_exponential(multiplier=config.backoff_initial, max=config.backoff_max)
            + wait_random(0, config.backoff_initial),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        with self.lock:
            self.summary.requests += 1
            self.summary.sent += len(request.records)
        try:
            response = retrying(attempt)
        except _RetryableAnswerError as error:
            return _all(request, f"gave up: {error.reason}")
        except _CONNECTION_ERRORS as error:
            return _all(request, f"gave up: {type(error).__name__}")
        except requests.RequestException as error:
            return _all(request, f"request error: {type(error).__name__}: {error}")
        if 200 <= response.status_code < 300:
            try:
                return read_success(config.mode, request, response.content)
            except UnexpectedResponseError as error:
                return _all(request, f"unexpected answer: {error}")
        return _all(request, error_reason(response.status_code, response.content), rejected=True)

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _count_retry(self, _state: RetryCallState) -> None:
        with self.lock:
            self.summary.retried += 1

    def _count_unsent(self, records: int) -> None:
        with self.lock:
            self.summary.unsent += records

    def _account(self, request: ApiRequest, results: list[RecordResult]) -> None:
        lines: list[str] = []
        with self.lock:
            for result in results:
                if result.outcome == "accepted":
                    self.summary.accepted += 1
                    lines.append(self._ledger_line(request, result))
                else:
                    if result.outcome == "rejected":
                        self.summary.rejected += 1
                    else:
                        self.summary.failed += 1
                    self.reasons[result.reason] += 1
            if self.ledger is not None and lines:
                self.ledger.write("".join(lines))
                self.ledger.flush()
        if self.on_progress is not None:
            try:
                self.on_progress(len(results), self.summary)
            except Exception:
                log.exception("progress callback failed; the run goes on")

    def _ledger_line(self, request: ApiRequest, result: RecordResult) -> str:
        kind = "topic" if self.config.mode == "batch" else "stream"
        entry = {
            "table": result.record.table,
            "id": result.record.row_id,
            "seq": result.record.seq,
            kind: request.destination,
            **result.position,
        }
        return json.dumps(entry, separators=(",", ":")) + "\n"


def _all(request: ApiRequest, reason: str, *, rejected: bool = False) -> list[RecordResult]:
    outcome: Outcome = "rejected" if rejected else "failed"
    return [RecordResult(record, outcome, reason=reason) for record in request.records]
