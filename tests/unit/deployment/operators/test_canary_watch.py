"""The canary watch on threaded moto: per-colour fetch, absolute times, clean windows, retries, restore."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from deployment.aws.cloudwatch_metrics import MetricQuery, fetch_colour_sample, published_to
from deployment.operators.analysis import TrafficShiftOperator
from deployment.triggers.analysis import MetricWatchTrigger, first_window, last_window, window_bounds
from sandbox.cloudwatch_faults import honour_percentiles
from tests.unit import _fixtures_phases58 as fx

moto_url = fx.moto_url
aws_server = fx.aws_server
honour_percentiles()  # the threaded moto of these tests runs in this process


class _NoRecord:
    """A run's record before deploy_infrastructure wrote the API versions: no API canary."""

    def read(self, section: str) -> None:
        return None


NO_RECORD = _NoRecord()


def put_values(cloudwatch, cfg, *, at, dimensions=None, requests, errors, latency_ms) -> None:
    """One second of traffic as the app publishes it: values (so percentiles work), not statistic sets."""
    m = cfg.metrics
    dims = [{"Name": k, "Value": v} for k, v in (dimensions or m.dimensions).items()]
    common = {"Dimensions": dims, "Timestamp": at, "StorageResolution": 1}
    data = [
        {"MetricName": m.requests_metric, "Values": [1.0], "Counts": [float(requests)], **common},
        {
            "MetricName": m.errors_metric,
            "Values": [0.0, 1.0],
            "Counts": [requests - errors, errors],
            **common,
        },
        {
            "MetricName": m.latency_metric,
            "Values": [float(latency_ms)],
            "Counts": [float(requests)],
            **common,
        },
    ]
    cloudwatch.put_metric_data(Namespace=m.namespace, MetricData=data)


class ColourFeeder:
    """Publishes, every 0.2 s, per-colour series (``dimensions`` + Colour) and their total."""

    def __init__(self, cloudwatch, cfg, **per_colour: dict[str, float]) -> None:
        self.cloudwatch, self.cfg, self.per_colour = cloudwatch, cfg, per_colour
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def publish(self, at: datetime) -> None:
        dims = self.cfg.metrics.dimensions
        for colour, traffic in self.per_colour.items():
            for dimensions in ({**dims, self.cfg.metrics.colour_dimension: colour}, dims):
                put_values(self.cloudwatch, self.cfg, at=at, dimensions=dimensions, **traffic)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.publish(datetime.now(UTC))
            self._stop.wait(0.2)

    def __enter__(self) -> ColourFeeder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


HEALTHY_BLUE = {"requests": 45, "errors": 0, "latency_ms": 120}
HEALTHY_GREEN = {"requests": 5, "errors": 0, "latency_ms": 121}


def whole_second(at: datetime) -> datetime:
    return at.replace(microsecond=0) + timedelta(seconds=1)


def watch(cfg, *, since: datetime, hold: float = 2, poll: float = 1, deadline: datetime | None = None, **kw):
    until = since + timedelta(seconds=max(hold, poll))
    kwargs: dict[str, Any] = dict(
        aws_conn_id=cfg.connections.aws,
        region_name=cfg.region,
        query=MetricQuery.from_config(cfg).to_dict(),
        thresholds=cfg.thresholds.model_dump(mode="json"),
        baseline_rps=None,
        poll_interval=poll,
        label="unit",
        canary_colour="green",
        stable_colour="blue",
        data_since=since.isoformat(),
        hold_until=until.isoformat(),
        deadline=(deadline or until + timedelta(seconds=20)).isoformat(),
    )
    return MetricWatchTrigger(**{**kwargs, **kw})


def first_event(trigger) -> tuple[dict[str, Any], float]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger yielded nothing")

    started = time.monotonic()
    return asyncio.run(run()), time.monotonic() - started


class Router:
    """The router seam as the watch sees it: counts the restores it is asked for, and the times it
    was prepared (its clients built)."""

    def __init__(self, fail: bool = False) -> None:
        self.restored: list[str] = []
        self.prepared = 0
        self.fail = fail

    def prepare(self) -> None:
        self.prepared += 1

    def restore(self, colour: str):
        self.restored.append(colour)
        if self.fail:
            raise ConnectionError("router unreachable")
        return None


@pytest.fixture
def router(monkeypatch) -> Router:
    router = Router()
    monkeypatch.setattr("deployment.traffic.router_for", lambda cfg, api=None: router)
    return router


def test_the_trigger_carries_absolute_times_and_round_trips(aws_server):
    cfg = aws_server["cfg"]
    trigger = watch(cfg, since=datetime(2026, 1, 1, tzinfo=UTC), ignore_alarms=["a"])
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["data_since"] == "2026-01-01T00:00:00+00:00"
    assert kwargs["hold_until"] == "2026-01-01T00:00:02+00:00"
    assert kwargs["deadline"] == "2026-01-01T00:00:22+00:00"
    assert "duration" not in kwargs  # nothing counted from when the trigger (re)starts


def test_each_poll_reads_its_own_interval_never_before_the_step():
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert window_bounds(since, 60, 1) == (since, since + timedelta(seconds=60))
    assert window_bounds(since, 60, 5) == (since + timedelta(seconds=240), since + timedelta(seconds=300))


def test_a_restarted_watch_plans_only_what_is_left():
    since = datetime(2026, 1, 1, tzinfo=UTC)
    until = since + timedelta(seconds=300)
    assert first_window(since, 60, 0, since + timedelta(seconds=1)) == 1
    assert first_window(since, 60, 60, since + timedelta(seconds=250)) == 3  # data to 190 s published
    assert last_window(since, until, 60) == 5
    assert last_window(since, since + timedelta(seconds=60), 60) == 1


def test_a_restart_after_the_deadline_ends_at_once(aws_server):
    cfg = aws_server["cfg"]
    since = datetime.now(UTC) - timedelta(seconds=30)
    payload, elapsed = first_event(watch(cfg, since=since, deadline=since + timedelta(seconds=10)))
    assert payload["status"] == "insufficient_data" and "no decision by the deadline" in payload["message"]
    assert elapsed < 5 and payload["watch"]["polls"] == 0


def test_a_restarted_watch_does_not_lengthen_the_step(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    since = whole_second(datetime.now(UTC)) - timedelta(seconds=6)
    with ColourFeeder(cloudwatch, cfg, blue=HEALTHY_BLUE, green=HEALTHY_GREEN) as feeder:
        for back in range(1, 13):  # the step's first seconds, as published before the "restart"
            feeder.publish(datetime.now(UTC) - timedelta(seconds=back / 2))
        payload, elapsed = first_event(watch(cfg, since=since, hold=6))
    assert payload["status"] == "healthy", payload["watch"]["reason"]
    assert payload["resumed_at_window"] >= 5 and payload["watch"]["polls"] <= 2
    assert elapsed < 3


def test_polls_read_only_clean_windows_of_the_new_colour(aws_server, router):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    since = whole_second(datetime.now(UTC))
    bad = {"requests": 5, "errors": 5, "latency_ms": 900}
    ColourFeeder(cloudwatch, cfg, blue=HEALTHY_BLUE, green=bad).publish(since - timedelta(milliseconds=300))
    with ColourFeeder(cloudwatch, cfg, blue=HEALTHY_BLUE, green=HEALTHY_GREEN):
        payload, _ = first_event(watch(cfg, since=since, hold=2))
    assert payload["status"] == "healthy", payload["watch"]["reason"]
    samples = [v["sample"] for v in payload["watch"]["verdicts"]]
    # Each poll: its own interval after the previous one's, and the step so far from the change.
    assert all((s["step"] or s)["start"] == since.isoformat() for s in samples)
    assert all(a["end"] == b["start"] for a, b in zip(samples, samples[1:], strict=False))
    ends = [datetime.fromisoformat(s["end"]) for s in samples]
    assert ends[0] == since + timedelta(seconds=1)
    assert all((b - a).total_seconds() == 1 for a, b in zip(ends, ends[1:], strict=False))
    assert all(not s["canary"]["errors"] and s["canary_colour"] == "green" for s in samples), json.dumps(
        samples
    )
    assert router.restored == []


def test_each_poll_fetches_its_interval_and_the_step_of_canary_stable_and_total(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    calls: list[str] = []
    cloudwatch.meta.events.register("before-call.cloudwatch", lambda model, **_: calls.append(model.name))
    end = whole_second(datetime.now(UTC)) - timedelta(seconds=1)  # a poll reads an interval that has ended
    ColourFeeder(
        cloudwatch, cfg, blue=HEALTHY_BLUE, green={"requests": 5, "errors": 1, "latency_ms": 150}
    ).publish(end - timedelta(milliseconds=500))
    calls.clear()
    sample, published = fetch_colour_sample(
        cloudwatch,
        MetricQuery.from_config(cfg),
        canary="green",
        stable="blue",
        since=end - timedelta(seconds=4),
        start=end - timedelta(seconds=2),
        end=end,
        ignore_alarms=[],
    )
    # how far CloudWatch has published, the interval, the step
    assert calls == ["GetMetricData"] * 3 + ["DescribeAlarms"]
    assert (sample.canary.requests, sample.canary.errors, sample.canary.p95_ms) == (5, 1, 150)
    assert (sample.stable.requests, sample.stable.errors, sample.stable.p99_ms) == (45, 0, 120)
    assert sample.total.requests == 50 and sample.step.start == (end - timedelta(seconds=4)).isoformat()
    assert sample.canary_periods == (150.0,) and published == end


def test_an_interval_is_published_once_data_from_its_last_period_or_later_arrived(aws_server):
    """A last second without requests (a late tick) holds the interval back only until later data
    shows that CloudWatch has published past it."""
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    query, end = MetricQuery.from_config(cfg), whole_second(datetime.now(UTC)) - timedelta(seconds=2)
    feeder = ColourFeeder(cloudwatch, cfg, blue=HEALTHY_BLUE, green=HEALTHY_GREEN)
    feeder.publish(end - timedelta(milliseconds=1500))
    assert published_to(cloudwatch, query, end - timedelta(seconds=2)) == end - timedelta(seconds=1)
    feeder.publish(end + timedelta(milliseconds=500))
    assert published_to(cloudwatch, query, end - timedelta(seconds=2)) == end + timedelta(seconds=1)


def test_a_canary_breach_restores_traffic_once_before_the_task_fails(aws_server, router):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    since = whole_second(datetime.now(UTC))
    failing = {"requests": 40, "errors": 4, "latency_ms": 121}  # 10 %, against 0 % on blue
    with ColourFeeder(cloudwatch, cfg, blue={**HEALTHY_BLUE, "requests": 360}, green=failing) as feeder:
        feeder.publish(since + timedelta(milliseconds=500))  # in the first window however slow the machine
        payload, elapsed = first_event(watch(cfg, since=since, hold=60))
    assert payload["status"] == "breach" and "error_rate" in payload["watch"]["reason"]
    first_window_end = (since + timedelta(seconds=1) - datetime.now(UTC)).total_seconds() + elapsed
    assert elapsed - first_window_end < 1.5  # decided and restored right after the first window, not the hold
    assert router.restored == ["blue"] and payload["traffic_restored"]["colour"] == "blue"
    assert router.prepared == 1  # built before the first poll; the restore only wrote
    # The task, resuming, records the restore and does not ask again.
    again = TrafficShiftOperator(task_id="shift_traffic_10", weight=10)._restore_on_breach(
        type("Rel", (), {"cfg": cfg, "ledger": NO_RECORD})(), payload
    )
    assert router.restored == ["blue"] and again == payload["traffic_restored"]


def test_the_task_restores_when_the_trigger_could_not(aws_server, monkeypatch):
    cfg = aws_server["cfg"]
    router = Router()
    monkeypatch.setattr("deployment.traffic.router_for", lambda cfg, api=None: router)
    event = {
        "status": "breach",
        "stable_colour": "blue",
        "traffic_restored": {"colour": "blue", "error": "x"},
    }
    rel = type("Rel", (), {"cfg": cfg, "ledger": NO_RECORD})()
    restored = TrafficShiftOperator(task_id="shift_traffic_10", weight=10)._restore_on_breach(rel, event)
    assert router.restored == ["blue"] and restored["by_task_at"]
    assert TrafficShiftOperator(task_id="t", weight=10)._restore_on_breach(rel, {"status": "healthy"}) is None


def test_an_api_error_during_a_poll_is_retried_not_a_breach(aws_server, router, monkeypatch):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    real = fetch_colour_sample
    failures = []

    def throttled_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise ClientError(
                {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}, "ResponseMetadata": {}},
                "GetMetricData",
            )
        return real(*args, **kwargs)

    monkeypatch.setattr("deployment.aws.cloudwatch_metrics.fetch_colour_sample", throttled_once)
    since = whole_second(datetime.now(UTC))
    with ColourFeeder(cloudwatch, cfg, blue=HEALTHY_BLUE, green=HEALTHY_GREEN):
        payload, _ = first_event(watch(cfg, since=since, hold=2))
    assert payload["status"] == "healthy", payload["watch"]["reason"]
    assert len(payload["api_errors"]) == 1 and "Throttling" in payload["api_errors"][0]["error"]
    assert payload["api_errors"][0]["window"] == 1 and payload["watch"]["polls"] >= 2, payload["watch"]
    assert router.restored == []


def test_an_ignored_alarm_is_recorded_and_another_breaches(aws_server, router):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    ignored = fx.set_alarm(cloudwatch, cfg, "5xx-errors", "ALARM")
    since = whole_second(datetime.now(UTC))
    with ColourFeeder(cloudwatch, cfg, blue=HEALTHY_BLUE, green=HEALTHY_GREEN):
        payload, _ = first_event(watch(cfg, since=since, hold=1, ignore_alarms=[ignored]))
        assert payload["status"] == "healthy"
        assert payload["watch"]["verdicts"][0]["sample"]["alarms_ignored"] == [ignored]
        other = fx.set_alarm(cloudwatch, cfg, "latency", "ALARM")
        since = whole_second(datetime.now(UTC))
        payload, _ = first_event(watch(cfg, since=since, hold=1, ignore_alarms=[ignored]))
    assert payload["status"] == "breach" and other in payload["watch"]["reason"]
    assert ignored not in payload["watch"]["reason"] and router.restored == ["blue"]


def test_the_whole_environment_sample_applies_ignore_alarms_the_same_way(aws_server):
    from deployment.aws.cloudwatch_metrics import fetch_sample

    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    ignored = fx.set_alarm(cloudwatch, cfg, "5xx-errors", "ALARM")
    other = fx.set_alarm(cloudwatch, cfg, "latency", "ALARM")
    query = MetricQuery.from_config(cfg)
    assert fetch_sample(cloudwatch, query, 2).alarms_firing == (ignored, other)
    assert fetch_sample(cloudwatch, query, 2, ignore_alarms=[ignored]).alarms_firing == (other,)


def test_a_step_reads_data_from_the_next_metric_period_after_its_change():
    # CloudWatch rounds StartTime down to the period (the whole minute at 60 s): the step's data
    # starts at the next boundary, so no window reaches back before the change.
    from airflow.sdk.exceptions import TaskDeferred

    from deployment.config import load_config

    cfg = load_config("production")
    rel = type("Rel", (), {"cfg": cfg, "ledger": NO_RECORD, "emergency": {"ignore_alarms": ["b", "a"]}})()
    applied = (datetime.now(UTC) + timedelta(days=1)).replace(minute=7, second=7, microsecond=500000)
    with pytest.raises(TaskDeferred) as deferred:
        TrafficShiftOperator(task_id="shift_traffic_10", weight=10)._defer_watch(
            rel, canary="green", data_since=applied.isoformat(), hold=300, baseline=None
        )
    trigger = deferred.value.trigger
    since = applied.replace(minute=8, second=0, microsecond=0)
    assert trigger.data_since == since.isoformat()
    assert trigger.hold_until == (since + timedelta(seconds=300)).isoformat()
    assert (trigger.canary_colour, trigger.stable_colour, trigger.ignore_alarms) == (
        "green",
        "blue",
        ["a", "b"],
    )
    assert datetime.fromisoformat(trigger.deadline) > since + timedelta(seconds=300 + cfg.metrics.lag_seconds)
