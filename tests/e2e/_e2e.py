"""End-to-end helpers: stacks started and stopped with timings, releases triggered and approved."""

from __future__ import annotations

import os
import time

import pytest

from airflow_stack.client import AirflowClient, ApiError
from airflow_stack.env import APPROVERS, CI_USER, Stack
from airflow_stack.sandbox_process import SandboxProcess
from airflow_stack.supervisor import Supervisor

TIMINGS: list[tuple[str, float]] = []
SHA = "0123456789abcdef0123456789abcdef01234567"  # well-formed; the sandbox's GitHub does not know it
RC_COMMITS: dict[str, str] = {}  # version -> the commit its release candidate tag points at


def release_conf(version: str = "v1.1.0", author: str = "dave", **extra) -> dict:
    """The conf CI sends for ``version``: its rc commit when the sandbox has one, else a made-up sha."""
    return {"version": version, "commit_sha": RC_COMMITS.get(version, SHA), "author": author, **extra}


# The test stacks' dag-processor parses deploy_production at start and then only when asked
# (``reparsed``): a periodic parse (600 s on the fast stacks) inside a test that changes the DAG's
# shape through the configuration served that shape to the tests after it.
PARSE_ONLY_WHEN_ASKED = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "86400"}


def start_stack(stack: Stack) -> Supervisor:
    supervisor = Supervisor(stack)
    supervisor.env.update(PARSE_ONLY_WHEN_ASKED)
    started = time.monotonic()
    supervisor.start()
    try:
        supervisor.wait_healthy(timeout=300)
    except BaseException:
        supervisor.stop()
        raise
    TIMINGS.append((f"{stack.executor}: start to API healthy, DAG parsed", time.monotonic() - started))
    return supervisor


def reparsed(admin: AirflowClient, timeout: float = 120) -> dict:
    """Have the dag-processor parse deploy_production again now (Airflow's reparse request) and wait
    until it has; the DAG as it then serves it."""
    before = admin.dag()
    admin.request("PUT", f"/parseDagFile/{before['file_token']}")
    deadline = time.monotonic() + timeout
    while (dag := admin.dag())["last_parsed_time"] == before["last_parsed_time"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"deploy_production not parsed again within {timeout:.0f} s")
        time.sleep(0.5)
    return dag


def stop_stack(supervisor: Supervisor) -> None:
    started = time.monotonic()
    supervisor.stop()  # raises when any process is left
    TIMINGS.append((f"{supervisor.stack.executor}: stop, no process left", time.monotonic() - started))


def fresh_world(admin: AirflowClient, sandbox: SandboxProcess) -> None:
    """No active run left by an earlier test (max_active_runs=1 would queue ours), sandbox reseeded:
    its viewers routed by the configured router (the front door by default), all on blue. A DAG an
    earlier test paused (and failed before unpausing) is unpaused."""
    if admin.dag().get("is_paused"):
        admin.unpause()
    stopped = [run["dag_run_id"] for run in admin.runs(states=("queued", "running"))]
    for run_id in stopped:
        admin.request("PATCH", f"/dags/{admin.dag_id}/dagRuns/{run_id}", json={"state": "failed"})
    if stopped:
        let_stopped_tasks_end(admin, stopped)
    sandbox.reseed()
    traffic = sandbox.control("GET", "/traffic")
    assert traffic["router"] == traffic["configured"], traffic
    assert traffic["weights"] == {"blue": 100, "green": 0}, traffic


# After its run is marked failed, a task still running is killed at its supervisor's next heartbeat
# and a deferred one's trigger is cancelled on the triggerer's next loop (its on_kill may restore
# traffic and write the record): seconds in which either can still write to the sandbox.
STOPPED_TASKS_SETTLE_SECONDS = 3


def let_stopped_tasks_end(admin: AirflowClient, run_ids: list[str], timeout: float = 60) -> None:
    """Wait until no task of ``run_ids`` runs, then a little longer, so that nothing an earlier test's
    release was doing lands in the sandbox after it is reseeded for the next test."""
    deadline = time.monotonic() + timeout
    while any(
        state in ("running", "deferred", "queued", "restarting")
        for run_id in run_ids
        for state in admin.task_states(run_id).values()
    ):
        assert time.monotonic() < deadline, f"tasks of {run_ids} still run {timeout} s after"
        time.sleep(0.5)
    time.sleep(STOPPED_TASKS_SETTLE_SECONDS)


def approve(users: dict[str, AirflowClient], run_id: str, *, timeout: float = 180) -> list[str]:
    """Approve both gates, each as the first approver assigned to it; who approved, in order."""
    approved = []
    for gate in ("approval_gate.first_approval", "approval_gate.second_approval"):
        ci = users[CI_USER]
        ci.wait_for_task(run_id, gate, {"awaiting_input"}, timeout=timeout, poll=0.25)
        assigned = [u["name"] for u in ci.hitl_detail(run_id, gate)["assigned_users"]]
        approver = next(u for u in assigned if u in APPROVERS)
        users[approver].respond(run_id, gate, "Approve")
        approved.append(approver)
    return approved


def expect_api_error(call, status: int) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == status, caught.value
    return caught.value


def require_celery_stack() -> bool:
    return os.environ.get("REQUIRE_CELERY_STACK") == "1"
