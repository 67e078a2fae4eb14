"""The fault-injection suite: `python -m tests.chaos.runner` (`make chaos`).

Per run: a fresh local stack (its own run folder and ports, the streaming job on, Airflow and the
feeds off) whose S3 clients (the sink, Spark, boto3) reach S3 through a mitmproxy reverse proxy
that can answer 503/500. Then, one fault at a time, the emulator posts through the API to both
layers concurrently, the fault is injected mid-posting and lifted, and the ledger of acknowledged
records is reconciled with Kafka, the lake and the stream Delta tables until they agree (or a
timeout). After the last fault the real batch job builds silver, reconciled per fault by id.
Prints a table and writes every figure as JSON; exits 1 on any loss or duplicate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.config import Settings, get_settings
from pipeline.config.settings import PROJECT_ROOT
from pipeline.source import database
from pipeline.source.emulator import EmulationConfig, EmulationSummary, run_emulation
from pipeline.source.feed import RECORDS_PER_ID
from pipeline.source.loader import seed_database
from pipeline.stack.supervisor import Supervisor
from tests.chaos import reconcile
from tests.chaos.faults import FAULTS, FaultContext, bring_up
from tests.chaos.reconcile import StageResult
from tests.support.ports import free_port

console = Console(width=int(os.environ.get("COLUMNS", "140")))  # a log file is no terminal
ADDON = Path(__file__).with_name("s3_fault_addon.py")
MITMDUMP = PROJECT_ROOT / ".cache" / "tools" / "bin" / "mitmdump"
# Kept apart from the test session's own stack (PINPIPE_TEST_PORT_OFFSET) that may be up too.
PORT_SHIFT = 500
# the seeded source database, kept between runs (they only read it)
SOURCE_CACHE = PROJECT_ROOT / ".run" / "chaos"


@dataclass
class FaultResult:
    run: int
    fault: str
    stages: list[StageResult] = field(default_factory=list)
    posting: dict[str, dict[str, Any]] = field(default_factory=dict)
    fault_s: float = 0.0
    took_s: float = 0.0  # from the start of posting until every stage agreed
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)  # when the fault was reconciled
    error: str = ""

    def failures(self) -> list[str]:
        found = [f"{self.fault}: {self.error}"] if self.error else []
        for stage in self.stages:
            if stage.missing or stage.duplicated:
                found.append(
                    f"run {self.run} {self.fault} {stage.stage}: {stage.missing} missing, "
                    f"{stage.duplicated} duplicated of {stage.acknowledged}"
                )
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "fault": self.fault,
            "fault_s": round(self.fault_s, 1),
            "took_s": round(self.took_s, 1),
            "load_average": [round(figure, 2) for figure in self.load_average],
            "error": self.error,
            "posting": self.posting,
            "stages": [stage.as_dict() for stage in self.stages],
        }


# -- the chaos stack ----------------------------------------------------------------------------


def s3_endpoint(settings: Settings) -> str:
    """The URL S3 clients (the sink, Spark, boto3) use."""
    return settings.endpoint_url("s3") or ""


def stack_environment(run_dir: Path, port_offset: int, stream: bool = True) -> dict[str, str]:
    """The test stack's environment (tests/conftest.py) on this suite's ports and run folder."""
    from tests.conftest import CLEARED, DEFAULT_PORTS, TEST_ENV

    for key in CLEARED:
        os.environ.pop(key, None)
    from pipeline.stack.servers import CHECKSUM_ENVIRONMENT

    return {
        **TEST_ENV,
        **CHECKSUM_ENVIRONMENT,
        **{key: str(port + port_offset) for key, port in DEFAULT_PORTS.items()},
        "PINPIPE_RUN_DIR": str(run_dir),
        "PINPIPE_TOPIC_PREFIX": "chaos",
        "PINPIPE_LAKE_BUCKET": "chaos-lake",
        "PINPIPE_STREAM_ENABLED": str(stream).lower(),
        "PINPIPE_AIRFLOW_ENABLED": "false",
        "PINPIPE_FEED_IDS_PER_SECOND": "0",
    }


@contextmanager
def s3_fault_proxy(upstream: str, port: int, switch: Path, log: Path) -> Iterator[str]:
    """mitmdump in reverse mode in front of the S3 endpoint; yields the proxy's URL."""
    if not MITMDUMP.exists():
        raise SystemExit(f"{MITMDUMP} is missing: run `make setup` (it installs mitmproxy)")
    command = [
        str(MITMDUMP),
        "--mode",
        f"reverse:{upstream}",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "-s",
        str(ADDON),
        "--set",
        f"s3_fault_switch={switch}",
        # SigV4 signs the Host header: keep the one the client signed
        "--set",
        "keep_host_header=true",
        "--set",
        "stream_large_bodies=1m",
        "--set",
        "connection_strategy=lazy",
        "--set",
        f"confdir={log.parent / 'mitmproxy'}",
        "-q",
    ]
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mitmdump did not start: see {log}")
            time.sleep(0.2)
        time.sleep(1)
        if process.poll() is not None:  # an addon error stops mitmdump just after it listens
            raise SystemExit(f"mitmdump stopped: see {log}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _load() -> str:
    return " ".join(f"{figure:.1f}" for figure in os.getloadavg())


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def seeded_source(cache_dir: Path, rows: int) -> Path:
    """A source database of `rows` ids, generated once and kept (the draws only read it)."""
    path = cache_dir / f"source-{rows}.db"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        # a name of its own: two runs seeding at once each rename a whole file into place
        partial = cache_dir / f"source-{rows}.{os.getpid()}.partial"
        partial.unlink(missing_ok=True)
        engine = database.connect(f"sqlite:///{partial}")
        try:
            seed_database(engine, rows, seed=0)
        finally:
            engine.dispose()
        partial.rename(path)
    return path


# -- one fault -------------------------------------------------------------------------------------


class Posting:
    """Both layers' emulators posting concurrently in threads, each with its ledger."""

    def __init__(
        self,
        settings: Settings,
        folder: Path,
        draws: int,
        seed: int,
        rate: float,
        modes: tuple[str, ...] = ("batch", "stream"),
    ) -> None:
        self.stop = threading.Event()
        self.summaries: dict[str, EmulationSummary] = {}
        self.ledgers = {mode: folder / f"ledger-{mode}.jsonl" for mode in modes}
        engine = database.connect(settings.source_url)
        self._engine = engine
        self._threads = []
        for number, mode in enumerate(modes):
            config = EmulationConfig.from_settings(
                settings,
                mode,  # type: ignore[arg-type]
                count=draws,
                rate=rate,
                concurrency=4,
                records_per_request=10,
                seed=seed * 2 + number,
                ledger=self.ledgers[mode],
                # ride out every fault: retry 5xx and connection errors, never give up
                max_retries=1_000_000,
                backoff_max=2.0,
                timeout=15.0,
            )
            self._threads.append(
                threading.Thread(target=self._run, args=(engine, config), daemon=True)
            )

    def _run(self, engine: Any, config: EmulationConfig) -> None:
        self.summaries[config.mode] = run_emulation(engine, config, stop=self.stop)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            self.stop.set()  # in-flight requests finish, the rest stay unsent
            for thread in self._threads:
                thread.join()
        self._engine.dispose()

    def acknowledged(self, mode: str) -> int:
        """Records acknowledged so far (ledger lines written)."""
        path = self.ledgers[mode]
        if not path.exists():
            return 0
        with path.open("rb") as ledger:
            return sum(1 for _line in ledger)

    def wait_until_acknowledged(self, records: int, timeout_s: float) -> None:
        """Until every layer has `records` acknowledged (or its posting ended): the fault then
        lands in the middle of the posting, however fast the loaded machine posts."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(
                not thread.is_alive() or self.acknowledged(mode) >= records
                for mode, thread in zip(self.ledgers, self._threads, strict=True)
            ):
                return
            time.sleep(0.2)

    def ledger(self, mode: str) -> list[dict[str, Any]]:
        path = self.ledgers.get(mode)
        if path is None or not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _converge(
    check: Callable[[], StageResult], lifted: float, timeout_s: float, interval_s: float = 1.0
) -> StageResult:
    """Re-check until nothing is missing (or the timeout); the time of agreement is the
    recovery time, measured from the moment the fault was lifted."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result.missing == 0 or time.monotonic() > deadline:
            if result.missing == 0:
                result.recover_s = round(time.monotonic() - lifted, 1)
            return result
        time.sleep(interval_s)


def run_fault(
    context: FaultContext,
    run: int,
    name: str,
    records: int,
    folder: Path,
    settle_s: float,
    modes: tuple[str, ...] = ("batch", "stream"),
) -> tuple[FaultResult, dict[str, list[dict[str, Any]]]]:
    settings = context.settings
    folder.mkdir(parents=True, exist_ok=True)
    result = FaultResult(run, name)
    draws = max(1, records // RECORDS_PER_ID)
    # about 10 s of posting per layer when nothing fails: the fault lands in the middle of it
    rate = max(30.0, records / 10)
    before = reconcile.watermarks(settings)
    seed = 1000 * run + list(FAULTS).index(name)
    posting = Posting(settings, folder, draws, seed=seed, rate=rate, modes=modes)
    began = time.monotonic()
    posting.start()
    posting.wait_until_acknowledged(records // 4, timeout_s=300)
    console.print(f"[bold]run {run} · {name}[/]: injecting")
    started = time.monotonic()
    try:
        FAULTS[name](context)
    except Exception as error:  # recorded: the reconciliation below still says what was lost
        result.error = f"{type(error).__name__}: {error}"
        console.print(f"[red]{name}: {result.error}[/]")
    lifted = time.monotonic()
    result.fault_s = lifted - started
    posting.join(timeout_s=600)
    posted = time.monotonic()
    result.posting = {mode: summary.as_dict() for mode, summary in posting.summaries.items()}
    ledgers = {mode: posting.ledger(mode) for mode in ("batch", "stream")}
    batch, stream = ledgers["batch"], ledgers["stream"]
    if "batch" not in modes:
        result.stages = [_stream_stage(context, stream, lifted, settle_s)]
        result.took_s = time.monotonic() - began
        result.load_average = os.getloadavg()
        return result, ledgers

    after = reconcile.watermarks(settings)
    kafka = reconcile.read_kafka(settings, before, after)
    topic_tables = {topic: table for table, topic in settings.topics.items()}
    kafka_result, kafka_duplicates = reconcile.reconcile_kafka(batch, topic_tables, kafka)
    kafka_result.recover_s = round(posted - lifted, 1)
    windows = reconcile.window_keys(settings, [reconcile._position(entry) for entry in batch])

    def lake_check() -> StageResult:
        lake = reconcile.read_lake(settings, windows)
        return reconcile.reconcile_lake(batch, kafka, kafka_duplicates, lake)

    lake_result = _converge(lake_check, lifted, settle_s)
    # a last full look: a record landed twice may sit in an object outside its aligned window
    full = reconcile.reconcile_lake(batch, kafka, kafka_duplicates, reconcile.read_lake(settings))
    full.recover_s = lake_result.recover_s
    result.stages = [kafka_result, full]
    if "stream" in modes:
        result.stages.append(_stream_stage(context, stream, lifted, settle_s))
    result.took_s = time.monotonic() - began
    result.load_average = os.getloadavg()
    return result, ledgers


def _stream_stage(
    context: FaultContext,
    ledger: list[dict[str, Any]],
    lifted: float,
    settle_s: float,
) -> StageResult:
    """The stream Delta tables (one row per id) against the stream ledger."""
    from pipeline.lake import StreamPaths

    settings = context.settings
    paths = StreamPaths(settings.lake_uri, settings.topic_prefix)
    tables = {table: paths.table(table) for table in settings.topics}
    wanted = reconcile.ids_of(ledger)

    def check() -> StageResult:
        return reconcile.reconcile_ids("stream", wanted, reconcile.delta_ids(settings, tables))

    return _converge(check, lifted, settle_s, interval_s=2.0)


# -- a run: one stack, every fault ---------------------------------------------------------------


def run_once(run: int, args: argparse.Namespace, out_dir: Path) -> list[FaultResult]:
    run_dir = Path(args.run_dir or out_dir) / f"stack-{run}"
    shutil.rmtree(run_dir, ignore_errors=True)
    reconcile.forget_committed_offsets()  # the last run's broker is gone, its offsets with it
    run_dir.mkdir(parents=True)
    modes = tuple(args.layers)
    environment = stack_environment(run_dir, args.port_offset, stream="stream" in modes)
    os.environ.update(environment)
    get_settings.cache_clear()
    upstream = f"http://127.0.0.1:{get_settings().s3_port}"  # where the S3 server listens
    source = seeded_source(SOURCE_CACHE, args.source_rows)
    os.environ["PINPIPE_SOURCE_DB_URL"] = f"sqlite:///{source}"
    switch = run_dir / "s3-fault.on"
    proxy_port = free_port()
    faults = args.faults or [f for f in FAULTS if "stream" in modes or f != "kill-stream"]
    results: list[FaultResult] = []
    from pipeline.stack import stack

    with s3_fault_proxy(upstream, proxy_port, switch, run_dir / "mitmdump.log") as proxy:
        # the SDKs' own variable: the stack hands it on to every workload it starts
        os.environ["AWS_ENDPOINT_URL_S3"] = proxy
        get_settings.cache_clear()
        settings = get_settings()
        if s3_endpoint(settings) != proxy:
            raise SystemExit(f"S3 clients would not use the fault proxy: {s3_endpoint(settings)}")
        context = FaultContext(
            settings, upstream, switch, args.outage, log=lambda m: console.print(f"  {m}")
        )
        try:
            started = time.monotonic()
            bring_up(settings, lambda event: console.print(f"  [dim]{event}[/]"))
            console.print(f"run {run}: stack up in {time.monotonic() - started:.0f}s")
            per_fault = max(RECORDS_PER_ID, args.records // len(faults))
            batch_ledgers: dict[str, list[dict[str, Any]]] = {}
            for name in faults:
                result, ledgers = run_fault(
                    context, run, name, per_fault, run_dir / name, args.settle, modes
                )
                batch_ledgers[name] = ledgers["batch"]
                results.append(result)
                _print_table(results[-1:])
                console.print(
                    f"run {run} · {name}: {result.took_s:.0f}s "
                    f"(fault {result.fault_s:.0f}s, load {_load()})"
                )
            if "batch" in modes:
                if "stream" in modes:
                    # every stream stage is reconciled: the batch job gets the streaming job's core
                    try:
                        Supervisor(settings).stop("spark-stream")
                    except Exception as error:  # only slower then: the batch job still runs
                        console.print(f"[yellow]could not stop the streaming job: {error}[/]")
                _reconcile_silver(settings, results, batch_ledgers)
        finally:
            switch.unlink(missing_ok=True)
            stack.down(settings, on_event=lambda event: console.print(f"  [dim]{event}[/]"))
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return results


def _reconcile_silver(
    settings: Settings,
    results: list[FaultResult],
    ledgers: dict[str, list[dict[str, Any]]],
) -> None:
    """The real batch job once over everything landed, then silver per fault by id."""
    from pipeline.lake import LakePaths
    from pipeline.spark_session import get_spark
    from pipeline.transform.job import run_batch

    started = time.monotonic()
    spark = None
    try:
        # a Spark session only now: the faults' polling reads Delta with delta-rs
        spark = get_spark("pinpipe-chaos", settings)
        run_batch(spark, settings.landing_uri, settings.lake_uri, settings.topics)
        paths = LakePaths(settings.lake_uri)
        uris = {table: paths.silver(table) for table in settings.topics}
        rows = reconcile.delta_ids(settings, uris)
    except Exception as error:  # every fault's silver check then fails, saying why
        console.print(f"[red]batch job failed: {escape(f'{error!s:.2000}')}[/]")
        rows = {}
        for result in results:
            result.error = (result.error + "; " if result.error else "") + (
                f"batch job failed: {type(error).__name__}: {str(error).splitlines()[0]:.300}"
            )
    finally:
        if spark is not None:
            with suppress(Exception):
                # the JVM outlives the session, and Hadoop caches each bucket's S3A client in it:
                # the next run's session would reach this run's S3 proxy, gone by then
                spark._jvm.org.apache.hadoop.fs.FileSystem.closeAll()  # type: ignore[union-attr]
            with suppress(Exception):
                spark.stop()
    took = round(time.monotonic() - started, 1)
    console.print(f"batch job and silver read: {took}s")
    for result in results:
        silver = reconcile.reconcile_ids("silver", reconcile.ids_of(ledgers[result.fault]), rows)
        silver.recover_s = took
        result.stages.append(silver)


# -- output ----------------------------------------------------------------------------------------


def _print_table(results: list[FaultResult]) -> None:
    table = Table(title="chaos: acknowledged records after each fault")
    for column in ("run", "fault", "stage", "acknowledged", "landed", "missing", "duplicated"):
        table.add_column(column, justify="right" if column not in ("fault", "stage") else "left")
    table.add_column("seconds to recover", justify="right")
    for result in results:
        for stage in result.stages:
            bad = stage.missing or stage.duplicated
            table.add_row(
                str(result.run),
                result.fault,
                stage.stage,
                f"{stage.acknowledged:,}",
                f"{stage.landed:,}",
                f"[red]{stage.missing:,}[/]" if stage.missing else "0",
                f"[red]{stage.duplicated:,}[/]" if stage.duplicated else "0",
                "-" if stage.recover_s is None else f"{stage.recover_s:.1f}",
                style="bold" if bad else None,
            )
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.runner", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh stacks, each with every fault")
    parser.add_argument(
        "--records", type=int, default=100_000, help="records per layer per run, over all faults"
    )
    parser.add_argument("--faults", nargs="*", choices=list(FAULTS), help="default: all, in order")
    parser.add_argument(
        "--layers",
        nargs="+",
        choices=["batch", "stream"],
        default=["batch", "stream"],
        help="layers posted to and reconciled (the stack runs the streaming job with stream)",
    )
    parser.add_argument("--outage", type=float, default=30.0, help="seconds of the S3 faults")
    parser.add_argument(
        "--settle", type=float, default=600.0, help="longest wait for a stage to agree"
    )
    parser.add_argument("--source-rows", type=int, default=20_000, help="ids in the source DB")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("PINPIPE_TEST_PORT_OFFSET", "10000")) + PORT_SHIFT,
    )
    parser.add_argument(
        "--out", type=Path, default=PROJECT_ROOT / ".run" / "chaos" / "results.json"
    )
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="stack folders (default: --out's)"
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's stack folder")
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # a test's timeout or CI's cancel: unwind, so `finally` takes the stack and the proxy down
    raise SystemExit(128 + signum)


def _write_results(
    args: argparse.Namespace, completed_runs: int, results: list[FaultResult], elapsed: float
) -> list[str]:
    """The results document (`--out`) of the runs completed so far; returns their failures."""
    failures = [failure for result in results for failure in result.failures()]
    document = {
        "runs": args.runs,
        "completed_runs": completed_runs,
        "records_per_layer_per_run": args.records,
        "elapsed_s": round(elapsed, 1),
        "load_average": os.getloadavg(),
        "results": [result.as_dict() for result in results],
        "failures": failures,
    }
    args.out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return failures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[FaultResult] = []
    failures: list[str] = []
    for run in range(1, args.runs + 1):
        results += run_once(run, args, out_dir)
        # after every run, so that a long run stopped part-way keeps the runs it completed
        failures = _write_results(args, run, results, time.monotonic() - started)
    elapsed = time.monotonic() - started
    _print_table(results)
    console.print(f"{len(results)} faults in {elapsed:.0f}s; results: {args.out}")
    for failure in failures:
        console.print(f"[red]FAIL[/] {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
