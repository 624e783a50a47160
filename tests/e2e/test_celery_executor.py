"""deploy_production on the multi-node shape: CeleryExecutor, PostgreSQL, Redis, a Celery worker.

Runs this machine's PostgreSQL (127.0.0.1:5432, user postgres) and Redis
(127.0.0.1:6379); the test creates its own database and drops it, and uses a
queue of its own. Without them it is skipped, unless REQUIRE_CELERY_STACK=1 (CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _e2e import (
    approve,
    fresh_world,
    release_conf,
    require_celery_stack,
    start_stack,
    stop_stack,
)

from airflow_stack.client import AirflowClient, stack_clients
from airflow_stack.env import CI_USER, Stack
from airflow_stack.services import celery_services_missing, celery_stack, scratch_database

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def celery(tmp_path_factory, sandbox) -> Iterator[tuple[Stack, dict[str, AirflowClient]]]:
    if missing := celery_services_missing():
        message = "the CeleryExecutor e2e test needs " + "; ".join(missing)
        if require_celery_stack():
            pytest.fail(message + " (REQUIRE_CELERY_STACK=1)")
        pytest.skip(message)
    with scratch_database("airflow_e2e") as (database, token):
        stack = celery_stack(
            tmp_path_factory.mktemp("airflow-celery"),
            database,
            f"e2e-{token}",
            sandbox.connections(),
        )
        supervisor = start_stack(stack)
        try:
            users = stack_clients(stack)
            fresh_world(users["admin"], sandbox)
            yield stack, users
        finally:
            stop_stack(supervisor)


def test_release_approved_by_two_users_succeeds_on_celery(celery):
    stack, users = celery
    ci = users[CI_USER]
    run_id = ci.trigger(release_conf())["dag_run_id"]
    approvers = approve(users, run_id)
    assert len(set(approvers)) == 2
    run = ci.wait_for_run(run_id, {"success"}, timeout=480)
    assert run["state"] == "success"
    ran = [ti for ti in ci.task_instances(run_id) if ti["state"] == "success"]
    assert ran and {ti["queue"] for ti in ran} == {stack.celery_queue}, "tasks must go through Celery"
    worker_log = (stack.logs_dir / "celery-worker.log").read_text()
    assert "record_release" in worker_log, "the Celery worker never received record_release"
