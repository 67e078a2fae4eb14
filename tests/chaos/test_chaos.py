"""The reduced fault-injection run inside `make test`: every fault once, on a stack of its own,
1,500 records per layer per fault (10,500 per layer in all); any acknowledged record lost or
duplicated in Kafka, the lake, silver or the stream tables fails it. `make chaos` is the full run.

The runner is a child process with a stack of its own: its ports are the test session's plus
`runner.PORT_SHIFT`, its run folder is this test's tmp_path, and its topic prefix and bucket are
`chaos`. On a timeout it gets SIGTERM, which takes its stack down; a supervisord still alive after
that (the runner killed outright) is stopped here, so no process outlives the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.config.settings import PROJECT_ROOT
from tests.chaos.faults import FAULTS

# a stack start, seven faults (two of 30 s, a whole-stack restart, a Spark restart), a batch job
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

RECORDS_PER_LAYER = 10_500
RUNNER_TIMEOUT_S = 3300  # below the test's timeout: the runner is stopped here, gracefully
STOP_GRACE_S = 180  # `stack.down` of a loaded machine


def runner_environment() -> dict[str, str]:
    """This process's environment without the test session's stack settings (a test may have
    pointed PINPIPE_* at the session's stack); the runner derives its own."""
    keep = {"PINPIPE_TEST_PORT_OFFSET"}
    return {
        **{
            key: value
            for key, value in os.environ.items()
            if key in keep or not key.startswith(("PINPIPE_", "AWS_ENDPOINT_URL"))
        },
        "COLUMNS": "160",
    }


def stop_leftover_stacks(run_dir: Path) -> None:
    """SIGTERM every supervisord the runner left under `run_dir` (it stops its programs), and
    the runner's S3 fault proxy."""
    for pid_file in run_dir.glob("stack-*/supervisord.pid"):
        try:
            process = psutil.Process(int(pid_file.read_text().strip()))
        except (ValueError, OSError, psutil.NoSuchProcess):
            continue
        if str(run_dir) not in " ".join(process.cmdline()):
            continue  # the pid was reused by an unrelated process
        process.terminate()
        psutil.wait_procs([process], timeout=STOP_GRACE_S)
    # the S3 fault proxy of a runner killed outright: its confdir lies under run_dir
    proxies = [
        process
        for process in psutil.process_iter(["cmdline"])
        if any("mitmdump" in part for part in process.info["cmdline"] or [])
        and str(run_dir) in " ".join(process.info["cmdline"] or [])
    ]
    for process in proxies:
        process.terminate()
    psutil.wait_procs(proxies, timeout=30)


def stop(runner: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the runner then takes its stack down), SIGKILL if it does not end in time."""
    if runner.poll() is not None:
        return
    runner.send_signal(signal.SIGTERM)
    try:
        runner.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.wait()


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_leftover_stacks(tmp_path)


def test_every_fault_loses_and_duplicates_nothing(run_dir: Path) -> None:
    out = run_dir / "results.json"
    log = run_dir / "runner.log"
    command = [
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
        str(run_dir),
    ]
    with log.open("w") as output:
        runner = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=runner_environment(), stdout=output, stderr=output
        )
        try:
            returncode = runner.wait(timeout=RUNNER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runner took over {RUNNER_TIMEOUT_S}s; its log: {log}")
        finally:
            stop(runner)  # a timeout, or the test itself interrupted
    printed = log.read_text(errors="replace")
    print(printed[-16000:])
    assert out.exists(), f"the runner wrote no results (exit {returncode})"
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
    assert returncode == 0, printed[-4000:]
