"""The reminder at half the gate's time: once, to whoever a request still waits for, and never in the way.

It waits deferred (no worker slot, no task process per look): the operator's ``execute`` either
defers (to the half-time, or briefly until the first request exists) or sends and ends; the
trigger ends at the half-time or as soon as the gate is decided.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from _fixtures_notify import smtp  # noqa: F401 - fixture
from _release import PARAMS, RUN_ID, RunTI
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred
from airflow.sdk.execution_time.context import set_current_context

from deployment.phases.approval_gate import approval_gate_group
from deployment.triggers.gate_reminder import GateReminderTrigger

FIRST = "approval_gate.first_approval"


def _run(cfg, states: dict[str, str], event=None):
    """``execute`` (or, with ``event``, the resume after a wait): its result, or the TaskDeferred."""
    with DAG("deploy_production", schedule=None) as dag:
        approval_gate_group(cfg)
    op = dag.get_task("approval_gate.remind_approvers")
    ti = RunTI(states)
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": ti, "task_instance": ti}
    with set_current_context(context):
        try:
            return op.execute(context) if event is None else op.resume(context, event)
        except TaskDeferred as deferred:
            return deferred


def _gate(record, elapsed: float, total: float = 600) -> None:
    first = datetime.now(UTC) - timedelta(seconds=elapsed)
    record.write(
        "approvals",
        {
            "gate": {
                "first_requested_at": first.isoformat(),
                "excluded": ["alice"],
                "deadline": (first + timedelta(seconds=total)).isoformat(),
            },
            FIRST: {"decision": "awaiting", "eligible": ["bob", "carol"]},
        },
    )


def test_before_half_the_time_it_defers_to_the_half_time_and_nobody_is_reminded(cfg, record, slack, smtp):  # noqa: F811
    _gate(record, elapsed=100)
    deferred = _run(cfg, {FIRST: "awaiting_input"})
    assert isinstance(deferred, TaskDeferred) and deferred.method_name == "resume"
    trigger = deferred.trigger
    assert isinstance(trigger, GateReminderTrigger)
    gate = record.read("approvals")["gate"]
    first, deadline = (datetime.fromisoformat(gate[k]) for k in ("first_requested_at", "deadline"))
    assert trigger.moment == first + (deadline - first) / 2
    assert trigger.task_ids == [FIRST, "approval_gate.second_approval"] and trigger.run_id == RUN_ID
    assert slack.recorder.list() == [] and smtp.recorder.list() == []


def test_before_the_first_request_it_looks_again_shortly(cfg, record, slack):
    deferred = _run(cfg, {FIRST: "queued"})
    assert isinstance(deferred, TaskDeferred) and not isinstance(deferred.trigger, GateReminderTrigger)
    assert deferred.trigger.moment <= datetime.now(UTC) + timedelta(
        seconds=cfg.timings.poll_interval_seconds * 3
    )
    assert slack.recorder.list() == []


def test_the_short_look_resumes_with_the_moment_as_its_event_and_looks_again(cfg, record, slack):
    # The wait before the first request is a DateTimeTrigger: Airflow resumes the task with the
    # trigger's moment (a datetime) as the event, not a dict.
    deferred = _run(cfg, {FIRST: "queued"}, event=datetime.now(UTC))
    assert isinstance(deferred, TaskDeferred) and slack.recorder.list() == []


def test_after_half_the_time_the_open_request_is_reminded_once(cfg, record, slack, smtp):  # noqa: F811
    _gate(record, elapsed=400)
    done = _run(cfg, {FIRST: "awaiting_input"}, event={"decided": False})
    assert done == {"reminded": [FIRST]}
    (message,) = slack.recorder.list()
    assert "Reminder, half the gate's time has gone" in message["text"]
    assert "<@U01BOB>" in message["text"] and "<@U01CAROL>" in message["text"]
    assert f"/tasks/{FIRST}/required_actions" in message["text"]
    (mail,) = smtp.recorder.list()
    assert mail["subject"].startswith("Reminder: approval needed") and mail["rcpt_tos"] == [
        "bob@example.test",
        "carol@example.test",
    ]
    assert _run(cfg, {FIRST: "awaiting_input"}) == {"reminded": [FIRST]}  # a rerun sends nothing more
    assert len(slack.recorder.list()) == 1 and len(smtp.recorder.list()) == 1


def test_a_finished_gate_ends_it_without_a_message(cfg, record, slack):
    _gate(record, elapsed=400)
    done = _run(cfg, {FIRST: "success", "approval_gate.second_approval": "failed"})
    assert done == {"reminded": []}
    _gate(record, elapsed=100)
    assert _run(cfg, {FIRST: "awaiting_input"}, event={"decided": True}) == {"reminded": []}
    assert slack.recorder.list() == []


# ----------------------------------------------------------------------------- the trigger
def _trigger(moment, poll=0.01):
    return GateReminderTrigger(
        moment, dag_id="deploy_production", run_id=RUN_ID, task_ids=[FIRST], poll_interval=poll
    )


def _first_event(trigger, states, monkeypatch):
    calls = []

    async def read():
        calls.append(1)
        result = states(len(calls))
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(trigger, "states", read)

    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first(), 10)), len(calls)


def test_the_trigger_ends_as_soon_as_the_gate_is_decided(monkeypatch):
    later = datetime.now(UTC) + timedelta(hours=24)
    payload, looks = _first_event(
        _trigger(later), lambda n: {FIRST: "awaiting_input" if n < 3 else "success"}, monkeypatch
    )
    assert payload["decided"] is True and looks == 3


def test_the_trigger_fires_at_the_moment_even_when_the_states_cannot_be_read(monkeypatch):
    soon = datetime.now(UTC) + timedelta(seconds=0.2)
    payload, looks = _first_event(_trigger(soon), lambda n: RuntimeError("API server down"), monkeypatch)
    assert payload == {"decided": False, "moment": soon.isoformat()} and looks > 1


def test_the_trigger_serializes_to_itself():
    moment = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    path, kwargs = _trigger(moment, poll=30).serialize()
    assert path == "deployment.triggers.gate_reminder.GateReminderTrigger"
    again = GateReminderTrigger(**kwargs)
    assert (again.moment, again.task_ids, again.poll_interval) == (moment, [FIRST], 30.0)
