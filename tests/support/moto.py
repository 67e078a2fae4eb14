"""A moto server of a test's own (tests/integration/test_deploy_stage.py, test_iam_workloads.py,
test_batch_job.py): each passes the script that patches moto where it needs to, then runs moto's
`main`, or takes moto as it is."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.ports import free_port
from tests.support.waiting import wait_for

PLAIN_MOTO = "import sys\nfrom moto.server import main\nsys.exit(main(sys.argv[1:]))\n"


@contextmanager
def moto_server(script: str, log_folder: Path) -> Iterator[str]:
    """`python -c script -H 127.0.0.1 -p <free port>`, up once it answers; its URL. Stopped on
    exit."""
    port = free_port()
    log = log_folder / "moto.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", script, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if server.poll() is not None:
            pytest.fail(f"moto server exited ({server.returncode}): {log.read_text()[-2000:]}")
        try:
            requests.get(f"{url}/moto-api/", timeout=5)
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer
            return False
        return True

    try:
        # importing moto's services is slow on a busy machine
        wait_for(answers, 120, f"moto server on {url}", 0.2, lambda: log.read_text()[-2000:])
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
