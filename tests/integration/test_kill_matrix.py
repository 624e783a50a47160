"""The process-kill matrix and two rerun scenarios, on the real engine.

Kill matrix: components are SIGKILLed mid-phase and started again (``Supervisor.restart``;
a task's worker is killed as the fault matrix kills it and LocalExecutor replaces it). To
keep CI short, one release carries several rows:

| row | killed | during | release |
|---|---|---|---|
| 1 | scheduler | approval wait | completes |
| 2 | triggerer | stack update | completes |
| 3 | task worker | traffic step (50 %) | completes |
| 4 | API server | monitoring | completes |
| 5 | API server | approval wait | rolled back (breach in monitoring) |
| 6 | triggerer | monitoring | rolled back |
| 7 | task worker | rollback (restore_stack, own redeploy running) | rolled back |
| 8 | scheduler | rollback (verify) | rolled back |

Each release ends completed, or with production exactly as seeded; nothing is announced
twice (Slack, GitHub release, email) and the DynamoDB items written meanwhile are kept.

Scenarios: after a rollback, clearing only monitoring is refused and announces nothing;
after a rerun from ``validate_infrastructure``, a second failure (the 10 % step marked
failed by hand) puts traffic back at once and rolls the stack back too. The first failure
of that scenario is the fault matrix's smoke row: every check fails, each on its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

import psutil
import pytest
import requests
from _matrix import NEW, OLD, RELEASE_TIMEOUT, Release, assert_data_kept, assert_rolled_back

pytestmark = pytest.mark.integration

FIRST = "approval_gate.first_approval"
STACK_WAIT = "deploy_infrastructure.execute_change_set"
MONITOR = "monitoring.watch_metrics"


# ---------------------------------------------------------------------- killing
def _restart(supervisor, name: str, api_url: str) -> float:
    """SIGKILL ``name`` with everything it started, start it again, wait until the API answers."""
    started = time.monotonic()
    supervisor.restart(name)
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{api_url}/api/v2/monitor/health", timeout=3).ok:
                return time.monotonic() - started
        assert time.monotonic() < deadline, f"the API did not answer after restarting {name}"
        time.sleep(0.5)


def _kill_worker(release: Release, task_id: str, timeout: float = 120) -> list[int]:
    """SIGKILL the LocalExecutor worker running ``task_id`` and the task process it forked."""
    deadline = time.monotonic() + timeout
    while True:
        ti = release.task(task_id)
        if ti["state"] == "running":
            procs = [
                p for p in psutil.process_iter(["cmdline"]) if ti["id"] in " ".join(p.info["cmdline"] or [])
            ]
            if procs:
                killed = []
                for proc in sorted(procs, key=lambda p: "LocalExecutor" not in " ".join(p.info["cmdline"])):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                        killed.append(proc.pid)
                return killed
        assert time.monotonic() < deadline, f"no worker ran {task_id} in time"
        time.sleep(0.05)


# ------------------------------------------------------------------ announcements
def _announced(world) -> dict[str, int]:
    """How often the release was announced: Slack (team and company channels), GitHub, email."""
    slack = [m.get("text") or "" for m in world.recorded("slack")]
    github = [
        r
        for r in world.recorded("github")
        if r["method"] == "POST" and r["path"].endswith("/releases") and r["status"] in (200, 201)
    ]
    # The stakeholder announcement only: approval requests and reminders name the version too.
    mails = [m for m in world.recorded("smtp") if (m.get("subject") or "").endswith(f"{NEW} is live")]
    return {
        "slack": sum(NEW in text and " live" in text and "roll" not in text.lower() for text in slack),
        "github_release": len(github),
        "email": len(mails),
    }


NOTHING_ANNOUNCED = {"slack": 0, "github_release": 0, "email": 0}


def _production(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What users get: the stack, the weights, both branches' variables and the live colour's version.

    (The idle colour's last build is not rolled back: it serves no one. The stack's status
    only has to be settled: a restored stack is UPDATE_COMPLETE where the seeded one was
    CREATE_COMPLETE.)"""
    stack = dict(snapshot["stack"])
    status = stack.pop("status")
    stack["settled"] = status.endswith("_COMPLETE") and "IN_PROGRESS" not in status
    return {
        "stack": stack,
        "weights": snapshot["weights"],
        "env": snapshot["env"],
        "served": snapshot["served"]["blue"],
    }


def _pages(world) -> dict[str, int]:
    return {channel: len(found) for channel, found in world.urgent_notices().items()}


def _row(rows: list[dict[str, Any]], component: str, during: str, **seen: Any) -> None:
    rows.append({"killed": component, "during": during, **seen})


# ------------------------------------------------------------------------- rows 1-4
def test_kills_during_a_release_that_completes(local, world, seeded, local_stack, local_supervisor):
    rows: list[dict[str, Any]] = []
    release = Release.trigger(local, world, "kills-ok")
    release.wait_task(FIRST, {"awaiting_input"}, timeout=180)
    _row(
        rows,
        "scheduler",
        "approval wait",
        restart_s=_restart(local_supervisor, "scheduler", local_stack.api_url),
    )
    release.approve()
    items = world.write_items()

    release.wait_task(STACK_WAIT, {"deferred"}, timeout=180, poll=0.1)
    status = world.stack()["status"]
    _row(
        rows,
        "triggerer",
        "stack update",
        stack_status=status,
        restart_s=_restart(local_supervisor, "triggerer", local_stack.api_url),
    )
    assert status == "UPDATE_IN_PROGRESS", rows

    step = "deploy_frontend.shift_traffic_50"
    release.wait_task(step, {"deferred"}, poll=0.2)
    weights = world.weights()
    _row(rows, "task worker", "traffic step", weights=weights, pids=_kill_worker(release, step))
    assert weights == {"blue": 50, "green": 50}, rows

    release.wait_task(MONITOR, {"deferred"}, poll=0.2)
    _row(
        rows,
        "api-server",
        "monitoring",
        restart_s=_restart(local_supervisor, "api-server", local_stack.api_url),
    )

    run = release.wait("success", timeout=RELEASE_TIMEOUT)
    assert run["state"] == "success", release.ci.diagnose(release.run_id)
    outcome = release.section("outcome")
    assert outcome["status"] == "succeeded" and outcome["attempt"] == 1, outcome
    now = world.snapshot()
    assert now["weights"] == {"blue": 0, "green": 100} and now["served"]["green"] == NEW, now
    assert now["stack"]["parameters"][world.cfg.stack.version_parameter] == NEW
    assert _announced(world) == {"slack": 2, "github_release": 1, "email": 1}  # team and company channels
    assert _pages(world) == {"slack": 0, "email": 0, "statuspage": 0}
    assert_data_kept(release, items)
    print("kill matrix rows 1-4:", rows)


# --------------------------------------------------- rows 5-8, then scenario 1
def test_kills_during_a_rollback_then_a_monitoring_only_rerun_is_refused(
    local, world, seeded, sandbox, local_stack, local_supervisor
):
    rows: list[dict[str, Any]] = []
    release = Release.trigger(local, world, "kills-rb")
    release.wait_task(FIRST, {"awaiting_input"}, timeout=180)
    _row(
        rows,
        "api-server",
        "approval wait",
        restart_s=_restart(local_supervisor, "api-server", local_stack.api_url),
    )
    release.approve()
    items = world.write_items()

    release.wait_task("smoke_tests.record_results", {"success"})
    fault = sandbox.inject("error_rate", version=NEW, percent=60)
    release.wait_task(MONITOR, {"deferred"}, poll=0.1)
    _row(
        rows,
        "triggerer",
        "monitoring",
        restart_s=_restart(local_supervisor, "triggerer", local_stack.api_url),
    )

    release.wait_task("rollback.restore_stack", {"running"}, poll=0.1)
    while world.stack()["status"] != "UPDATE_IN_PROGRESS":  # the rollback's own redeploy has started
        assert release.task("rollback.restore_stack")["state"] == "running", rows
        time.sleep(0.05)
    _row(
        rows, "task worker", "rollback (restore_stack)", pids=_kill_worker(release, "rollback.restore_stack")
    )

    release.wait_task("rollback.verify", {"running"}, poll=0.1)
    _row(
        rows,
        "scheduler",
        "rollback (verify)",
        restart_s=_restart(local_supervisor, "scheduler", local_stack.api_url),
    )

    release.wait("failed", timeout=RELEASE_TIMEOUT)
    assert release.failed() >= {MONITOR, "record_outcome"}, release.ci.diagnose(release.run_id)
    rollback = release.section("rollback")
    assert rollback["status"] == "rolled_back" and rollback["verified"] is True, rollback
    assert release.section("rollback.stack")["actions"], "restore_stack's retry recorded what it found"
    assert release.section("outcome")["status"] == "rolled_back"
    assert _production(world.snapshot()) == _production(seeded), "production must be as before the release"
    assert _pages(world) == {"slack": 1, "email": 1, "statuspage": 1}
    assert _announced(world) == NOTHING_ANNOUNCED
    assert_data_kept(release, items)
    print("kill matrix rows 5-8:", rows)

    # Scenario 1: the fault fixed, only monitoring cleared. It must not watch the old version,
    # pass, and let notify announce v1.1.0 while production serves v1.0.0.
    sandbox.remove_fault(fault)
    release.manager.clear(release.run_id, [MONITOR], include_downstream=True)
    release.wait_task(MONITOR, {"failed"})
    release.wait("failed", timeout=RELEASE_TIMEOUT)
    log = release.ci.task_log(release.run_id, MONITOR, release.task(MONITOR)["try_number"])
    assert "validate_infrastructure" in log and "not what production serves" in log, log[-2000:]
    assert release.record("monitoring").get("outcome") != "healthy"
    assert _announced(world) == NOTHING_ANNOUNCED
    assert _pages(world) == {"slack": 1, "email": 1, "statuspage": 1}, "the same attempt is not paged twice"
    assert release.section("outcome")["status"] == "rolled_back"
    assert _production(world.snapshot()) == _production(seeded)


# ------------------------------------------------------------------- scenario 2
@pytest.mark.usefixtures("sandbox_holds")  # the 10 % step is marked failed while it holds
def test_a_second_failure_after_a_rerun_rolls_the_stack_back_too(local, world, seeded, sandbox):
    # The first failure: one fault per smoke check. Each check is its own task, so each fails on its own.
    names = [check.name for check in world.cfg.smoke_tests.checks]
    faults = [sandbox.inject("smoke_failure", version=NEW, check=name) for name in names]
    release = Release.trigger(local, world, "second")
    release.approve()
    items = world.write_items()
    release.wait("failed")
    assert release.failed() == {
        *(f"smoke_tests.check_{n}" for n in names),
        "smoke_tests.record_results",
        "record_outcome",
    }
    results = release.section("smoke_tests")
    assert results["passed"] is False and results["failed"] == sorted(names), results
    assert_rolled_back(release, seeded, items, traffic_moved=True, undone={"traffic", "stack", "frontend"})
    assert _production(world.snapshot()) == _production(seeded)

    # As the README advises: fix, then clear validate_infrastructure with its downstream tasks.
    for fault in faults:
        sandbox.remove_fault(fault)
    release.manager.clear(release.run_id, ["validate_infrastructure.lint_template"], include_downstream=True)
    step = "deploy_frontend.shift_traffic_10"
    release.wait_task(step, {"deferred"}, poll=0.1)
    assert world.weights() == {"blue": 90, "green": 10}
    assert world.stack()["parameters"][world.cfg.stack.version_parameter] == NEW
    assert release.section("attempt")["id"] == 2

    # The second failure: the step marked failed by hand while traffic is split.
    marked = time.monotonic()
    path = f"/dags/{release.ci.dag_id}/dagRuns/{release.run_id}/taskInstances/{step}"
    local["admin"].request("PATCH", path, json={"new_state": "failed"})
    while world.weights() != {"blue": 100, "green": 0}:
        assert time.monotonic() - marked < 30, "traffic stayed split after the step was marked failed"
        time.sleep(0.1)
    restored_after = time.monotonic() - marked

    release.wait_task("record_outcome", {"failed"}, timeout=RELEASE_TIMEOUT)
    # Whichever puts traffic back first records it: the watch trigger's on_kill (``cancellation``)
    # or the rollback group the failed step starts (its ``traffic`` step); the other finds nothing split.
    cancellation = release.record("cancellation") or {}
    traffic_step = release.section("rollback")["steps"]["traffic"]
    assert (cancellation.get("task_id"), cancellation.get("stable_colour")) == (step, "blue") or (
        traffic_step["status"] == "done"
    ), (cancellation, traffic_step)
    plan = release.section("rollback.plan")
    assert plan["attempt"] == 2 and plan["undo"]["stack"] is True, plan
    rollback = release.section("rollback")
    assert rollback["status"] == "rolled_back" and rollback["attempt"] == 2, rollback
    outcome = release.section("outcome")
    assert outcome["status"] == "rolled_back" and outcome["attempt"] == 2 and outcome["attempts"] == 2
    now = world.snapshot()
    assert _production(now) == _production(seeded), "the stack must be rolled back too, not only the traffic"
    assert now["stack"]["parameters"][world.cfg.stack.version_parameter] == OLD
    pages = _pages(world)
    assert (pages["slack"], pages["email"]) == (2, 2), f"one page per rolled-back attempt: {pages}"
    assert _announced(world) == NOTHING_ANNOUNCED
    assert_data_kept(release, items)
    print(
        f"traffic back on blue {restored_after:.1f} s after the step was marked failed "
        f"(poll interval {world.cfg.timings.poll_interval_seconds} s)"
    )
