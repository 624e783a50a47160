"""Undo exactly what this attempt changed, at any moment, on the real engine.

- A release run marked failed as a whole goes back to the stable colour within one poll
  interval + 3 s, wherever it is between its first weight change and its judgement: the cancel
  listener restores it from the API server, since a failed run schedules no rollback. One row
  per instant where no deferred watch could restore it:

  | instant | how the test holds it there |
  |---|---|
  | the 10 % weights written, still propagating to the edges | a 15 s ``kvs_propagation`` fault |
  | between two steps (the 10 % watch over, nothing running) | the DAG paused while the step holds |
  | during the smoke tests (100 % on the new colour) | one check's endpoint slowed by 20 s |
  | during monitoring (100 % on the new colour) | 60 s of monitoring |

- A run rolled back long ago, cleared after a newer release of the same version went live,
  leaves the newer release live: its rollback sees production running another run's Amplify
  job and changes nothing, and says why.
"""

from __future__ import annotations

import time

import pytest
from _e2e import let_stopped_tasks_end
from _matrix import NEW, RELEASE_TIMEOUT, Release

from tests.sandbox._poll import poll

pytestmark = pytest.mark.integration

MONITOR = "monitoring.watch_metrics"
SHIFT_10 = "deploy_frontend.shift_traffic_10"
FIRST_CHECK = "smoke_tests.check_authentication_flow"
STABLE = {"blue": 100, "green": 0}
TEN = {"blue": 90, "green": 10}
ALL_NEW = {"blue": 0, "green": 100}


def _mark_run_failed(release: Release) -> float:
    admin = release.users["admin"]
    admin.request("PATCH", f"/dags/{admin.dag_id}/dagRuns/{release.run_id}", json={"state": "failed"})
    return time.monotonic()


def _wait_weights(world, wanted: dict[str, int], since: float, bound: float) -> float:
    while world.weights() != wanted:
        assert time.monotonic() - since < bound, (
            f"traffic is {world.weights()} {bound:.0f} s after the cancel"
        )
        time.sleep(0.1)
    return time.monotonic() - since


def _cancel_restores(release: Release, world, instant: str, before: dict[str, int]) -> None:
    """Mark the run failed with ``before`` served; stable must be back within one poll + 3 s, stay
    there, and the cancel be recorded and announced."""
    assert world.weights() == before, release.record("frontend")
    marked = _mark_run_failed(release)
    restored_after = _wait_weights(world, STABLE, marked, world.cfg.timings.poll_interval_seconds + 3)
    print(f"cancel {instant}: traffic back on blue {restored_after:.1f} s after the run was marked")
    let_stopped_tasks_end(release.users["admin"], [release.run_id])
    assert world.weights() == STABLE, "a task killed by the cancel moved traffic again"
    # The record is written once the front door serves the restore (after any propagation lag), and
    # the notice after the record, from the same thread: wait for each, not for a fixed time.
    poll(lambda: release.record("cancellation"), lambda found: found is not None, timeout=60)
    cancellation = release.section("cancellation")
    assert cancellation["weights_before"] == before, cancellation
    poll(
        lambda: [m["text"] for m in world.recorded("slack")],
        lambda texts: any("was cancelled while traffic was" in t and release.run_id in t for t in texts),
        timeout=30,
    )


def test_a_run_cancelled_while_its_weights_propagate_goes_back_to_the_stable_colour(
    local, world, seeded, sandbox
):
    sandbox.inject("kvs_propagation", ms=15000)
    release = Release.trigger(local, world, "cancel-propagating")
    release.approve()
    # The store has the 10 % split; the step waits for the edges to serve it.
    poll(
        world.weights,
        lambda weights: weights == TEN and release.task(SHIFT_10)["state"] == "running",
        timeout=RELEASE_TIMEOUT,
    )
    _cancel_restores(release, world, "while the weights propagate", TEN)
    assert release.section("cancellation")["task_id"] in (SHIFT_10, "the run")


def test_a_run_cancelled_between_two_steps_goes_back_to_the_stable_colour(local, world, seeded):
    admin = local["admin"]
    release = Release.trigger(local, world, "cancel-between-steps")
    release.approve()
    release.wait_task(SHIFT_10, {"deferred"}, poll=0.1)
    # Paused, the scheduler queues nothing of the run: the 10 % watch ends, and no task runs while
    # 10 % of viewers stay on the new colour (as when a scheduler or executor falls behind).
    admin.request("PATCH", f"/dags/{admin.dag_id}", json={"is_paused": True})
    try:
        release.wait_task(SHIFT_10, {"scheduled"}, poll=0.1)
        _cancel_restores(release, world, "between two steps", TEN)
    finally:
        admin.request("PATCH", f"/dags/{admin.dag_id}", json={"is_paused": False})
    assert release.section("cancellation")["task_id"] == "the run"


def test_a_run_cancelled_during_its_smoke_tests_goes_back_to_the_stable_colour(local, world, seeded, sandbox):
    sandbox.inject("latency", version=NEW, check="authentication_flow", ms=20000)
    release = Release.trigger(local, world, "cancel-smoke")
    release.approve()
    release.wait_task(FIRST_CHECK, {"running"}, poll=0.1)
    _cancel_restores(release, world, "during the smoke tests", ALL_NEW)


def test_a_run_cancelled_during_monitoring_goes_back_to_the_stable_colour(local, world, seeded, stack_config):
    with stack_config.overridden(timings={"monitoring_seconds": 60}):
        release = Release.trigger(local, world, "cancel-monitoring")
        release.approve()
        release.wait_task(MONITOR, {"deferred"}, poll=0.1)
        _cancel_restores(release, world, "during monitoring", ALL_NEW)
    # The run's mark fails its running tasks first: the listener hears the task, then the run.
    assert release.section("cancellation")["task_id"] in (MONITOR, "the run")


def test_an_old_run_cleared_after_a_newer_release_went_live_leaves_it_live(local, world, seeded, sandbox):
    fault = sandbox.inject("smoke_failure", version=NEW)
    old = Release.trigger(local, world, "ownership-old")
    old.approve()
    old.wait("failed", timeout=RELEASE_TIMEOUT)
    assert old.section("rollback")["status"] == "rolled_back" and world.weights() == STABLE
    sandbox.remove_fault(fault)

    newer = Release.trigger(local, world, "ownership-newer")
    newer.approve()
    newer.wait("success", timeout=RELEASE_TIMEOUT)
    live = world.snapshot()
    assert live["weights"] == ALL_NEW and live["served"]["green"] == NEW

    # As the README advises for a retry; by now the newer release is what production runs.
    old.manager.clear(old.run_id, ["validate_infrastructure.lint_template"], include_downstream=True)
    old.wait("failed", timeout=RELEASE_TIMEOUT)
    after = world.snapshot()
    assert after["weights"] == live["weights"] and after["stack"] == live["stack"], (
        "the newer release was undone"
    )
    rollback = old.section("rollback")
    assert rollback["status"] == "refused", rollback
    assert any("not this run's job" in reason for reason in rollback["reasons"]), rollback
    assert old.states()["rollback.plan"] == "skipped"
