"""deploy_production on real components (LocalExecutor, PostgreSQL where the machine has it), driven
only through the REST API."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from _e2e import SHA, approve, expect_api_error, release_conf
from _notices import (
    Recorded,
    assert_rollback_notices,
)

from airflow_stack.env import CI_USER, RELEASE_MANAGER, passwords

pytestmark = pytest.mark.e2e

TRIGGER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "trigger_release.py"
ROLLBACK_TIMEOUT = 420
RELEASE_TIMEOUT = 420


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        (release_conf(version="1.1.0"), "version"),
        (release_conf(version="v1.1"), "version"),
        ({**release_conf(), "commit_sha": SHA[:7]}, "commit_sha"),
        (release_conf(emergency={"force_deploy": True}), "emergency"),
        (release_conf(emergency={"force_deploy": True, "reason": "short"}), "emergency"),
    ],
    ids=["version-without-v", "version-not-semver", "short-sha", "force-without-reason", "reason-too-short"],
)
def test_bad_conf_is_refused_at_run_creation_naming_the_field(local_clients, conf, field):
    ci = local_clients[CI_USER]
    before = len(ci.runs())
    error = expect_api_error(lambda: ci.trigger(conf), 400)
    assert f"Invalid input for param {field}" in str(error.detail)
    assert len(ci.runs()) == before


def test_ci_client_against_the_api_server(local, local_stack):
    def client(*args: str, password: str = passwords()[CI_USER]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                str(TRIGGER_SCRIPT),
                "--url",
                local_stack.api_url,
                "--username",
                CI_USER,
                "--password",
                password,
                "--commit-sha",
                release_conf()["commit_sha"],
                "--author",
                "dave",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = client("--tag", "v1.1.0", password="not-the-password")
    assert refused.returncode == 3, refused.stderr
    bad_tag = client("--tag", "release-1.1")
    assert bad_tag.returncode == 5, bad_tag.stderr
    assert "Invalid input for param version" in bad_tag.stderr
    created = client("--tag", "refs/tags/v1.1.0", "--run-id", "ci__v1.1.0__1")
    assert created.returncode == 0, created.stderr
    assert f"{local_stack.api_url}/dags/deploy_production/runs/ci__v1.1.0__1" in created.stdout
    run = local[CI_USER].run("ci__v1.1.0__1")
    assert run["conf"] == release_conf(version="v1.1.0")
    retried = client("--tag", "v1.1.0", "--run-id", "ci__v1.1.0__1")
    assert retried.returncode == 0 and "already exists" in retried.stdout


def test_approval_rules_and_a_second_trigger_waits_in_the_queue(local):
    """One run waiting for approval serves both: who may answer which request, and a second
    release triggered meanwhile stays queued (max_active_runs=1) until the first ends."""
    run_id = local[CI_USER].trigger(release_conf(author="alice"))["dag_run_id"]
    first, second = "approval_gate.first_approval", "approval_gate.second_approval"
    local[CI_USER].wait_for_task(run_id, first, {"awaiting_input"}, timeout=180)
    assigned = {u["name"] for u in local["admin"].hitl_detail(run_id, first)["assigned_users"]}
    assert assigned == {"bob", "carol"}, "the author must not be asked to approve"

    expect_api_error(lambda: local["alice"].respond(run_id, first, "Approve"), 403)  # the author
    expect_api_error(lambda: local["dave"].respond(run_id, first, "Approve"), 403)  # not an approver
    answered = local["bob"].respond(run_id, first, "Approve")
    assert answered["responded_by"]["name"] == "bob" and answered["chosen_options"] == ["Approve"]
    assert local["admin"].hitl_detail(run_id, first)["responded_by_user"]["name"] == "bob"
    expect_api_error(lambda: local["bob"].respond(run_id, first, "Approve"), 409)  # already answered

    local[CI_USER].wait_for_task(run_id, second, {"awaiting_input"}, timeout=60)
    assigned = {u["name"] for u in local["admin"].hitl_detail(run_id, second)["assigned_users"]}
    assert assigned == {"carol"}, "neither the author nor the first approver may give the second approval"
    expect_api_error(lambda: local["bob"].respond(run_id, second, "Approve"), 403)

    ci = local[CI_USER]
    queued = ci.trigger(release_conf(version="v1.2.0"))["dag_run_id"]
    time.sleep(8)  # several scheduler loops
    assert ci.run(run_id)["state"] == "running"
    assert ci.run(queued)["state"] == "queued"
    assert all(state is None for state in ci.task_states(queued).values())
    local["admin"].request("PATCH", f"/dags/{ci.dag_id}/dagRuns/{run_id}", json={"state": "failed"})
    ci.wait_for_run(queued, {"running"}, timeout=60)


def test_failed_release_is_rolled_back_then_cleared_and_completed(local, sandbox):
    ci = local[CI_USER]
    fault = sandbox.inject("smoke_failure", version="v1.1.0")
    recorded = Recorded(sandbox)
    run_id = ci.trigger(release_conf())["dag_run_id"]
    approve(local, run_id)
    ci.wait_for_run(run_id, {"failed"}, timeout=ROLLBACK_TIMEOUT)
    assert_rollback_notices(recorded, "v1.1.0")
    states = ci.task_states(run_id)
    failed_groups = {t.split(".")[0] for t, s in states.items() if s == "failed" and "." in t}
    assert failed_groups == {"smoke_tests"}, states
    rollback = {t: s for t, s in states.items() if t.startswith("rollback.")}
    # The last resort runs only when no rollback plan can be made.
    assert rollback.pop("rollback.last_resort_traffic") == "skipped", rollback
    assert rollback and all(s == "success" for s in rollback.values()), rollback

    # Production is back on v1.0.0, so rerunning the smoke tests alone would test the old
    # version: they refuse, and the way back in is validate_infrastructure with downstream.
    sandbox.remove_fault(fault)
    redeploy = [t for t in states if t.startswith("validate_infrastructure.")]
    cleared = local[RELEASE_MANAGER].clear(run_id, redeploy, include_downstream=True)  # ci may not
    assert {ti["task_id"] for ti in cleared} >= {t for t in states if t.startswith("smoke_tests.")}
    run = ci.wait_for_run(run_id, {"success"}, timeout=RELEASE_TIMEOUT)
    assert run["state"] == "success"
