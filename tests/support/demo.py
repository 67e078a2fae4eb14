"""What `pinpipe demo` prints on every target (tests/e2e/test_demo.py on the local stack,
tests/compose/test_demo.py through `make demo-docker`): each task of the DAG run it triggered
succeeded, and it ended."""

from __future__ import annotations

from pipeline.orchestrate.dag import TASK_IDS


def assert_demo_ran_the_dag(output: str) -> None:
    for task in TASK_IDS:
        assert f"{task}: success" in output, output[-8000:]
    assert "demo done" in output, output[-8000:]
