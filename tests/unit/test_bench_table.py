"""`make bench`'s table: demo steps timed from its output, earlier batch sizes kept with a date."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(autouse=True)
def bench_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


def test_demo_steps_last_from_each_rule_to_the_next_and_the_last_to_the_end() -> None:
    from bench_stack import DEMO_TASK, demo_steps

    output = (
        "──────── 1/3 Starting the local stack (a running one is reused)  0s ────────\n"
        "  api: ready (2.7s)\n"
        "──────── 2/3 Posting 3,000 records: emulator → API → Kafka  4s ────────\n"
        "  batch_job: success (61s)\n"
        "  quality_checks: failed (9s)\n"
        "──────── 3/3 The nine gold tables  75s ────────\n"
    )

    assert demo_steps(output, 80.5) == {
        "Starting the local stack (a running one is reused)": 4.0,
        "Posting 3,000 records: emulator → API → Kafka": 71.0,
        "The nine gold tables": 5.5,
    }
    assert DEMO_TASK.findall(output) == [("batch_job", "61")]


def test_sizes_not_rerun_stay_with_the_date_they_were_measured() -> None:
    from run_all import batch_rows, carry_forward

    previous = {
        "measured_at": "2026-12-01T10:00:00+00:00",
        "batch": {
            "sizes": {
                "100000": {"spark+delta": {"job_seconds": 70.0}, "same_results": True},
                "10000000": {
                    "spark+delta": {"job_seconds": 400.0},
                    "duckdb": {"job_seconds": 25.0},
                    "same_results": True,
                },
            }
        },
    }
    this_run = {"sizes": {"100000": {"spark+delta": {"job_seconds": 60.0}, "same_results": True}}}

    batch = carry_forward(this_run, previous)

    assert batch["sizes"]["100000"]["spark+delta"]["job_seconds"] == 60.0
    assert batch["sizes"]["100000"]["measured_at"] is None
    assert batch["sizes"]["10000000"]["measured_at"] == "2026-12-01T10:00:00+00:00"
    figures = [row[0] for row in batch_rows(batch, previous)]
    assert figures[1].startswith("batch, 100,000 rows/topic") and "measured" not in figures[1]
    assert figures[2].endswith("measured 2026-12-01")
    assert batch_rows(batch, previous)[2][1] == "400.0 s (16.0x DuckDB)"


def test_a_failed_benchmark_is_a_row_that_says_so() -> None:
    from run_all import api_rows, stack_rows, stream_rows

    for rows in (stack_rows, api_rows, stream_rows):
        (row,) = rows({"error": "exit 1"}, {})
        assert row[1] == "failed: exit 1"
