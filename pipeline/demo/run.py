"""`pinpipe demo`: the whole batch path once, on the local or the compose stack, saying what it
does.

1. start the local stack (idempotent: a running one is reused), Airflow included; on the docker
   target the compose stack is already up (`make demo TARGET=docker` runs this in its container);
2. seed the source database when it is empty;
3. post N records through the API to Kafka with the emulator, keeping a ledger of what the API
   acknowledged;
4. wait until Kafka Connect has landed every acknowledged record in the S3 lake;
5. trigger the daily DAG through Airflow's REST API and follow it task by task;
6. print the nine gold tables and a closing line of counts;
7. write the HTML report (`pipeline.report`) with the ledger's counts and each step's time, and
   print its path (the DAG's last task also wrote one into the lake).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from pipeline.config import Settings
from pipeline.landing import not_landed, read_ledger
from pipeline.orchestrate.client import AirflowClient, RunExistsError
from pipeline.orchestrate.dag import DAG_ID, TASK_IDS
from pipeline.source import database
from pipeline.source.emulator import EmulationConfig, EmulationSummary, run_emulation
from pipeline.source.feed import RECORDS_PER_ID, ensure_seeded
from pipeline.stack.airflow import airflow_login
from pipeline.waiting import waiting

STEPS = 7
FINISHED_TASK_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}


class DemoError(RuntimeError):
    """A step could not finish; the message says which and what to look at."""


@dataclass
class DemoReport:
    records_posted: int = 0
    records_landed: int = 0
    dag_run_id: str = ""
    silver_rows: dict[str, int] = field(default_factory=dict)
    gold_rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    task_seconds: dict[str, float] = field(default_factory=dict)  # DAG task → duration
    report_path: str = ""
    ids_drawn: int = 0  # the emulator's draws (with replacement) ...
    distinct_ids: int = 0  # ... and the distinct ids among them: silver's rows per table


class _Steps:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0
        self.started = time.monotonic()

    def begin(self, title: str) -> float:
        self.number += 1
        elapsed = time.monotonic() - self.started
        self.console.rule(f"[bold]{self.number}/{STEPS} {title}[/]  [dim]{elapsed:.0f}s[/]")
        return time.monotonic()

    def say(self, message: str, markup: bool = True) -> None:
        # soft_wrap: one line however narrow the output (paths and URLs stay whole)
        self.console.print(f"  {message}", markup=markup, highlight=markup, soft_wrap=True)


def _wait(
    condition: Callable[[], bool],
    timeout_s: float,
    interval_s: float,
    what: str,
    console: Console | None = None,
) -> float:
    """Poll `condition` until true; on `console`, show what it waits for and for how long."""
    started = time.monotonic()
    with waiting(console, what):
        while not condition():
            if time.monotonic() - started > timeout_s:
                raise DemoError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            time.sleep(interval_s)
    return time.monotonic() - started


def run_demo(settings: Settings, records: int = 3000, console: Console | None = None) -> DemoReport:
    """Every step of the module docstring; raises `DemoError` naming the step that failed."""
    from pipeline.stack import stack

    console = console or Console()
    steps = _Steps(console)
    report = DemoReport()
    if not settings.airflow_enabled:
        raise DemoError(
            "the demo runs the DAG on the stack's Airflow: PINPIPE_AIRFLOW_ENABLED=true"
        )

    if settings.target == "docker":
        # `make demo TARGET=docker` runs this in a container of the compose stack, which
        # `compose up --wait` has started and provisioned (its init services) beforehand
        started = steps.begin("Using the compose stack (make up TARGET=docker started it)")
        steps.say(f"API {settings.api_url}, Airflow {settings.airflow_url}", markup=False)
    else:
        started = steps.begin("Starting the local stack (a running one is reused)")
        stack.up(settings, on_event=lambda event: steps.say(event, markup=False), console=console)
    report.seconds["stack"] = time.monotonic() - started

    started = steps.begin("Seeding the source database if it is empty")
    rows = ensure_seeded(settings)
    steps.say(f"{rows:,} row ids in {database.safe_url(settings.source_url)}")
    report.seconds["seed"] = time.monotonic() - started

    started = steps.begin(f"Posting {records:,} records: emulator → API → Kafka")
    ledger_path = settings.run_dir / "demo" / f"ledger-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl"
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    summary = _emulate(settings, math.ceil(records / RECORDS_PER_ID), ledger_path)
    ledger = read_ledger(ledger_path)
    report.records_posted = len(ledger)
    report.ids_drawn = summary.draws
    report.distinct_ids = len({entry["id"] for entry in ledger if entry["table"] == "pin"})
    steps.say(
        f"{summary.accepted:,} records acknowledged ({summary.rejected} rejected, "
        f"{summary.failed} failed) in {summary.elapsed_s:.1f}s; ledger {ledger_path}"
    )
    if summary.rejected or summary.failed or not ledger:
        raise DemoError(f"the API did not take every record: {summary.reasons}")
    report.seconds["emulate"] = time.monotonic() - started

    started = steps.begin("Waiting for Kafka Connect to land them in S3")
    flush_s = settings.landing_flush_interval_ms / 1000
    steps.say(
        f"the S3 sink writes an object per {settings.landing_flush_max_records} records of a "
        f"partition, or after {flush_s:.0f}s for a partial one"
    )
    missing = len(ledger)

    def all_landed() -> bool:
        nonlocal missing
        still = len(not_landed(settings, ledger))
        if still != missing:
            steps.say(f"landed {len(ledger) - still:,} of {len(ledger):,}")
        missing = still
        return still == 0

    # Checked every second: the step ends as soon as the last record is in the lake.
    _wait(
        all_landed,
        flush_s + 180,
        1,
        f"{len(ledger)} records to land in s3://{settings.lake_bucket}",
        console=steps.console,
    )
    report.records_landed = len(ledger)
    report.seconds["land"] = time.monotonic() - started

    started = steps.begin(f"Running the DAG {DAG_ID} on Airflow ({settings.airflow_url})")
    report.dag_run_id = _run_dag(settings, steps, report.task_seconds)
    report.seconds["dag"] = time.monotonic() - started

    started = steps.begin("The nine gold tables")
    _print_results(settings, console, report)
    report.seconds["results"] = time.monotonic() - started

    started = steps.begin("Writing the HTML report")
    report.report_path = _write_report(settings, report, ledger_path)
    steps.say(f"report: {report.report_path}", markup=False)
    total = time.monotonic() - steps.started
    console.print(
        f"[bold green]demo done in {int(total // 60)}m{int(total % 60):02d}s:[/] "
        f"{report.records_posted:,} records posted, {report.records_landed:,} landed; silver "
        + ", ".join(f"{table} {count:,}" for table, count in report.silver_rows.items())
        + f" rows; {len(report.gold_rows)} gold tables, {sum(report.gold_rows.values()):,} rows"
        f" (DAG run {report.dag_run_id}); report {report.report_path}"
    )
    console.print(why_fewer_silver_rows(report), soft_wrap=True, markup=False, highlight=False)
    console.print(
        "The stack keeps running: `make status` shows its URLs and where the Airflow login is, "
        "`make down` stops it."
    )
    return report


def why_fewer_silver_rows(report: DemoReport) -> str:
    """The closing line's footnote: why silver holds fewer rows per table than records posted."""
    line = (
        f"Why silver has fewer rows than records posted: the emulator draws row ids with "
        f"replacement ({report.ids_drawn:,} draws gave {report.distinct_ids:,} distinct ids, "
        f"each posting its pin, geo and user row) and silver keeps one row per id, the latest "
        f"arrival."
    )
    if any(count > report.distinct_ids for count in report.silver_rows.values()):
        line += " The lake also holds the records of earlier runs and of the stack's feed."
    return line


def _emulate(settings: Settings, draws: int, ledger_path: Path) -> EmulationSummary:
    engine = database.connect(settings.source_url)
    try:
        config = EmulationConfig.from_settings(
            settings,
            "batch",
            count=draws,
            ledger=ledger_path,
            concurrency=4,
            records_per_request=10,
        )
        return run_emulation(engine, config)
    finally:
        engine.dispose()


def _write_report(settings: Settings, report: DemoReport, ledger: Path) -> str:
    """The report of the demo's lake, with the ledger and every step's time, in the run folder."""
    from pipeline.report.build import write_report

    stages = {f"demo: {step}": seconds for step, seconds in report.seconds.items()}
    stages |= {f"DAG task: {task}": seconds for task, seconds in report.task_seconds.items()}
    out = ledger.parent / f"report-{datetime.now(UTC):%Y%m%dT%H%M%S}.html"
    return write_report(settings, out=str(out), ledger=ledger, stage_seconds=stages)


def _run_dag(
    settings: Settings,
    steps: _Steps,
    task_seconds: dict[str, float] | None = None,
    timeout_s: float = 1800,
) -> str:
    login = airflow_login(settings)
    if login is None:
        raise DemoError(f"no Airflow login in {settings.airflow_home}: is airflow running?")
    client = AirflowClient(settings, *login)

    def dag_parsed() -> bool:
        errors = [e for e in client.import_errors() if "pinpipe" in str(e.get("filename", ""))]
        if errors:
            raise DemoError(f"the DAG file does not import: {errors[0].get('stack_trace')}")
        return client.dag(DAG_ID) is not None

    waited = _wait(dag_parsed, 300, 3, f"Airflow to parse {DAG_ID}", console=steps.console)
    steps.say(f"DAG {DAG_ID} parsed ({waited:.0f}s); triggering a run and unpausing it")
    run_id = trigger_single_run(client)
    steps.say(f"run {run_id}: {settings.airflow_url}/dags/{DAG_ID}/runs/{run_id}")

    seen: dict[str, str] = {}

    def finished() -> bool:
        for instance in client.task_instances(DAG_ID, run_id):
            task, state = instance["task_id"], instance.get("state") or "scheduled"
            if seen.get(task) != state:
                seen[task] = state
                duration = instance.get("duration")
                took = f" ({duration:.0f}s)" if state in FINISHED_TASK_STATES and duration else ""
                if task_seconds is not None and state in FINISHED_TASK_STATES and duration:
                    task_seconds[task] = float(duration)
                steps.say(f"{task}: {state}{took}")
        return client.dag_run(DAG_ID, run_id)["state"] in ("success", "failed")

    _wait(finished, timeout_s, 3, f"DAG run {run_id} to finish", console=steps.console)
    state = client.dag_run(DAG_ID, run_id)["state"]
    if state != "success":
        failed = [task for task in TASK_IDS if seen.get(task) == "failed"]
        tries = {
            i["task_id"]: int(i.get("try_number") or 1)
            for i in client.task_instances(DAG_ID, run_id)
        }
        for task in failed:
            lines = client.task_log(DAG_ID, run_id, task, tries.get(task, 1))
            steps.say(f"[red]{task} failed; its log ends with:[/]")
            for line in lines[-25:]:
                steps.say(f"  {line}", markup=False)
        raise DemoError(f"DAG run {run_id} {state} (failed tasks: {', '.join(failed) or 'none'})")
    steps.say(f"[green]DAG run {run_id} succeeded[/]")
    return run_id


def trigger_single_run(client: AirflowClient) -> str:
    """Trigger one run, then unpause the DAG, without a second run from the scheduler.

    With `catchup=False`, unpausing makes the scheduler run the latest daily tick at once. When
    that tick is due, the demo's run takes its logical date: the scheduler then finds the run
    already there and moves on to the next tick. Otherwise (or if a run has it) a plain run.
    """
    dag = client.dag(DAG_ID) or {}
    due = dag.get("next_dagrun_logical_date")
    run_id = None
    if dag.get("is_paused") and due and datetime.fromisoformat(due) <= datetime.now(UTC):
        with contextlib.suppress(RunExistsError):
            run_id = client.trigger(DAG_ID, note="pinpipe demo", logical_date=due)
    if run_id is None:
        run_id = client.trigger(DAG_ID, note="pinpipe demo")
    client.set_paused(DAG_ID, paused=False)
    return run_id


# The demo's own Spark session prints its tables: errors only, and no "default log level" banner
# (Spark prints it when the shell's logger level differs from the root's; here both are error).
QUIET_SPARK_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.shell.name = org.apache.spark.api.python.PythonGatewayServer
logger.shell.level = error
"""


def _quiet_spark(settings: Settings) -> None:
    """No Spark/log4j WARN lines and no py4j INFO lines around the tables: the JVM (started by
    the next session) logs errors only; py4j logs at INFO once Airflow's import configured the
    root logger."""
    logging.getLogger("py4j").setLevel(logging.WARNING)
    config = settings.run_dir / "conf" / "log4j2-demo.properties"
    try:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(QUIET_SPARK_LOG4J2)
    except OSError:  # a read-only run folder: Spark's default logging, no reason to stop
        return
    # read by spark-submit, which pyspark runs to start the driver JVM
    os.environ.setdefault("SPARK_SUBMIT_OPTS", f"-Dlog4j2.configurationFile=file:{config}")


def _print_results(settings: Settings, console: Console, report: DemoReport) -> None:
    """The gold tables and silver counts read with delta-rs: no JVM to start for a few rows."""
    from pipeline.lake import LakePaths
    from pipeline.report.collect import read_gold
    from pipeline.report.lake import LakeReader
    from pipeline.transform.render import render_tables

    reader = LakeReader(settings)
    gold = read_gold(reader, settings.lake_uri)
    missing = sorted(query_id for query_id, rows in gold.items() if rows is None)
    if missing:
        raise DemoError(f"gold tables missing under {settings.lake_uri}: {', '.join(missing)}")
    results = {query_id: rows or [] for query_id, rows in gold.items()}
    paths = LakePaths(settings.lake_uri)
    report.silver_rows = {
        table: reader.count(paths.silver(table)) or 0 for table in ("pin", "geo", "user")
    }
    report.gold_rows = {query_id: len(rows) for query_id, rows in results.items()}
    render_tables(results, console)
