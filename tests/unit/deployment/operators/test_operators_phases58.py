"""The phase 5-8 operators end to end on threaded moto: defer, run the trigger, complete, record."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from deployment.ledger import Ledger
from deployment.operators.analysis import MetricsUnhealthy, MonitorReleaseOperator, TrafficShiftOperator
from deployment.traffic.route53 import set_weights, weights
from tests.unit import _fixtures_phases58 as fx
from tests.unit._fixtures_phases58 import PARAMS, RUN_ID, VERSION
from tests.unit.deployment.operators.test_canary_watch import HEALTHY_BLUE, HEALTHY_GREEN, ColourFeeder

moto_url = fx.moto_url
aws_server = fx.aws_server


def run_trigger(trigger) -> dict:
    async def run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(run())


@pytest.fixture
def release(aws_server):
    cfg = aws_server["cfg"]
    ledger = Ledger(cfg, VERSION, RUN_ID)
    ledger.write(
        "frontend",
        {
            "live_colour_before": "blue",
            "target_colour": "green",
            "amplify_job": {"job_id": "1", "status": "SUCCEED"},
        },
    )
    ledger.write("infrastructure", {"traffic_baseline": {"requests_per_second": None}})
    return cfg, ledger, {"params": PARAMS, "run_id": RUN_ID}


def test_breach_during_the_10_percent_step_fails_within_one_poll_interval(aws_server, release):
    cfg, ledger, context = release
    operator = TrafficShiftOperator(task_id="shift_traffic_10", weight=10)
    canary = {"requests": 10, "errors": 2, "latency_ms": 100}  # 20 % on green, 0 % on blue
    blue = {**HEALTHY_BLUE, "requests": 90}
    with ColourFeeder(aws_server["cloudwatch"], cfg, blue=blue, green=canary) as feeder:
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        assert weights(cfg) == {"blue": 90, "green": 10}
        assert ledger.read("frontend")["traffic_moved"] is True
        trigger = deferred.value.trigger
        # in the first window however slow the machine
        feeder.publish(datetime.fromisoformat(trigger.data_since) + timedelta(milliseconds=500))
        assert (trigger.canary_colour, trigger.stable_colour) == ("green", "blue")
        started = time.monotonic()
        event = run_trigger(trigger)
        elapsed = time.monotonic() - started
    poll = cfg.timings.poll_interval_seconds
    assert event["status"] == "breach"
    assert elapsed < poll + 2.5, f"took {elapsed:.1f}s for a {poll}s poll interval"
    assert weights(cfg) == {"blue": 100, "green": 0}  # the trigger put traffic back before the task resumed
    with pytest.raises(MetricsUnhealthy, match="traffic step 10 %: breach: poll 1: interval: error_rate"):
        operator.execute_complete(context, event)
    step = ledger.read("frontend")["steps"]["10"]
    assert step["outcome"] == "breach" and step["watch"]["verdicts"][0]["sample"]["canary"]["errors"] > 0
    assert step["traffic_restored"]["colour"] == "blue"
    assert step["watch"]["verdicts"][0]["sample"]["start"] >= step["data_since"]


def test_a_step_held_healthy_is_not_reapplied(aws_server, release):
    cfg, ledger, context = release
    operator = TrafficShiftOperator(task_id="shift_traffic_10", weight=10)
    with ColourFeeder(aws_server["cloudwatch"], cfg, blue=HEALTHY_BLUE, green=HEALTHY_GREEN):
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        event = run_trigger(deferred.value.trigger)
    assert operator.execute_complete(context, event) == {"weight": 10, "outcome": "healthy"}
    samples = ledger.read("frontend")["steps"]["10"]["watch"]["verdicts"]
    assert operator.execute(context)["already_done"] is True  # no defer, samples kept
    assert ledger.read("frontend")["steps"]["10"]["watch"]["verdicts"] == samples

    # A rollback put all traffic back on blue: a rerun of the step applies it again.
    set_weights(cfg, {"blue": 100, "green": 0})
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    assert weights(cfg) == {"blue": 90, "green": 10}
    assert ledger.read("frontend")["steps"]["10"]["previous_attempts"][0]["watch"]["verdicts"] == samples


def test_a_step_with_no_hold_is_judged_on_one_full_poll(aws_server, release):
    """A 0 s hold (the 100 % step) still holds one full poll of its own: the release is completed
    only once that poll is healthy, whatever the monitoring phase after it does."""
    cfg, ledger, context = release
    operator = TrafficShiftOperator(task_id="shift_traffic_100", weight=100, hold_seconds=0)
    with ColourFeeder(aws_server["cloudwatch"], cfg, blue=HEALTHY_BLUE, green=HEALTHY_GREEN):
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        assert weights(cfg) == {"blue": 0, "green": 100}
        assert "completed" not in ledger.read("frontend")
        trigger = deferred.value.trigger
        since, until = (datetime.fromisoformat(t) for t in (trigger.data_since, trigger.hold_until))
        assert (until - since).total_seconds() == cfg.timings.poll_interval_seconds
        event = run_trigger(trigger)
    assert operator.execute_complete(context, event) == {"weight": 100, "outcome": "healthy"}
    frontend = ledger.read("frontend")
    step = frontend["steps"]["100"]
    assert step["outcome"] == "healthy" and len(step["watch"]["verdicts"]) >= 1
    assert (frontend["completed"], frontend["live_colour_after"]) == (True, "green")
    assert operator.execute(context)["already_done"] is True
    assert ledger.read("frontend")["steps"]["100"] == step


def test_skip_monitoring_is_recorded_and_announced(aws_server, release, monkeypatch):
    cfg, ledger, context = release
    sent = []
    monkeypatch.setattr(
        "deployment.notifications.announce.announce_team", lambda cfg, text: sent.append(text)
    )
    params = {**PARAMS, "emergency": {"skip_monitoring": True, "reason": "hotfix for incident 42"}}
    operator = MonitorReleaseOperator(task_id="watch_metrics")
    for _ in range(2):  # a rerun skips again, announced once
        with pytest.raises(AirflowSkipException, match="skip_monitoring: hotfix for incident 42"):
            operator.execute({**context, "params": params})
    assert len(sent) == 1 and "SKIPPED" in sent[0] and "incident 42" in sent[0]
    assert ledger.read("monitoring")["reason"] == "hotfix for incident 42"


def test_monitoring_defers_for_the_configured_time(aws_server, release):
    cfg, ledger, context = release
    with pytest.raises(TaskDeferred) as deferred:
        MonitorReleaseOperator(task_id="watch_metrics").execute(context)
    trigger = deferred.value.trigger
    since, until = (datetime.fromisoformat(t) for t in (trigger.data_since, trigger.hold_until))
    assert (until - since).total_seconds() == cfg.timings.monitoring_seconds
    assert trigger.poll_interval == cfg.timings.poll_interval_seconds
    assert trigger.canary_colour == "green" and trigger.restore is True
    assert datetime.fromisoformat(trigger.deadline) > until
    assert ledger.read("monitoring")["outcome"] == "watching"
    assert ledger.read("monitoring")["colour"] == "green"
