"""What a supervised process of the local stack is: its run description (`Component`). Each
stage describes its own workloads with it (their environment: `settings_environment`); the stack
(`pipeline.stack`) starts, checks and stops them. Kept below both so neither imports the other
upward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
    The stop signal goes to the whole process group unless `stop_as_group` is False (a process
    that stops its children itself, in order); SIGKILL always does.
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
    stop_as_group: bool = True
    priority: int = PRIORITY_CLIENT
