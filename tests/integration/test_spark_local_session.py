"""A local Spark session as the stack and the demo start it: every port it opens (driver, block
manager, Spark UI) on loopback only; the demo's session prints no WARN or py4j INFO lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)

SESSION = """
import json, logging, sys
import psutil
from pipeline.config.settings import LocalSettings
from pipeline.demo.run import _quiet_spark
from pipeline.spark_session import get_spark

settings = LocalSettings(run_dir=sys.argv[1], lake_root=sys.argv[1] + "/lake")
_quiet_spark(settings)
logging.basicConfig(level=logging.INFO)  # as importing Airflow does in the demo
spark = get_spark("pinpipe-test-binding", settings)
spark.range(3).write.format("delta").save(settings.lake_uri + "/numbers")
rows = spark.read.format("delta").load(settings.lake_uri + "/numbers").count()
jvms = [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]
listening = sorted(
    {c.laddr.ip for p in jvms for c in p.net_connections("tcp") if c.status == "LISTEN"}
)
print("RESULT " + json.dumps({"rows": rows, "listening": listening,
                              "ui": spark.sparkContext.uiWebUrl}), flush=True)
spark.stop()
"""


def test_local_spark_listens_on_loopback_and_the_demo_session_is_quiet(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_LOCAL_IP", "SPARK_SUBMIT_OPTS")}
    done = subprocess.run(
        [sys.executable, "-c", SESSION, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    assert result["rows"] == 3
    assert result["listening"], "no listening socket found"
    assert set(result["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1"}, result
    assert result["ui"]
    noisy = [
        line
        for line in output.splitlines()
        if " WARN " in line or "Setting default log level" in line or "clientserver" in line
    ]
    assert noisy == [], noisy
