"""The rollback and outcome tasks across attempts, run as tasks of the real group.

``_Ti`` answers ``get_task_states`` in the shape the Task SDK returns
(``{run_id: {task_id: state}}``); everything else is moto, the Amplify emulator and S3.
"""

from __future__ import annotations

import pytest
from _release import PREVIOUS, RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import set_current_context

from deployment import guards
from deployment.phases.outcome import finalize_task
from deployment.phases.rollback import rollback_group
from deployment.traffic.route53 import set_weights, weights
from tests.unit.deployment.rollback.test_reruns import _deploy, _release_live, _stack_version, _take_backup


class _Ti:
    dag_id = "deploy_production"

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def get_task_states(self, dag_id, run_ids=None, **kwargs):
        return {RUN_ID: dict(self.states)}


def _run(cfg, task_id: str, states: dict[str, str]):
    with DAG("deploy_production", schedule=None) as dag:
        rollback_group(cfg)
        finalize_task(cfg)
    context = {"params": {"version": VERSION}, "run_id": RUN_ID, "ti": _Ti(states)}
    with set_current_context(context):
        return dag.get_task(task_id).python_callable()


def _approved(ledger):
    ledger.write("plan", {"release": {"previous_version": PREVIOUS, "live_colour": "blue"}})


def test_a_second_failure_after_a_rerun_rolls_the_stack_back_too(cfg, aws, ledger):
    """A rerun that fails again, task by task: the second plan is made for attempt 2, from the world."""
    _take_backup(cfg, ledger)
    _approved(ledger)
    guards.open_attempt(cfg, ledger, 1)
    _release_live(cfg, aws, ledger)
    failed = {"smoke_tests.check_health": "failed"}
    assert _run(cfg, "rollback.plan", failed)["attempt"] == 1
    _run(cfg, "rollback.restore_traffic", failed)
    _run(cfg, "rollback.restore_stack", failed)
    assert _stack_version(cfg) == PREVIOUS and weights(cfg) == {"blue": 100, "green": 0}

    # Cleared from validate_infrastructure: attempt 2 deploys again and fails at the 10 % step.
    guards.open_attempt(cfg, ledger, 2)
    _deploy(cfg, aws, ledger, purpose="deploy-again")
    set_weights(cfg, {"blue": 90, "green": 10})
    failed = {"deploy_frontend.shift_traffic_10": "failed"}
    plan = _run(cfg, "rollback.plan", failed)
    assert plan["attempt"] == 2 and plan["undo"]["stack"] and plan["undo"]["traffic"]
    _run(cfg, "rollback.restore_traffic", failed)
    _run(cfg, "rollback.restore_stack", failed)

    assert _stack_version(cfg) == PREVIOUS
    assert weights(cfg) == {"blue": 100, "green": 0}
    assert ledger.read("rollback.plan")["failed_tasks"] == ["deploy_frontend.shift_traffic_10"]


def test_record_outcome_reports_the_last_attempt(cfg, aws, ledger):
    _take_backup(cfg, ledger)
    _approved(ledger)
    guards.open_attempt(cfg, ledger, 1)
    ledger.write("rollback.plan", {"needed": True, "attempt": 1})
    ledger.write("rollback", {"status": "rolled_back", "attempt": 1})
    guards.open_attempt(cfg, ledger, 2)
    _release_live(cfg, aws, ledger)

    outcome = _run(cfg, "record_outcome", {"monitoring.watch_metrics": "success"})

    assert outcome["status"] == "succeeded" and outcome["attempt"] == 2 and outcome["attempts"] == 2
    assert outcome["rollback_status"] is None


def test_record_outcome_never_reports_a_release_that_is_not_live(cfg, aws, ledger):
    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)
    set_weights(cfg, {"blue": 100, "green": 0})  # traffic went back behind the run's back

    with pytest.raises(AirflowFailException, match="not live"):
        _run(cfg, "record_outcome", {"monitoring.watch_metrics": "success"})
    assert ledger.read("outcome")["status"] == "failed"
    assert ledger.read("outcome")["not_live"]


def test_a_rolled_back_attempt_is_paged_once_per_attempt(cfg, aws, ledger, monkeypatch):
    sent: list[str] = []
    monkeypatch.setattr(
        "deployment.rollback.notices.slack_notice", lambda cfg, values: sent.append("slack") or {}
    )
    _take_backup(cfg, ledger)
    _approved(ledger)
    for attempt in (1, 2):
        guards.open_attempt(cfg, ledger, attempt)
        ledger.write("rollback.plan", {"needed": True, "attempt": attempt, "undo": {}, "failed_tasks": []})
        _run(cfg, "rollback.page_oncall_slack", {})
        _run(cfg, "rollback.page_oncall_slack", {})  # a rerun of the same attempt: no second page
    assert sent == ["slack", "slack"]


class _OtherRuns:
    """The Task SDK's view of deploy_production from a rollback_production task."""

    dag_id = "rollback_production"

    def __init__(self, runs: dict[str, dict[str, str | None]]) -> None:
        self.runs = runs

    def get_dr_count(self, dag_id, states=None, **kwargs):
        return len(self.runs)

    def get_task_states(self, dag_id, task_ids=None, **kwargs):
        return {run: {t: s for t, s in tasks.items() if t in task_ids} for run, tasks in self.runs.items()}


def _first_task(dag_id: str, runs, params: dict):
    """Run the first task of ``dag_id`` (the rollback's ``plan``, the release's ``record_release``)
    while ``runs`` of the other DAG are running."""
    from deployment.phases.manual_rollback import manual_plan_task
    from deployment.phases.release import record_release

    with DAG(dag_id, schedule=None) as dag:
        first = manual_plan_task() if dag_id == "rollback_production" else record_release()
    with set_current_context({"ti": _OtherRuns(runs), "run_id": "concurrent", "params": params}):
        return dag.get_task(first.operator.task_id).python_callable()


def _manual_plan(runs):
    return _first_task("rollback_production", runs, {"reason": "errors since v1.1.0"})


def test_a_release_waiting_for_approval_does_not_block_a_manual_rollback():
    waiting = {"approval.wait_timer": "deferred", "backup.backup_stack": None, "record_outcome": None}
    assert (
        guards.refuse_concurrent_run(
            _OtherRuns({"waiting": waiting}), "deploy_production", past_gate_only=True
        )
        is None
    )


def test_a_release_verifying_its_gate_blocks_a_manual_rollback():
    # verify_gate asks for running rollbacks too: of the two, at least one sees the other.
    verifying = {"approval_gate.verify_gate": "running", "backup.backup_stack": None, "record_outcome": None}
    with pytest.raises(AirflowFailException, match="never change production together"):
        _manual_plan({"verifying": verifying})


def test_a_release_past_the_approval_gate_blocks_a_manual_rollback():
    deploying = {"backup.backup_stack": "success", "backup.backup_tables": "success", "record_outcome": None}
    finished = {"backup.backup_stack": "success", "record_outcome": "failed"}
    with pytest.raises(AirflowFailException, match="1 run"):
        _manual_plan({"deploying": deploying, "finished": finished})


def test_a_running_manual_rollback_blocks_a_release_before_its_record_opens():
    rollback = {"plan": "success", "restore_traffic": "running"}
    with pytest.raises(AirflowFailException, match="1 run.s. of rollback_production"):
        _first_task("deploy_production", {"manual": rollback}, {"version": VERSION})


def test_when_no_plan_can_be_made_traffic_goes_back_and_on_call_is_paged(cfg, aws, ledger, monkeypatch):
    sent: list[str] = []
    monkeypatch.setattr(
        "deployment.notifications.slack.send_slack", lambda conn, text: sent.append(text) or {}
    )
    monkeypatch.setattr(
        "deployment.notifications.mail.send_email",
        lambda cfg, to, subject, html, run_id: sent.append(subject) or {},
    )
    _take_backup(cfg, ledger)
    ledger.write("frontend", {"live_colour_before": "blue", "target_colour": "green", "traffic_moved": True})
    set_weights(cfg, {"blue": 50, "green": 50})

    result = _run(
        cfg,
        "rollback.last_resort_traffic",
        {"deploy_frontend.shift_traffic_50": "failed", "rollback.plan": "failed"},
    )

    assert result["colour"] == "blue" and weights(cfg) == {"blue": 100, "green": 0}
    section = ledger.read("rollback")
    assert section["status"] == "rollback_incomplete" and section["undone"] == ["traffic"]
    assert section["not_undone"] == ["stack", "frontend"] and section["previous_version"] == PREVIOUS
    assert len(sent) == 2 and any("[INCIDENT]" in s for s in sent)
    _run(cfg, "rollback.last_resort_traffic", {"rollback.plan": "failed"})  # a rerun pages nobody again
    assert len(sent) == 2
