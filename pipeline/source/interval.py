"""A summary line per interval for an emulator run without a progress bar (the stack's feeds),
so its log shows data flowing — or, with `0 records`, that it is not."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pipeline.source.emulator import EmulationSummary


def interval_line(
    mode: str, now: datetime, seconds: float, sent: int, live: EmulationSummary
) -> str:
    """`<time> feed batch: 90 records sent in the last 30s (3.0/s); total 2,700 accepted, ...`."""
    rate = sent / seconds if seconds > 0 else 0.0
    return (
        f"{now:%Y-%m-%dT%H:%M:%SZ} feed {mode}: {sent:,} records sent in the last "
        f"{seconds:.0f}s ({rate:.1f}/s); total {live.accepted:,} accepted, "
        f"{live.rejected:,} rejected, {live.failed:,} failed, {live.retried:,} retried"
    )


class IntervalSummary:
    """Emits `interval_line` every `every_s` seconds from a thread of its own, for the live
    summary `observe` last saw (an interval with nothing sent still gets its line)."""

    def __init__(self, mode: str, every_s: float, emit: Callable[[str], None]) -> None:
        self.mode = mode
        self.every_s = every_s
        self.emit = emit
        self.live = EmulationSummary(mode=mode)
        self._sent_before = 0
        self._since = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interval-summary", daemon=True)

    def observe(self, live: EmulationSummary) -> None:
        self.live = live

    def report(self) -> None:
        now = time.monotonic()
        sent = self.live.sent
        line = interval_line(
            self.mode, datetime.now(UTC), now - self._since, sent - self._sent_before, self.live
        )
        self._sent_before, self._since = sent, now
        self.emit(line)

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            self.report()

    def __enter__(self) -> IntervalSummary:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()
