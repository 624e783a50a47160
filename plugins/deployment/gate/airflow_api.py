"""The pipeline's read-only view of Airflow, through the public REST API.

A task cannot read other tasks' human-in-the-loop records through the Execution API (its
HITL route is scoped to the task itself), and nothing a task may trust can come from XCom or
task states: anyone who may mark a task may write those. So the proof at the point of change
reads Airflow's own records (the HITL details, the audit log) over the public API as the
pipeline's own identity, a user whose role may only read (``connections.airflow_api``: an
HTTP connection to the API server with that user's login and password).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

TIMEOUT_SECONDS = 10


class AirflowApiError(RuntimeError):
    """The API answered with an error, or could not be reached."""


def _q(value: str) -> str:
    return quote(value, safe="")


class AirflowReader:
    """GETs on Airflow's public API as the pipeline's read-only user (one token per reader)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._session = requests.Session()
        self._token: str | None = None

    @classmethod
    def from_connection(cls, conn_id: str) -> AirflowReader:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        if not (conn.host and conn.login and conn.password):
            raise AirflowApiError(
                f"connection {conn_id!r} needs the API server's host and the pipeline's read-only "
                "user as login and password"
            )
        scheme = conn.schema or "http"
        host = conn.host if "://" in conn.host else f"{scheme}://{conn.host}"
        return cls(f"{host}:{conn.port}" if conn.port else host, conn.login, conn.password)

    def _authorization(self) -> dict[str, str]:
        if self._token is None:
            try:
                response = self._session.post(
                    f"{self.base_url}/auth/token", json=self._credentials, timeout=TIMEOUT_SECONDS
                )
            except requests.RequestException as err:
                raise AirflowApiError(f"the Airflow API at {self.base_url} is unreachable: {err}") from err
            if response.status_code not in (200, 201):
                raise AirflowApiError(
                    f"the pipeline's API user cannot log in ({response.status_code}): {response.text[:160]}"
                )
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def get(self, path: str, params: Any = None, *, missing_ok: bool = False) -> Any:
        """The JSON of ``GET path``; None for a 404 when ``missing_ok``."""
        try:
            response = self._session.get(
                f"{self.base_url}{path}",
                params=params,
                headers=self._authorization(),
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException as err:
            raise AirflowApiError(f"GET {path} failed: {err}") from err
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code != 200:
            raise AirflowApiError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    # ------------------------------------------------------------------ records
    def hitl_detail(
        self, dag_id: str, run_id: str, task_id: str, try_number: int | None = None
    ) -> dict | None:
        """A task's human-in-the-loop record (its latest try, or ``try_number``); None if it has none."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/-1/hitlDetails"
        if try_number is not None:
            path += f"/tries/{try_number}"
        return self.get(path, missing_ok=True)

    def hitl_history(self, dag_id: str, run_id: str, task_id: str) -> list[dict]:
        """Every try's human-in-the-loop record of a task, oldest first (a clear makes a new try)."""
        latest = self.hitl_detail(dag_id, run_id, task_id)
        if latest is None:
            return []
        current = int((latest.get("task_instance") or {}).get("try_number") or 1)
        earlier = [self.hitl_detail(dag_id, run_id, task_id, n) for n in range(1, current)]
        return [*(d for d in earlier if d), latest]

    def event_logs(self, dag_id: str, run_id: str, limit: int = 100) -> list[dict]:
        """The audit log's entries for one run, oldest first."""
        entries: list[dict] = []
        while True:
            page = self.get(
                "/api/v2/eventLogs",
                {
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "order_by": "id",
                    "limit": limit,
                    "offset": len(entries),
                },
            )
            batch = page.get("event_logs") or []
            entries.extend(batch)
            if len(batch) < limit or len(entries) >= int(page.get("total_entries") or 0):
                return entries

    def user_ids(self, usernames: list[str]) -> dict[str, str | None]:
        """Username → the auth manager's user id (FAB's is numeric), from the Deployments view's route."""
        from deployments_view import URL_PREFIX

        found = self.get(f"{URL_PREFIX}/api/identities", [("username", u) for u in usernames])
        return {entry["username"]: entry["id"] for entry in found["identities"]}
