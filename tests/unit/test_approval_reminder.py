"""The reminder at half the gate's time: once, to whoever a request still waits for, and never in the way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from _fixtures_notify import smtp  # noqa: F401 - fixture
from _release import AUTHOR, COMMIT, RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.execution_time.context import set_current_context

from deployment.groups.approval import approval_gate_group

PARAMS = {"version": VERSION, "commit_sha": COMMIT, "author": AUTHOR, "emergency": {}}
FIRST = "approval_gate.first_approval"


class RunTI:
    dag_id = "deploy_production"

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def get_task_states(self, dag_id, run_ids):
        return {RUN_ID: self.states}


def _poke(cfg, states: dict[str, str]):
    with DAG("deploy_production", schedule=None) as dag:
        approval_gate_group(cfg)
    ti = RunTI(states)
    with set_current_context({"params": PARAMS, "run_id": RUN_ID, "ti": ti, "task_instance": ti}):
        return dag.get_task("approval_gate.remind_approvers").python_callable()


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


def test_before_half_the_time_nobody_is_reminded(cfg, record, slack, smtp):  # noqa: F811
    _gate(record, elapsed=100)
    assert _poke(cfg, {FIRST: "awaiting_input"}).is_done is False
    assert slack.recorder.list() == [] and smtp.recorder.list() == []


def test_after_half_the_time_the_open_request_is_reminded_once(cfg, record, slack, smtp):  # noqa: F811
    _gate(record, elapsed=400)
    done = _poke(cfg, {FIRST: "awaiting_input"})
    assert done.is_done and done.xcom_value == {"reminded": [FIRST]}
    (message,) = slack.recorder.list()
    assert "Reminder, half the gate's time has gone" in message["text"]
    assert "<@U01BOB>" in message["text"] and "<@U01CAROL>" in message["text"]
    assert f"/tasks/{FIRST}/required_actions" in message["text"]
    (mail,) = smtp.recorder.list()
    assert mail["subject"].startswith("Reminder: approval needed") and mail["rcpt_tos"] == [
        "bob@example.test",
        "carol@example.test",
    ]
    _poke(cfg, {FIRST: "awaiting_input"})  # a rerun sends nothing more
    assert len(slack.recorder.list()) == 1


def test_a_finished_gate_ends_the_sensor_without_a_message(cfg, record, slack):
    _gate(record, elapsed=400)
    done = _poke(cfg, {FIRST: "success", "approval_gate.second_approval": "failed"})
    assert done.is_done and done.xcom_value == {"reminded": []}
    assert slack.recorder.list() == []
