"""The gate holds where production changes, on the real engine: forged task states open nothing.

A checkpoint task is not a lock: these runs mark the gate's tasks successful by hand (as the
admin, the only role that may), reject and re-approve after a clear, mark a refused emergency
flag past its refusal, and edit the configuration mid-release; production never changes on the
strength of any of it.
"""

from __future__ import annotations

import json

import pytest
from _e2e import approve, release_conf, reparsed
from _notices import record_objects

from airflow_stack.env import CI_USER, RELEASE_MANAGER

pytestmark = pytest.mark.e2e

FIRST = "approval_gate.first_approval"
BACKUP = ("backup.backup_stack", "backup.backup_tables", "backup.tag_amplify")
RELEASE_TIMEOUT = 240


def _sections(sandbox, stack_config, run_id: str) -> dict[str, dict]:
    objects = record_objects(sandbox, str(stack_config.path), "v1.1.0", run_id)
    return {
        key.rsplit("/", 1)[1].removesuffix(".json"): json.loads(v)
        for key, v in objects.items()
        if key.endswith(".json")
    }


def _mark(admin, run_id: str, task_id: str, state: str = "success") -> None:
    admin.request(
        "PATCH", f"/dags/{admin.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": state}
    )


def test_a_gate_marked_open_by_hand_changes_nothing_and_is_recorded(local, sandbox, stack_config):
    ci, admin = local[CI_USER], local["admin"]
    run_id = ci.trigger(release_conf())["dag_run_id"]
    ci.wait_for_task(run_id, FIRST, {"awaiting_input"}, timeout=RELEASE_TIMEOUT, poll=0.25)
    # The author and CI's account may not mark anything (FAB: 403); the admin may, and does: once
    # as one PATCH (audit-logged by Airflow), once through the bulk PATCH (which Airflow logs nothing
    # for: the hand-marks listener does). The DAG is paused between the two marks, so the scheduler
    # does not start verify_gate on the first mark alone (it ran, and failed, before the second
    # landed, leaving the backups upstream_failed rather than refusing on their own).
    admin.pause()
    _mark(admin, run_id, "approval_gate.wait_timer")
    admin.request(
        "PATCH",
        f"/dags/{admin.dag_id}/dagRuns/{run_id}/taskInstances",
        json={
            "actions": [
                {
                    "action": "update",
                    "entities": [{"task_id": "approval_gate.verify_gate", "new_state": "success"}],
                }
            ]
        },
    )
    admin.unpause()
    for task_id in BACKUP:
        ci.wait_for_task(run_id, task_id, {"failed"}, timeout=RELEASE_TIMEOUT)

    traffic = sandbox.control("GET", "/traffic")
    assert traffic["weights"] == {"blue": 100, "green": 0}, traffic
    states = ci.task_states(run_id)
    assert states.get("deploy_infrastructure.execute_change_set") in (None, "upstream_failed"), states
    sections = _sections(sandbox, stack_config, run_id)
    assert "backup" not in sections, "a backup was written by a task that could not prove the gate"
    proof = sections["proof.backup.backup_stack"]
    assert proof["proven"] is False
    assert any("no Approve answer in Airflow's records" in p for p in proof["problems"]), proof
    assert any("patch_task_instance by admin" in p for p in proof["problems"]), proof
    assert any("hand_task_state by unknown" in p and "verify_gate" in p for p in proof["problems"]), proof
    marked = {c["task_id"] for c in sections["hand_changes"]["changes"]}
    assert {"approval_gate.wait_timer", "approval_gate.verify_gate"} <= marked
    texts = [m["text"] for m in sandbox.control("GET", "/recorded/slack")]
    assert any("approval_gate.wait_timer changed by hand by admin" in t for t in texts)


def test_a_rejected_release_stays_rejected_when_cleared_and_re_approved(local, sandbox, stack_config):
    ci = local[CI_USER]
    run_id = ci.trigger(release_conf())["dag_run_id"]
    ci.wait_for_task(run_id, FIRST, {"awaiting_input"}, timeout=RELEASE_TIMEOUT, poll=0.25)
    local["alice"].respond(run_id, FIRST, "Reject")
    ci.wait_for_run(run_id, {"failed"}, timeout=RELEASE_TIMEOUT)
    # A release manager clears the approval group: the request is not made again.
    local[RELEASE_MANAGER].clear(run_id, [FIRST], include_downstream=True)
    ci.wait_for_run(run_id, {"failed"}, timeout=RELEASE_TIMEOUT)
    tries = {ti["task_id"]: ti["try_number"] for ti in ci.task_instances(run_id)}
    assert tries[FIRST] == 2
    assert "stays rejected through clears" in ci.task_log(run_id, FIRST, 2)
    assert ci.hitl_detail(run_id, FIRST)["chosen_options"] == ["Reject"]  # no second request
    states = ci.task_states(run_id)
    assert all(states.get(t) != "success" for t in BACKUP), states
    assert sandbox.control("GET", "/traffic")["weights"] == {"blue": 100, "green": 0}


def test_a_configuration_edited_during_a_release_does_not_change_it(local, sandbox, stack_config):
    ci = local[CI_USER]
    run_id = ci.trigger(release_conf())["dag_run_id"]
    ci.wait_for_task(run_id, FIRST, {"awaiting_input"}, timeout=RELEASE_TIMEOUT, poll=0.25)
    added = {"name": "added_mid_release", "path": "/no-such-page", "expect_status": 200}
    from deployment.config import load_config

    configured = load_config(str(stack_config.path)).smoke_tests.checks
    checks = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in configured]
    with stack_config.overridden(smoke_tests={"checks": [*checks, added]}):
        approve(local, run_id)
        run = ci.wait_for_run(run_id, {"success", "failed"}, timeout=RELEASE_TIMEOUT)
    reparsed(local["admin"])  # the shape of the configuration on disk for the tests after this one
    assert run["state"] == "success", ci.diagnose(run_id)
    sections = _sections(sandbox, stack_config, run_id)
    assert "added_mid_release" not in sections["smoke_tests"]["checks"]
    assert added["name"] not in json.dumps(sections["config"]["settings"]["smoke_tests"])


def test_an_emergency_flag_refused_at_the_start_and_marked_past_changes_nothing(local, sandbox, stack_config):
    # dave may trigger but is not in emergency_users: record_release refuses his force_deploy.
    dave, admin = local["dave"], local["admin"]
    emergency = {"force_deploy": True, "reason": "marked past the refusal by hand"}
    run_id = dave.trigger(release_conf(emergency=emergency))["dag_run_id"]
    dave.wait_for_task(run_id, "record_release", {"failed"}, timeout=RELEASE_TIMEOUT)
    # Once the run has failed, the admin marks the refusal successful: Airflow then clears the tasks
    # after it and runs them (the skipped staging checks, the plan, both approval requests), and
    # both approvals are given; the gate's proof still refuses.
    dave.wait_for_run(run_id, {"failed"}, timeout=RELEASE_TIMEOUT)
    _mark(admin, run_id, "record_release")
    approve(local, run_id)
    dave.wait_for_run(run_id, {"failed"}, timeout=RELEASE_TIMEOUT)

    states = dave.task_states(run_id)
    assert states["approval_gate.verify_gate"] == "failed", states
    assert all(states.get(t) in (None, "upstream_failed") for t in BACKUP), states
    assert sandbox.control("GET", "/traffic")["weights"] == {"blue": 100, "green": 0}
    sections = _sections(sandbox, stack_config, run_id)
    assert "backup" not in sections
    problems = sections["proof.approval_gate.verify_gate"]["problems"]
    assert any("emergency flags ['force_deploy'] need a run triggered by one of" in p for p in problems), (
        problems
    )
    assert any("patch_task_instance by admin" in p and "record_release" in p for p in problems), problems
