"""`up`, `down` and `status` of the local stack."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psutil
from rich.console import Console

from pipeline.config import Settings
from pipeline.ingest.component import api_components
from pipeline.land.connector import register as register_connector
from pipeline.source.feed import ensure_seeded, feed_components
from pipeline.stack.airflow import airflow_components
from pipeline.stack.components import core_components, kafka_storage_command, port_open
from pipeline.stack.jvm import StackError
from pipeline.stack.provision import describe_created, provision
from pipeline.stack.servers import kinesis_data_dir, kinesis_mock_state_left
from pipeline.stack.supervisor import Supervisor
from pipeline.stream.component import stream_components
from pipeline.waiting import waiting
from pipeline.workload import Component


def components(settings: Settings) -> list[Component]:
    found = core_components(settings)
    found += api_components(settings)
    found += stream_components(settings)
    found += feed_components(settings)
    found += airflow_components(settings)
    return found


@dataclass
class ComponentStatus:
    name: str
    state: str
    ready: bool
    url: str
    pid: int | None
    rss_mb: float


def _format_kafka_storage(settings: Settings) -> None:
    """Format the KRaft log directory once; a formatted one keeps its cluster id."""
    if (settings.data_dir / "kafka" / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    (settings.data_dir / "tmp").mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        kafka_storage_command(settings, cluster_id), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(f"kafka storage format failed: {result.stdout}{result.stderr}".strip())


def _check_ports_free(component: Component) -> None:
    for port in component.ports:
        if port_open(port):
            raise StackError(
                f"port {port} ({component.name}) is in use by another process: stop it, "
                f"or choose another port in .env (see .env.example)"
            )


def _answers(component: Component, settings: Settings, supervisor: Supervisor) -> bool:
    """Whether the component answers its probe; one without a probe is ready once supervisord
    reports it RUNNING (it has stayed up for its start seconds)."""
    if component.ready is None:
        return _state(supervisor, component.name) == "RUNNING"
    return component.ready(settings)


def _wait_ready(
    supervisor: Supervisor,
    component: Component,
    settings: Settings,
    console: Console | None = None,
) -> float:
    started = time.monotonic()
    with waiting(console, f"{component.name} to be ready"):
        while not _answers(component, settings, supervisor):
            _check_starting(supervisor, component, started)
            time.sleep(0.5)
    return time.monotonic() - started


def _state(supervisor: Supervisor, name: str) -> str:
    return str(supervisor.info().get(name, {}).get("statename", "UNKNOWN"))


def _check_starting(supervisor: Supervisor, component: Component, started: float) -> None:
    """Raise when `component` has failed to start or is out of time."""
    state = _state(supervisor, component.name)
    if state in ("FATAL", "EXITED", "BACKOFF") or (
        time.monotonic() - started > component.ready_timeout_s
    ):
        raise StackError(
            f"{component.name} did not become ready (state {state}); last log lines:\n"
            + supervisor.log_tail(component.name)
        )


def up(
    settings: Settings, on_event: Callable[[str], None] = print, console: Console | None = None
) -> None:
    """Start every component in dependency order, wait for each, then provision. Idempotent.

    With a `console`, each wait for a component shows what it waits for and for how long."""
    wanted = components(settings)
    supervisor = Supervisor(settings)
    states = {name: info["statename"] for name, info in supervisor.info().items()}
    for component in wanted:
        if states.get(component.name) not in ("RUNNING", "STARTING"):
            _check_ports_free(component)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if warning := kinesis_mock_state_left(kinesis_data_dir(settings)):
        on_event(f"kinesis: {warning}")
    _format_kafka_storage(settings)
    supervisor.start_daemon(wanted)
    infrastructure = [c for c in wanted if not c.after_provision]
    workloads = [c for c in wanted if c.after_provision]
    _start_in_order(supervisor, infrastructure, states, settings, on_event, console)
    created = provision(settings)
    on_event(
        "provisioned: bucket "
        f"{settings.lake_bucket}, topics {', '.join(settings.topics.values())}, "
        f"streams {', '.join(settings.streams.values())} ({describe_created(created)})"
    )
    # like a one-shot init container: (re-)register the S3 sink, idempotently
    state = "registered" if register_connector(settings) else "config up to date"
    on_event(f"connector {settings.connector_name}: {state}")
    if any(c.name.startswith("emulator-") for c in workloads):
        on_event(f"source database: {ensure_seeded(settings)} rows ({settings.source_url})")
    _start_in_order(supervisor, workloads, states, settings, on_event, console)


def _start_in_order(
    supervisor: Supervisor,
    wanted: list[Component],
    states: dict[str, str],
    settings: Settings,
    on_event: Callable[[str], None],
    console: Console | None = None,
) -> None:
    for component in wanted:
        if states.get(component.name) in ("RUNNING", "STARTING"):
            on_event(f"{component.name}: already running")
        else:
            on_event(f"{component.name}: starting")
            supervisor.start(component.name)
        seconds = _wait_ready(supervisor, component, settings, console)
        on_event(f"{component.name}: ready ({seconds:.1f}s) {component.url}")


def stop_waves(priorities: dict[str, int], known: list[str]) -> list[list[str]]:
    """The programs in the order `down` stops them: by supervisord priority, highest first (the
    stack's clients, then the API and the stream job, Connect, the broker, storage); those of
    one priority together, as one wave. Programs supervisord runs that the configuration does
    not list (none, normally) stop first."""
    first = max(priorities.values(), default=0) + 1
    ranks = {name: priorities.get(name, first) for name in [*priorities, *known]}
    return [
        [name for name in ranks if ranks[name] == rank]
        for rank in sorted(set(ranks.values()), reverse=True)
    ]


def down(
    settings: Settings, on_event: Callable[[str], None] = print, console: Console | None = None
) -> None:
    """Stop everything this run folder's supervisord started, and nothing else: wave by wave
    (`stop_waves`), each program by its stop signal, then supervisord itself. A line per
    program, when it has stopped: seconds since its wave began and how it ended.

    With a `console`, each wait for a wave to stop shows which and for how long."""
    supervisor = Supervisor(settings)
    if supervisor.pid() is None:
        on_event("stack is not running")
        return
    started = time.monotonic()
    if supervisor.running():
        # the running configuration's priorities, not today's settings': a component disabled
        # since `up` (or renamed) still stops in its place
        for wave in stop_waves(supervisor.priorities(), list(supervisor.info())):
            stopping = time.monotonic()
            with waiting(console, f"{', '.join(wave)} to stop"):
                for name in supervisor.stop_together(wave):
                    outcome = supervisor.stop_outcome(name) or "stopped"
                    on_event(f"{name}: stopped ({time.monotonic() - stopping:.1f}s, {outcome})")
    with waiting(console, "supervisord to exit"):
        supervisor.shutdown()
    on_event(f"stack stopped in {time.monotonic() - started:.1f}s")


def _rss_mb(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in tree) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def status(settings: Settings) -> list[ComponentStatus]:
    supervisor = Supervisor(settings)
    info = supervisor.info()
    result = []
    for component in components(settings):
        proc = info.get(component.name, {})
        pid = proc.get("pid") or None
        result.append(
            ComponentStatus(
                name=component.name,
                state=proc.get("statename", "STOPPED"),
                ready=proc.get("statename") == "RUNNING"
                and (component.ready is None or component.ready(settings)),
                url=component.url,
                pid=pid,
                rss_mb=_rss_mb(pid),
            )
        )
    return result
