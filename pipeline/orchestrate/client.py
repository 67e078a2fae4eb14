"""The few calls of Airflow's REST API (v2) that `pinpipe demo` needs: find the DAG, unpause it,
trigger a run, follow its tasks and read a failed task's log."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from pipeline.config import Settings


class AirflowApiError(RuntimeError):
    pass


class RunExistsError(AirflowApiError):
    pass


class AirflowClient:
    """A JWT from `/auth/token` (simple auth manager), renewed once when it expires."""

    def __init__(self, settings: Settings, user: str, password: str, timeout_s: float = 30) -> None:
        self.base = settings.airflow_url.rstrip("/")
        self.user = user
        self.password = password
        self.timeout_s = timeout_s
        self._token: str | None = None

    def _login(self) -> str:
        response = requests.post(
            f"{self.base}/auth/token",
            json={"username": self.user, "password": self.password},
            timeout=self.timeout_s,
        )
        if response.status_code >= 400:
            raise AirflowApiError(f"login as {self.user} → {response.status_code}: {response.text}")
        token: str = response.json()["access_token"]
        return token

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            response = requests.request(
                method,
                f"{self.base}/api/v2{path}",
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self.timeout_s,
                **kwargs,
            )
            if response.status_code == 401 and attempt == 1:
                self._token = None  # expired: log in again once
                continue
            return response
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(
                f"{method} {path} → {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as the API knows it, or None until the dag-processor has parsed it."""
        response = self._call("GET", f"/dags/{quote(dag_id)}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise AirflowApiError(f"GET dag {dag_id} → {response.status_code}: {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def import_errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self._json("GET", "/importErrors")["import_errors"]
        return errors

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._json("PATCH", f"/dags/{quote(dag_id)}", json={"is_paused": paused})

    def trigger(self, dag_id: str, note: str = "", logical_date: str | None = None) -> str:
        """Start a manual run now (for `logical_date` if given); returns its run id.

        A run for a logical date that already has one answers 409: `RunExistsError`.
        """
        body: dict[str, Any] = {"logical_date": logical_date, "conf": {}, "note": note or None}
        response = self._call("POST", f"/dags/{quote(dag_id)}/dagRuns", json=body)
        if response.status_code == 409:
            raise RunExistsError(response.text[:300])
        if response.status_code >= 400:
            raise AirflowApiError(f"trigger {dag_id} → {response.status_code}: {response.text}")
        return str(response.json()["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self._json("GET", f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")
        return run

    def latest_dag_run(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's most recent run (by when it was due to run), or None if it never ran."""
        body = self._json(
            "GET", f"/dags/{quote(dag_id)}/dagRuns", params={"order_by": "-run_after", "limit": 1}
        )
        runs: list[dict[str, Any]] = body["dag_runs"]
        return runs[0] if runs else None

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances"
        instances: list[dict[str, Any]] = self._json("GET", path)["task_instances"]
        return instances

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[str]:
        """A task try's log, one string per line."""
        path = (
            f"/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}"
            f"/logs/{try_number}"
        )
        body = self._json("GET", path, params={"full_content": "true"})
        lines: list[str] = []
        for item in body.get("content") or []:
            lines.append(str(item.get("event", "")) if isinstance(item, dict) else str(item))
        return lines
