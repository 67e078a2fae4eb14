"""`pinpipe connectors status | register | render`."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from pipeline.config import get_settings
from pipeline.land.connector import ConnectClient, register, render

console = Console()
connectors = typer.Typer(help="The Kafka Connect S3 sink that lands topics in the lake.")


@connectors.command("status")
def status(
    restart_failed: bool = typer.Option(False, help="restart the connector's failed tasks"),
) -> None:
    """Show the S3 sink's state and its tasks' states."""
    settings = get_settings()
    client = ConnectClient(settings)
    current = client.status(settings.connector_name)
    table = Table(title=f"{current.name}: {current.state} on {current.worker}")
    for column in ("task", "state", "worker", "trace"):
        table.add_column(column)
    for task in current.tasks:
        trace = (task.get("trace") or "").splitlines()
        table.add_row(str(task["id"]), task["state"], task["worker_id"], trace[0] if trace else "")
    console.print(table)
    if restart_failed:
        if current.failed_tasks or current.state == "FAILED":
            client.restart(settings.connector_name, only_failed=True)
            console.print(f"restarted failed tasks {current.failed_tasks}")
        else:
            console.print("no failed task")
    if current.state == "FAILED" or (current.failed_tasks and not restart_failed):
        raise typer.Exit(1)


@connectors.command("register")
def register_command() -> None:
    """Create or update the S3 sink from connectors/s3-sink.json (idempotent)."""
    settings = get_settings()
    created = register(settings)
    console.print(f"{settings.connector_name}: {'created' if created else 'updated'}")


@connectors.command("render")
def render_command() -> None:
    """Print the connector config for this target (e.g. to create it on MSK Connect)."""
    print(json.dumps(render(get_settings()), indent=2))


def register_commands(app: typer.Typer) -> None:
    app.add_typer(connectors, name="connectors")
