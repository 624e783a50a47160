"""The canary judged on its own requests, on the real engine (releases of v1.1.0).

1. The new version answers exactly one request in 20 with an error (5 %, evenly spaced: about
   0.5 % environment-wide, under the 1 % threshold): the 10 % step fails, and the watching step
   has put traffic back on blue itself; the release is rolled back as the fault matrix's rows
   are (this is its 10 % step row). The step sees ~100 of the canary's requests; drawn at
   random, 5 % errors leave 2 or fewer in them one run in eight, which no test at 1 % can tell
   from noise (the judge then waits for more data, and fails the step if none comes), so the
   errors are spaced evenly and the test is about the judge, not the draw.
2. The new version is 200 ms slower, with no errors: the 10 % step fails on latency alone.
3. A latency regression (2.5 s a request) that starts in the last poll of the 50 % step, while
   CloudWatch publishes 3 s late: the step waits for its last seconds to be published and fails.
4. The canary stops answering after the 10 % step's first poll: its fresh intervals hold no
   requests, and the step fails for want of data instead of passing on what it saw before.
5. A p99-only regression (exactly one request in 50 1.5 s slower, the others faster, the mean
   unchanged): p95 stays under its limit, and the 10 % step, held 10 s, fails on p99 once the
   step holds the 100 requests a p99 needs.
6. One release proves the rest: blue (stable) degraded with 5 % errors, 300 ms slower and its
   5xx alarm firing but listed in ``emergency.ignore_alarms``, a CloudWatch lag of 2 s, and
   CloudWatch throttling every call for one poll during the 10 % step (held 10 s, so that the
   rank test has its periods). The 10 % step passes (the record says the stable colour is
   degraded, on errors and on latency, and which alarm was ignored), no sample of any step reads
   data from before its weights took effect, and another alarm firing during the 50 % step
   fails it.
"""

from __future__ import annotations

import math
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
LATENCY_THRESHOLDS = {
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p95_vs_stable",
    "latency_p99_vs_stable",
    "latency_rank_test",
}


# sandbox.yaml's 6 s at 10 % brings the canary 96-120 requests and at most six 1 s periods: a p99
# needs 100 values and the rank test 5 periods a colour, so a step may end with either not judged
# (and pass, as a judge passes a metric without data). 10 s brings ~160 requests and ten periods,
# enough by the fourth poll even when a loaded machine publishes a tick late.
LONGER_TEN_PERCENT_STEP = [
    {"weight": 10, "hold_seconds": 10},
    {"weight": 50, "hold_seconds": 6},
    {"weight": 100, "hold_seconds": 0},
]
# The p95 comparison with the stable colour needs 100 requests of the new colour in the step's
# window (judge.canary: TAIL_FOR_COMPARISON tail values at 5 %): 10 % of the simulator's ~200
# requests/s gets there in 5 s on an idle machine, and the simulator runs at half that rate or less
# on a loaded one (two stacks side by side on 2 cores): 20 s hold it at a quarter of the rate.
COMPARED_TEN_PERCENT_STEP = [{**LONGER_TEN_PERCENT_STEP[0], "hold_seconds": 20}, *LONGER_TEN_PERCENT_STEP[1:]]


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


def test_a_canary_with_five_percent_errors_fails_the_10_percent_step(local, world, seeded, sandbox):
    sandbox.inject("error_rate", version=NEW, percent=5, spacing="even")
    release = Release.trigger(local, world, "canary5")
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
    assert {b["threshold"] for b in verdicts(step)[-1]["breaches"]} <= LATENCY_THRESHOLDS
    assert_traffic_back_by_the_step(release, step)


def hold_ends(step: dict) -> float:
    """When a step's hold ends (epoch seconds): its data starts at the next whole second after
    its weights were applied (the sandbox's metric period)."""
    return math.ceil(datetime.fromisoformat(step["applied_at"]).timestamp()) + step["hold_seconds"]


def applied_step(release: Release, weight: int, timeout: float = 600) -> dict:
    """A step's record as soon as its weights are applied: read from the record (the sandbox's S3),
    not from Airflow's API, whose task states lag seconds behind on a loaded machine (which is
    asked only whether the run ended meanwhile: then the step will never come)."""
    deadline, looked = time.time() + timeout, time.time()
    while time.time() < deadline:
        frontend = release.record("frontend") or {}
        step = (frontend.get("steps") or {}).get(str(weight)) or {}
        if step.get("applied_at") and step.get("outcome") == "watching":
            return step
        if time.time() - looked > 5:
            looked = time.time()
            if (state := release.ci.run(release.run_id)["state"]) in ("success", "failed"):
                raise AssertionError(f"the run {state} before its {weight} % step was applied: {frontend}")
        time.sleep(0.1)
    raise AssertionError(f"the {weight} % step was not applied within {timeout} s")


def inject_at(sandbox, at: float, kind: str, **fields) -> int:
    """Inject a fault at the epoch time ``at``, which must still be ahead."""
    assert time.time() < at, f"too late to inject {kind} at {at}: the scenario's window has passed"
    time.sleep(at - time.time())
    return sandbox.inject(kind, **fields)


def test_a_latency_regression_in_the_last_poll_of_the_50_percent_step_stops_it(local, world, seeded, sandbox):
    release = Release.trigger(local, world, "canarylate")
    release.approve()
    step = applied_step(release, 50)
    late = sandbox.inject("metrics_delay", ms=3000)
    poll = world.cfg.timings.poll_interval_seconds
    # Just after the last poll's interval starts: the simulator applies a fault from its next tick,
    # whose requests are stamped with that tick's start, so none lands in an earlier interval.
    inject_at(sandbox, hold_ends(step) - poll + 0.2, "latency", version=NEW, ms=2500)
    release.wait_task(STEP_50, {"failed"})
    sandbox.remove_fault(late)
    release.wait("failed")
    step = release.section("frontend")["steps"]["50"]
    assert step["outcome"] == "breach", step["reason"]
    last = verdicts(step)[-1]
    assert datetime.fromisoformat(last["sample"]["end"]).timestamp() >= hold_ends(step), last["sample"]
    assert {b["threshold"] for b in last["breaches"]} & LATENCY_THRESHOLDS, last
    assert release.section("frontend")["steps"]["10"]["outcome"] == "healthy"
    assert_traffic_back_by_the_step(release, step)


def test_a_canary_that_stops_answering_fails_its_step(local, world, seeded, sandbox):
    release = Release.trigger(local, world, "canarystall")
    release.approve()
    step = applied_step(release, 10)
    # After the step's first poll interval, well before its hold ends.
    first_poll_ends = hold_ends(step) - step["hold_seconds"] + world.cfg.timings.poll_interval_seconds
    inject_at(sandbox, first_poll_ends + 0.2, "stall", version=NEW)
    release.wait("failed")
    assert release.failed() == failed_with(STEP_10)
    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "insufficient_data", step["reason"]
    fresh = [v["sample"]["canary"]["requests"] for v in verdicts(step)]
    assert not fresh[-1], fresh  # the last interval brought nothing new from green
    assert world.weights() == {"blue": 100, "green": 0}


def test_a_p99_only_latency_regression_fails_the_10_percent_step(local, world, seeded, sandbox, stack_config):
    sandbox.inject("latency_tail", version=NEW, percent=2, ms=1500)
    with stack_config.overridden(traffic={"steps": LONGER_TEN_PERCENT_STEP}):
        release = Release.trigger(local, world, "canarytail")
        release.approve()
        release.wait("failed")
    assert release.failed() == failed_with(STEP_10)
    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "breach", step["reason"]
    last = verdicts(step)[-1]
    assert any(b["threshold"].startswith("latency_p99") for b in last["breaches"]), last["breaches"]
    p95 = [b for v in verdicts(step) for b in v["breaches"] if b["threshold"].startswith("latency_p95")]
    assert not p95, p95  # the tail alone moved
    step_so_far = last["sample"]["step"]
    # The mean did not move: a judge of means would have passed this canary.
    mean_ratio = step_so_far["canary"]["latency_ms"] / step_so_far["stable"]["latency_ms"]
    assert mean_ratio < 1 + world.cfg.thresholds.latency_margin_percent / 100, step_so_far
    assert_traffic_back_by_the_step(release, step)


def test_degraded_stable_ignored_alarm_lag_and_a_cloudwatch_blip(local, world, seeded, sandbox, stack_config):
    ignored, other = (f"{world.cfg.alarms.prefix}{name}" for name in ("5xx-errors", "latency"))
    degraded = sandbox.inject("error_rate", colour="blue", percent=5)
    slow = sandbox.inject("latency", colour="blue", ms=300)
    world.set_alarm("5xx-errors", "ALARM", "blue answers 5 % errors")
    # bob (in emergency_users) triggers: he cannot approve his own run, so two others must be able to.
    approvers = [{"id": u, "name": u.title()} for u in ("alice", "bob", "carol", "dave", "admin")]
    with stack_config.overridden(
        metrics={"lag_seconds": 2},
        approvals={"approvers": approvers},
        traffic={"steps": COMPARED_TEN_PERCENT_STEP},
    ):
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
        sandbox.remove_fault(slow)
        release.wait("failed")

    throttled = [r for r in world.aws_requests(blip_started, "monitoring") if r["status"] == 400]
    assert throttled, "the CloudWatch fault must have answered some of the watch's calls"
    steps = release.section("frontend")["steps"]
    ten, fifty = steps["10"], steps["50"]
    assert ten["outcome"] == "healthy", ten["reason"]
    reasons = [r for v in verdicts(ten) for r in v["reasons"]]
    assert any("stable colour is degraded" in r for r in reasons), reasons
    # Latency too: the percentiles and the rank test both say blue is the slower one.
    assert any("faster than stable blue" in r for r in reasons), reasons
    assert any(r.startswith("rank test") and "stable colour is degraded" in r for r in reasons), reasons
    assert all(v["sample"]["alarms_ignored"] == [ignored] for v in verdicts(ten)), verdicts(ten)
    assert ten["ignore_alarms"] == [ignored]

    for step in (ten, fifty):  # clean windows: nothing read from before the step's weights took effect
        since = datetime.fromisoformat(step["data_since"])
        assert since >= datetime.fromisoformat(step["applied_at"])
        assert all(datetime.fromisoformat(v["sample"]["start"]) >= since for v in verdicts(step)), step

    assert fifty["outcome"] == "breach" and other in fifty["reason"] and ignored not in fifty["reason"]
    assert release.states()[STEP_50] == "failed"
    assert_traffic_back_by_the_step(release, fifty)
