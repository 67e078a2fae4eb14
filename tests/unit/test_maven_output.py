"""Maven in a pipe (make setup, make test-jvm, CI logs) writes no ANSI colour codes: Debian's
Maven 3.8 emits jansi's reset code (ESC[0m) even with -B and -Dstyle.color=never, unless the JVM
gets jansi.noreset (jvm/.mvn/jvm.config)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "pom",
    ["jvm/pom.xml", "jvm/s3-sink/pom.xml"],
)
def test_maven_output_has_no_colour_codes(pom: str) -> None:
    mvn = shutil.which("mvn")
    assert mvn is not None, "Maven is part of the toolchain (make setup needs it)"
    done = subprocess.run(
        # offline: `validate` resolves nothing; the same flags as scripts/resolve-jvm.sh
        [mvn, "-B", "-q", "-o", "-Dstyle.color=never", "-s", "jvm/settings.xml", "-f", pom,
         "validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b" not in done.stdout + done.stderr
