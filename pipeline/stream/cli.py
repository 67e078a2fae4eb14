"""`pinpipe stream`: run the streaming job (Kinesis → Structured Streaming → Delta).

Also the job's script (`spark-submit pipeline/stream/cli.py ...`, a Databricks Python job): the
job's options are defined once, here, and the job module never imports its command line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

if __package__ in (None, ""):
    # Started as a script (`spark-submit .../cli.py`): make the `pipeline` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import typer


def stream(
    lake_root: Annotated[
        str | None, typer.Option("--lake", help="Delta lake root (default: config)")
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Prefix P: streams streaming-P-pin|geo|user, tables P_pin_table, ..."),
    ] = None,
    trigger_seconds: Annotated[
        float, typer.Option("--trigger-seconds", min=0.1, help="Micro-batch interval")
    ] = 2.0,
    initial_position: Annotated[
        str,
        typer.Option(
            "--initial-position",
            help="Where a query without a checkpoint starts: trim_horizon, latest, or "
            '{"at_timestamp": "<ISO 8601>"}; a checkpoint always wins',
        ),
    ] = "trim_horizon",
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle", min=0, help="Stop after this many seconds without new records"
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Stop after this many seconds")
    ] = None,
    progress_file: Annotated[
        Path | None,
        typer.Option(
            "--progress-file", help="Keep a JSON heartbeat of the queries here (readiness)"
        ),
    ] = None,
    wait_for_inputs: Annotated[
        float,
        typer.Option(
            "--wait-for-inputs", min=0, help="Seconds to wait for the streams and lake bucket"
        ),
    ] = 300.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            help="Serve the progress as Prometheus /metrics here (default: settings; 0: none)",
        ),
    ] = None,
) -> None:
    """Clean the three Kinesis streams continuously into Delta tables (data contract §5).

    Stops on SIGTERM/Ctrl-C, or with --until-idle / --timeout; a restart resumes from the
    checkpoints without loss or duplicates.
    """
    from pipeline.stream.job import report_json, run

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # py4j logs every callback (foreachBatch, listener) at INFO: keep the job's log readable.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    report = run(
        lake_root=lake_root,
        prefix=prefix,
        trigger_seconds=trigger_seconds,
        initial_position=initial_position,
        until_idle_s=until_idle,
        timeout_s=timeout,
        progress_file=progress_file,
        wait_for_inputs_s=wait_for_inputs,
        metrics_port=metrics_port,
    )
    typer.echo(report_json(report))


def register(app: typer.Typer) -> None:
    app.command("stream")(stream)


if __name__ == "__main__":
    typer.run(stream)
