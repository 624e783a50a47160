"""A small client of Airflow's REST API, for the demo and the end-to-end tests.

It does only what CI and approvers do: get a token, trigger a run, read runs and
task instances, answer a human-in-the-loop task, clear task instances. Waiting
helpers fail with the run's task states and the logs of its failed tasks, so a
timeout says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from airflow_stack.env import DAG_ID, Stack, passwords
from airflow_stack.scheduler_log import SchedulerLog

RESPONSE_SETTLE_SECONDS = 3.0
PARKED_SETTLE_SECONDS = 2.0
READ_ATTEMPTS = 3
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
TERMINAL_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


class ApiError(RuntimeError):
    """A non-2xx answer of the API: status code and Airflow's ``detail``."""

    def __init__(self, method: str, path: str, status: int, detail: Any) -> None:
        super().__init__(f"{method} {path} → HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class WaitTimeout(TimeoutError):
    """A wait that ran out; the message carries the run's diagnostics."""


def _q(value: str) -> str:
    return quote(value, safe="")


class AirflowClient:
    """One user's session with the API server at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        dag_id: str = DAG_ID,
        timeout: float = 15,
        parked: Callable[[dict], bool] | None = None,
        on_stall: Callable[[], str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.dag_id = dag_id
        self.timeout = timeout
        self._parked = parked
        self._on_stall = on_stall
        self._session = requests.Session()
        self._token: str | None = None

    def as_user(self, username: str, password: str) -> AirflowClient:
        return AirflowClient(
            self.base_url,
            username,
            password,
            dag_id=self.dag_id,
            timeout=self.timeout,
            parked=self._parked,
            on_stall=self._on_stall,
        )

    # --- plumbing -------------------------------------------------------------------------------

    def token(self) -> str:
        response = self._session.post(
            f"{self.base_url}/auth/token",
            timeout=self.timeout,
            json={"username": self.username, "password": self._password},
        )
        if response.status_code not in (200, 201):
            raise ApiError("POST", "/auth/token", response.status_code, _detail(response))
        self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2{path}``; the decoded JSON body, or ApiError. A read that times out or
        loses its connection is asked again (the API server can stall for seconds on a loaded
        machine); a write is not, since it may have been applied. Any call that Airflow answered
        500 "Database error" is asked again: its transaction was rolled back (on PostgreSQL, a
        deadlock's victim), so nothing of it was applied. Each call that gets no answer in time
        prints what the server was doing (``on_stall``); the last one's error carries its digest."""
        attempt = 1
        while True:
            try:
                return self._request_once(method, path, **kwargs)
            except requests.Timeout as err:
                stall = self._stalled(method, path, attempt)
                if method != "GET" or attempt >= READ_ATTEMPTS:
                    if stall is None:
                        raise
                    raise type(err)(f"{err} | the server's threads then: {stall}") from err
            except requests.ConnectionError:
                if method != "GET" or attempt >= READ_ATTEMPTS:
                    raise
            except ApiError as err:
                if not _rolled_back(err) or attempt >= READ_ATTEMPTS:
                    raise
                print(f"{err} (asked again)", flush=True)
            time.sleep(attempt)
            attempt += 1

    def _stalled(self, method: str, path: str, attempt: int) -> str | None:
        """Print what the server was doing when ``method path`` got no answer; its digest."""
        if self._on_stall is None:
            return None
        from airflow_stack.stall_report import digest

        report = self._on_stall()
        print(f"{method} {path}: no answer in {self.timeout:g} s (attempt {attempt})\n{report}", flush=True)
        return digest(report)

    def _request_once(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._token is None:
            self.token()
        url = f"{self.base_url}/api/v2{path}"
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
            response = self._session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            if response.status_code == 401 and attempt == 1:
                self.token()  # expired token: renew once
                continue
            break
        if not response.ok:
            raise ApiError(method, path, response.status_code, _detail(response))
        return response.json() if response.content else None

    @property
    def _dag(self) -> str:
        return f"/dags/{_q(self.dag_id)}"

    def dag(self) -> dict:
        return self.request("GET", self._dag)

    def pause(self) -> dict:
        return self.request("PATCH", self._dag, json={"is_paused": True})

    def unpause(self) -> dict:
        return self.request("PATCH", self._dag, json={"is_paused": False})

    # --- runs ------------------------------------------------------------------------------------

    def trigger(self, conf: dict[str, Any], *, run_id: str | None = None, note: str | None = None) -> dict:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        if note:
            body["note"] = note
        return self.request("POST", f"{self._dag}/dagRuns", json=body)

    def run(self, run_id: str) -> dict:
        return self.request("GET", f"{self._dag}/dagRuns/{_q(run_id)}")

    def runs(self, states: Iterable[str] = ()) -> list[dict]:
        params = [("state", s) for s in states] + [("order_by", "-run_after"), ("limit", "100")]
        return self.request("GET", f"{self._dag}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, run_id: str) -> list[dict]:
        found: list[dict] = []
        while True:
            page = self.request(
                "GET",
                f"{self._dag}/dagRuns/{_q(run_id)}/taskInstances",
                params={"limit": 100, "offset": len(found)},
            )
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def task_instance(self, run_id: str, task_id: str) -> dict:
        """One task instance: far cheaper for the API server than listing the run's sixty-odd."""
        return self.request("GET", f"{self._dag}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}")

    def task_states(self, run_id: str) -> dict[str, str | None]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(run_id)}

    def task_log(self, run_id: str, task_id: str, try_number: int) -> str:
        body = self.request(
            "GET",
            f"{self._dag}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        return "\n".join(_log_line(entry) for entry in body.get("content", []))

    def clear(
        self, run_id: str, task_ids: list[str], *, include_downstream: bool = True, only_failed: bool = False
    ) -> list[dict]:
        """Clear ``task_ids`` of ``run_id`` (and downstream) so the scheduler runs them again."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "only_failed": only_failed,
            "include_downstream": include_downstream,
            "reset_dag_runs": True,
        }
        return self.request("POST", f"{self._dag}/clearTaskInstances", json=body)["task_instances"]

    # --- human in the loop -----------------------------------------------------------------------

    def hitl_detail(self, run_id: str, task_id: str, map_index: int = -1) -> dict:
        return self.request(
            "GET", f"{self._dag}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/{map_index}/hitlDetails"
        )

    def respond(
        self,
        run_id: str,
        task_id: str,
        option: str = "Approve",
        *,
        params_input: dict[str, Any] | None = None,
        map_index: int = -1,
    ) -> dict:
        """Answer a human-in-the-loop task as this client's user.

        An answer given within a moment of the request races Airflow 3.3.2: the scheduler
        can process the parking worker's exit after the answer re-queued the task, call
        the state "changed externally" and fail the task. No person answers that fast; a
        script must not either. With ``parked`` (a stack this machine runs, see
        ``stack_clients``) the answer goes as soon as the scheduler has processed the parking;
        otherwise once the request is RESPONSE_SETTLE_SECONDS old and, on a loaded machine
        where the worker parks the task only later (as late as 4 s after the request on the
        2-core machine), PARKED_SETTLE_SECONDS after the task is seen awaiting input.
        """
        created = datetime.fromisoformat(self.hitl_detail(run_id, task_id, map_index)["created_at"])
        settled = created.timestamp() + RESPONSE_SETTLE_SECONDS
        ti = self.task_instance(run_id, task_id)
        if ti["state"] == "awaiting_input":
            settled = max(settled, time.time() + PARKED_SETTLE_SECONDS)
        while time.time() < settled and not (self._parked and self._parked(ti)):
            time.sleep(min(0.05, max(0.0, settled - time.time())))
        return self.request(
            "PATCH",
            f"{self._dag}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/{map_index}/hitlDetails",
            json={"chosen_options": [option], "params_input": params_input or {}},
        )

    # --- waiting ---------------------------------------------------------------------------------

    def wait_for_run(
        self,
        run_id: str,
        states: Iterable[str] = TERMINAL_RUN_STATES,
        *,
        timeout: float = 300,
        poll: float = 1.0,
        on_poll: Callable[[dict, dict[str, str | None]], None] | None = None,
    ) -> dict:
        """Poll until the run is in one of ``states``; ``on_poll(run, task_states)`` sees each poll."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if on_poll is not None:
                on_poll(run, self.task_states(run_id))
            if run["state"] in wanted:
                return run
            if run["state"] in TERMINAL_RUN_STATES:
                raise AssertionError(
                    f"run {run_id} ended {run['state']}, expected {sorted(wanted)}\n" + self.diagnose(run_id)
                )
            if time.monotonic() > deadline:
                raise WaitTimeout(
                    f"run {run_id} still {run['state']} after {timeout:.0f}s, expected "
                    f"{sorted(wanted)}\n" + self.diagnose(run_id)
                )
            time.sleep(poll)

    def wait_for_task(
        self, run_id: str, task_id: str, states: Iterable[str], *, timeout: float = 300, poll: float = 1.0
    ) -> dict:
        """Poll until ``task_id`` of the run is in one of ``states``; its task instance."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            ti = self.task_instance(run_id, task_id)
            if ti["state"] in wanted:
                return ti
            if ti["state"] in TERMINAL_TASK_STATES - wanted:
                raise AssertionError(
                    f"{task_id} ended {ti['state']}, expected {sorted(wanted)}\n" + self.diagnose(run_id)
                )
            if time.monotonic() > deadline:
                raise WaitTimeout(
                    f"{task_id} still {ti['state']} after {timeout:.0f}s, expected {sorted(wanted)}"
                    "\n" + self.diagnose(run_id)
                )
            time.sleep(poll)

    def diagnose(self, run_id: str, log_lines: int = 60) -> str:
        """The run's task states, and the end of each failed task's log."""
        try:
            tis = self.task_instances(run_id)
        except (ApiError, requests.RequestException) as exc:
            return f"(could not read task instances: {exc})"
        lines = ["task states:"] + [f"  {ti['task_id']}: {ti['state']}" for ti in tis]
        if self.dag().get("is_paused"):
            lines.insert(0, f"the DAG {self.dag_id} is paused: its runs stay queued until it is unpaused")
        for error in self.request("GET", "/importErrors")["import_errors"]:
            where = error["filename"]
            lines.insert(0, f"DAG import error in {where} (runs cannot start):\n{error['stack_trace']}")
        for ti in tis:
            if ti["state"] in ("failed", "up_for_retry") and ti.get("try_number"):
                try:
                    log = self.task_log(run_id, ti["task_id"], ti["try_number"])
                except (ApiError, requests.RequestException) as exc:
                    log = f"(log unavailable: {exc})"
                tail = "\n".join(log.splitlines()[-log_lines:])
                lines.append(f"--- log of {ti['task_id']} (try {ti['try_number']}) ---\n{tail}")
        return "\n".join(lines)


def stack_clients(stack: Stack) -> dict[str, AirflowClient]:
    """A client per user (``ci``, the approvers, ``dave``, ``admin``) of a stack this machine runs:
    their approvals read the stack's scheduler log to answer as soon as it is safe."""
    from airflow_stack.stall_report import stall_report

    parked = SchedulerLog(stack.logs_dir / "scheduler.log").parked
    return {
        user: AirflowClient(stack.api_url, user, secret, parked=parked, on_stall=lambda: stall_report(stack))
        for user, secret in passwords().items()
    }


def _rolled_back(err: ApiError) -> bool:
    """Airflow's answer to a failed database statement or commit (its SQLAlchemyError handler)."""
    return err.status == 500 and isinstance(err.detail, dict) and err.detail.get("reason") == "Database error"


def _detail(response: requests.Response) -> Any:
    try:
        return response.json().get("detail", response.text)
    except ValueError:
        return response.text


def _log_line(entry: Any) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    line = " ".join(str(entry[k]) for k in ("timestamp", "level", "event") if entry.get(k))
    for detail in entry.get("error_detail") or []:
        frames = detail.get("frames") or []
        where = "; ".join(f"{f.get('filename')}:{f.get('lineno')} {f.get('name')}" for f in frames[-5:])
        line += f"\n    {detail.get('exc_type')}: {detail.get('exc_value')} [{where}]"
    return line
