"""rollback_production's shape and params; the rollback group's trigger rules and outcome logic."""

from __future__ import annotations

from datetime import datetime

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.exceptions import ParamValidationError
from airflow.sdk import DAG, TriggerRule, task

from deployment.config import load_config
from deployment.phases.outcome import finalize_task, outcome_of
from deployment.phases.rollback import rollback_group
from deployment.run_context import failed_release_tasks
from tests.dags.test_integrity import DAGS_DIR


@pytest.fixture(scope="module")
def dag():
    bag = DagBag(dag_folder=str(DAGS_DIR / "rollback_production.py"))
    assert bag.import_errors == {}
    return bag.dags["rollback_production"]


def test_plan_comes_first_and_outcome_last(dag):
    assert [t.task_id for t in dag.roots] == ["plan"]
    assert dag.task_dict["plan"].downstream_task_ids == {
        "restore_traffic",
        "restore_stack",
        "restore_frontend",
        "verify",
        "record_rollback",
        "page_oncall_slack",
        "incident_email",
        "statuspage_incident",
        "page_oncall_pagerduty",
    }
    leaves = [t.task_id for t in dag.tasks if not t.downstream_task_ids]
    assert leaves == ["record_outcome"]
    assert dag.task_dict["record_outcome"].trigger_rule == TriggerRule.ALL_DONE


def _validate(dag, conf):
    import copy

    params = copy.deepcopy(dag.params)
    for key, value in conf.items():
        params[key] = value
    return params.validate()


def test_params_need_a_reason_and_a_well_formed_version(dag):
    assert _validate(dag, {"reason": "errors since v1.1.0"})["target_version"] is None
    chosen = _validate(dag, {"reason": "errors since v1.1.0", "target_version": "v1.0.0"})
    assert chosen["target_version"] == "v1.0.0"
    with pytest.raises(ParamValidationError, match="reason"):
        _validate(dag, {"reason": "short"})
    with pytest.raises(ParamValidationError, match="target_version"):
        _validate(dag, {"reason": "errors since v1.1.0", "target_version": "1.0"})


def test_group_first_task_fires_on_one_failure_and_steps_keep_going():
    config = load_config("sandbox")
    with DAG("wiring", schedule=None, start_date=datetime(2026, 1, 1)):

        @task(task_id="deploy_infrastructure")
        def phase():
            return None

        upstream = phase()
        group = rollback_group(config)
        upstream >> group.children["rollback.plan"]
        group >> finalize_task(config)
    children = group.children
    assert children["rollback.plan"].trigger_rule == TriggerRule.ONE_FAILED
    assert children["rollback.plan"].upstream_task_ids == {"deploy_infrastructure"}
    for later in ("restore_stack", "restore_frontend", "verify", "record_rollback", "incident_email"):
        assert children[f"rollback.{later}"].trigger_rule == TriggerRule.ALL_DONE_MIN_ONE_SUCCESS
    assert children["rollback.restore_traffic"].upstream_task_ids == {"rollback.plan"}
    assert "rollback.restore_traffic" in children["rollback.restore_stack"].upstream_task_ids


def test_only_release_tasks_count_as_failures():
    states = {
        "backup.backup_stack": "success",
        "smoke_tests.payment_processing": "failed",
        "monitoring.watch": "upstream_failed",
        "notify.slack_team": "failed",
        "rollback.verify": "failed",
        "record_outcome": "running",
    }
    assert failed_release_tasks(states) == ["monitoring.watch", "smoke_tests.payment_processing"]


@pytest.mark.parametrize(
    ("failed", "rollback", "status"),
    [
        ([], None, "succeeded"),
        (["x"], None, "failed"),
        (["x"], {"status": "not_needed"}, "failed"),
        (["x"], {"status": "rolled_back"}, "rolled_back"),
        (["x"], {"status": "rollback_incomplete"}, "failed"),
    ],
)
def test_outcome(failed, rollback, status):
    assert outcome_of(failed, rollback) == status
