"""The proof at the point of change: read from Airflow's records, never from task states or XCom."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from _release import AUTHOR, COMMIT, RUN_ID, VERSION

from deployment.gate.proof import (
    CLEARS,
    HAND_CHANGES,
    GateNotProven,
    classify_hand_changes,
    prove_gate,
    prove_rollback_requester,
)

PARAMS = {"version": VERSION, "commit_sha": COMMIT, "author": AUTHOR}
PLAN_MD = f"# Deployment plan: {VERSION}\n\n- Commit: `{COMMIT}`\n"
FIRST, SECOND = "approval_gate.first_approval", "approval_gate.second_approval"


def _context(task_id="backup.backup_stack", triggered_by="ci", params=PARAMS, dag_id="deploy_production"):
    return {
        "params": dict(params),
        "run_id": RUN_ID,
        "ti": SimpleNamespace(dag_id=dag_id, task_id=task_id, try_number=1),
        "dag_run": SimpleNamespace(triggering_user_name=triggered_by, run_after=None),
    }


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def approved(record, airflow_api, cfg):
    """A plan shown to bob and carol, both answered Approve long enough ago for the wait timer."""
    record.write_text("plan", PLAN_MD, "md")
    record.write(
        "plan",
        {"release": {"version": VERSION, "commit_sha": COMMIT}, "artifact": {"commit_sha": COMMIT}},
    )
    at = _ago(cfg.timings.wait_timer_seconds + 5)
    airflow_api.answer(FIRST, "bob", body="**Approval 1 of 2.**\n\n---\n\n" + PLAN_MD, at=at)
    airflow_api.answer(SECOND, "carol", body="**Approval 2 of 2.**\n\n---\n\n" + PLAN_MD, at=at)
    return airflow_api


def test_two_approvals_in_airflows_records_prove_the_gate(record, approved):
    proof = prove_gate(_context())
    assert proof["proven"] and [a["name"] for a in proof["approvers"]] == ["bob", "carol"]
    assert record.read("proof.backup.backup_stack")["proven"] is True
    assert "/api/v2/eventLogs" in approved.requests  # hand changes looked for, every time


def test_the_audit_log_is_asked_only_for_the_events_the_proof_judges(record, approved):
    approved.event_logs = [
        {"event_log_id": n, "event": event, "owner": "airflow", "when": _ago(9), "task_id": "record_release"}
        for n, event in enumerate(["running", "success"] * 60, start=1)
    ]

    assert prove_gate(_context())["proven"]

    [query] = approved.queries["/api/v2/eventLogs"]
    assert sorted(query["included_events"]) == sorted(HAND_CHANGES | CLEARS)


def test_airflows_records_are_read_at_once(record, approved):
    approved.rendezvous = threading.Barrier(3, timeout=10)  # the audit log and both approvals' records

    assert prove_gate(_context())["proven"]

    assert not approved.rendezvous.broken  # each read waited for the other two, so none came alone


def test_no_answers_in_airflow_prove_nothing_whatever_the_task_states_say(record, airflow_api):
    record.write_text("plan", PLAN_MD, "md")
    with pytest.raises(GateNotProven, match="has no Approve answer in Airflow's records"):
        prove_gate(_context())
    assert record.read("proof.backup.backup_stack")["proven"] is False


def test_a_rejection_in_an_earlier_try_sticks(record, approved, cfg):
    approved.hitl[FIRST].insert(0, {**approved.hitl[FIRST][0], "chosen_options": ["Reject"]})
    approved.hitl[FIRST][1]["task_instance"]["try_number"] = 2
    with pytest.raises(GateNotProven, match="was rejected by bob .* stays rejected"):
        prove_gate(_context())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda api: api.answer(SECOND, "bob", body=PLAN_MD, at=_ago(60)), "same person"),
        (lambda api: api.answer(SECOND, "alice", body=PLAN_MD, at=_ago(60)), "'alice', who may not approve"),
        (lambda api: api.answer(SECOND, "erin", body=PLAN_MD, at=_ago(60)), "not a configured approver"),
        (lambda api: api.answer(SECOND, "carol", body="another plan", at=_ago(60)), "did not show the plan"),
        (lambda api: api.answer(SECOND, "carol", body=PLAN_MD, at=_ago(0)), "the wait timer runs until"),
    ],
)
def test_the_gate_is_not_proven(record, approved, change, problem):
    change(approved)
    with pytest.raises(GateNotProven, match=problem):
        prove_gate(_context())


def test_the_triggering_person_may_not_have_approved(record, approved):
    with pytest.raises(GateNotProven, match="'carol', who may not approve: triggered the run"):
        prove_gate(_context(triggered_by="carol"))


def test_an_emergency_flag_needs_an_emergency_user_as_the_authenticated_trigger(record, approved):
    params = {**PARAMS, "emergency": {"force_deploy": True, "reason": "payments are down right now"}}
    with pytest.raises(GateNotProven, match="emergency flags"):
        prove_gate(_context(params=params, triggered_by="ci"))


def test_a_plan_for_another_commit_is_not_proven(record, approved):
    record.write("plan", {"release": {"version": VERSION, "commit_sha": "f" * 40}, "artifact": {}})
    with pytest.raises(GateNotProven, match="release commit is f{40}"):
        prove_gate(_context())


def test_a_task_marked_by_hand_blocks_and_a_clear_is_only_recorded(record, approved):
    approved.event_logs = [
        {"event_log_id": 7, "event": "post_clear_task_instances", "owner": "erin", "when": _ago(9)},
        {
            "event_log_id": 8,
            "event": "patch_task_instance",
            "owner": "admin",
            "when": _ago(5),
            "task_id": "approval_gate.verify_gate",
            "extra": '{"new_state": "success"}',
        },
    ]
    with pytest.raises(GateNotProven, match="patch_task_instance by admin .* on approval_gate.verify_gate"):
        prove_gate(_context())
    changes = record.read("hand_changes")
    assert [c["id"] for c in changes["changes"]] == [8] and [c["id"] for c in changes["clears"]] == [7]


def test_a_cancel_or_a_note_is_recorded_not_blocking():
    blocking, recorded = classify_hand_changes(
        [
            {"event_log_id": 1, "event": "patch_task_instance", "extra": '{"new_state": "failed"}'},
            {
                "event_log_id": 2,
                "event": "patch_dag_run",
                "extra": '{"note": "watching", "update_mask": "note"}',
            },
            {"event_log_id": 3, "event": "create_xcom_entry", "extra": '{"key": "return_value"}'},
        ]
    )
    assert [c["id"] for c in blocking] == [3] and [c["id"] for c in recorded] == [1, 2]


def test_a_manual_rollback_needs_a_release_manager_as_the_authenticated_trigger(cfg):
    context = _context(
        task_id="restore_traffic", triggered_by="dave", params={}, dag_id="rollback_production"
    )
    with pytest.raises(GateNotProven, match="triggered by dave; only release_managers and emergency_users"):
        prove_rollback_requester(context)
    prove_rollback_requester({**context, "dag_run": SimpleNamespace(triggering_user_name="erin")})
    prove_rollback_requester(_context(task_id="rollback.restore_traffic", triggered_by="dave"))


def test_a_state_set_by_hand_in_bulk_blocks_like_a_single_patch(record, approved):
    approved.event_logs = [
        {
            "event_log_id": 9,
            "event": "hand_task_state",
            "owner": "unknown (a bulk change: Airflow logs no user)",
            "when": _ago(3),
            "task_id": "approval_gate.verify_gate",
            "extra": '{"new_state": "success"}',
        }
    ]
    with pytest.raises(GateNotProven, match="hand_task_state by unknown .* on approval_gate.verify_gate"):
        prove_gate(_context())


def test_a_resumption_of_the_proven_try_reuses_its_proof_and_a_retry_proves_again(record, approved):
    first = prove_gate(_context())
    asked = len(approved.requests)
    assert prove_gate(_context()) == first and len(approved.requests) == asked  # resumed: no API call
    retry = _context()
    retry["ti"].try_number = 2
    assert prove_gate(retry)["try_number"] == 2 and len(approved.requests) > asked
