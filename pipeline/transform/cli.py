"""`pinpipe batch` (run the batch job) and `pinpipe analytics` (print the gold tables)."""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.transform.render import render_csv, render_tables


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def batch(
    input_root: Annotated[
        str | None,
        typer.Option("--input", help="Landing root holding topics/<topic>/partition=*/ (config)"),
    ] = None,
    lake_root: Annotated[
        str | None, typer.Option("--lake", help="Delta lake root (default: config)")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Topic prefix P: topics P.pin, P.geo, P.user")
    ] = None,
    results_json: Annotated[
        Path | None,
        typer.Option("--results-json", help="Also write {query_id: [rows]} to this JSON file"),
    ] = None,
) -> None:
    """Clean the landed data and compute the nine analytics: bronze → silver → gold (Delta)."""
    from pipeline.transform.job import run

    report = run(input_root, lake_root, prefix, results_json)
    summary = Table(title="batch run", show_header=True)
    summary.add_column("table")
    summary.add_column("bronze rows appended", justify="right")
    summary.add_column("silver rows merged", justify="right")
    for table, appended in report.bronze_appended.items():
        summary.add_row(table, str(appended), str(report.silver_merged.get(table, 0)))
    console = Console()
    console.print(summary)
    console.print(f"rejected rows appended: {report.rejected_appended}")
    rewritten = ", ".join(report.gold_rewritten) or "none (results unchanged)"
    console.print(f"gold tables rewritten: {rewritten}")
    for step in report.skipped:
        console.print(f"skipped: {step}")
    if results_json is not None:
        console.print(f"results written to {results_json}")


LakeRootOption = Annotated[
    str | None, typer.Option("--lake", help="Delta lake root (default: config)")
]
OutputFormatOption = Annotated[OutputFormat, typer.Option("--format", help="table, json or csv")]


def analytics(
    lake_root: LakeRootOption = None,
    output_format: OutputFormatOption = OutputFormat.table,
    queries: Annotated[
        list[str] | None, typer.Option("--query", help="Only these query ids (repeatable)")
    ] = None,
) -> None:
    """Print the gold tables written by `pinpipe batch`, read by name (`gold.<query id>`)."""
    from pipeline.config import get_settings
    from pipeline.lake import QUERY_COLUMNS
    from pipeline.spark_session import get_spark
    from pipeline.tables import register_tables, table_name
    from pipeline.transform.job import read_gold_by_name

    unknown = sorted(set(queries or ()) - set(QUERY_COLUMNS))
    if unknown:
        raise typer.BadParameter(f"unknown query ids {unknown}; known: {sorted(QUERY_COLUMNS)}")
    settings = get_settings()
    spark = get_spark("pinpipe-analytics", settings)
    lake = lake_root or settings.lake_uri
    named = register_tables(spark, settings, lake)
    absent = [q for q in QUERY_COLUMNS if table_name(settings, "gold", q) not in named]
    if absent:
        typer.echo(f"error: gold tables {absent} missing under {lake}: run batch", err=True)
        raise typer.Exit(1)
    results = read_gold_by_name(spark, settings)
    if queries:
        results = {query_id: results[query_id] for query_id in queries}
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(results, indent=2, ensure_ascii=False))
    elif output_format is OutputFormat.csv:
        typer.echo(render_csv(results, with_titles=len(results) > 1), nl=False)
    else:
        render_tables(results, Console())


def sql(
    query: Annotated[
        str, typer.Argument(help="Spark SQL over the tables by name, e.g. silver.pin")
    ],
    lake_root: LakeRootOption = None,
    output_format: OutputFormatOption = OutputFormat.table,
) -> None:
    """Run SQL over the lake's tables by name: bronze.*, silver.*, gold.*, stream.*."""
    from pyspark.errors import AnalysisException, ParseException

    from pipeline.config import get_settings
    from pipeline.spark_session import get_spark
    from pipeline.tables import register_tables
    from pipeline.transform.job import _jsonable

    settings = get_settings()
    spark = get_spark("pinpipe-sql", settings)
    register_tables(spark, settings, lake_root or settings.lake_uri)
    try:
        frame = spark.sql(query)
        rows = [{k: _jsonable(v) for k, v in row.asDict().items()} for row in frame.collect()]
    except (AnalysisException, ParseException) as error:
        typer.echo(f"error: {str(error).splitlines()[0]}", err=True)
        raise typer.Exit(2) from error
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif output_format is OutputFormat.csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=frame.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(out.getvalue(), nl=False)
    else:
        table = Table(title=query, title_justify="left")
        for column in frame.columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row.values()))
        Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
    app.command("analytics")(analytics)
    app.command("sql")(sql)
