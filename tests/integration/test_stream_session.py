"""The stream job's Spark session (issue #15): a heap of its own, and a history for the Spark UI
that stops growing, so a driver running for days keeps a flat memory profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)

JOBS = 150  # more than the session keeps (spark.ui.retainedJobs), fewer than Spark's 1,000

SESSION = """
import json, sys, time
import psutil
from pipeline.config.settings import LocalSettings
from pipeline.spark_session import get_spark, long_running_options

settings = LocalSettings(
    run_dir=sys.argv[1], lake_root=sys.argv[1] + "/lake", stream_driver_memory="512m"
)
options = long_running_options(settings)
spark = get_spark("pinpipe-test-stream-session", settings, options)
context = spark.sparkContext
for _ in range(int(sys.argv[2])):
    spark.range(1).collect()  # one Spark job each, in the JVM only (no Python worker)
retained = int(options["spark.ui.retainedJobs"])
# the status store drops old jobs on a background thread: give it time on a busy machine
deadline = time.monotonic() + 120
while len(context.statusTracker().getJobIdsForGroup()) > retained and time.monotonic() < deadline:
    time.sleep(1)
jvms = [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]
print("RESULT " + json.dumps({
    "jobs_kept": len(context.statusTracker().getJobIdsForGroup()),
    "retained": retained,
    "jvm_args": [arg for p in jvms for arg in p.cmdline()],
}), flush=True)
spark.stop()
"""


def test_stream_session_has_its_own_heap_and_a_bounded_history(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_SUBMIT_OPTS",)}
    done = subprocess.run(
        [sys.executable, "-c", SESSION, str(tmp_path), str(JOBS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    # the stream job's setting, not the batch job's spark_driver_memory (2g)
    assert "-Xmx512m" in result["jvm_args"], result["jvm_args"]
    assert result["retained"] < JOBS
    assert 0 < result["jobs_kept"] <= result["retained"], result
