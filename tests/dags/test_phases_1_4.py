"""Structure of phases 1–4 wired as deploy_production wires them: ids, order, trigger rules, the branch."""

from __future__ import annotations

import pytest
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG, TriggerRule

from deployment.config import load_config
from deployment.gate.approval import ReleaseApprovalOperator
from deployment.phases.approval_gate import GATE_TASK_ID, approval_gate_group
from deployment.phases.backup import backup_group
from deployment.phases.pre_deployment_validation import pre_deployment_validation_group
from deployment.phases.release import record_release
from deployment.phases.validate_infrastructure import validate_infrastructure_group
from deployment.run_contract import release_params

V = "pre_deployment_validation"


@pytest.fixture(scope="module")
def dag():
    config = load_config()
    with DAG("phases_1_4", schedule=None, params=release_params()) as dag:
        groups = [
            pre_deployment_validation_group(config),
            approval_gate_group(config),
            backup_group(config),
            validate_infrastructure_group(config),
        ]
        release = record_release()
        # As the DAG chains them: the first change follows the verified gate, not the group.
        release >> groups[0] >> groups[1]
        groups[1].children[GATE_TASK_ID] >> groups[2] >> groups[3]
    return dag


def _up(dag, task_id):
    return set(dag.get_task(task_id).upstream_task_ids)


def test_group_ids_and_tasks(dag):
    assert set(dag.task_group.children) == {
        "record_release",
        V,
        "approval_gate",
        "backup",
        "validate_infrastructure",
    }
    assert set(dag.task_ids) == {
        "record_release",
        f"{V}.choose_checks",
        f"{V}.skip_checks",
        f"{V}.check_rc_release",
        f"{V}.check_staging_workflow",
        f"{V}.check_staging_metrics",
        f"{V}.record_checks",
        f"{V}.verify_artifact",
        f"{V}.generate_plan",
        "approval_gate.announce_start",
        "approval_gate.first_approval",
        "approval_gate.second_approval",
        "approval_gate.record_approvals",
        "approval_gate.wait_timer",
        "approval_gate.verify_gate",
        "approval_gate.remind_approvers",
        "backup.backup_stack",
        "backup.backup_tables",
        "backup.tag_amplify",
        "backup.write_manifest",
        "validate_infrastructure.lint_template",
        "validate_infrastructure.verify_change_set",
    }


def test_force_deploy_branch(dag):
    choose = dag.get_task(f"{V}.choose_checks")
    assert _up(dag, f"{V}.choose_checks") == {"record_release"}
    assert set(choose.downstream_task_ids) == {
        f"{V}.skip_checks",
        f"{V}.check_rc_release",
        f"{V}.check_staging_workflow",
        f"{V}.check_staging_metrics",
    }
    for check in ("check_rc_release", "check_staging_workflow", "check_staging_metrics"):
        assert _up(dag, f"{V}.{check}") == {f"{V}.choose_checks"}
    assert _up(dag, f"{V}.record_checks") == {
        f"{V}.check_rc_release",
        f"{V}.check_staging_workflow",
        f"{V}.check_staging_metrics",
    }
    assert dag.get_task(f"{V}.record_checks").trigger_rule == TriggerRule.ALL_DONE
    plan = dag.get_task(f"{V}.generate_plan")
    assert _up(dag, plan.task_id) == {f"{V}.record_checks", f"{V}.skip_checks", f"{V}.verify_artifact"}
    # the build's proof runs on both branches: force_deploy never skips it
    assert f"{V}.choose_checks" not in dag.get_task(f"{V}.verify_artifact").upstream_task_ids
    assert plan.trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


def test_approval_gate_order_and_operators(dag):
    first, second = (
        dag.get_task("approval_gate.first_approval"),
        dag.get_task("approval_gate.second_approval"),
    )
    assert isinstance(first, ReleaseApprovalOperator) and isinstance(second, ReleaseApprovalOperator)
    assert _up(dag, "approval_gate.announce_start") == {f"{V}.generate_plan"}
    assert _up(dag, first.task_id) == {"approval_gate.announce_start"}
    assert _up(dag, second.task_id) == {first.task_id}
    assert second.prior_approval_task_ids == [first.task_id] and first.prior_approval_task_ids == []
    assert first.fail_on_reject and second.fail_on_reject and first.retries == 0
    config = load_config()
    assert first.response_timeout.total_seconds() == config.timings.approval_timeout_seconds
    assert _up(dag, "approval_gate.record_approvals") == {second.task_id}
    timer = dag.get_task("approval_gate.wait_timer")
    assert isinstance(timer, DateTimeSensorAsync)
    assert _up(dag, timer.task_id) == {"approval_gate.record_approvals"}
    assert "approval_gate.record_approvals" in timer.target_time
    # The reminder is off the gate's path: the gate never waits for the sensor's next look.
    assert _up(dag, "approval_gate.verify_gate") == {timer.task_id}
    assert _up(dag, "approval_gate.remind_approvers") == {"approval_gate.announce_start"}
    assert _up(dag, "backup.backup_stack") >= {"approval_gate.verify_gate"}


def test_backup_runs_after_the_gate_is_verified(dag):
    for task in ("backup_stack", "backup_tables", "tag_amplify"):
        assert _up(dag, f"backup.{task}") == {"approval_gate.verify_gate"}
    assert _up(dag, "backup.write_manifest") == {
        "backup.backup_stack",
        "backup.backup_tables",
        "backup.tag_amplify",
    }


def test_validate_infrastructure_order(dag):
    assert _up(dag, "validate_infrastructure.lint_template") == {"backup.write_manifest"}
    assert _up(dag, "validate_infrastructure.verify_change_set") == {"validate_infrastructure.lint_template"}


def test_default_trigger_rules_elsewhere(dag):
    special = {f"{V}.record_checks", f"{V}.generate_plan", "approval_gate.verify_gate"}
    for task in dag.tasks:
        if task.task_id not in special:
            assert task.trigger_rule == TriggerRule.ALL_SUCCESS, task.task_id


def test_groups_carry_tooltips(dag):
    for group_id in (V, "approval_gate", "backup", "validate_infrastructure"):
        assert dag.task_group.children[group_id].tooltip


def test_more_approvals_than_tasks_is_refused():
    config = load_config()
    many = config.model_copy(update={"approvals": config.approvals.model_copy(update={"required": 5})})
    with DAG("too_many", schedule=None), pytest.raises(ValueError, match="at most 4"):
        approval_gate_group(many)
