"""rollback_production, triggered over REST: back to v1.0.0 after a release of v1.1.0, and its guard.

The release before the rollback is also the tier's successful release on LocalExecutor: approved
by two users, announced as it should be, with no secret in any log, XCom or record object.
"""

from __future__ import annotations

import time

import pytest
from _artifacts import assert_released_the_build
from _e2e import RC_COMMITS
from _matrix import NEW, OLD, Release
from _notices import (
    Recorded,
    assert_no_secret_leaked,
    assert_release_notices,
    record_objects,
    run_artifacts,
    secret_values,
)

from airflow_stack.client import AirflowClient
from airflow_stack.env import passwords

pytestmark = pytest.mark.integration

DAG_ID = "rollback_production"
RECORD_FOLDER = "manual-rollbacks"  # the deployment record's folder for manual rollbacks
REASON = "checkout conversion dropped 30 % since v1.1.0"


def rollback_dag(user: AirflowClient) -> AirflowClient:
    return AirflowClient(user.base_url, user.username, passwords()[user.username], dag_id=DAG_ID)


def trigger_rollback(user: AirflowClient, name: str) -> tuple[AirflowClient, str]:
    client = rollback_dag(user)
    run_id = f"manual__{name}__{int(time.time() * 1000)}"
    client.trigger({"target_version": OLD, "reason": REASON}, run_id=run_id)
    return client, run_id


def test_a_release_then_a_manual_rollback_puts_the_previous_version_back(
    local, world, seeded, sandbox, stack_config
):
    recorded = Recorded(sandbox)
    release = Release.trigger(local, world, "released")
    approvers = release.approve()
    assert len(set(approvers)) == 2 and "dave" not in approvers
    release.wait("success")
    states = release.states()
    assert states["record_release"] == "success"
    assert all(state == "skipped" for task, state in states.items() if task.startswith("rollback."))
    assert_released_the_build(release, RC_COMMITS[NEW])  # checked on this test's release
    record = record_objects(sandbox, str(stack_config.path), NEW, release.run_id)
    notes = next(text for key, text in record.items() if key.endswith("/release_notes.md"))
    assert_release_notices(recorded, approvers=approvers, notes=notes)
    assert_no_secret_leaked(
        secret_values(sandbox.connections()), {**run_artifacts(release.ci, release.run_id), **record}
    )
    released = world.snapshot()
    assert released["weights"] == {"blue": 0, "green": 100}
    assert released["stack"]["parameters"][world.cfg.stack.version_parameter] == NEW

    rollback, run_id = trigger_rollback(local["erin"], "to-v1.0.0")
    rollback.wait_for_run(run_id, {"success"}, timeout=300)
    assert set(rollback.task_states(run_id).values()) == {"success"}

    now = world.snapshot()
    assert now["weights"] == {"blue": 100, "green": 0}
    assert now["stack"]["parameters"] == seeded["stack"]["parameters"]
    assert now["stack"]["parameters"][world.cfg.stack.version_parameter] == OLD
    assert now["stack"]["template"] == seeded["stack"]["template"]
    assert now["served"]["blue"] == OLD
    assert now["env"]["blue"] == seeded["env"]["blue"]
    assert now["env"]["green"] == seeded["env"]["green"], "the idle branch's variables are the backed-up ones"

    section = world.record(RECORD_FOLDER, run_id, "rollback")
    assert section["status"] == "rolled_back" and section["verified"] is True, section
    assert set(section["undone"]) == {"traffic", "stack", "frontend"}
    assert all(check["ok"] for check in section["steps"]["verify"]["checks"].values())
    plan = world.record(RECORD_FOLDER, run_id, "rollback.plan")
    assert plan["previous_version"] == OLD and plan["rolled_back_version"] == NEW
    # The API's alias back on the version OLD ran, alone, and the restored stack names it (#29).
    released_api = release.section("infrastructure")["api"]
    assert plan["api"]["previous"] == released_api["previous"] != released_api["new"], plan["api"]
    backend = world.cfg.backend
    live = world.client("lambda").get_alias(FunctionName=backend.function_name, Name=backend.alias)
    assert live["FunctionVersion"] == released_api["previous"] and not (live.get("RoutingConfig") or {}).get(
        "AdditionalVersionWeights"
    ), live
    assert section["steps"]["verify"]["checks"]["api_alias"]["ok"], section["steps"]["verify"]["checks"]
    # requested_by is the user Airflow authenticated for the trigger, not a name in the conf
    assert plan["reason"] == REASON and plan["requested_by"] == "erin"
    assert plan["build"]["version"] == OLD and len(plan["build"]["commit_sha"]) == 40, "OLD's recorded build"
    outcome = world.record(RECORD_FOLDER, run_id, "outcome")
    assert outcome["status"] == "rolled_back" and outcome["previous_version"] == OLD
    assert all(world.urgent_notices().values()), "a rollback of production pages on-call"


def test_rollback_is_refused_while_a_release_past_its_gate_runs(local, world, seeded):
    """A release waiting for approval holds nothing (it re-checks production before its first
    change); once approved and changing production, a manual rollback is refused."""
    release = Release.trigger(local, world, "running")
    release.approve()
    release.wait_task("deploy_infrastructure.execute_change_set", {"deferred"}, timeout=180, poll=0.1)

    rollback, run_id = trigger_rollback(local["erin"], "refused")
    rollback.wait_for_run(run_id, {"failed"}, timeout=120)
    states = rollback.task_states(run_id)
    assert states["plan"] == "failed"
    assert all(
        s in ("upstream_failed", "skipped") for t, s in states.items() if t not in ("plan", "record_outcome")
    ), states
    assert world.record(RECORD_FOLDER, run_id, "rollback.plan") is None
    assert release.ci.run(release.run_id)["state"] == "running", "the release goes on"
    assert world.urgent_notices() == {"slack": [], "email": [], "statuspage": []}
