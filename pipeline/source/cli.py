"""`pinpipe seed` and `pinpipe emulate`: fill the source database, then post from it."""

from __future__ import annotations

import contextlib
import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from pipeline.config import get_settings
from pipeline.source import database
from pipeline.source.emulator import (
    DEFAULT_SEED as EMULATOR_SEED,
)
from pipeline.source.emulator import (
    EmulationConfig,
    EmulationSummary,
    SourceNotReadyError,
    run_emulation,
)
from pipeline.source.generator import DEFAULT_ROWS
from pipeline.source.generator import DEFAULT_SEED as GENERATOR_SEED
from pipeline.source.interval import IntervalSummary
from pipeline.source.loader import (
    ExportFormatError,
    check_exports,
    find_exports,
    load_exports,
    seed_database,
)
from pipeline.source.posting import Mode


class ModeChoice(StrEnum):
    batch = "batch"
    stream = "stream"


console = Console()
errors = Console(stderr=True)


class RateColumn(ProgressColumn):
    """The live rate (over the last few seconds)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed or 0.0
        return Text(f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


def _progress(enabled: bool, unit: str, *extra: ProgressColumn) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        *extra,
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        speed_estimate_period=5.0,
    )


def seed(
    rows: Annotated[int, typer.Option("--rows", "-n", min=0, help="Row ids to generate.")] = (
        DEFAULT_ROWS
    ),
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same data.")] = GENERATOR_SEED,
    source_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the source database (default: settings.source_url)."),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            exists=True,
            file_okay=False,
            help="Load exports instead of generating: pinterest_data, geolocation_data and "
            "user_data as .csv, .json (array) or .jsonl in this folder.",
        ),
    ] = None,
    replace: Annotated[bool, typer.Option(help="Drop and recreate existing tables.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per insert.")] = 5_000,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Generator processes (0: in-process).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Create the source tables of data contract §1 and fill them (synthetic, or from exports)."""
    url = source_url or get_settings().source_url
    engine = database.connect(url)
    started = time.monotonic()
    try:
        exports = None if from_dir is None else find_exports(from_dir)
        if exports is not None:
            check_exports(exports)
        # Check (or drop) existing tables before the progress bar appears.
        database.prepare_tables(engine, replace=replace)
        with _progress(progress, "rows") as bar:
            if exports is None:
                task = bar.add_task("generating", total=rows)
                counts = seed_database(
                    engine,
                    rows,
                    seed=seed,
                    batch_size=batch_size,
                    workers=workers,
                    on_progress=lambda n: bar.advance(task, n),
                )
            else:
                task = bar.add_task("loading", total=None)
                result = load_exports(
                    engine,
                    exports,
                    batch_size=batch_size,
                    on_progress=lambda n: bar.advance(task, n),
                )
                counts = result.rows
                for table, columns in result.ignored_columns.items():
                    errors.print(f"[yellow]{table}: ignored columns {columns}[/]")
    except (database.SourceTablesNotEmptyError, ExportFormatError, ValueError) as error:
        errors.print(f"[red]seed failed:[/] {error}")
        raise typer.Exit(1) from error
    finally:
        engine.dispose()
    elapsed = time.monotonic() - started
    console.print(
        f"source database {database.safe_url(url)}: "
        + ", ".join(f"{database.TABLES[name].name} {count:,}" for name, count in counts.items())
        + f" rows in {elapsed:,.1f} s ({counts['pin'] / elapsed if elapsed else 0:,.0f} ids/s)"
    )


def emulate(
    mode: Annotated[
        ModeChoice, typer.Option(help="batch: Kafka REST endpoints; stream: Kinesis endpoints.")
    ] = ModeChoice.batch,
    count: Annotated[
        int | None,
        typer.Option(min=0, help="Row ids to draw; each posts its pin, geo and user rows."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.001, help="Stop after this many seconds.")
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.0, help="Target records per second (0: as fast as possible).")
    ] = 0.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight.")] = 1,
    records_per_request: Annotated[
        int, typer.Option(min=1, help="Records per request (the original sends 1).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the row-id draws.")] = EMULATOR_SEED,
    api_url: Annotated[str | None, typer.Option(help="(default: settings.api_url)")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="x-api-key (default: first of settings.api_keys)")
    ] = None,
    source_url: Annotated[str | None, typer.Option(help="(default: settings.source_url)")] = None,
    ledger: Annotated[
        Path | None, typer.Option(help="Write one JSON line per accepted record here.")
    ] = None,
    max_retries: Annotated[int, typer.Option(min=0, help="Retries on 5xx/connection errors.")] = 5,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds per HTTP attempt.")] = 10.0,
    summary_json: Annotated[
        Path | None, typer.Option(help="Also write the summary as JSON here.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    log_every: Annotated[
        float | None,
        typer.Option(
            min=0.001, help="Print a summary line this often (seconds): a log without a bar."
        ),
    ] = None,
) -> None:
    """Post random source rows to the API like the original emulator; Ctrl-C stops cleanly.

    Without --count or --duration it runs until Ctrl-C, as the original did.
    """
    chosen: Mode = "batch" if mode is ModeChoice.batch else "stream"
    settings = get_settings()
    options: dict[str, object] = {
        "count": count,
        "duration": duration,
        "rate": rate or None,
        "concurrency": concurrency,
        "records_per_request": records_per_request,
        "seed": seed,
        "ledger": ledger,
        "max_retries": max_retries,
        "timeout": timeout,
    }
    if api_url:
        options["api_url"] = api_url
    if api_key:
        options["api_key"] = api_key
    config = EmulationConfig.from_settings(settings, chosen, **options)
    engine = database.connect(source_url or settings.source_url)
    total = None if count is None else 3 * count
    interval = (
        IntervalSummary(chosen, log_every, lambda line: typer.echo(line))
        if log_every
        else contextlib.nullcontext()
    )
    try:
        with (
            interval,
            _progress(
                progress,
                "rec",
                TextColumn(
                    "ok {task.fields[ok]} rejected {task.fields[bad]} failed {task.fields[failed]}"
                ),
            ) as bar,
        ):
            task = bar.add_task(f"posting ({chosen})", total=total, ok=0, bad=0, failed=0)

            def advance(records: int, live: EmulationSummary) -> None:
                if isinstance(interval, IntervalSummary):
                    interval.observe(live)
                bar.update(
                    task,
                    advance=records,
                    ok=live.accepted,
                    bad=live.rejected,
                    failed=live.failed,
                )

            summary = run_emulation(engine, config, on_progress=advance)
    except SourceNotReadyError as error:
        errors.print(f"[red]emulate failed:[/] {error}")
        raise typer.Exit(1) from error
    finally:
        engine.dispose()
    _print_summary(summary, config)
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    if summary.interrupted:
        raise typer.Exit(130)
    if summary.rejected or summary.failed:
        raise typer.Exit(1)


def _print_summary(summary: EmulationSummary, config: EmulationConfig) -> None:
    table = Table(title=f"emulate --mode {summary.mode} → {config.api_url}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")

    def milliseconds(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f} ms"

    rows = [
        ("draws", f"{summary.draws:,}"),
        ("sent", f"{summary.sent:,}"),
        ("accepted", f"{summary.accepted:,}"),
        ("rejected", f"{summary.rejected:,}"),
        ("failed", f"{summary.failed:,}"),
        ("unsent", f"{summary.unsent:,}"),
        ("requests", f"{summary.requests:,}"),
        ("retried", f"{summary.retried:,}"),
        ("elapsed", f"{summary.elapsed_s:,.2f} s"),
        ("records/s", f"{summary.records_per_s:,.1f}"),
        ("latency p50", milliseconds(summary.latency_p50_ms)),
        ("latency p99", milliseconds(summary.latency_p99_ms)),
    ]
    for what, value in rows:
        table.add_row(what, value)
    if summary.interrupted:
        table.add_row("stopped", "interrupted (Ctrl-C)")
    console.print(table)
    for reason, number in summary.reasons.items():
        console.print(f"[yellow]{number:,} records: {reason}[/]")
    if config.ledger is not None:
        console.print(f"ledger: {config.ledger}")


def register(app: typer.Typer) -> None:
    app.command("seed")(seed)
    app.command("emulate")(emulate)
