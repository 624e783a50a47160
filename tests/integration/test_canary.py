"""The canary judged on its own requests, on the real engine (three releases of v1.1.0).

1. The new version answers 8 % of its requests with errors (about 0.8 % environment-wide,
   under the 1 % threshold): the 10 % step fails, and the watching step has put traffic back
   on blue itself; the release is rolled back as the fault matrix's rows are (this is its 10 %
   step row). The step's 6 s hold sees ~60 of the canary's requests: at 5 % none of them was
   an error in about one run in twenty (0.95^60; seen once, the step passed), at 8 % in one
   run in 150.
2. The new version is 200 ms slower, with no errors: the 10 % step fails on latency alone.
3. One release proves the rest: blue (stable) degraded with 5 % errors and its 5xx alarm
   firing but listed in ``emergency.ignore_alarms``, a CloudWatch lag of 2 s, and CloudWatch
   throttling every call for one poll during the 10 % step. The 10 % step passes (the record
   says the stable colour is degraded and which alarm was ignored), no sample of any step
   reads data from before its weights took effect, and another alarm firing during the 50 %
   step fails it.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from _e2e import release_conf
from _matrix import NEW, Release, assert_rolled_back, failed_with

# sandbox.yaml's holds, not the real-engine stack's one-poll ones: the judge needs several polls of the
# canary's own requests (a tenth of the viewers at the 10 % step), and the CloudWatch blip and the lag
# must leave clean ones.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sandbox_holds")]

STEP_10, STEP_50 = "deploy_frontend.shift_traffic_10", "deploy_frontend.shift_traffic_50"


def verdicts(step: dict) -> list[dict]:
    return step["watch"]["verdicts"]


def assert_traffic_back_by_the_step(release: Release, step: dict) -> None:
    restored = step["traffic_restored"]
    assert restored["colour"] == "blue" and "error" not in restored, restored
    assert release.world.weights() == {"blue": 100, "green": 0}
    # The watch restored traffic within one poll of the window that showed the fault.
    breach_window_end = datetime.fromisoformat(verdicts(step)[-1]["sample"]["end"])
    at = datetime.fromisoformat(restored["at"])
    poll = release.world.cfg.timings.poll_interval_seconds
    assert (at - breach_window_end).total_seconds() < poll + 3, (breach_window_end, restored)


def test_a_canary_with_eight_percent_errors_fails_the_10_percent_step(local, world, seeded, sandbox):
    sandbox.inject("error_rate", version=NEW, percent=8)
    release = Release.trigger(local, world, "canary8")
    release.approve()
    items = world.write_items()
    release.wait("failed")
    assert release.failed() == failed_with(STEP_10)
    assert release.task(STEP_10)["try_number"] == 1, "a breach is not retried"
    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "breach" and step["weights"] == {"green": 10, "blue": 90}, step
    last = verdicts(step)[-1]
    canary, total = last["sample"]["canary"], last["sample"]["total"]
    canary_rate, total_rate = canary["errors"] / canary["requests"], total["errors"] / total["requests"]
    # The canary's own rate, not diluted: a whole-environment watch sees a fraction of it. (Counts are
    # binomial draws: the total's absolute rate straddles the 1 % threshold by chance, so compare rates;
    # the first error may come in the last window, 1 of ~60 requests, just over the threshold.)
    assert canary_rate > world.cfg.thresholds.error_rate_percent / 100 and total_rate < canary_rate / 2, last
    assert {b["threshold"] for b in last["breaches"]} & {"error_rate_percent", "error_rate_vs_stable"}
    assert_traffic_back_by_the_step(release, step)
    assert_rolled_back(release, seeded, items, traffic_moved=True, undone={"traffic", "stack", "frontend"})


def test_a_latency_only_regression_fails_the_10_percent_step(local, world, seeded, sandbox):
    sandbox.inject("latency", version=NEW, ms=200)
    release = Release.trigger(local, world, "canaryslow")
    release.approve()
    release.wait("failed")
    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "breach", step["reason"]
    assert [b["threshold"] for b in verdicts(step)[-1]["breaches"]] == ["latency_vs_stable"]
    assert_traffic_back_by_the_step(release, step)


def test_degraded_stable_ignored_alarm_lag_and_a_cloudwatch_blip(local, world, seeded, sandbox, stack_config):
    ignored, other = (f"{world.cfg.alarms.prefix}{name}" for name in ("5xx-errors", "latency"))
    degraded = sandbox.inject("error_rate", colour="blue", percent=5)
    world.set_alarm("5xx-errors", "ALARM", "blue answers 5 % errors")
    # bob (in emergency_users) triggers: he cannot approve his own run, so two others must be able to.
    approvers = [{"id": u, "name": u.title()} for u in ("alice", "bob", "carol", "dave", "admin")]
    with stack_config.overridden(metrics={"lag_seconds": 2}, approvals={"approvers": approvers}):
        run_id = f"canary__stable_degraded__{int(time.time() * 1000)}"
        emergency = {"ignore_alarms": [ignored], "reason": "blue is degraded; the release fixes it"}
        local["bob"].trigger(release_conf(emergency=emergency), run_id=run_id)
        release = Release(local, world, run_id)
        release.approve()
        release.wait_task(STEP_10, {"deferred"}, poll=0.2)
        poll = world.cfg.timings.poll_interval_seconds
        blip_started = time.time()
        sandbox.inject("cloudwatch_failure", mode="throttling", seconds=float(poll))
        release.wait_task(STEP_10, {"success"})
        release.wait_task(STEP_50, {"deferred"}, poll=0.2)
        world.set_alarm("latency", "ALARM", "a new alarm during the 50 % step")
        release.wait_task(STEP_50, {"failed"})
        # Both end once traffic is back on blue: the rollback's verification (which retries for
        # minutes while production is unhealthy) passes at once, and this test is about the steps.
        world.set_alarm("latency", "OK", "back on blue")
        sandbox.remove_fault(degraded)
        release.wait("failed")

    throttled = [r for r in world.aws_requests(blip_started, "monitoring") if r["status"] == 400]
    assert throttled, "the CloudWatch fault must have answered some of the watch's calls"
    steps = release.section("frontend")["steps"]
    ten, fifty = steps["10"], steps["50"]
    assert ten["outcome"] == "healthy", ten["reason"]
    reasons = [r for v in verdicts(ten) for r in v["reasons"]]
    assert any("stable colour is degraded" in r for r in reasons), reasons
    assert all(v["sample"]["alarms_ignored"] == [ignored] for v in verdicts(ten)), verdicts(ten)
    assert ten["ignore_alarms"] == [ignored]

    for step in (ten, fifty):  # clean windows: nothing read from before the step's weights took effect
        since = datetime.fromisoformat(step["data_since"])
        assert since >= datetime.fromisoformat(step["applied_at"])
        assert all(datetime.fromisoformat(v["sample"]["start"]) >= since for v in verdicts(step)), step

    assert fifty["outcome"] == "breach" and other in fifty["reason"] and ignored not in fifty["reason"]
    assert release.states()[STEP_50] == "failed"
    assert_traffic_back_by_the_step(release, fifty)
