"""The pipeline's read-only view of Airflow, through the public REST API.

A task cannot read other tasks' human-in-the-loop records through the Execution API (its
HITL route is scoped to the task itself), and nothing a task may trust can come from XCom or
task states: anyone who may mark a task may write those. So the proof at the point of change
reads Airflow's own records (the HITL details, the audit log) over the public API as the
pipeline's own identity, a user whose role may only read (``connections.airflow_api``: an
HTTP connection to the API server with that user's login and password).

**One login per worker machine, not per task.** Logging in costs the API server a password check
(FAB hashes with scrypt: ~0.16 s of its CPU on the 2-core machine) and every task that changes
production logs in to prove the gate. A process keeps one reader per connection, and the reader
leaves its token in the local cache (:mod:`deployment.local_cache`, a 0700 folder of the worker's
user) for the next task processes on the machine, keyed by the API's URL, the user and a digest of
the password. A stored token is used for at most ``TOKEN_REUSE_SECONDS`` and never within a minute of
the expiry the token itself states; the API refusing it (401, or 403 "Invalid JWT token" from an API
server restarted with a new JWT secret) drops it and logs in again. A reader may be used from several
threads at once (the gate proof reads its records together): one of them logs in, the others wait for
its token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import requests

TIMEOUT_SECONDS = 10
TOKEN_CACHE = "airflow-token"
TOKEN_REUSE_SECONDS = 3600
TOKEN_EXPIRY_MARGIN_SECONDS = 60
_readers: dict[tuple[str, str, str], AirflowReader] = {}


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
        self._token_was_stored = False
        self._token_lock = threading.Lock()

    @classmethod
    def from_connection(cls, conn_id: str) -> AirflowReader:
        """This process's reader for the connection (one session and token for every read)."""
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        if not (conn.host and conn.login and conn.password):
            raise AirflowApiError(
                f"connection {conn_id!r} needs the API server's host and the pipeline's read-only "
                "user as login and password"
            )
        scheme = conn.schema or "http"
        host = conn.host if "://" in conn.host else f"{scheme}://{conn.host}"
        base_url = f"{host}:{conn.port}" if conn.port else host
        key = (base_url, conn.login, conn.password)
        if key not in _readers:
            _readers[key] = cls(base_url, conn.login, conn.password)
        return _readers[key]

    @property
    def _token_key(self) -> tuple[str, ...]:
        password = hashlib.sha256(self._credentials["password"].encode()).hexdigest()
        return (self.base_url, self._credentials["username"], password)

    def _stored_token(self) -> str | None:
        from deployment.local_cache import read_entry

        entry = read_entry(TOKEN_CACHE, self._token_key) or {}
        now = time.time()
        usable = isinstance(entry.get("token"), str) and isinstance(entry.get("until"), (int, float))
        return entry["token"] if usable and now < entry["until"] else None

    def _store_token(self, token: str) -> None:
        """Leave ``token`` for this machine's next tasks, until shortly before it expires."""
        from deployment.local_cache import write_entry

        expires = _expiry(token)
        if expires is not None:
            until = min(time.time() + TOKEN_REUSE_SECONDS, expires - TOKEN_EXPIRY_MARGIN_SECONDS)
            write_entry(TOKEN_CACHE, self._token_key, {"token": token, "until": until})

    def _log_in(self) -> str:
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
        token = response.json()["access_token"]
        self._store_token(token)
        return token

    def _authorization(self) -> dict[str, str]:
        with self._token_lock:
            if self._token is None:
                self._token = self._stored_token()
                self._token_was_stored = self._token is not None
                if self._token is None:
                    self._token = self._log_in()
            return {"Authorization": f"Bearer {self._token}"}

    def _replaced(self, refused: str) -> bool:
        """Whether there is a token to try instead of ``refused``: one another thread logged in for
        since, or (``refused`` having come from the local cache) a new login's, the stored one dropped."""
        from deployment.local_cache import drop_entry

        with self._token_lock:
            if self._token != refused:
                return True
            if not self._token_was_stored:
                return False
            drop_entry(TOKEN_CACHE, self._token_key)
            self._token, self._token_was_stored = self._log_in(), False
            return True

    def _send(self, path: str, params: Any, authorization: dict[str, str]) -> requests.Response:
        try:
            return self._session.get(
                f"{self.base_url}{path}", params=params, headers=authorization, timeout=TIMEOUT_SECONDS
            )
        except requests.RequestException as err:
            raise AirflowApiError(f"GET {path} failed: {err}") from err

    def get(self, path: str, params: Any = None, *, missing_ok: bool = False) -> Any:
        """The JSON of ``GET path``; None for a 404 when ``missing_ok``."""
        authorization = self._authorization()
        response = self._send(path, params, authorization)
        refused = authorization["Authorization"].removeprefix("Bearer ")
        # A stored token the API no longer takes (restarted with a new secret, expired): log in.
        if _refused_token(response) and self._replaced(refused):
            response = self._send(path, params, self._authorization())
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

    def event_logs(
        self, dag_id: str, run_id: str, limit: int = 100, events: Iterable[str] | None = None
    ) -> list[dict]:
        """The audit log's entries for one run, oldest first; only those of ``events`` when given."""
        entries: list[dict] = []
        only = {"included_events": sorted(events)} if events is not None else {}
        while True:
            page = self.get(
                "/api/v2/eventLogs",
                {
                    "dag_id": dag_id,
                    "run_id": run_id,
                    "order_by": "id",
                    "limit": limit,
                    "offset": len(entries),
                    **only,
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


def _refused_token(response: requests.Response) -> bool:
    """Whether the API refused the token itself rather than the user: Airflow answers 401 for an
    expired token and 403 "Invalid JWT token" for one its JWT secret does not verify (one issued
    before the API server restarted with a new secret); a 403 "Forbidden" is the user's role."""
    if response.status_code == 401:
        return True
    if response.status_code != 403:
        return False
    try:
        return response.json().get("detail") == "Invalid JWT token"
    except (ValueError, AttributeError):
        return False


def _expiry(token: str) -> float | None:
    """The ``exp`` a JWT states (read, not verified: it only bounds how long the token is kept)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None
