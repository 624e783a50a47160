"""The approval gate: who may not approve, one deadline, answers read from Airflow, re-verification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from _release import AUTHOR, COMMIT, RUN_ID, VERSION
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskAwaitingInput, TaskDeferred

from deployment.gate import approval, approvers, timers
from deployment.gate.approval import ReleaseApprovalOperator
from deployment.gate.approvers import SECTION, SOURCE, ApprovalRefused

PARAMS = {"version": VERSION, "commit_sha": COMMIT, "author": AUTHOR}
AT = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
PLAN = "# Deployment plan: v1.1.0\n"
TASKS = ["first_approval", "second_approval"]


def _context(triggered_by: str | None = "ci", params=PARAMS):
    ti = SimpleNamespace(id="0190a0a0-0000-7000-8000-000000000001", try_number=1)
    return {
        "params": dict(params),
        "run_id": RUN_ID,
        "ti": ti,
        "task_instance": ti,
        "dag_run": SimpleNamespace(triggering_user_name=triggered_by),
    }


def _operator(cfg, number=1):
    return ReleaseApprovalOperator(
        task_id=TASKS[number - 1],
        approval_number=number,
        prior_approval_task_ids=TASKS[: number - 1],
        response_timeout=cfg.timings.approval_timeout,
    )


@pytest.fixture
def hitl(monkeypatch):
    """What the operator writes as HITL requests (the Execution API is not running here)."""
    state = {"requests": []}
    monkeypatch.setattr(
        "airflow.providers.standard.operators.hitl.upsert_hitl_detail",
        lambda **kw: state["requests"].append(kw),
    )
    return state


@pytest.fixture
def planned(record, github, airflow_api):
    record.write_text("plan", PLAN, "md")
    return record


def _event(user="bob", option="Approve"):
    # What Airflow resumes the task with: its API server builds it from the HITL detail the user wrote
    # (under FAB the id is the user's numeric id, the name the username).
    from _airflow_api import USER_IDS

    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_at": AT,
        "responded_by_user": {"id": USER_IDS[user], "name": user},
    }


# ------------------------------------------------------------------ identities
def test_author_login_maps_to_an_airflow_user_case_insensitively(cfg):
    who = approvers.excluded_users(cfg, "ALICE", None, None)
    assert who["excluded"] == ["alice"]


def test_unmapped_author_is_refused_unless_allowed(cfg):
    with pytest.raises(ApprovalRefused, match="'mallory' is not a GitHub login listed under people"):
        approvers.excluded_users(cfg, "mallory", None, None)
    allowing = cfg.model_copy(
        update={"approvals": cfg.approvals.model_copy(update={"allow_unmapped_author": True})}
    )
    assert approvers.excluded_users(allowing, "mallory", None, None)["excluded"] == ["mallory"]


def test_triggering_person_and_rc_creator_are_excluded_but_not_the_ci_robot(cfg):
    who = approvers.excluded_users(cfg, "dave", "Bob", "CAROL")
    assert who["excluded"] == ["bob", "carol", "dave"]
    assert who["reasons"]["carol"] == ["created the rc release (CAROL)"]
    assert approvers.excluded_users(cfg, "dave", "ci", None)["excluded"] == ["dave"]


def test_rc_creator_comes_from_github(cfg, github):
    github["emulator"].add_release("rc-1.2.0", prerelease=True, author="Carol")
    assert approvers.rc_creator(cfg, "v1.2.0") == "Carol"
    assert approvers.rc_creator(cfg, "v9.9.9") is None


# --------------------------------------------------------------------- requests
def test_first_request_sets_the_gate_deadline_and_shows_it(cfg, hitl, planned):
    with pytest.raises(TaskAwaitingInput) as parked:
        _operator(cfg).execute(_context(triggered_by="carol"))
    (request,) = hitl["requests"]
    # alice wrote it, carol triggered it; Airflow checks answers by the auth manager's id
    assert request["assigned_users"] == [{"id": "3", "name": "bob"}]
    gate = planned.read(SECTION)["gate"]
    deadline = datetime.fromisoformat(gate["deadline"])
    assert deadline - datetime.fromisoformat(gate["first_requested_at"]) == cfg.timings.approval_timeout
    assert f"Deadline for the whole gate: {gate['deadline']}" in request["body"]
    assert parked.value.timeout <= cfg.timings.approval_timeout
    entry = planned.read(SECTION)["first_approval"]
    assert entry["decision"] == "awaiting" and entry["plan_digest"] == approvers.plan_digest(PLAN)


def test_second_request_gets_what_is_left_of_the_one_deadline(cfg, hitl, planned):
    first_request = datetime.now(UTC) - timedelta(seconds=200)
    gate = {
        **approvers.excluded_users(cfg, AUTHOR, "ci", None),
        "first_requested_at": first_request.isoformat(),
        "deadline": (first_request + cfg.timings.approval_timeout).isoformat(),
    }
    planned.write(
        SECTION,
        {
            "gate": gate,
            "first_approval": {"decision": "approved", "source": SOURCE, "user_id": "3", "user_name": "bob"},
        },
    )
    with pytest.raises(TaskAwaitingInput) as parked:
        _operator(cfg, 2).execute(_context())
    assert parked.value.timeout <= cfg.timings.approval_timeout - timedelta(seconds=200)
    assert [u["name"] for u in hitl["requests"][0]["assigned_users"]] == ["carol"]


def test_no_request_after_the_deadline(cfg, hitl, planned):
    past = datetime.now(UTC) - timedelta(seconds=1)
    planned.write(
        SECTION,
        {
            "gate": {
                **approvers.excluded_users(cfg, AUTHOR, None, None),
                "first_requested_at": past.isoformat(),
                "deadline": past.isoformat(),
            }
        },
    )
    with pytest.raises(ApprovalRefused, match="deadline .* has passed"):
        _operator(cfg).execute(_context())
    assert hitl["requests"] == []


def test_an_earlier_approval_marked_by_hand_does_not_count(cfg, hitl, planned):
    with pytest.raises(TaskAwaitingInput):
        _operator(cfg).execute(_context())  # first_approval: "awaiting" in the record, then marked success
    with pytest.raises(ApprovalRefused, match="did not all record an approver read from Airflow"):
        _operator(cfg, 2).execute(_context())


# ---------------------------------------------------------------------- answers
def test_the_answer_airflow_resumed_with_is_recorded_for_this_plan(cfg, hitl, planned):
    with pytest.raises(TaskAwaitingInput):
        _operator(cfg).execute(_context())
    _operator(cfg).execute_complete(_context(), _event("bob"))
    entry = planned.read(SECTION)["first_approval"]
    assert (entry["decision"], entry["user_id"], entry["user_name"]) == ("approved", "3", "bob")
    assert entry["source"] == SOURCE
    assert entry["plan_digest"] == approvers.plan_digest(PLAN) and entry["run_id"] == RUN_ID


def test_rejection_fails_the_run(cfg, hitl, planned):
    with pytest.raises(
        ApprovalRefused, match="carol rejected release v1.1.0 .approval 1.; nothing was changed"
    ):
        _operator(cfg).execute_complete(_context(), _event("carol", "Reject"))
    assert planned.read(SECTION)["first_approval"]["decision"] == "rejected"


def test_a_rejected_release_stays_rejected_when_its_approvals_are_cleared(cfg, hitl, planned):
    with pytest.raises(ApprovalRefused, match="rejected"):
        _operator(cfg).execute_complete(_context(), _event("carol", "Reject"))
    with pytest.raises(ApprovalRefused, match="stays rejected through clears; trigger a new run"):
        _operator(cfg).execute(_context())  # the group cleared: the request is not made again
    assert hitl["requests"] == []


def test_an_approver_unknown_to_airflow_is_refused_before_any_request(cfg, hitl, planned, airflow_api):
    del airflow_api.users["bob"]
    with pytest.raises(ApprovalRefused, match=r"approvers \['bob'\] are not active Airflow users"):
        _operator(cfg).execute(_context(triggered_by="carol"))
    assert hitl["requests"] == []


def test_an_excluded_answer_is_refused_even_if_airflow_let_it_through(cfg, hitl, planned):
    with pytest.raises(ApprovalRefused, match="came from 'alice', who may not approve"):
        _operator(cfg).execute_complete(_context(), _event("alice"))
    assert planned.read(SECTION)["first_approval"]["decision"] == "refused"


def test_an_empty_event_is_a_clear_error_not_a_rejection(cfg, hitl, planned):
    with pytest.raises(AirflowException, match="has no chosen_options, responded_by_user"):
        _operator(cfg).execute_complete(_context(), {})
    assert (planned.read(SECTION) or {}).get("first_approval") is None
    assert approvers.REJECTED_KEY not in (planned.read(SECTION) or {})


def test_timeout_is_a_rejection(cfg, hitl, planned):
    event = {"error": "The Human-in-the-loop response timeout has passed.", "error_type": "timeout"}
    with pytest.raises(ApprovalRefused, match="before the gate's deadline"):
        _operator(cfg).execute_complete(_context(), event)
    assert planned.read(SECTION)["first_approval"]["decision"] == "timed_out"


def test_rejection_and_failure_are_final(cfg):
    op = _operator(cfg)
    assert op.retries == 0 and op.fail_on_reject is True
    assert issubclass(ApprovalRefused, AirflowFailException)


# ---------------------------------------------------------------- verification
def _section(cfg, *answers, digest=None, run_id=RUN_ID, deadline=AT + timedelta(hours=48)):
    gate = {**approvers.excluded_users(cfg, AUTHOR, "ci", None), "deadline": deadline.isoformat()}
    section = {"gate": gate}
    for task_id, (user, at) in zip(TASKS, answers, strict=False):
        section[task_id] = {
            "decision": "approved",
            "source": SOURCE,
            "user_id": {"bob": "3", "carol": "4", "alice": "2"}.get(user, user),
            "user_name": user,
            "responded_at": at.isoformat(),
            "run_id": run_id,
            "plan_digest": digest or approvers.plan_digest(PLAN),
        }
    return section


def test_two_eligible_answers_from_airflow_open_the_gate(cfg):
    later = AT + timedelta(minutes=5)
    result = approval.verify_gate(
        cfg, _section(cfg, ("bob", AT), ("carol", later)), TASKS, RUN_ID, approvers.plan_digest(PLAN)
    )
    assert [a["name"] for a in result["approvers"]] == ["bob", "carol"]
    assert result["wait_until"] == (later + timedelta(seconds=cfg.timings.wait_timer_seconds)).isoformat()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["second_approval"].update(decision="awaiting", source=None), "marked by hand"),
        (lambda s: s["second_approval"].pop("source"), "marked by hand"),
        (
            lambda s: s["second_approval"].update(user_id="3", user_name="bob"),
            "the same person approved twice",
        ),
        (lambda s: s["second_approval"].update(user_id="2", user_name="Alice"), "may not approve"),
        (lambda s: s["second_approval"].update(user_id="9", user_name="mallory"), "not configured approvers"),
        (lambda s: s["second_approval"].update(plan_digest="0" * 64), "approved another plan"),
        (lambda s: s["second_approval"].update(run_id="other"), "was approved in run 'other'"),
        (
            lambda s: s["second_approval"].update(responded_at=(AT + timedelta(hours=49)).isoformat()),
            "after the deadline",
        ),
        (lambda s: s.pop("gate"), "no approval request was ever made"),
    ],
)
def test_the_gate_stays_shut(cfg, change, problem):
    section = _section(cfg, ("bob", AT), ("carol", AT))
    change(section)
    with pytest.raises(ApprovalRefused, match=problem):
        approval.verify_gate(cfg, section, TASKS, RUN_ID, approvers.plan_digest(PLAN))


def test_release_notes_name_the_approvers_from_the_recorded_shape(cfg):
    from deployment.notifications.messages import approver_names

    section = _section(cfg, ("bob", AT), ("carol", AT))
    section["result"] = approval.verify_gate(cfg, section, TASKS, RUN_ID, approvers.plan_digest(PLAN))
    assert approver_names(section) == ["bob", "carol"]


# ------------------------------------------------------------------ the wait timer
def test_a_closed_cancellation_window_ends_the_wait_timer_without_deferring():
    closed = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert timers.WaitTimerSensor(task_id="wait_timer", target_time=closed).execute({}) is None


def test_an_open_cancellation_window_defers_until_it_closes():
    closes = datetime.now(UTC) + timedelta(seconds=30)
    with pytest.raises(TaskDeferred) as deferred:
        timers.WaitTimerSensor(task_id="wait_timer", target_time=closes.isoformat()).execute({})
    assert deferred.value.trigger.moment == closes and deferred.value.method_name == "execute_complete"
