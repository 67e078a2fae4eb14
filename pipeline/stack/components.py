"""The components of the local stack: how each starts, where it listens, when it is ready."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from pydantic import SecretStr

from pipeline.config import Settings
from pipeline.stack.configs import write_configs
from pipeline.stack.jvm import StackError, check_jvm, kafka_classpath
from pipeline.stack.servers import (
    CHECKSUM_ENVIRONMENT,
    LOGBACK,
    S3PROXY_MAIN,
    kinesis_data_dir,
    kinesis_environment,
    kinesis_mock_main,
    kinesis_ready,
    node_binary,
    s3_ready,
    s3proxy_classpath,
    write_s3proxy_config,
)

ReadyProbe = Callable[[Settings], bool]

# Stop waves (supervisord `priority`): clients of the stack (feeds, Airflow) first, then the
# API and the stream job, Connect while the broker is up, the broker, the S3 and Kinesis servers.
PRIORITY_STORAGE = 100
PRIORITY_BROKER = 200
PRIORITY_CONNECT = 300
PRIORITY_PRODUCER = 400
PRIORITY_CLIENT = 999  # supervisord's default: what the stack does not know about stops first


@dataclass(frozen=True)
class Component:
    """One supervised process. `ports` are checked free before it starts.

    `after_provision` components (workloads such as the emulator feed or the streaming job)
    start only once the bucket, topics, streams and connector exist.

    `down` stops components by `priority` (supervisord's: lower starts first and stops last),
    highest first, those of one priority together, each with `stop_signal`, and allows each
    `stop_timeout_s` to exit before supervisord sends SIGKILL (a fault, not the normal way).
    """

    name: str
    command: list[str]
    ports: list[int]
    url: str
    ready: ReadyProbe
    environment: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 90.0
    after_provision: bool = False
    stop_signal: str = "TERM"
    stop_timeout_s: float = 20.0
    priority: int = PRIORITY_CLIENT


def pipeline_environment(settings: Settings) -> dict[str, str]:
    """The non-secret settings as PINPIPE_* variables, for pipeline processes the stack starts.

    They then agree with the stack that started them even if supervisord was launched from
    another shell; credentials are inherited from the environment, never written to a file.
    """
    # Credentials, and every SecretStr (str() of one is "**********", not its value).
    secret_fields = {"aws_access_key_id", "aws_secret_access_key", "api_keys"}
    environment = {
        f"PINPIPE_{name.upper()}": str(value)
        for name, value in settings.model_dump(exclude=secret_fields).items()
        if value is not None and not isinstance(value, list | dict | SecretStr)
    }
    environment["AWS_REGION"] = settings.aws_region
    if settings.target == "local":
        # Spark drivers (the stream job, the DAG's spark-submit tasks) and their UI listen on
        # loopback only, like the stack's servers; without it the UI binds to all interfaces
        environment["SPARK_LOCAL_IP"] = "127.0.0.1"
    # the SDKs' own names, so any AWS client in a workload finds each server by itself
    for variable, endpoint in (
        ("AWS_ENDPOINT_URL", settings.aws_endpoint_url),
        ("AWS_ENDPOINT_URL_S3", settings.endpoint_url("s3")),
        ("AWS_ENDPOINT_URL_KINESIS", settings.endpoint_url("kinesis")),
    ):
        if endpoint:
            environment[variable] = endpoint
    return environment


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
    """S3 (S3Proxy) and Kinesis (kinesis-mock), their state in the run folder's data dir."""
    s3proxy_jars = settings.jvm_dir / "s3proxy"
    if not any(s3proxy_jars.glob("s3proxy-*.jar")):
        raise StackError(f"S3Proxy jars missing in {s3proxy_jars}: run `make setup`")
    node = node_binary()
    if node is None:
        raise StackError("node not found: install Node.js (e.g. `apt-get install nodejs npm`)")
    kinesis_main = kinesis_mock_main(settings)
    if not kinesis_main.is_file():
        raise StackError(f"kinesis-mock missing ({kinesis_main}): run `make setup`")
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
            command=[node, str(kinesis_main)],
            ports=[settings.kinesis_port, settings.kinesis_tls_port],
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
