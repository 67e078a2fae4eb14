"""The emulator as a continuous feed of the local stack: a fresh stack shows data flowing."""

from __future__ import annotations

import sys

from pipeline.config import Settings
from pipeline.source import database
from pipeline.source.loader import seed_database
from pipeline.workload import Component, pipeline_environment

RECORDS_PER_ID = 3  # each drawn id posts its pin, geo and user rows
FEED_LOG_EVERY_S = 30.0  # a feed's log gets a summary line this often


def ensure_seeded(settings: Settings) -> int:
    """Seed the source database when it holds no rows; returns the rows it holds."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = database.connect(settings.source_url)
    try:
        counts = database.row_counts(engine)
        if counts.get("pin"):
            return counts["pin"]
        return seed_database(engine, settings.feed_seed_rows, seed=0)["pin"]
    finally:
        engine.dispose()


def feed_components(settings: Settings) -> list[Component]:
    """One emulator per fed layer, paced like the original (about one id per second)."""
    if settings.feed_ids_per_second <= 0:
        return []
    modes = [mode.strip() for mode in settings.feed_modes.split(",") if mode.strip()]
    rate = settings.feed_ids_per_second * RECORDS_PER_ID
    return [
        Component(
            name=f"feed-{mode}",
            command=[
                sys.executable,
                "-m",
                "pipeline.cli",
                "emulate",
                "--mode",
                mode,
                "--rate",
                str(rate),
                # no bar in a log file: a summary line per interval instead
                "--no-progress",
                "--log-every",
                str(FEED_LOG_EVERY_S),
                # a long-running feed keeps going through outages instead of giving up
                "--max-retries",
                "1000000",
            ],
            ports=[],
            url=f"{settings.api_url} ({rate:g} records/s)",
            ready=None,  # nothing to probe: ready once supervisord reports it RUNNING
            environment=pipeline_environment(settings),
            ready_timeout_s=30,
            after_provision=True,
        )
        for mode in modes
    ]
