"""What a supervised process of the local stack is: its run description (`Component`) and the
environment a pipeline workload gets. Each stage describes its own workloads with these; the
stack (`pipeline.stack`) starts, checks and stops them. Kept below both so neither imports the
other upward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

from pipeline.config import Settings

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

    `ready` is None for a process with nothing to probe: it is ready once the supervisor reports
    it RUNNING (it has stayed up for its start seconds).

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
    ready: ReadyProbe | None
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
