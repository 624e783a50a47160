"""Who may do what, on the real engine (FAB auth manager, the roles of deployment.gate.roles).

One release, stopped at its first approval: the people who trigger releases (``ci``, ``dave``)
and the approvers may not change a task's state, clear, or write an XCom of it; an approver
answers the approval but starts no release; the release manager (``erin``) clears; the
pipeline's reader reads approvals and the audit log and writes nothing. No release runs to its
end: the run is left waiting for its second approval (the next test's fresh world stops it).
"""

from __future__ import annotations

import pytest
from _e2e import expect_api_error, fresh_world, release_conf

from airflow_stack.client import AirflowClient
from airflow_stack.env import APPROVERS, CI_USER, DEVELOPER, EMERGENCY_USERS, PIPELINE_USER, RELEASE_MANAGER

pytestmark = pytest.mark.e2e

FIRST = "approval_gate.first_approval"
ROLLBACK_DAG = "rollback_production"


def _writes(client: AirflowClient, run_id: str) -> dict[str, object]:
    """Each write a release's task instance may suffer, as a call that raises ApiError when refused."""
    ti = f"/dags/{client.dag_id}/dagRuns/{run_id}/taskInstances/{FIRST}"
    return {
        "mark the task's state": lambda: client.request("PATCH", ti, json={"new_state": "success"}),
        "clear the task": lambda: client.request(
            "POST",
            f"/dags/{client.dag_id}/clearTaskInstances",
            json={"dry_run": True, "dag_run_id": run_id, "task_ids": [FIRST]},
        ),
        "create an XCom": lambda: client.request(
            "POST", f"{ti}/xcomEntries", json={"key": "approved", "value": "yes"}
        ),
        "edit an XCom": lambda: client.request(
            "PATCH", f"{ti}/xcomEntries/return_value", json={"value": "yes"}
        ),
    }


def _refused(calls: dict[str, object]) -> None:
    for call in calls.values():
        expect_api_error(call, 403)


def test_each_role_may_do_its_part_and_nothing_more(local_clients, sandbox):
    admin, ci, dave = local_clients["admin"], local_clients[CI_USER], local_clients[DEVELOPER]
    erin, pipeline = local_clients[RELEASE_MANAGER], local_clients[PIPELINE_USER]
    fresh_world(admin, sandbox)

    # Triggering: the triggerers may, nobody else (dave's run waits behind ci's and is stopped).
    run_id = ci.trigger(release_conf())["dag_run_id"]
    queued = dave.trigger(release_conf(), run_id=f"{run_id}__dave")["dag_run_id"]
    admin.request("PATCH", f"/dags/{admin.dag_id}/dagRuns/{queued}", json={"state": "failed"})
    # carol: an approver who is not an emergency user (alice and bob may also trigger, EmergencyReleaser)
    plain_approver = next(u for u in APPROVERS if u not in EMERGENCY_USERS)
    for refused in (local_clients[plain_approver], erin, pipeline):
        expect_api_error(lambda who=refused: who.trigger(release_conf()), 403)

    ci.wait_for_task(run_id, FIRST, {"awaiting_input"}, timeout=240, poll=0.5)

    # Nobody but the release manager changes a task instance; no role writes an XCom.
    approver = local_clients[next(u["name"] for u in ci.hitl_detail(run_id, FIRST)["assigned_users"])]
    for client in (ci, dave, approver, pipeline):
        _refused(_writes(client, run_id))
    _refused({k: v for k, v in _writes(erin, run_id).items() if "XCom" in k})
    cleared = erin.request(
        "POST",
        f"/dags/{erin.dag_id}/clearTaskInstances",
        json={"dry_run": True, "dag_run_id": run_id, "task_ids": [FIRST], "only_failed": False},
    )["task_instances"]
    assert [ti["task_id"] for ti in cleared] == [FIRST]

    # Approvals: only approvers answer (the triggerers, the manager and the reader get 403 from FAB).
    for client in (ci, dave, erin, pipeline):
        expect_api_error(lambda who=client: who.respond(run_id, FIRST, "Approve"), 403)
    answered = approver.respond(run_id, FIRST, "Approve")
    assert answered["chosen_options"] == ["Approve"], answered

    # The manager may start a manual rollback (authorized: its conf is refused, 400), the others not.
    rollback = {"logical_date": None, "conf": {"reason": "x"}}
    error = expect_api_error(
        lambda: erin.request("POST", f"/dags/{ROLLBACK_DAG}/dagRuns", json=rollback), 400
    )
    assert "reason" in str(error.detail)
    for client in (ci, local_clients[plain_approver], pipeline):
        expect_api_error(
            lambda who=client: who.request("POST", f"/dags/{ROLLBACK_DAG}/dagRuns", json=rollback), 403
        )

    # The pipeline's reader reads runs, task states, approvals and the audit log; pauses nothing.
    assert pipeline.hitl_detail(run_id, FIRST)["response_received"] is True
    # (the answer re-queues the task: any state between the answer and its end)
    assert pipeline.task_instance(run_id, FIRST)["state"] in (
        "awaiting_input",
        "scheduled",
        "queued",
        "running",
        "success",
    )
    events = pipeline.request("GET", "/eventLogs", params={"dag_id": pipeline.dag_id, "limit": 100})
    assert any(e["event"] == "trigger_dag_run" and e["owner"] == CI_USER for e in events["event_logs"]), (
        events
    )
    expect_api_error(
        lambda: pipeline.request("PATCH", f"/dags/{pipeline.dag_id}", json={"is_paused": True}), 403
    )
    expect_api_error(lambda: pipeline.request("GET", "/connections"), 403)
    log = f"/dags/{pipeline.dag_id}/dagRuns/{run_id}/taskInstances/{FIRST}/logs/1"
    expect_api_error(lambda: pipeline.request("GET", log), 403)
