"""Airflow as components of the local stack: `airflow` (the api-server), `airflow-scheduler` and
`airflow-dag-processor`, named like the compose services.

Three supervised programs rather than `airflow standalone`: no triggerer (no task defers) and no
log server (the LocalExecutor writes task logs where the api-server reads them), which saves
about half a gigabyte on a small machine. They start in that order, each once the one before is
healthy; the api-server migrates the metadata DB first. supervisord stops each program's whole
process group, so `make down` leaves no executor worker behind.

Metadata lives in SQLite in `<run_dir>/airflow` unless `PINPIPE_AIRFLOW_DB_URL` names another
database (PostgreSQL: `postgresql+psycopg://...`). Logins use Airflow's simple auth manager:
user `admin`, its password generated on the first start into AIRFLOW_HOME (`pinpipe status`
says where).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from pipeline.config import Settings
from pipeline.config.environment import settings_environment
from pipeline.config.settings import PROJECT_ROOT
from pipeline.workload import Component, ReadyProbe

ADMIN_USER = "admin"
DAGS_FOLDER = PROJECT_ROOT / "dags"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
# `airflow ...` as a supervised program: the same command, without a slow interpreter teardown
AIRFLOW_PROGRAM = [sys.executable, "-m", "pipeline.stack.airflow_program"]


def airflow_environment(settings: Settings, home: Path | None = None) -> dict[str, str]:
    """Environment of every Airflow process (and of the tasks it runs) for these settings.

    `home` defaults to the stack's AIRFLOW_HOME; tests give a folder of their own. Secrets are
    never written here: a configured metadata DB URL is read at run time (`..._CMD`).
    """
    home = home or settings.airflow_home
    environment = settings_environment(settings)
    slots = str(settings.airflow_parallelism)
    environment |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # a 2-core machine: two task slots, one API worker, one parsing process
        "AIRFLOW__CORE__PARALLELISM": slots,
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": slots,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        # parsing imports the pipeline: not every 30 s, and give it time on a busy machine
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": settings.airflow_url,
        # task processes report to the api-server: on our port, not the default 8080
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        # `spark-submit` of this environment for the DAG's Spark jobs
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    if settings.airflow_db_url is None:
        environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    else:
        environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] = (
            f"{sys.executable} -m pipeline.stack.airflow metadata-db-url"
        )
    return environment


def airflow_health(settings: Settings) -> dict[str, str]:
    """Each Airflow part's health from `/api/v2/monitor/health` (empty when it does not answer)."""
    try:
        body = requests.get(f"{settings.airflow_url}/api/v2/monitor/health", timeout=3).json()
    except (requests.RequestException, ValueError):
        return {}
    return {part: (state or {}).get("status") or "unknown" for part, state in body.items()}


def _healthy(part: str) -> ReadyProbe:
    def probe(settings: Settings) -> bool:
        return airflow_health(settings).get(part) == "healthy"

    return probe


def airflow_login(settings: Settings) -> tuple[str, str] | None:
    """User and password of the UI and REST API, once the first start generated them."""
    try:
        passwords = json.loads(passwords_file(settings).read_text())
    except (OSError, ValueError):
        return None
    password = passwords.get(ADMIN_USER)
    return (ADMIN_USER, str(password)) if password else None


def passwords_file(settings: Settings) -> Path:
    """Where Airflow's simple auth manager keeps the generated UI passwords (JSON)."""
    return settings.airflow_home / PASSWORDS_FILE


def login_hint(settings: Settings, running: bool = True) -> str | None:
    """One line for `pinpipe status`: where the UI is and where its password is kept — not the
    password itself, which would end up in scrollback and CI logs. None when Airflow is off."""
    if not settings.airflow_enabled or not running:
        return None
    where = passwords_file(settings)
    if airflow_login(settings) is None:
        return (
            f"Airflow UI: {settings.airflow_url} (user {ADMIN_USER}; its password is generated "
            f"on the first start into {where})"
        )
    return f"Airflow UI: {settings.airflow_url}  user {ADMIN_USER}, password in {where}"


def airflow_components(settings: Settings) -> list[Component]:
    if not settings.airflow_enabled:
        return []
    environment = airflow_environment(settings)
    return [
        Component(
            name="airflow",
            command=[sys.executable, "-m", "pipeline.stack.airflow", "api-server"],
            ports=[settings.airflow_port],
            url=settings.airflow_url,
            ready=_healthy("metadatabase"),
            environment=environment,
            # a fresh metadata DB is migrated first, on a small machine
            ready_timeout_s=300,
            after_provision=True,
        ),
        Component(
            name="airflow-scheduler",
            command=[*AIRFLOW_PROGRAM, "scheduler", "--skip-serve-logs"],
            ports=[],
            url=f"LocalExecutor, {settings.airflow_parallelism} task slots",
            ready=_healthy("scheduler"),
            environment=environment,
            ready_timeout_s=180,
            after_provision=True,
        ),
        Component(
            name="airflow-dag-processor",
            command=[*AIRFLOW_PROGRAM, "dag-processor"],
            ports=[],
            url=str(DAGS_FOLDER),
            ready=_healthy("dag_processor"),
            environment=environment,
            ready_timeout_s=180,
            after_provision=True,
        ),
    ]


def _serve_api() -> None:
    """Migrate the metadata DB (idempotent), then become the api-server."""
    subprocess.run([AIRFLOW, "db", "migrate"], check=True)
    os.execv(sys.executable, [*AIRFLOW_PROGRAM, "api-server"])


def _print_metadata_db_url() -> None:
    from pipeline.config import get_settings

    url = get_settings().airflow_db_url
    print(url.get_secret_value() if url else "")


if __name__ == "__main__":
    {"api-server": _serve_api, "metadata-db-url": _print_metadata_db_url}[sys.argv[1]]()
