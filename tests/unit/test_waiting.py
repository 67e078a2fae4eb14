"""The long waits' display: a spinner with what and how long on a terminal, lines elsewhere."""

from __future__ import annotations

import io
import time

from rich.console import Console

from pipeline.waiting import Waiting, elapsed_text, waiting
from tests.support.waiting import wait_for


def test_elapsed_text_is_short() -> None:
    assert elapsed_text(0.4) == "0s"
    assert elapsed_text(42.9) == "42s"
    assert elapsed_text(65) == "1m05s"
    assert elapsed_text(3600) == "60m00s"


def test_off_a_terminal_it_says_what_it_waits_for_and_for_how_long() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    with Waiting(console, "airflow to be ready", every_s=0.05) as shown:
        wait_for(
            lambda: "  … waiting for airflow to be ready (" in out.getvalue(),
            30,
            "the first waiting line",
            interval_s=0.05,
        )
        began = shown.since
        shown.update("the DAG run to finish")
        assert shown.since > began  # the elapsed time starts again
        wait_for(
            lambda: "  … waiting for the DAG run to finish (" in out.getvalue(),
            30,
            "the updated waiting line",
            interval_s=0.05,
        )
    lines = out.getvalue().splitlines()
    assert all(line.startswith("  … waiting for ") for line in lines)
    # no ANSI codes in a log
    assert "\x1b" not in out.getvalue()
    written = len(out.getvalue())
    time.sleep(0.2)
    assert len(out.getvalue()) == written, "lines went on after the wait was over"


def test_on_a_terminal_a_spinner_shows_what_and_the_elapsed_time() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with Waiting(console, "kafka to stop", every_s=0.05):
        wait_for(
            lambda: "waiting for kafka to stop" in out.getvalue(),
            30,
            "the spinner's line",
            interval_s=0.05,
        )
    text = out.getvalue()
    assert "0:00:0" in text  # the elapsed-time column
    assert "waiting for kafka to stop (" not in text  # no log lines on a terminal


def test_without_a_console_nothing_is_shown() -> None:
    with waiting(None, "anything") as shown:
        assert shown is None
