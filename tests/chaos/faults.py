"""The faults, injected one at a time into a running local stack through its public seams:
supervisord (pid and process control), each component's readiness probe, `stack.up/down`, and the
S3 fault proxy's switch file. `inject` returns once the fault is lifted (restarted, resumed,
switched off, back up); recovery is then measured by reconciling."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psutil
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from pipeline.config import Settings
from pipeline.stack import stack
from pipeline.stack.jvm import StackError
from pipeline.stack.supervisor import Supervisor
from pipeline.workload import Component


class FaultError(RuntimeError):
    """The fault could not be injected or the component did not come back."""


@dataclass
class FaultContext:
    settings: Settings
    s3_upstream: str  # the S3 server's own URL (behind the fault proxy)
    proxy_switch: Path  # while it exists, the proxy answers S3 requests with 503/500
    outage_s: float = 30.0
    log: Callable[[str], None] = print


def component(settings: Settings, name: str) -> Component:
    for found in stack.components(settings):
        if found.name == name:
            return found
    raise FaultError(f"the stack has no component {name!r}")


def s3_component(context: FaultContext) -> Component:
    """The supervised program serving S3: the one listening on the S3 endpoint's port."""
    port = urlparse(context.s3_upstream).port
    for found in stack.components(context.settings):
        if port in found.ports:
            return found
    raise FaultError(f"no stack component listens on the S3 port {port}")


def _pid(settings: Settings, name: str) -> int:
    info = Supervisor(settings).info().get(name, {})
    if info.get("statename") != "RUNNING" or not info.get("pid"):
        raise FaultError(f"{name} is not running ({info.get('statename', 'UNKNOWN')})")
    return int(info["pid"])


def wait_ready(settings: Settings, target: Component, timeout_s: float) -> None:
    """Until supervisord runs the program again and its own readiness probe passes."""
    supervisor = Supervisor(settings)

    def ready() -> bool:
        state = supervisor.info().get(target.name, {}).get("statename")
        if state in ("FATAL", "EXITED", "STOPPED"):
            supervisor.start(target.name)  # autorestart gave up (startretries): start it again
            return False
        # a program with no probe is ready once supervisord runs it
        return state == "RUNNING" and (target.ready is None or target.ready(settings))

    retrying = Retrying(
        retry=retry_if_result(lambda done: not done),
        wait=wait_fixed(1),
        stop=stop_after_delay(timeout_s),
        retry_error_callback=lambda _state: False,
    )
    if not retrying(ready):
        raise FaultError(
            f"{target.name} not ready {timeout_s:.0f}s after the fault:\n"
            + supervisor.log_tail(target.name)
        )


def kill_and_restart(context: FaultContext, name: str) -> None:
    """SIGKILL the program's whole process group (a crash); supervisord's autorestart brings
    it back; returns when it is ready."""
    settings = context.settings
    target = component(settings, name)
    pid = _pid(settings, name)
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # supervisord makes each program a group leader
    psutil.wait_procs([psutil.Process(pid)] if psutil.pid_exists(pid) else [], timeout=30)
    context.log(f"{name}: SIGKILL (pid {pid})")
    wait_ready(settings, target, max(target.ready_timeout_s, 120) * 2)


def freeze_s3(context: FaultContext) -> None:
    """SIGSTOP the S3 server's process tree for the outage, then SIGCONT."""
    target = s3_component(context)
    root = psutil.Process(_pid(context.settings, target.name))
    tree = [root, *root.children(recursive=True)]
    for process in tree:
        process.suspend()
    context.log(f"{target.name}: SIGSTOP for {context.outage_s:.0f}s")
    try:
        time.sleep(context.outage_s)
    finally:
        for process in tree:
            process.resume()
    wait_ready(context.settings, target, 120)


def s3_errors(context: FaultContext) -> None:
    """The proxy answers every S3 request with 503 SlowDown / 500 InternalError for the outage."""
    counter = context.proxy_switch.with_name(context.proxy_switch.name + ".count")
    before = int(counter.read_text()) if counter.exists() else 0
    context.proxy_switch.touch()
    context.log(f"S3 proxy: 503/500 for {context.outage_s:.0f}s")
    try:
        time.sleep(context.outage_s)
    finally:
        context.proxy_switch.unlink(missing_ok=True)
    failed = (int(counter.read_text()) if counter.exists() else 0) - before
    context.log(f"S3 proxy: {failed} S3 requests answered 503/500")
    if failed == 0:
        raise FaultError("no S3 request reached the proxy while it failed them")


def bring_up(settings: Settings, log: Callable[[str], None], stream_timeout_s: float = 900) -> None:
    """`stack.up`, giving the streaming job (the last to start) longer than its own readiness
    timeout: a Spark driver on a loaded 2-core machine can take more than five minutes."""
    try:
        stack.up(settings, on_event=log)
    except StackError as error:
        if not str(error).startswith("spark-stream did not become ready"):
            raise
        log(f"spark-stream: still starting, waiting up to {stream_timeout_s:.0f}s more")
        wait_ready(settings, component(settings, "spark-stream"), stream_timeout_s)


def restart_stack(context: FaultContext) -> None:
    """`down` then `up` of the whole stack in the middle of the run."""
    settings = context.settings
    stack.down(settings, on_event=lambda event: context.log(f"down: {event}"))
    bring_up(settings, lambda event: context.log(f"up: {event}"))


FAULTS: dict[str, Callable[[FaultContext], None]] = {
    "kill-broker": lambda context: kill_and_restart(context, "kafka"),
    "kill-connect": lambda context: kill_and_restart(context, "connect"),
    "kill-api": lambda context: kill_and_restart(context, "api"),
    "kill-stream": lambda context: kill_and_restart(context, "spark-stream"),
    "freeze-s3": freeze_s3,
    "s3-errors": s3_errors,
    # last: a stack whose S3/Kinesis keep nothing across a restart loses the lake with it
    "restart-stack": restart_stack,
}
