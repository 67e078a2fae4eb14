"""`pinpipe up | down | status`."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import get_settings
from pipeline.stack import stack
from pipeline.stack.airflow import login_hint
from pipeline.stack.health import health_lines
from pipeline.stack.jvm import StackError
from pipeline.stack.links import print_links, print_whole, stack_links
from pipeline.stack.provision import describe_created
from pipeline.stack.provision import provision as provision_resources

console = Console()


def _say(message: str) -> None:
    # soft_wrap: one line however long (a log is 80 columns wide; URLs and paths stay whole)
    console.print(f"[bold cyan]»[/] {message}", soft_wrap=True)


def up() -> None:
    """Start the local stack (S3 and Kinesis servers, broker, Connect, ...) and provision it."""
    settings = get_settings()
    started = time.monotonic()
    try:
        stack.up(settings, on_event=_say, console=console)
    except StackError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(1) from error
    _say(f"stack ready in {time.monotonic() - started:.1f}s; logs in {settings.logs_dir}")
    status()


def down() -> None:
    """Stop every process of the local stack."""
    stack.down(get_settings(), on_event=_say, console=console)


def status() -> None:
    """Show each component's state, readiness, URL and memory; the S3 sink's lag per topic, the
    connector's and its tasks' states, the stream job's last micro-batches, the last DAG run."""
    settings = get_settings()
    table = Table(title=f"pinpipe stack ({settings.target}, {settings.run_dir})")
    for column in ("component", "state", "ready", "url", "pid", "RSS MB"):
        table.add_column(column)
    rows = stack.status(settings)
    for row in rows:
        table.add_row(
            row.name,
            row.state,
            "yes" if row.ready else "no",
            row.url,
            str(row.pid or ""),
            f"{row.rss_mb:.0f}",
        )
    print_whole(console, table)
    console.print(f"total RSS: {sum(row.rss_mb for row in rows):.0f} MB")
    running = {row.name for row in rows if row.state == "RUNNING"}
    if not running:
        console.print("the stack is not running: `make up` starts it")
        return
    print_links(console, stack_links(settings, running))
    if hint := login_hint(settings, running="airflow" in running):
        console.print(hint, soft_wrap=True, markup=False, highlight=False)
    # lag and progress: one line each, never cut (soft_wrap), whatever the terminal's width
    for line in health_lines(settings, running):
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def provision() -> None:
    """Create the lake bucket, the topics and the streams where settings point (idempotent).

    `up` does this for the local stack; the compose stack runs it as a one-shot init service.
    """
    settings = get_settings()
    created = provision_resources(settings)
    _say(
        f"bucket {settings.lake_bucket}, topics {', '.join(settings.topics.values())}, "
        f"streams {', '.join(settings.streams.values())}: " + describe_created(created)
    )


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("provision")(provision)
