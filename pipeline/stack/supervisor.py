"""supervisord as the process supervisor of the local stack, driven over its XML-RPC socket."""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import psutil
from supervisor.xmlrpc import SupervisorTransport

from pipeline.config import Settings
from pipeline.config.settings import PROJECT_ROOT
from pipeline.workload import Component


def _escape(value: str) -> str:
    # supervisord expands %(name)s in values: a literal % must be doubled.
    return value.replace("%", "%%")


def _quote(arg: str) -> str:
    return '"' + arg.replace('"', '\\"') + '"' if any(c in arg for c in ' "') else arg


class Supervisor:
    """The supervisord of one run folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir
        self.conf_path = self.run_dir / "conf" / "supervisord.conf"
        self.socket_path = self.run_dir / "supervisor.sock"
        self.pid_path = self.run_dir / "supervisord.pid"

    # -- configuration ---------------------------------------------------------------------
    def render(self, components: list[Component]) -> str:
        logs = self.settings.logs_dir
        lines = [
            "[unix_http_server]",
            f"file={self.socket_path}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={logs / 'supervisord.log'}",
            f"pidfile={self.pid_path}",
            f"childlogdir={logs}",
            f"directory={PROJECT_ROOT}",
            "logfile_maxbytes=10MB",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket_path}",
        ]
        for component in components:
            env = {"PYTHONUNBUFFERED": "1", **component.environment}
            lines += [
                "",
                f"[program:{component.name}]",
                "command=" + _escape(" ".join(_quote(arg) for arg in component.command)),
                f"directory={PROJECT_ROOT}",
                "environment="
                + ",".join(f'{key}="{_escape(value)}"' for key, value in env.items()),
                "autostart=false",
                "autorestart=true",
                "startsecs=3",
                "startretries=3",
                f"priority={component.priority}",
                f"stopsignal={component.stop_signal}",
                f"stopwaitsecs={math.ceil(component.stop_timeout_s)}",
                # stop the whole process group: some components (Airflow) fork children
                f"stopasgroup={str(component.stop_as_group).lower()}",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={logs / (component.name + '.log')}",
                "stdout_logfile_maxbytes=20MB",
                "stdout_logfile_backups=2",
            ]
        return "\n".join(lines) + "\n"

    # -- daemon ------------------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def running(self) -> bool:
        if self.pid() is None or not self.socket_path.exists():
            return False
        try:
            self.rpc().getState()
        except (OSError, xmlrpc.client.Fault):
            return False
        return True

    def rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return proxy.supervisor

    def start_daemon(self, components: list[Component]) -> None:
        """Write the config and start supervisord (it daemonizes), or reload a running one."""
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.render(components))
        if self.running():
            self._apply_config_changes()
            return
        subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_path)],
            check=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 15
        while not self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"supervisord did not start: see {self.settings.logs_dir}")
            time.sleep(0.2)

    def _apply_config_changes(self) -> None:
        """Pick up added or changed programs; a running program keeps running as it is."""
        rpc = self.rpc()
        added, changed, _removed = cast(list[list[str]], rpc.reloadConfig()[0])
        states = {proc["name"]: proc["statename"] for proc in rpc.getAllProcessInfo()}
        for name in changed:
            if states.get(name) not in ("RUNNING", "STARTING"):
                rpc.removeProcessGroup(name)
                rpc.addProcessGroup(name)
        for name in added:
            rpc.addProcessGroup(name)

    def shutdown(self, timeout_s: float = 180) -> None:
        """Stop every program (whole process groups) and supervisord itself."""
        pid = self.pid()
        if pid is None:
            return
        try:
            self.rpc().shutdown()
        except (OSError, xmlrpc.client.Fault):
            os.kill(pid, 15)
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=timeout_s)
        self.socket_path.unlink(missing_ok=True)

    # -- programs ----------------------------------------------------------------------------
    def programs(self) -> list[str]:
        """The programs of the running configuration, in the order they were written: the
        order `up` starts them."""
        try:
            text = self.conf_path.read_text()
        except FileNotFoundError:
            return []
        return re.findall(r"^\[program:(.+)\]$", text, flags=re.MULTILINE)

    def priorities(self) -> dict[str, int]:
        """Each program's `priority` in the running configuration (lower stops later). A
        configuration written before programs had one (a stack started by an older version)
        gives each its position: one at a time in reverse start order, as that version did."""
        try:
            text = self.conf_path.read_text()
        except FileNotFoundError:
            return {}
        found: dict[str, int] = {}
        sections = re.split(r"^\[program:", text, flags=re.MULTILINE)[1:]
        for position, section in enumerate(sections):
            name = section.split("]", 1)[0]
            priority = re.search(r"^priority=(\d+)$", section, flags=re.MULTILINE)
            found[name] = int(priority.group(1)) if priority else position
        return found

    def info(self) -> dict[str, dict[str, Any]]:
        if not self.running():
            return {}
        return {proc["name"]: proc for proc in self.rpc().getAllProcessInfo()}

    def start(self, name: str) -> None:
        try:
            self.rpc().startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise

    def stop(self, name: str) -> bool:
        """Stop one program gracefully (its stopsignal to the whole process group; SIGKILL only
        after its stopwaitsecs) and wait for it; False if it was not running."""
        try:
            self.rpc().stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise
            return False
        return True

    def stop_together(self, names: list[str], poll_s: float = 0.1) -> Iterator[str]:
        """Stop several programs at once (each by its stopsignal to its process group, SIGKILL
        only after its stopwaitsecs); yield each name as it has stopped. Programs not running
        are skipped."""
        rpc = self.rpc()
        stopping = []
        for name in names:
            try:
                rpc.stopProcess(name, False)  # False: signal now, wait below for all of them
            except xmlrpc.client.Fault as fault:
                if "NOT_RUNNING" not in fault.faultString:
                    raise
                continue
            stopping.append(name)
        while stopping:
            states = {proc["name"]: proc["statename"] for proc in rpc.getAllProcessInfo()}
            for name in [name for name in stopping if states.get(name) != "STOPPING"]:
                stopping.remove(name)
                yield name
            if stopping:
                time.sleep(poll_s)

    def stop_outcome(self, name: str) -> str | None:
        """How supervisord last saw `name` end, from its log: `exit status 0`, `terminated by
        SIGTERM`, `terminated by SIGKILL`, ... (None if it never logged a stop)."""
        log = self.settings.logs_dir / "supervisord.log"
        if not log.exists():
            return None
        found = re.findall(
            rf"stopped: {re.escape(name)} \(([^)]*)\)", log.read_text(errors="replace")
        )
        return found[-1] if found else None

    def log_tail(self, name: str, lines: int = 15) -> str:
        path: Path = self.settings.logs_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
