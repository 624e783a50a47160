"""The rollback core against moto (stack, DynamoDB, S3, Route 53, CloudWatch) and the Amplify emulator.

moto finishes stack updates at once and has no CancelUpdateStack/ContinueUpdateRollback,
so :func:`settle_stack` is tested here against a scripted CloudFormation client that
plays the status transitions AWS documents; the sandbox's CloudFormation layer
(include/sandbox/aws.py) exercises the real calls in the integration tier.
"""

from __future__ import annotations

import json
import time

import pytest
from _release import COMMIT, PREVIOUS, PREVIOUS_COMMIT, RUN_ID, VERSION

from deployment.backup import restore_point
from deployment.backup import take as backup
from deployment.backup.restore_point import load_backed_up_stack
from deployment.rollback import manual
from deployment.rollback import plan as rollback_plan
from deployment.rollback import stack as rollback_stack
from deployment.rollback import steps as rollback_steps
from deployment.traffic.route53 import set_weights, weights


def _take_backup(cfg, ledger):
    stack = backup.backup_stack(cfg, ledger)
    tables = backup.backup_tables(cfg, VERSION, RUN_ID, timeout=5)
    amplify = backup.tag_live_amplify(cfg, VERSION, RUN_ID)
    return backup.write_manifest(cfg, ledger, stack=stack, tables=tables, amplify=amplify)


def _deploy_new_version(cfg, aws, ledger):
    from deployment.aws.change_sets import ensure_change_set

    change_set = ensure_change_set(cfg, VERSION, RUN_ID, "deploy", ledger=ledger, poll=0.1)
    aws["cfn"].execute_change_set(StackName=cfg.stack.name, ChangeSetName=change_set["name"])


def _version_parameter(cfg, aws):
    stack = aws["cfn"].describe_stacks(StackName=cfg.stack.name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[cfg.stack.version_parameter]


# ------------------------------------------------------------------------- plan
def test_nothing_changed_means_nothing_to_undo(cfg):
    plan = rollback_plan.plan_from_record(
        cfg, {"conf": {"version": VERSION}, "staging_checks": {"ok": False}}
    )
    assert plan["needed"] is False
    assert plan["undo"] == {"traffic": False, "stack": False, "frontend": False}
    assert "before any change" in plan["reasons"][0]


def test_infrastructure_failure_before_traffic_leaves_route53_alone(cfg):
    record = {"backup": {"amplify": {"colour": "blue"}, "stack": {}}, "infrastructure": {"changed": True}}
    plan = rollback_plan.plan_from_record(cfg, record)
    assert plan["needed"] is True
    assert plan["undo"] == {"traffic": False, "stack": True, "frontend": False}
    assert plan["stable_colour"] == "blue"


def test_traffic_moved_undoes_everything_to_the_colour_live_before(cfg):
    record = {
        "backup": {"amplify": {"colour": "blue"}},
        "infrastructure": {"changed": True},
        "frontend": {"live_colour_before": "green", "target_colour": "blue", "traffic_moved": True},
    }
    plan = rollback_plan.plan_from_record(cfg, record)
    assert plan["undo"] == {"traffic": True, "stack": True, "frontend": True}
    assert (plan["stable_colour"], plan["idle_colour"]) == ("green", "blue")


def test_a_change_without_a_backup_is_refused(cfg):
    with pytest.raises(restore_point.RollbackError, match="no backup section"):
        rollback_plan.plan_from_record(cfg, {"infrastructure": {"changed": True}})


# ---------------------------------------------------------------------- traffic
def test_restore_traffic_puts_all_traffic_on_the_stable_colour_once(cfg, aws):
    set_weights(cfg, {"blue": 50, "green": 50})
    first = rollback_steps.restore_traffic(cfg, "blue", wait_seconds=5)
    assert first["before"] == {"blue": 50, "green": 50}
    assert first["after"] == weights(cfg) == {"blue": 100, "green": 0}
    assert first["changed"] is True
    again = rollback_steps.restore_traffic(cfg, "blue", wait_seconds=5)
    assert again["changed"] is False and again["change_id"] is None


# ------------------------------------------------------------------------ stack
def test_restore_stack_redeploys_the_backup_and_keeps_data(cfg, aws, ledger):
    manifest = _take_backup(cfg, ledger)
    table = cfg.dynamodb.tables[0]
    key_name = aws["dynamodb"].describe_table(TableName=table)["Table"]["KeySchema"][0]["AttributeName"]
    aws["dynamodb"].put_item(TableName=table, Item={key_name: {"S": "before-release"}})
    _deploy_new_version(cfg, aws, ledger)
    assert _version_parameter(cfg, aws) == VERSION
    aws["dynamodb"].put_item(TableName=table, Item={key_name: {"S": "written-during-release"}})

    result = rollback_stack.restore_stack(cfg, manifest, RUN_ID, timeout=10, poll=0.1)

    assert result["redeployed"] is True and result["status"] == "UPDATE_COMPLETE"
    assert any("AppVersion" in d for d in result["differences_found"])
    assert _version_parameter(cfg, aws) == PREVIOUS
    from deployment.aws.cloudformation import live_stack

    assert rollback_stack.stack_differences(live_stack(cfg), load_backed_up_stack(cfg, manifest)) == []
    items = {i[key_name]["S"] for i in aws["dynamodb"].scan(TableName=table)["Items"]}
    assert items == {"before-release", "written-during-release"}
    assert manifest["dynamodb"][0]["backup_arn"].startswith("arn:aws:dynamodb")


def test_restore_stack_is_a_no_op_when_the_stack_equals_the_backup(cfg, aws, ledger):
    manifest = _take_backup(cfg, ledger)
    result = rollback_stack.restore_stack(cfg, manifest, RUN_ID, timeout=10, poll=0.1)
    assert result["redeployed"] is False and result["change_set"] is None
    assert "nothing to redeploy" in result["actions"][-1]


def test_restore_stack_refuses_to_replace_a_stateful_resource(cfg, aws, ledger):
    manifest = _take_backup(cfg, ledger)
    # As if the release had added a table: redeploying the backup would delete it, and its data.
    template = json.loads(ledger.read_text("backup-template", "json"))
    table = next(k for k, r in template["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table")
    del template["Resources"][table]
    template["Outputs"] = {k: v for k, v in template.get("Outputs", {}).items() if table not in json.dumps(v)}
    ledger.write_text("backup-template", json.dumps(template), "json")
    with pytest.raises(restore_point.RollbackError, match="stateful resources"):
        rollback_stack.restore_stack(cfg, manifest, "another-run", timeout=10, poll=0.1)
    assert _version_parameter(cfg, aws) == PREVIOUS  # nothing executed


def test_template_comparison_ignores_formatting_and_reads_yaml_tags():
    a = '{"Resources": {"T": {"Type": "X", "Properties": {"Name": "n"}}}}'
    b = json.dumps(json.loads(a), indent=4)
    assert rollback_stack._normalize_template(a) == rollback_stack._normalize_template(b)
    yaml_body = "Resources:\n  T:\n    Type: X\n    Properties:\n      Name: !Ref Env\n"
    assert rollback_stack._normalize_template(yaml_body)["Resources"]["T"]["Properties"]["Name"] == {
        "!Ref": "Env"
    }
    live = {"template_body": a, "parameters": {"AppVersion": "v2", "Secret": "****"}}
    saved = {"template_body": b, "parameters": {"AppVersion": "v1", "Secret": "****"}}
    assert rollback_stack.stack_differences(live, saved) == ["parameter AppVersion: live 'v2', backup 'v1'"]


class ScriptedCloudFormation:
    """Plays CloudFormation's documented status transitions for cancel / continue-rollback."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = list(statuses)
        self.calls: list[str] = []

    def describe_stacks(self, StackName):  # noqa: N803 - boto3's argument names
        status = self.statuses[0] if len(self.statuses) == 1 else self.statuses.pop(0)
        return {"Stacks": [{"StackStatus": status}]}

    def cancel_update_stack(self, StackName):  # noqa: N803
        self.calls.append("cancel_update_stack")

    def continue_update_rollback(self, StackName):  # noqa: N803
        self.calls.append("continue_update_rollback")


def test_settle_cancels_an_update_in_progress_and_waits_for_the_rollback(cfg):
    cfn = ScriptedCloudFormation(
        ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]
    )
    status, actions = rollback_stack.settle_stack(cfg, cfn, timeout=5, poll=0)
    assert status == "UPDATE_ROLLBACK_COMPLETE"
    assert cfn.calls == ["cancel_update_stack"]
    assert "cancelled" in actions[0]


def test_settle_continues_a_failed_rollback(cfg):
    cfn = ScriptedCloudFormation(
        ["UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]
    )
    status, _ = rollback_stack.settle_stack(cfg, cfn, timeout=5, poll=0)
    assert status == "UPDATE_ROLLBACK_COMPLETE"
    assert cfn.calls == ["continue_update_rollback"]


def test_settle_reports_a_rollback_that_fails_again(cfg):
    cfn = ScriptedCloudFormation(["UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED"])
    with pytest.raises(restore_point.RollbackError, match="ResourcesToSkip"):
        rollback_stack.settle_stack(cfg, cfn, timeout=5, poll=0)


def test_settle_leaves_a_settled_stack_alone(cfg):
    cfn = ScriptedCloudFormation(["UPDATE_COMPLETE"])
    assert rollback_stack.settle_stack(cfg, cfn, timeout=5, poll=0) == ("UPDATE_COMPLETE", [])
    assert cfn.calls == []


# --------------------------------------------------------------------- frontend
def test_restore_frontend_puts_the_idle_branch_back_without_rebuilding(cfg, aws, ledger):
    manifest = _take_backup(cfg, ledger)
    from deployment.aws.amplify import client, prepare_branch, start_release

    def green_env():
        branch = client(cfg).get_branch(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches["green"])
        return branch["branch"]["environmentVariables"]

    before = green_env()
    prepare_branch(cfg, "green", VERSION)
    start_release(cfg, "green", VERSION, "run", COMMIT)
    result = rollback_steps.restore_frontend(cfg, manifest, "green", "blue")
    assert green_env() == before
    assert result["variables_changed"] is True and result["rebuilt"] is False
    again = rollback_steps.restore_frontend(cfg, manifest, "green", "blue")
    assert again["variables_changed"] is False


# ---------------------------------------------------------------------- summary
def test_summary_names_what_was_and_was_not_undone():
    plan = {
        "needed": True,
        "undo": {"traffic": True, "stack": True, "frontend": False},
        "stable_colour": "blue",
        "previous_version": PREVIOUS,
        "dynamodb_backups": [{"backup_arn": "a"}],
    }
    steps = {
        "traffic": {"status": "done"},
        "stack": {"status": "failed", "error": "x"},
        "verify": {"status": "done", "verified": False, "failed_checks": ["stack"]},
    }
    summary = rollback_steps.summarize(plan, steps, ["deploy_frontend.shift_traffic_10"])
    assert summary["undone"] == ["traffic"] and summary["not_undone"] == ["stack"]
    assert summary["status"] == "rollback_incomplete" and summary["verified"] is False
    ok = rollback_steps.summarize(
        plan, {**steps, "stack": {"status": "done"}, "verify": {"status": "done", "verified": True}}, []
    )
    assert ok["status"] == "rolled_back"


# ----------------------------------------------------------------------- manual
def test_manual_plan_defaults_to_the_last_other_successful_release(cfg, aws, ledger):
    from deployment.ledger import Ledger

    _take_backup(cfg, ledger)
    Ledger(cfg, PREVIOUS, "older").write(
        "outcome", {"version": PREVIOUS, "status": "succeeded", "finished_at": "2026-01-01T00:00:00+00:00"}
    )
    ledger.write(
        "outcome", {"version": VERSION, "status": "succeeded", "finished_at": "2026-01-02T00:00:00+00:00"}
    )
    _deploy_new_version(cfg, aws, ledger)
    plan = manual.manual_plan(cfg, None, "errors since the release", "alice")
    assert plan["previous_version"] == PREVIOUS and plan["rolled_back_version"] == VERSION
    assert plan["stable_colour"] == "blue" and plan["undo"]["traffic"] is True
    with pytest.raises(restore_point.RollbackError, match="no recorded backup shows v0.9.0"):
        manual.manual_plan(cfg, "v0.9.0", "errors since the release", "alice")


def test_manual_plan_restores_the_target_versions_recorded_build(cfg, aws, ledger):
    """A rollback to a named version puts back that version's verified build."""
    _take_backup(cfg, ledger)
    _deploy_new_version(cfg, aws, ledger)
    plan = manual.manual_plan(cfg, PREVIOUS, "errors since the release", "alice")
    build = plan["build"]
    assert build["commit_sha"] == PREVIOUS_COMMIT and build["version"] == PREVIOUS
    assert (
        build["manifest_key"].endswith(f"{PREVIOUS_COMMIT}/manifest.json")
        and len(build["manifest_sha256"]) == 64
    )


def test_manual_plan_refuses_a_branch_rebuilt_from_another_commit(cfg, aws, ledger):
    _take_backup(cfg, ledger)
    _deploy_new_version(cfg, aws, ledger)
    aws["amplify"].start_job(
        cfg.amplify.app_id, cfg.amplify.branches["blue"], {"jobType": "RELEASE", "commitId": "c" * 40}
    )
    time.sleep(0.2)  # the job SUCCEEDs after job_seconds
    with pytest.raises(restore_point.RollbackError, match=f"serves commit {'c' * 40}"):
        manual.manual_plan(cfg, PREVIOUS, "errors since the release", "alice")
