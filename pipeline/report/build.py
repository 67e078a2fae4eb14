"""Build the report and write it: a local file or `<lake>/reports/<run date>/index.html`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path

from pipeline.config import Settings
from pipeline.lake import LakePaths
from pipeline.report.collect import collect
from pipeline.report.lake import write_text
from pipeline.report.render import render


def write_report(
    settings: Settings,
    *,
    lake: str | None = None,
    landing: str | None = None,
    prefix: str | None = None,
    out: str | None = None,
    run_date: date | None = None,
    ledger: Path | None = None,
    stage_seconds: Mapping[str, float] | None = None,
) -> str:
    """Collect, render and write the report of `lake` (default: the settings' lake) to `out`
    (default: `<lake>/reports/<run date>/index.html`, today in UTC); returns where it went."""
    lake = lake or settings.lake_uri
    run_date = run_date or datetime.now(UTC).date()
    data = collect(
        settings,
        lake,
        landing=landing,
        prefix=prefix,
        ledger=ledger,
        stage_seconds=stage_seconds,
        run_date=run_date,
    )
    target = out or LakePaths(lake).report(run_date)
    return write_text(target, render(data), settings, "text/html; charset=utf-8")
