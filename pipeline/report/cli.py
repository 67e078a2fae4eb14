"""`pinpipe report`: the HTML report of a lake (gold charts, data quality, pipeline counts).

Also runs as a script with the same options (the DAG's last task on Databricks):

    python pipeline/report/cli.py --lake s3a://pinpipe-lake/lake --run-date 2026-01-31
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Started as a script: make the `pipeline` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from datetime import date, datetime
from typing import Annotated

import typer


def report(
    lake: Annotated[
        str | None, typer.Option("--lake", help="Delta lake root (default: config)")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out", help="HTML file or s3:// URI (default: <lake>/reports/<date>/index.html)"
        ),
    ] = None,
    landing: Annotated[
        str | None,
        typer.Option(help="landing root holding topics/<topic>/... (default: config)"),
    ] = None,
    prefix: Annotated[str | None, typer.Option(help="topic prefix (default: config)")] = None,
    ledger: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="emulator ledger: records posted"),
    ] = None,
    run_date: Annotated[
        datetime | None,
        typer.Option("--run-date", formats=["%Y-%m-%d"], help="run date (default: today, UTC)"),
    ] = None,
) -> None:
    """Write one self-contained HTML report of the lake; print where it went."""
    from deltalake.exceptions import DeltaError

    from pipeline.config import get_settings
    from pipeline.report.build import write_report

    day: date | None = run_date.date() if run_date else None
    try:
        written = write_report(
            get_settings(),
            lake=lake,
            landing=landing,
            prefix=prefix,
            out=out,
            run_date=day,
            ledger=ledger,
        )
    except (DeltaError, OSError) as error:
        typer.echo(f"report failed: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(written)


def register(app: typer.Typer) -> None:
    app.command("report")(report)


if __name__ == "__main__":
    typer.run(report)
