"""The reduced fault-injection run inside `make test`: every fault once, on a stack of its own,
1,500 records per layer per fault (10,500 per layer in all); any acknowledged record lost or
duplicated in Kafka, the lake, silver or the stream tables fails it. `make chaos` is the full run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config.settings import PROJECT_ROOT
from tests.chaos.faults import FAULTS

# a stack start, seven faults (two of 30 s, a whole-stack restart) and a batch job
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]

RECORDS_PER_LAYER = 10_500


def test_every_fault_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.chaos.runner",
            "--runs",
            "1",
            "--records",
            str(RECORDS_PER_LAYER),
            "--out",
            str(out),
            "--run-dir",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=2600,
        check=False,
    )
    print(result.stdout[-12000:], result.stderr[-4000:])
    assert out.exists(), f"the runner wrote no results (exit {result.returncode})"
    document = json.loads(out.read_text())
    faults = [entry["fault"] for entry in document["results"]]
    assert faults == list(FAULTS)
    posted = {"kafka": 0, "stream": 0}
    for entry in document["results"]:
        stages = {stage["stage"]: stage for stage in entry["stages"]}
        assert set(stages) == {"kafka", "lake", "stream", "silver"}, entry
        posted["kafka"] += stages["kafka"]["acknowledged"]
        posted["stream"] += sum(
            summary["accepted"] for mode, summary in entry["posting"].items() if mode == "stream"
        )
    # the volume really went through (acknowledged by the API), in both layers
    assert posted["kafka"] >= 10_000 and posted["stream"] >= 10_000, posted
    assert document["failures"] == [], "\n".join(document["failures"])
    assert result.returncode == 0, result.stderr[-4000:]
