"""The fault matrix: one release of v1.1.0 per row, on the real engine, each ending in its expected state.

Each row injects one real failure (a sandbox fault through the control API, a change made
through boto3, or the stack's configuration or template edited as an operator would) and
asserts the end state in the sandbox (stack, weights, Amplify branches, DynamoDB, what
Slack, SMTP and the status page received), in Airflow (run and task states) and in the
deployment record. Failures before production changed undo nothing and page nobody;
later ones are rolled back, with the data written meanwhile kept.

Two rows live with the scenarios that already run their release (one release each, not two):
a breach at the 10 % step is ``test_canary``'s 5 % canary, and every smoke check failing on
its own is the first failure of ``test_kill_matrix``'s second-failure scenario.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from _e2e import SHA
from _matrix import (
    NEW,
    OLD,
    RELEASE_TIMEOUT,
    ROLLBACK_TASKS,
    Release,
    assert_data_kept,
    assert_nothing_rolled_back,
    assert_rolled_back,
    failed_with,
)

pytestmark = pytest.mark.integration

FIRST, SECOND = "approval_gate.first_approval", "approval_gate.second_approval"
SAMPLE_TEMPLATE = Path(__file__).resolve().parents[2] / "include" / "templates" / "bayon-coagent.yaml"


# ------------------------------------------------------------ before production changed
def test_staging_check_fails(local, world, seeded):
    # A commit whose staging deploy never succeeded (the sandbox's GitHub has no run for it).
    release = Release.trigger(local, world, "staging", commit_sha=SHA)
    release.wait("failed")
    states = release.states()
    assert states["pre_deployment_validation.check_staging_workflow"] == "failed"
    assert states["pre_deployment_validation.record_checks"] == "failed"
    assert states["pre_deployment_validation.check_rc_release"] == "success"
    assert states[FIRST] == "upstream_failed"
    checks = release.section("staging_checks")
    assert checks["passed"] is False and checks["checks"]["staging_workflow"]["ok"] is False
    assert release.record("backup") is None
    assert_nothing_rolled_back(release, seeded)


def test_approval_rejected(local, world, seeded):
    release = Release.trigger(local, world, "rejected")
    release.wait_task(FIRST, {"awaiting_input"}, timeout=180)
    local["bob"].respond(release.run_id, FIRST, "Reject")
    release.wait("failed")
    states = release.states()
    assert states[FIRST] == "failed" and states[SECOND] == "upstream_failed"
    assert states["backup.backup_stack"] == "upstream_failed"
    approvals = release.section("approvals")
    assert approvals[FIRST]["decision"] == "rejected"
    assert approvals[FIRST]["user_name"] == "bob"  # FAB's user_id is numeric
    assert release.record("backup") is None
    assert_nothing_rolled_back(release, seeded)


def test_approval_times_out(local, world, seeded, stack_config):
    with stack_config.overridden(timings={"approval_timeout_seconds": 8}):
        release = Release.trigger(local, world, "timeout")
        release.wait_task(FIRST, {"awaiting_input"}, timeout=180)
        release.wait("failed", timeout=120)
    states = release.states()
    assert states[FIRST] == "failed" and states[SECOND] == "upstream_failed"
    assert release.section("approvals")[FIRST]["decision"] == "timed_out"
    assert release.record("backup") is None
    assert_nothing_rolled_back(release, seeded)


def test_backup_fails(local, world, seeded):
    content, users = world.cfg.dynamodb.tables
    kept = world.write_items()[:1]  # the content table's item; the users table is about to go
    release = Release.trigger(local, world, "backup")
    # A table that no longer exists cannot be backed up: the recovery point is incomplete.
    world.client("dynamodb").delete_table(TableName=users)
    release.approve()
    release.wait("failed")
    states = release.states()
    assert states["backup.backup_tables"] == "failed"
    assert states["backup.write_manifest"] == "upstream_failed"
    assert states["validate_infrastructure.lint_template"] == "upstream_failed"
    assert release.record("backup") is None
    assert world.has_item(*kept[0])
    assert_nothing_rolled_back(release, seeded)


def _republish(world, edit) -> None:
    """Staging publishes the release candidate's build again, from the sample template ``edit`` changed."""
    template = edit(SAMPLE_TEMPLATE.read_text())
    world.sandbox.control("POST", f"/builds/{NEW}/faults", {"kind": "republished", "template": template})


def test_cfn_lint_error(local, world, seeded):
    """A release candidate built with a template cfn-lint rejects: verified, planned, stopped at lint."""
    broken = (
        "\n  AuditQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      VisibilityTimeout: not-a-number\n"
    )
    _republish(world, lambda text: text.replace("\nOutputs:", broken + "\nOutputs:"))
    release = Release.trigger(local, world, "cfnlint")
    release.approve()
    release.wait("failed")
    states = release.states()
    assert states["validate_infrastructure.lint_template"] == "failed"
    assert states["validate_infrastructure.verify_change_set"] == "upstream_failed"
    findings = release.section("validation")["template"]["cfn_lint"]
    assert findings["error"] >= 1, findings
    assert [f["rule"] for f in findings["findings"] if f["level"] == "error"] == ["E3012"], findings
    assert_data_kept(release, [])
    assert_nothing_rolled_back(release, seeded)


def test_build_republished_after_the_plan_was_approved(local, world, seeded):
    """The packaged template changed between the approved plan and the deploy: the run stops."""
    extra = "\n  AuditQueue:\n    Type: AWS::SQS::Queue\n"
    release = Release.trigger(local, world, "drift")
    release.wait_task(FIRST, {"awaiting_input"}, timeout=180)  # the plan and its change set exist
    _republish(world, lambda text: text.replace("\nOutputs:", extra + "\nOutputs:"))
    release.approve()
    release.wait("failed")
    states = release.states()
    assert states["validate_infrastructure.lint_template"] == "failed"
    assert states["validate_infrastructure.verify_change_set"] == "upstream_failed"
    approved = release.section("plan")["artifact"]["template_sha256"]
    error = release.section("validation")["template"]["error"]
    assert f"not the {approved} that was verified and approved" in error, error
    assert_data_kept(release, [])
    assert_nothing_rolled_back(release, seeded)


# ------------------------------------------- after the infrastructure, before traffic moved
def test_stack_update_fails(local, world, seeded, sandbox):
    sandbox.inject("stack_update_failure", version=NEW, reason="Lambda: rate exceeded")
    release = Release.trigger(local, world, "stackfail")
    release.approve()
    items = world.write_items()
    release.wait("failed")
    assert release.failed() == failed_with("deploy_infrastructure.execute_change_set")
    assert release.section("infrastructure")["changed"] is True
    section = assert_rolled_back(release, seeded, items, traffic_moved=False, undone={"stack"})
    assert section["steps"]["frontend"]["status"] == "not_needed"


def test_alarm_fires_after_the_infrastructure_deploy(local, world, seeded):
    release = Release.trigger(local, world, "alarm")
    release.approve()
    items = world.write_items()
    # Deferred: the baseline is taken and the stack is updating.
    release.wait_task("deploy_infrastructure.execute_change_set", {"deferred"}, poll=0.1)
    world.set_alarm("latency", "ALARM", "p99 > 2 s since the deploy")
    # The alarm's cause is the new infrastructure: once the stack is back on v1.0.0 it clears, as
    # CloudWatch would clear it (the sandbox leaves an alarm set through its control API as set).
    # The rollback is verified only after that: its metric check counts firing alarms.
    release.wait_task("deploy_infrastructure.execute_change_set", {"failed"})
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while world.stack()["parameters"][world.cfg.stack.version_parameter] != OLD:
        assert time.monotonic() < deadline, "the rollback never restored the stack"
        time.sleep(0.2)
    world.set_alarm("latency", "OK", "p99 back under 1 s")
    release.wait("failed")
    assert release.failed() == failed_with("deploy_infrastructure.execute_change_set")
    infrastructure = release.section("infrastructure")
    assert [a["name"] for a in infrastructure["new_alarms"]] == [f"{world.cfg.alarms.prefix}latency"]
    assert_rolled_back(release, seeded, items, traffic_moved=False, undone={"stack"})


def test_amplify_job_fails(local, world, seeded, sandbox):
    sandbox.inject("amplify_job_failure", version=NEW, reason="npm ci failed")
    release = Release.trigger(local, world, "amplify")
    release.approve()
    items = world.write_items()
    release.wait("failed")
    assert release.failed() == failed_with("deploy_frontend.start_amplify_job")
    assert release.section("frontend").get("traffic_moved") is not True
    assert world.served("green") is None, "the failed build must not serve anything"
    assert_rolled_back(release, seeded, items, traffic_moved=False, undone={"stack", "frontend"})


# --------------------------------------------------------------------- after traffic moved
def test_breach_at_50_percent(local, world, seeded, sandbox):
    release = Release.trigger(local, world, "breach50")
    release.approve()
    items = world.write_items()
    release.wait_task("deploy_frontend.shift_traffic_10", {"success"})
    sandbox.inject("error_rate", version=NEW, percent=60)
    release.wait("failed")
    assert release.failed() == failed_with("deploy_frontend.shift_traffic_50")
    steps = release.section("frontend")["steps"]
    assert steps["10"]["outcome"] == "healthy" and steps["50"]["outcome"] == "breach", steps
    assert_rolled_back(release, seeded, items, traffic_moved=True, undone={"traffic", "stack", "frontend"})


def test_breach_during_monitoring(local, world, seeded, sandbox):
    release = Release.trigger(local, world, "monitoring")
    release.approve()
    items = world.write_items()
    for check in world.cfg.smoke_tests.checks:
        release.wait_task(f"smoke_tests.check_{check.name}", {"success"})
    release.wait_task("smoke_tests.record_results", {"success"})
    sandbox.inject("error_rate", version=NEW, percent=60)
    release.wait("failed")
    assert release.failed() == {"monitoring.watch_metrics", "record_outcome"}
    assert release.section("monitoring")["outcome"] == "breach"
    assert_rolled_back(release, seeded, items, traffic_moved=True, undone={"traffic", "stack", "frontend"})


# ------------------------------------------------------------------- the release stays
def test_slack_down_during_notify(local, world, seeded, sandbox):
    release = Release.trigger(local, world, "slackdown")
    release.approve()
    release.wait_task("monitoring.watch_metrics", {"success"})
    sandbox.inject("outage", service="slack")
    run = release.wait("success")
    assert run["state"] == "success"
    states = release.states()
    assert {"notify.slack_team", "notify.slack_company"} <= release.failed()
    assert release.task("notify.slack_team")["try_number"] > 1, "a notification is retried before failing"
    assert states["notify.email_stakeholders"] == "success" and states["notify.statuspage"] == "success"
    assert {t: s for t, s in states.items() if t.startswith("rollback.")} == {
        f"rollback.{t}": "skipped" for t in (*ROLLBACK_TASKS, "page_oncall_pagerduty", "last_resort_traffic")
    }
    outcome = release.section("outcome")
    assert outcome["status"] == "succeeded"
    assert {"notify.slack_team", "notify.slack_company"} <= set(outcome["notification_failures"])
    now = world.snapshot()
    assert now["weights"] == {"blue": 0, "green": 100} and now["served"]["green"] == NEW
    assert now["stack"]["parameters"][world.cfg.stack.version_parameter] == NEW
    assert world.urgent_notices() == {"slack": [], "email": [], "statuspage": []}


def _task_processes(ti_id: str) -> list[psutil.Process]:
    """The LocalExecutor worker supervising the task instance, and the task process it forked."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if ti_id in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_worker_killed_mid_traffic_shift_is_retried(local, world, seeded):
    step = "deploy_frontend.shift_traffic_50"
    release = Release.trigger(local, world, "killed")
    release.approve()
    # Mid-step: the weights are at 50 % and the hold is watched; kill the worker that resumes the step.
    ti = release.wait_task(step, {"deferred"}, poll=0.2)
    assert world.weights() == {"blue": 50, "green": 50}
    killed: list[int] = []
    deadline = time.monotonic() + 120
    while not killed:
        assert time.monotonic() < deadline, f"no process ran {step} ({ti['id']}) in time"
        processes = _task_processes(ti["id"])
        if processes and release.task(step)["state"] == "running":
            # The whole worker: its supervisor first (so nobody reports the task), then the task process.
            for proc in sorted(processes, key=lambda p: "LocalExecutor" not in " ".join(p.info["cmdline"])):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append(proc.pid)
        time.sleep(0.05)
    run = release.wait("success")
    assert run["state"] == "success"

    path = f"/dags/{release.ci.dag_id}/dagRuns/{release.run_id}/taskInstances/{step}/tries"
    tries = sorted(release.ci.request("GET", path)["task_instances"], key=lambda t: t["try_number"])
    assert [t["state"] for t in tries][-2:] == ["failed", "success"], tries
    frontend = release.section("frontend")
    assert frontend["steps"]["50"]["outcome"] == "healthy"
    assert frontend["steps"]["50"]["previous_attempts"], "the killed attempt is kept in the record"
    assert frontend["completed"] is True
    now = world.snapshot()
    assert now["weights"] == {"blue": 0, "green": 100} and now["served"]["green"] == NEW
    assert release.section("outcome")["status"] == "succeeded"
    assert release.record("rollback") is None
    assert OLD == now["served"]["blue"]
