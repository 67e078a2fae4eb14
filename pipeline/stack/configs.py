"""Configuration files of the local JVM components, rendered from Settings into the run folder."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Settings
from pipeline.stack.jvm import plugin_path

LOG4J2_CONSOLE = """\
# Everything to stdout: supervisord writes each component's log file.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.kafkaclients.name = org.apache.kafka
logger.kafkaclients.level = WARN
logger.connect.name = org.apache.kafka.connect.runtime.WorkerSinkTask
logger.connect.level = INFO
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def kafka_properties(settings: Settings) -> str:
    """A single KRaft node acting as broker and controller (combined mode)."""
    host = "127.0.0.1"
    return _properties(
        {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{host}:{settings.kafka_controller_port}",
            "listeners": (
                f"PLAINTEXT://{host}:{settings.kafka_port},"
                f"CONTROLLER://{host}:{settings.kafka_controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{host}:{settings.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": settings.data_dir / "kafka",
            "num.partitions": settings.kafka_topic_partitions,
            # one node: every internal topic has a single replica
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            "log.retention.hours": 168,
        }
    )


def connect_properties(settings: Settings) -> str:
    """A distributed-mode Connect worker (the mode MSK Connect runs), state in Kafka topics."""
    return _properties(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": "pinpipe-connect",
            "config.storage.topic": "_connect-configs",
            "offset.storage.topic": "_connect-offsets",
            "status.storage.topic": "_connect-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.flush.interval.ms": 10000,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "listeners": f"http://127.0.0.1:{settings.connect_port}",
            "plugin.path": plugin_path(settings),
            "plugin.discovery": "hybrid_warn",
            # lets the S3 sink read read_committed (consumer.override.isolation.level), as the
            # MSK Connect worker configuration does (deploy/cloudformation/connect.yaml)
            "connector.client.config.override.policy": "All",
        }
    )


def write_configs(settings: Settings) -> dict[str, Path]:
    """Write every rendered file into `<run_dir>/conf` and return their paths by name."""
    conf_dir = settings.run_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "log4j2": (conf_dir / "log4j2.properties", LOG4J2_CONSOLE),
        "kafka": (conf_dir / "kafka.properties", kafka_properties(settings)),
        "connect": (conf_dir / "connect.properties", connect_properties(settings)),
    }
    for path, text in files.values():
        path.write_text(text)
    return {name: path for name, (path, _) in files.items()}
