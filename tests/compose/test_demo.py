"""`make demo TARGET=docker` on the compose stack: the Makefile's own `demo-docker` commands
(`pinpipe demo` in the airflow-scheduler container, then `compose cp` of its ledger and report),
pointed at this run's stack. As on the local target (tests/e2e/test_demo.py): every step ends,
the DAG run succeeds, and the ledger and the HTML report reach the host.

It runs after test_batch_path.py (file order): the demo's records land in the lake the batch
service's test compares with the direct computation."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from pipeline.config.settings import PROJECT_ROOT
from pipeline.orchestrate.landing import read_ledger
from tests.compose.conftest import ComposeStack

pytestmark = [pytest.mark.compose, pytest.mark.timeout(2400)]

RECORDS = 300


def demo_commands(stack: ComposeStack, out: Path) -> list[str]:
    """The recipe of `make demo-docker` with this stack's compose command (`make -n`), minus
    the `up` it depends on: the fixture brought the stack up with its own service list."""
    compose = shlex.join(stack.command())
    result = subprocess.run(
        [
            *("make", "-n", "--no-print-directory", "demo-docker"),
            f"COMPOSE={compose}",
            f"N={RECORDS}",
            f"DEMO_OUT={out}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(compose)]
    return [line for line in lines if " up " not in line and not line.endswith(" ps")]


def test_make_demo_runs_end_to_end_on_the_compose_stack(
    compose_stack: ComposeStack, tmp_path: Path
) -> None:
    commands = demo_commands(compose_stack, tmp_path)
    assert [("pinpipe demo" in c, " cp " in c) for c in commands] == [(True, False), (False, True)]
    demo = subprocess.run(commands[0], shell=True, capture_output=True, text=True, timeout=2400)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-8000:]
    assert "Using the compose stack" in output
    assert "succeeded" in output and "demo done" in output, output[-8000:]
    copy = subprocess.run(commands[1], shell=True, capture_output=True, text=True, timeout=300)
    assert copy.returncode == 0, copy.stdout + copy.stderr
    ledgers = sorted(tmp_path.glob("ledger-*.jsonl"))
    reports = sorted(tmp_path.glob("report-*.html"))
    assert ledgers and reports, sorted(path.name for path in tmp_path.iterdir())
    assert len(read_ledger(ledgers[-1])) >= RECORDS
    assert "<html" in reports[-1].read_text().lower()
