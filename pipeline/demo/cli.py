"""`pinpipe demo` (the whole batch path once)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pipeline.config import get_settings


def demo(
    records: Annotated[
        int, typer.Option("--records", "-n", min=3, help="Records to post (pin, geo, user rows).")
    ] = 3000,
) -> None:
    """Start the stack, post records, wait until they land, run the DAG, print the results."""
    # imported when run: the CLI loads without Airflow, Spark and the stack's dependencies
    from pipeline.demo.run import DemoError, run_demo
    from pipeline.stack.jvm import StackError

    console = Console()
    try:
        run_demo(get_settings(), records=records, console=console)
    except (DemoError, StackError) as error:
        console.print(f"[bold red]demo failed:[/] {error}")
        raise typer.Exit(1) from error


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
