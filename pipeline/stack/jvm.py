"""Where the Maven-resolved JVM components live, and the checks that they are usable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pipeline.config import Settings


class StackError(RuntimeError):
    """A problem the user can fix; its message is one line saying what to do."""


def kafka_classpath(settings: Settings) -> str:
    """Classpath of the broker and the Connect worker (one Kafka release, one folder)."""
    return str(settings.jvm_dir / "kafka" / "*")


def plugin_path(settings: Settings) -> Path:
    """Kafka Connect `plugin.path`: one sub-folder per connector plugin."""
    return settings.jvm_dir / "plugins"


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java not found: install a JDK 17+ (e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    return java


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    # e.g. 'openjdk version "17.0.15" 2025-04-15'
    quoted = out.split('"')[1] if '"' in out else "0"
    return int(quoted.split(".")[0])


def check_jvm(settings: Settings) -> str:
    """Return the java binary, or raise with one line saying what is missing."""
    java = java_binary()
    if java_major_version(java) < 17:
        raise StackError(f"{java} is older than Java 17: install a JDK 17+ and put it on PATH")
    kafka_jars = list((settings.jvm_dir / "kafka").glob("kafka_*.jar"))
    if not kafka_jars:
        raise StackError(f"Kafka jars missing in {settings.jvm_dir / 'kafka'}: run `make setup`")
    plugins = plugin_path(settings)
    if not plugins.is_dir() or not any(plugins.iterdir()):
        raise StackError(f"Kafka Connect plugins missing in {plugins}: run `make setup`")
    return java
