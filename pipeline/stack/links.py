"""The addresses `pinpipe status` lists for a running stack, printed whole (never cut to fit a
terminal: a cut URL cannot be opened)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.measure import Measurement

from pipeline.config import Settings
from pipeline.config.settings import AwsService
from pipeline.stream.component import progress_path

SWAGGER_PATH = "/openapi/swagger"


@dataclass(frozen=True)
class Link:
    what: str
    url: str


def stream_job_url(settings: Settings, key: str) -> str | None:
    """An address the stream job wrote into its heartbeat file: `spark_ui` (its port is the
    first free one from 4040, so only the job knows it) or `metrics_url`."""
    try:
        url = json.loads(progress_path(settings).read_text()).get(key)
    except (OSError, ValueError):
        return None
    return str(url) if url else None


def stack_links(settings: Settings, running: Collection[str]) -> list[Link]:
    """Where to point a browser or an SDK, for the components in `running`."""
    links = []
    if "api" in running:
        links.append(Link("API docs (Swagger UI)", f"{settings.api_url}{SWAGGER_PATH}"))
        links.append(Link("API metrics (Prometheus)", f"{settings.api_url}/metrics"))
    servers: tuple[tuple[AwsService, str], ...] = (
        ("s3", "S3 (S3Proxy)"),
        ("kinesis", "Kinesis (kinesalite)"),
    )
    for name, what in servers:
        endpoint = settings.endpoint_url(name)
        if name in running and endpoint:
            links.append(Link(what, endpoint))
    if "connect" in running:
        links.append(Link("Kafka Connect REST", f"{settings.connect_url}/connectors"))
    if "spark-stream" in running:
        for key, what in (("spark_ui", "Spark UI"), ("metrics_url", "metrics (Prometheus)")):
            if url := stream_job_url(settings, key):
                links.append(Link(f"stream job {what}", url))
    return links


def print_whole(console: Console, renderable: RenderableType) -> None:
    """Print `renderable` at its natural width when that is wider than the console (80 columns
    when output is not a terminal), so that no cell is cut or wrapped."""
    needed = Measurement.get(console, console.options.update_width(10_000), renderable).maximum
    saved = console.width
    console.width = max(saved, needed)
    try:
        console.print(renderable)
    finally:
        console.width = saved


def print_links(console: Console, links: list[Link]) -> None:
    for link in links:
        # soft_wrap: one line however long, so the URL stays whole for copying
        console.print(f"{link.what}: {link.url}", soft_wrap=True, markup=False, highlight=False)
