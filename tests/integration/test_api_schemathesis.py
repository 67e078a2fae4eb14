"""schemathesis against the API's own OpenAPI document: no 5xx, and no response (status, content
type, headers, body) that the document does not describe; schema-violating requests rejected.

The fuzzed API is a second `pinpipe api` process with its own topic prefix, so the generated rows
land in `fuzz.*` topics and streams instead of the ones other tests read.

`positive_data_acceptance` is left out on purpose: JSON Schema cannot say that 2020-02-30 is not a
date, that a topic has 3 partitions, or that a string holds a lone surrogate, so some
schema-valid requests are rightly answered 422 (which the document describes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.stack.provision import ensure_streams, ensure_topics
from tests.support.api import api_process

pytestmark = pytest.mark.integration

CHECKS_EXCLUDED = "positive_data_acceptance"


def test_schemathesis_finds_no_undocumented_response(stack: Settings, tmp_path: Path) -> None:
    fuzz = stack.model_copy(update={"topic_prefix": "fuzz"})
    ensure_topics(fuzz)
    ensure_streams(fuzz)
    with api_process(stack, tmp_path / "api.log", PINPIPE_TOPIC_PREFIX="fuzz") as (url, _):
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{url}/openapi/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                CHECKS_EXCLUDED,
                "--max-examples",
                "40",
                "--seed",
                "20261126",
                "--generation-database",
                "none",
                "--no-color",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "passed" in output and "Tested: 20" in output, output[-3000:]
