"""End-to-end helpers: stacks started and stopped with timings, releases triggered and approved."""

from __future__ import annotations

import os
import time

import pytest

from airflow_stack.client import AirflowClient, ApiError
from airflow_stack.env import APPROVERS, CI_USER, Stack, passwords
from airflow_stack.sandbox_process import SandboxProcess
from airflow_stack.supervisor import Supervisor

TIMINGS: list[tuple[str, float]] = []
SHA = "0123456789abcdef0123456789abcdef01234567"  # well-formed; the sandbox's GitHub does not know it
RC_COMMITS: dict[str, str] = {}  # version -> the commit its release candidate tag points at


def release_conf(version: str = "v1.1.0", author: str = "dave", **extra) -> dict:
    """The conf CI sends for ``version``: its rc commit when the sandbox has one, else a made-up sha."""
    return {"version": version, "commit_sha": RC_COMMITS.get(version, SHA), "author": author, **extra}


def start_stack(stack: Stack) -> Supervisor:
    supervisor = Supervisor(stack)
    started = time.monotonic()
    supervisor.start()
    try:
        supervisor.wait_healthy(timeout=300)
    except BaseException:
        supervisor.stop()
        raise
    TIMINGS.append((f"{stack.executor}: start to API healthy, DAG parsed", time.monotonic() - started))
    return supervisor


def stop_stack(supervisor: Supervisor) -> None:
    started = time.monotonic()
    supervisor.stop()  # raises when any process is left
    TIMINGS.append((f"{supervisor.stack.executor}: stop, no process left", time.monotonic() - started))


def clients(stack: Stack) -> dict[str, AirflowClient]:
    """A client per user: ``ci``, the approvers, ``dave`` and ``admin``."""
    return {user: AirflowClient(stack.api_url, user, password) for user, password in passwords().items()}


def fresh_world(admin: AirflowClient, sandbox: SandboxProcess) -> None:
    """No active run left by an earlier test (max_active_runs=1 would queue ours), sandbox reseeded."""
    for run in admin.runs(states=("queued", "running")):
        admin.request("PATCH", f"/dags/{admin.dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
    sandbox.reseed()


def approve(users: dict[str, AirflowClient], run_id: str, *, timeout: float = 180) -> list[str]:
    """Approve both gates, each as the first approver assigned to it; who approved, in order."""
    approved = []
    for gate in ("approval_gate.first_approval", "approval_gate.second_approval"):
        ci = users[CI_USER]
        ci.wait_for_task(run_id, gate, {"awaiting_input"}, timeout=timeout)
        assigned = [u["id"] for u in ci.hitl_detail(run_id, gate)["assigned_users"]]
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


POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)


def celery_stack(home, database: str, queue: str, connections: dict[str, str]) -> Stack:
    """The CeleryExecutor stack of the e2e test: docker-compose.yaml's settings on this machine's services."""
    db = f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"
    return Stack.with_free_ports(
        home, executor="CeleryExecutor", database_url=db, broker_url=f"redis://{REDIS[0]}:{REDIS[1]}/0",
        result_backend=f"db+{db}", celery_queue=queue,
        connections=connections)


def celery_services_missing() -> list[str]:
    """What of PostgreSQL and Redis does not answer here, described."""
    import socket

    import psycopg2

    missing = []
    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **POSTGRES).close()
    except psycopg2.Error as exc:
        missing.append(f"PostgreSQL at {POSTGRES['host']}:{POSTGRES['port']} (user postgres, trust auth): "
                       f"{str(exc).strip()}")
    try:
        with socket.create_connection(REDIS, timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                missing.append(f"Redis at {REDIS[0]}:{REDIS[1]}: no PONG")
    except OSError as exc:
        missing.append(f"Redis at {REDIS[0]}:{REDIS[1]}: {exc}")
    return missing


def postgres_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", **POSTGRES)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()
