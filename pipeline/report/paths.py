"""Where the report's inputs and outputs live under a lake root (a folder or an S3 URI)."""

from __future__ import annotations

from datetime import date

QUALITY_HISTORY = "quality/checks"
REPORTS = "reports"


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def quality_history_path(lake_root: str) -> str:
    """The Delta table the quality job appends each run's check results to."""
    return _join(lake_root, QUALITY_HISTORY)


def report_path(lake_root: str, run_date: date) -> str:
    """`<lake>/reports/<run date>/index.html`: where the DAG writes a run's report."""
    return _join(lake_root, REPORTS, run_date.isoformat(), "index.html")
