"""The emulator as a continuous feed of the stack (local and compose): a fresh stack shows data
flowing."""

from __future__ import annotations

import os
import signal
import sys

from pipeline.config import Settings
from pipeline.config.environment import settings_environment
from pipeline.source import database
from pipeline.source.loader import seed_database
from pipeline.workload import Component

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


def feed_command(settings: Settings, mode: str) -> list[str]:
    """`pinpipe emulate` as a continuous feed of one layer, paced like the original (about one
    id per second): the local stack's and the compose stack's `emulator-<mode>` run it."""
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "emulate",
        "--mode",
        mode,
        "--rate",
        str(feed_rate(settings)),
        # no bar in a log file: a summary line per interval instead
        "--no-progress",
        "--log-every",
        str(FEED_LOG_EVERY_S),
        # a long-running feed keeps going through outages instead of giving up
        "--max-retries",
        "1000000",
    ]


def feed_rate(settings: Settings) -> float:
    """Records per second of each fed layer."""
    return settings.feed_ids_per_second * RECORDS_PER_ID


def feed_components(settings: Settings) -> list[Component]:
    """One emulator per fed layer (`emulator-batch`, `emulator-stream`, as in compose)."""
    if settings.feed_ids_per_second <= 0:
        return []
    modes = [mode.strip() for mode in settings.feed_modes.split(",") if mode.strip()]
    return [
        Component(
            name=f"emulator-{mode}",
            command=feed_command(settings, mode),
            ports=[],
            url=f"{settings.api_url} ({feed_rate(settings):g} records/s)",
            ready=None,  # nothing to probe: ready once supervisord reports it RUNNING
            environment=settings_environment(settings),
            ready_timeout_s=30,
            after_provision=True,
        )
        for mode in modes
    ]


def _run_feed(mode: str) -> None:
    """`python -m pipeline.source.feed <mode>`: the compose service becomes the feed's command,
    its rate from the settings (PINPIPE_FEED_IDS_PER_SECOND). A switched-off feed idles, so the
    service stays up and healthy instead of being restarted."""
    from pipeline.config import get_settings

    settings = get_settings()
    if settings.feed_ids_per_second <= 0:
        print(f"emulator-{mode}: off (PINPIPE_FEED_IDS_PER_SECOND=0)", flush=True)
        stops = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        signal.sigwait(stops)
        return
    command = feed_command(settings, mode)
    os.execv(command[0], command)


if __name__ == "__main__":
    if sys.argv[1:] not in (["batch"], ["stream"]):
        sys.exit(f"usage: python -m pipeline.source.feed batch|stream (got {sys.argv[1:]})")
    _run_feed(sys.argv[1])
