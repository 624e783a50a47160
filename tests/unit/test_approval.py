"""The approval operator: who may answer, what each answer does, and the record it leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _release import AUTHOR, COMMIT, RUN_ID, VERSION
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput

from deployment import approval
from deployment.approval import ApprovalRefused, ReleaseApprovalOperator

PARAMS = {"version": VERSION, "commit_sha": COMMIT, "author": AUTHOR}
AT = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


def _answer(user: str | None, option: str = "Approve", at: datetime = AT) -> dict:
    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_at": at,
        "responded_by_user": {"id": user, "name": user.title()} if user else None,
    }


class FakeTI:
    def __init__(self, xcoms: dict[str, dict] | None = None) -> None:
        self.id = "0190a0a0-0000-7000-8000-000000000001"
        self.xcoms = xcoms or {}

    def xcom_pull(self, task_ids, key="return_value"):
        if isinstance(task_ids, str):
            return self.xcoms.get(task_ids)
        return [self.xcoms.get(t) for t in task_ids]


def _context(xcoms=None, params=PARAMS):
    ti = FakeTI(xcoms)
    return {"params": dict(params), "run_id": RUN_ID, "ti": ti, "task_instance": ti}


def _operator(cfg, number=1, prior=()):
    return ReleaseApprovalOperator(
        task_id=("first_approval", "second_approval")[number - 1],
        approval_number=number,
        prior_approval_task_ids=list(prior),
        response_timeout=cfg.timings.approval_timeout,
    )


@pytest.fixture
def hitl_requests(monkeypatch):
    """What the operator would write as the HITL request (the Execution API is not running here)."""
    requests = []
    monkeypatch.setattr(
        "airflow.providers.standard.operators.hitl.upsert_hitl_detail", lambda **kw: requests.append(kw)
    )
    return requests


@pytest.fixture
def planned(record):
    record.write_text("plan", "# Deployment plan: v1.1.0\n", "md")
    return record


def test_eligible_approvers_exclude_author_and_earlier_approvers(cfg):
    assert [a.id for a in approval.eligible_approvers(cfg, "alice", [])] == ["bob", "carol"]
    assert [a.id for a in approval.eligible_approvers(cfg, "alice", ["bob"])] == ["carol"]
    assert [a.id for a in approval.eligible_approvers(cfg, "dave", ["bob"])] == ["alice", "carol"]


def test_first_request_assigns_everyone_but_the_author(cfg, hitl_requests, planned):
    op = _operator(cfg)
    with pytest.raises(TaskAwaitingInput) as parked:
        op.execute(_context())
    assert parked.value.timeout == timedelta(seconds=cfg.timings.approval_timeout_seconds)
    (request,) = hitl_requests
    assert request["assigned_users"] == [
        {"id": "bob", "name": "Bob Okafor (DevOps lead)"},
        {"id": "carol", "name": "Carol Diaz (Product manager)"},
    ]
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] is None
    assert "**Approval 1 of 2.**" in request["body"] and "# Deployment plan: v1.1.0" in request["body"]
    assert planned.read("approvals")["first_approval"]["decision"] == "awaiting"


def test_second_request_excludes_the_first_approver(cfg, hitl_requests, planned):
    op = _operator(cfg, 2, prior=["first_approval"])
    with pytest.raises(TaskAwaitingInput):
        op.execute(_context({"first_approval": _answer("bob")}))
    assert [u["id"] for u in hitl_requests[0]["assigned_users"]] == ["carol"]
    assert "Already approved: `bob`" in hitl_requests[0]["body"]


def test_nobody_left_fails_instead_of_opening_the_request_to_all(cfg, hitl_requests, planned, monkeypatch):
    small = cfg.approvals.model_copy(update={"required": 1, "approvers": cfg.approvals.approvers[:2]})
    monkeypatch.setattr(
        "deployment.config.load_config", lambda name=None: cfg.model_copy(update={"approvals": small})
    )
    with pytest.raises(ApprovalRefused, match="no one left to give approval 2"):
        _operator(cfg, 2, prior=["first_approval"]).execute(_context({"first_approval": _answer("bob")}))
    assert hitl_requests == []


def test_request_needs_the_plan(cfg, hitl_requests, record):
    with pytest.raises(ApprovalRefused, match="no deployment plan at s3://"):
        _operator(cfg).execute(_context())


def test_approval_is_recorded_and_returned(cfg, record):
    result = _operator(cfg).execute_complete(_context(), _answer("bob"))
    assert result["responded_by_user"] == {"id": "bob", "name": "Bob"}
    entry = record.read("approvals")["first_approval"]
    assert entry == {
        "decision": "approved",
        "user_id": "bob",
        "user_name": "Bob",
        "responded_at": AT.isoformat(),
        "chosen_options": ["Approve"],
    }


def test_rejection_fails_the_run(cfg, record):
    with pytest.raises(
        ApprovalRefused, match="Carol rejected release v1.1.0 .approval 1.; nothing was changed"
    ):
        _operator(cfg).execute_complete(_context(), _answer("carol", "Reject"))
    assert record.read("approvals")["first_approval"]["decision"] == "rejected"


def test_timeout_is_a_rejection(cfg, record):
    event = {
        "error": "The Human-in-the-loop response timeout has passed without a response.",
        "error_type": "timeout",
    }
    with pytest.raises(
        ApprovalRefused, match="no decision on approval 1 within 0:10:00: the release is rejected"
    ):
        _operator(cfg).execute_complete(_context(), event)
    assert record.read("approvals")["first_approval"]["decision"] == "timed_out"


def test_the_author_cannot_count_even_if_the_request_let_them(cfg, record):
    with pytest.raises(ApprovalRefused, match="came from 'alice', who may not approve"):
        _operator(cfg).execute_complete(_context(), _answer(AUTHOR))
    assert record.read("approvals")["first_approval"]["decision"] == "refused"


def test_the_same_person_cannot_count_twice(cfg, record):
    with pytest.raises(ApprovalRefused, match="came from 'bob'"):
        _operator(cfg, 2, prior=["first_approval"]).execute_complete(
            _context({"first_approval": _answer("bob")}), _answer("bob")
        )


def test_rejection_and_failure_are_final(cfg):
    op = _operator(cfg)
    assert op.retries == 0 and op.fail_on_reject is True
    assert op.response_timeout == timedelta(seconds=cfg.timings.approval_timeout_seconds)
    assert issubclass(ApprovalRefused, AirflowFailException)


def test_summary_of_two_valid_approvals(cfg):
    later = AT + timedelta(minutes=5)
    result = approval.summarize_approvals(
        cfg, AUTHOR, [_answer("bob"), _answer("carol", at=later)], ["first_approval", "second_approval"]
    )
    assert [a["id"] for a in result["approvers"]] == ["bob", "carol"]
    assert result["approved_at"] == later.isoformat()
    assert result["wait_until"] == (later + timedelta(seconds=cfg.timings.wait_timer_seconds)).isoformat()


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        ([_answer("bob"), _answer("bob")], "the same person approved twice"),
        ([_answer("alice"), _answer("bob")], "the author 'alice' approved"),
        ([_answer("bob"), _answer("mallory")], "['mallory'] are not configured approvers"),
        ([_answer("bob"), _answer("carol", "Reject")], "second_approval has no approval"),
    ],
)
def test_summary_refuses_invalid_approvals(cfg, answers, problem):
    with pytest.raises(ApprovalRefused, match=problem.replace("[", r"\[").replace("]", r"\]")):
        approval.summarize_approvals(cfg, AUTHOR, answers, ["first_approval", "second_approval"])


def test_approved_user_ids_ignores_rejections_and_missing():
    assert approval.approved_user_ids([_answer("bob"), _answer("carol", "Reject"), None]) == ["bob"]


def test_template_fields_are_valid(cfg):
    from airflow.sdk.bases.operator import BaseOperator

    op = _operator(cfg)
    assert set(op.template_fields) == {"subject", "body"}
    assert all(hasattr(op, field) for field in op.template_fields)
    assert "{{ params.version }}" in op.subject
    assert isinstance(op, BaseOperator)
