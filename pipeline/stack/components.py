"""The stack's own components (S3, Kinesis, broker, Connect): how each starts, where it listens,
when it is ready. The workloads (API, stream job, feeds, Airflow) are described by their stages."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import requests

from pipeline.config import Settings
from pipeline.stack.configs import write_configs
from pipeline.stack.jvm import StackError, check_jvm, kafka_classpath
from pipeline.stack.servers import (
    CHECKSUM_ENVIRONMENT,
    LOGBACK,
    S3PROXY_MAIN,
    kinesis_data_dir,
    kinesis_environment,
    kinesis_ready,
    kinesis_server_script,
    node_binary,
    s3_ready,
    s3proxy_classpath,
    write_s3proxy_config,
)
from pipeline.workload import PRIORITY_BROKER, PRIORITY_CONNECT, PRIORITY_STORAGE, Component


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def kafka_ready(settings: Settings) -> bool:
    from confluent_kafka.admin import AdminClient

    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    if not port_open(int(port), host or "127.0.0.1"):
        return False
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=3)
    except Exception:  # KafkaException while the controller elects itself
        return False
    return len(metadata.brokers) > 0


def connect_ready(settings: Settings) -> bool:
    return _http_ok(f"{settings.connect_url}/connector-plugins")


def _bin(name: str) -> str:
    """An executable installed in the same environment as this interpreter."""
    return str(Path(sys.executable).parent / name)


def _java_opts(settings: Settings, heap: str, log4j2: Path) -> list[str]:
    return [
        "-Xms128m",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=50",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2}",
        f"-Djava.io.tmpdir={settings.data_dir / 'tmp'}",
    ]


def storage_components(settings: Settings, java: str, log4j2: Path) -> list[Component]:
    """S3 (S3Proxy) and Kinesis (kinesalite), their state in the run folder's data dir."""
    s3proxy_jars = settings.jvm_dir / "s3proxy"
    if not any(s3proxy_jars.glob("s3proxy-*.jar")):
        raise StackError(f"S3Proxy jars missing in {s3proxy_jars}: run `make setup`")
    node = node_binary()
    if node is None:
        raise StackError("node not found: install Node.js (e.g. `apt-get install nodejs npm`)")
    kinesis_script = kinesis_server_script(settings)
    if not kinesis_script.is_file():
        raise StackError(f"the Kinesis server is missing ({kinesis_script}): run `make setup`")
    kinesis_data = kinesis_data_dir(settings)
    kinesis_data.mkdir(parents=True, exist_ok=True)
    return [
        Component(
            name="s3",
            command=[
                java,
                *_java_opts(settings, settings.s3_heap, log4j2),
                f"-Dlogback.configurationFile={LOGBACK}",
                "-cp",
                s3proxy_classpath(settings),
                S3PROXY_MAIN,
                "--properties",
                str(write_s3proxy_config(settings)),
            ],
            ports=[settings.s3_port],
            url=settings.endpoint_url("s3") or "",
            ready=s3_ready,
            ready_timeout_s=90,
            priority=PRIORITY_STORAGE,
        ),
        Component(
            name="kinesis",
            command=[node, str(kinesis_script)],
            ports=[settings.kinesis_port],
            url=settings.endpoint_url("kinesis") or "",
            ready=kinesis_ready,
            environment=kinesis_environment(settings, kinesis_data),
            ready_timeout_s=60,
            priority=PRIORITY_STORAGE,
        ),
    ]


def core_components(settings: Settings) -> list[Component]:
    """S3 and Kinesis servers, broker and Connect worker, in the order they must start."""
    java = check_jvm(settings)
    conf = write_configs(settings)
    classpath = kafka_classpath(settings)
    return [
        *storage_components(settings, java, conf["log4j2"]),
        Component(
            name="kafka",
            command=[
                java,
                *_java_opts(settings, settings.kafka_heap, conf["log4j2"]),
                "-cp",
                classpath,
                "kafka.Kafka",
                str(conf["kafka"]),
            ],
            ports=[settings.kafka_port, settings.kafka_controller_port],
            url=f"kafka://{settings.kafka_bootstrap_servers}",
            ready=kafka_ready,
            priority=PRIORITY_BROKER,
        ),
        Component(
            name="connect",
            command=[
                java,
                *_java_opts(settings, settings.connect_heap, conf["log4j2"]),
                "-cp",
                classpath,
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(conf["connect"]),
            ],
            ports=[settings.connect_port],
            url=settings.connect_url,
            ready=connect_ready,
            # the S3 sink's AWS SDK: checksums only where S3 requires them (see servers.py)
            environment=dict(CHECKSUM_ENVIRONMENT),
            ready_timeout_s=180,
            priority=PRIORITY_CONNECT,
        ),
    ]


def kafka_storage_command(settings: Settings, cluster_id: str) -> list[str]:
    """`kafka-storage format`, run once before the broker's first start."""
    conf = write_configs(settings)
    return [
        check_jvm(settings),
        f"-Dlog4j2.configurationFile={conf['log4j2']}",
        "-cp",
        kafka_classpath(settings),
        "kafka.tools.StorageTool",
        "format",
        # `=` form: a base64 id may start with "-", which argparse would take for an option
        f"--cluster-id={cluster_id}",
        "--config",
        str(conf["kafka"]),
        "--ignore-formatted",
    ]
