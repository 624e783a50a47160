"""The API canaried with the frontend, on the real engine (releases of v1.1.0; issue #29).

The stack update publishes the API function's new version while its alias ``live`` stays on the
previous one; each traffic step moves the alias's weight with the colours', and each poll judges
the new version's invocations against the previous version's (Lambda's metrics by
``ExecutedVersion``). The faults here are matched by ``backend_version``: they hit the requests
the new version executes, whichever colour's page sent them.

0. Half the new version's invocations fail from the start: its smoke checks by qualifier fail
   right after the stack update, before the alias gives it any share; the stack is rolled back.
1. Half the new version's invocations fail once the 10 % step runs: the step breaches on the
   API's verdict, and the watch puts the alias back on the previous version (one UpdateAlias)
   within one poll + 3 s; the release is rolled back as the fault matrix's rows are.
2. One invocation in 50 of the new version is 1.5 s slower (the mean kept): the 10 % step, held
   10 s so the new version has the values a p99 needs, breaches on the API's p99.
3. A healthy release: the new version passed its smoke checks by qualifier before any share, the
   alias ends on it alone, the stack names it (``LiveVersion``) and drift detection finds the
   alias in sync; each step's change recorded the alias's weights with the colours'.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from _matrix import NEW, Release, assert_rolled_back, failed_with

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sandbox_holds")]

STEP_10 = "deploy_frontend.shift_traffic_10"
LONGER_TEN_PERCENT_STEP = [
    {"weight": 10, "hold_seconds": 10},
    {"weight": 50, "hold_seconds": 6},
    {"weight": 100, "hold_seconds": 0},
]


def alias(world) -> tuple[str, dict]:
    backend = world.cfg.backend
    found = world.client("lambda").get_alias(FunctionName=backend.function_name, Name=backend.alias)
    return found["FunctionVersion"], (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def assert_alias_back_by_the_step(release: Release, step: dict, previous: str) -> None:
    restored = step["traffic_restored"]
    assert "error" not in restored, restored
    api = restored["change"]["api"]
    assert api["after"] == {"version": previous, "weights": {}}, api
    assert alias(release.world) == (previous, {})
    breach_window_end = datetime.fromisoformat(step["watch"]["verdicts"][-1]["sample"]["end"])
    poll = release.world.cfg.timings.poll_interval_seconds
    assert (datetime.fromisoformat(api["at"]) - breach_window_end).total_seconds() < poll + 3, api


def test_a_new_version_failing_its_smoke_checks_by_qualifier_gets_no_share(local, world, seeded, sandbox):
    before = alias(world)
    # Every second call of the new version fails: its four checks by qualifier cannot all pass by
    # chance (an independent 50 % draw let all four through in one run of sixteen).
    sandbox.inject("error_rate", backend_version=NEW, percent=50, spacing="even")
    release = Release.trigger(local, world, "apismoke")
    release.approve()
    items = world.write_items()
    release.wait("failed")
    assert release.failed() == failed_with("deploy_infrastructure.execute_change_set")
    infrastructure = release.section("infrastructure")
    smoke = infrastructure["api_smoke"]
    assert not smoke["ok"] and smoke["qualifier"] == infrastructure["api"]["new"], smoke
    assert all(
        r["executed_version"] == smoke["qualifier"] for r in smoke["results"] if r.get("executed_version")
    )
    assert_rolled_back(release, seeded, items, traffic_moved=False, undone={"stack"})
    assert alias(world) == before


def test_a_backend_error_regression_is_stopped_at_the_10_percent_step(local, world, seeded, sandbox):
    before = alias(world)
    release = Release.trigger(local, world, "apierrors")
    release.approve()
    items = world.write_items()
    # After the smoke checks by qualifier (which would stop it before any share): during the step.
    release.wait_task(STEP_10, {"running", "deferred"})
    sandbox.inject("error_rate", backend_version=NEW, percent=50)
    release.wait("failed")
    assert release.failed() == failed_with(STEP_10)
    api = release.section("infrastructure")["api"]
    assert api["previous"] == before[0] and api["new"] != api["previous"], api
    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "breach", step["reason"]
    assert step["routing_change"]["api"]["after"] == {
        "version": api["previous"],
        "weights": {api["new"]: 0.1},
    }
    last = step["watch"]["verdicts"][-1]
    assert last["api"]["outcome"] == "breach", last["api"]
    assert {b["threshold"] for b in last["api"]["breaches"]} & {"error_rate_percent", "error_rate_vs_stable"}
    assert_alias_back_by_the_step(release, step, api["previous"])
    assert_rolled_back(release, seeded, items, traffic_moved=True, undone={"traffic", "stack", "frontend"})
    assert alias(world) == before


def test_a_backend_p99_regression_is_stopped_at_the_10_percent_step(
    local, world, seeded, sandbox, stack_config
):
    before = alias(world)
    sandbox.inject("latency_tail", backend_version=NEW, percent=2, ms=1500)
    with stack_config.overridden(traffic={"steps": LONGER_TEN_PERCENT_STEP}):
        release = Release.trigger(local, world, "apitail")
        release.approve()
        release.wait("failed")
    assert release.failed() == failed_with(STEP_10)
    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "breach", step["reason"]
    last = step["watch"]["verdicts"][-1]
    assert any(b["threshold"].startswith("latency_p99") for b in last["api"]["breaches"]), last["api"]
    assert_alias_back_by_the_step(release, step, before[0])


def test_a_healthy_release_ends_with_the_alias_on_the_new_version_and_the_stack_in_sync(local, world, seeded):
    before = alias(world)
    release = Release.trigger(local, world, "apihealthy")
    release.approve()
    release.wait("success")
    infrastructure = release.section("infrastructure")
    api = infrastructure["api"]
    previous, new = api["previous"], api["new"]
    assert (
        previous == before[0]
        and new != previous
        and api["alias_after_update"]
        == {
            "version": previous,
            "weights": {},
        }
    )
    smoke = infrastructure["api_smoke"]
    assert smoke["ok"] and smoke["qualifier"] == new, smoke
    assert {r["executed_version"] for r in smoke["results"]} == {new}, smoke

    frontend = release.section("frontend")
    moved = {w: frontend["steps"][w]["routing_change"]["api"]["after"] for w in ("10", "50", "100")}
    assert moved == {
        "10": {"version": previous, "weights": {new: 0.1}},
        "50": {"version": previous, "weights": {new: 0.5}},
        "100": {"version": new, "weights": {}},
    }
    assert all(v.get("api") for step in ("10", "50") for v in frontend["steps"][step]["watch"]["verdicts"])
    assert alias(world) == (new, {})
    assert world.stack()["parameters"][world.cfg.backend.version_parameter] == new
    sync = frontend["api_stack_sync"]
    assert sync["version"] == new and sync["drift"]["status"] == "IN_SYNC", sync
    checks = [release.section(f"smoke_tests.{c.name}") for c in world.cfg.smoke_tests.checks]
    assert all(c["api"]["ok"] and c["api"]["executed_version"] == new for c in checks), checks
