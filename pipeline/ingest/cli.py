"""`pinpipe api`: serve the ingestion API."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from pipeline.config import get_settings


def api(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: PINPIPE_API_PORT")] = None,
    threads: Annotated[
        int, typer.Option(min=1, help="requests that may wait for Kafka/Kinesis at once")
    ] = 8,
    dev: Annotated[bool, typer.Option("--dev", help="Flask's dev server, not gunicorn")] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="log every request")] = False,
) -> None:
    """Serve the ingestion API (Kafka REST Proxy v2 + Kinesis proxy) with gunicorn."""
    from pipeline.ingest.server import serve

    settings = get_settings()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(
        settings,
        host,
        port or settings.api_port,
        threads=threads,
        dev=dev,
        access_log=access_log,
    )


def register(app: typer.Typer) -> None:
    app.command("api")(api)
