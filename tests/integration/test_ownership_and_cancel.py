"""Undo exactly what this attempt changed, at any moment, on the real engine.

- A release run marked failed as a whole while its monitoring watches (all traffic on the new
  colour, nothing split) goes back to the stable colour within one poll interval + 3 s: the
  cancel listener restores it from the API server, since a failed run schedules no rollback.
- A run rolled back long ago, cleared after a newer release of the same version went live,
  leaves the newer release live: its rollback sees production running another run's Amplify
  job and changes nothing, and says why.
"""

from __future__ import annotations

import time

import pytest
from _matrix import NEW, RELEASE_TIMEOUT, Release

pytestmark = pytest.mark.integration

MONITOR = "monitoring.watch_metrics"
STABLE = {"blue": 100, "green": 0}


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


def test_a_run_cancelled_during_monitoring_goes_back_to_the_stable_colour(local, world, seeded, stack_config):
    poll = world.cfg.timings.poll_interval_seconds
    with stack_config.overridden(timings={"monitoring_seconds": 60}):
        release = Release.trigger(local, world, "cancel-monitoring")
        release.approve()
        release.wait_task(MONITOR, {"deferred"}, poll=0.1)
        assert world.weights() == {"blue": 0, "green": 100}
        marked = _mark_run_failed(release)
        restored_after = _wait_weights(world, STABLE, marked, poll + 3)
    print(f"cancel during monitoring: traffic back on blue {restored_after:.1f} s after the run was marked")
    cancellation = release.section("cancellation")
    # The run's mark fails its running tasks first: the listener hears the task, then the run.
    assert cancellation["task_id"] in (MONITOR, "the run")
    assert cancellation["weights_before"] == {"blue": 0, "green": 100}
    # The notice follows the record's write, from the same thread: wait for it, not for a fixed time.
    deadline = time.monotonic() + 30
    while not any(
        "was cancelled while traffic was" in m["text"] and release.run_id in m["text"]
        for m in world.recorded("slack")
    ):
        assert time.monotonic() < deadline, [m["text"] for m in world.recorded("slack")]
        time.sleep(0.2)


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
    assert live["weights"] == {"blue": 0, "green": 100} and live["served"]["green"] == NEW

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
