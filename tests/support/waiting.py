"""Waiting in tests for something that happens in another process."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], object],
    timeout_s: float,
    what: str,
    interval_s: float = 1.0,
    on_timeout: Callable[[], str] | None = None,
) -> float:
    """Poll `condition` until it is truthy; the seconds it took. Fails the test after
    `timeout_s`, saying what it waited for (and `on_timeout()`'s text, e.g. a log tail)."""
    started = time.monotonic()
    while not condition():
        waited = time.monotonic() - started
        if waited > timeout_s:
            detail = f":\n{on_timeout()}" if on_timeout is not None else ""
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")
        time.sleep(interval_s)
    return time.monotonic() - started
