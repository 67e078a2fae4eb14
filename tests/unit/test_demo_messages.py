"""The demo's messages: why silver has fewer rows than records posted; a quiet Spark session."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pipeline.config import LocalSettings
from pipeline.demo.run import DemoReport, _quiet_spark, why_fewer_silver_rows


def test_the_closing_line_says_why_silver_has_fewer_rows() -> None:
    report = DemoReport(records_posted=3000, ids_drawn=1000, distinct_ids=967)
    report.silver_rows = {"pin": 967, "geo": 967, "user": 967}
    line = why_fewer_silver_rows(report)
    assert "with replacement" in line and "one row per id" in line
    assert "1,000 draws gave 967 distinct ids" in line
    assert "earlier runs" not in line


def test_more_silver_rows_than_distinct_ids_are_explained_too() -> None:
    report = DemoReport(records_posted=300, ids_drawn=100, distinct_ids=99)
    report.silver_rows = {"pin": 1_250, "geo": 1_250, "user": 1_250}
    assert "earlier runs and of the stack's feed" in why_fewer_silver_rows(report)


def test_the_demo_session_logs_errors_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARK_SUBMIT_OPTS", raising=False)
    monkeypatch.setattr(logging.getLogger("py4j"), "level", logging.NOTSET)
    _quiet_spark(LocalSettings(run_dir=tmp_path))
    config = tmp_path / "conf" / "log4j2-demo.properties"
    assert os.environ["SPARK_SUBMIT_OPTS"] == f"-Dlog4j2.configurationFile=file:{config}"
    assert "rootLogger.level = error" in config.read_text()
    assert logging.getLogger("py4j").getEffectiveLevel() == logging.WARNING
