"""Tasks that log through the module logger: the Task SDK's task instance (``context["ti"]``) has no ``log``.

Logging through ``context["ti"].log`` raises AttributeError: ``lint_template`` would crash on
any cfn-lint finding, before recording it, and ``record_approvals`` when the wait-timer
announcement fails (Slack down).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from _release import AUTHOR, COMMIT, RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import set_current_context

from deployment.phases.approval_gate import approval_gate_group
from deployment.phases.validate_infrastructure import validate_infrastructure_group

PARAMS = {"version": VERSION, "commit_sha": "a" * 40, "author": AUTHOR, "emergency": {}}


class TaskInstanceWithoutLog:
    """Like the Task SDK's RuntimeTaskInstance: XComs and run counts, but no ``log`` attribute."""

    def __init__(self, xcoms: dict[str, object] | None = None, running: dict[str, int] | None = None) -> None:
        self.xcoms = xcoms or {}
        self.running = running or {}

    def get_dr_count(self, dag_id, states=None, **kwargs):
        return self.running.get(dag_id, 0)

    def xcom_pull(self, task_ids, key="return_value"):
        if isinstance(task_ids, list | tuple):
            return [self.xcoms.get(t) for t in task_ids]
        return self.xcoms.get(task_ids)


def call(task, ti) -> object:
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": ti, "task_instance": ti}
    with set_current_context(context):
        return task.python_callable()


def test_a_cfn_lint_error_is_logged_recorded_and_fails_the_task(cfg, record, tmp_path, monkeypatch, caplog):
    """A build whose packaged template has a lint error, verified and approved as such."""
    import boto3

    from deployment.aws.artifacts import verify_build
    from sandbox.seed import publish_sample_build

    template = tmp_path / "template.yaml"
    broken = "\n  AuditQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: soon\n"
    template.write_text(cfg.stack.template_path.read_text().replace("\nOutputs:", broken + "\nOutputs:"))
    (tmp_path / "functions").symlink_to(cfg.stack.template_path.parent / "functions")
    edited = cfg.model_copy(update={"stack": cfg.stack.model_copy(update={"template": str(template)})})
    publish_sample_build(edited, boto3.client("s3", region_name=cfg.region), COMMIT, VERSION)
    build = verify_build(cfg, COMMIT, VERSION)
    record.write("artifact", {**build, "ok": True})
    record.write("plan", {"change_set": {"template_sha256": build["template_sha256"]}})
    with DAG("phase_4", schedule=None) as dag:
        validate_infrastructure_group(cfg)

    with caplog.at_level(logging.INFO), pytest.raises(AirflowFailException, match="E3012"):
        call(dag.get_task("validate_infrastructure.lint_template"), TaskInstanceWithoutLog())
    assert "cfn-lint error E3012" in caplog.text
    findings = record.read("validation")["template"]["cfn_lint"]
    assert findings["error"] == 1
    assert [f["rule"] for f in findings["findings"] if f["level"] == "error"] == ["E3012"]


def _answered(cfg, record) -> dict:
    """The ``approvals`` section as two answers read from Airflow's HITL details leave it; the XComs alike."""
    from deployment.gate.approvers import SOURCE, excluded_users, plan_digest

    plan = "# plan\n"
    record.write_text("plan", plan, "md")
    at = datetime.now(UTC)
    section = {
        "gate": {
            **excluded_users(cfg, AUTHOR, "ci", None),
            "deadline": (at + cfg.timings.approval_timeout).isoformat(),
        }
    }
    answers = {}
    for task, user in (("first_approval", "bob"), ("second_approval", "carol")):
        section[f"approval_gate.{task}"] = {
            "decision": "approved",
            "source": SOURCE,
            "user_id": user,
            "user_name": user,
            "responded_at": at.isoformat(),
            "run_id": RUN_ID,
            "plan_digest": plan_digest(plan),
        }
        answers[f"approval_gate.{task}"] = {
            "chosen_options": ["Approve"],
            "responded_at": at.isoformat(),
            "responded_by_user": {"id": user, "name": user},
        }
    return section, answers


def test_approvals_are_recorded_when_the_announcement_fails(cfg, record, monkeypatch, caplog):
    def slack_down(*args, **kwargs):
        raise ConnectionError("slack: 503")

    monkeypatch.setattr("deployment.notifications.announce.announce_team", slack_down)
    with DAG("phase_2", schedule=None) as dag:
        approval_gate_group(cfg)
    section, answers = _answered(cfg, record)
    record.write("approvals", section)
    with caplog.at_level(logging.WARNING):
        result = call(dag.get_task("approval_gate.record_approvals"), TaskInstanceWithoutLog(answers))
    assert [a["id"] for a in result["approvers"]] == ["bob", "carol"]
    assert "could not announce the wait timer: slack: 503" in caplog.text
    assert record.read("approvals")["result"]["status"] == "approved"


def test_approvals_written_to_xcom_by_hand_do_not_open_the_gate(cfg, record):
    with DAG("phase_2", schedule=None) as dag:
        approval_gate_group(cfg)
    section, answers = _answered(cfg, record)
    record.write("approvals", {"gate": section["gate"]})  # requests made, then the tasks marked success
    for task_id in ("approval_gate.record_approvals", "approval_gate.verify_gate"):
        with pytest.raises(AirflowFailException, match="marked by hand does not count"):
            call(dag.get_task(task_id), TaskInstanceWithoutLog(answers))


def test_the_gate_stays_shut_while_a_manual_rollback_runs(cfg, record):
    """A manual rollback may start while a release waits for approval; the release's first change
    waits for it: ``verify_gate`` refuses, and the record holds no verified gate."""
    with DAG("phase_2", schedule=None) as dag:
        approval_gate_group(cfg)
    section, answers = _answered(cfg, record)
    record.write("approvals", section)
    ti = TaskInstanceWithoutLog(answers, running={"rollback_production": 1})
    with pytest.raises(AirflowFailException, match="rollback_production are running.*clear approval_gate"):
        call(dag.get_task("approval_gate.verify_gate"), ti)
    assert "verified" not in (record.read("approvals") or {})
