"""Metrics fetched from CloudWatch (threaded moto): one GetMetricData per poll, alarms, baseline, staging."""

from __future__ import annotations

from unittest import mock

from deployment.aws.cloudwatch_metrics import (
    MetricQuery,
    baseline,
    fetch_sample,
    firing_alarms,
    staging_health,
)
from deployment.judge.verdicts import BREACH, HEALTHY
from tests.unit import _fixtures_phases58 as fx
from tests.unit._fixtures_phases58 import put_traffic, set_alarm

aws_server = fx.aws_server
moto_url = fx.moto_url


def test_one_poll_sums_its_window_with_one_get_metric_data(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    put_traffic(cloudwatch, cfg, requests=100, errors=2, latency_ms=100)
    put_traffic(cloudwatch, cfg, requests=300, errors=0, latency_ms=300)
    put_traffic(
        cloudwatch, cfg, requests=999, errors=999, latency_ms=999, dimensions=cfg.metrics.staging_dimensions
    )
    with mock.patch.object(cloudwatch, "get_metric_data", wraps=cloudwatch.get_metric_data) as spy:
        sample = fetch_sample(cloudwatch, MetricQuery.from_config(cfg), window_seconds=30)
    assert spy.call_count == 1
    assert (sample.requests, sample.errors) == (400, 2)
    assert sample.latency_ms == 250.0  # weighted by request count, not the mean of the averages
    assert sample.alarms_firing == ()


def test_an_empty_window_has_no_datapoints(aws_server):
    sample = fetch_sample(aws_server["cloudwatch"], MetricQuery.from_config(aws_server["cfg"]), 10)
    assert (sample.requests, sample.errors, sample.latency_ms) == (None, None, None)


def test_only_prefixed_alarms_in_alarm_fire(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    firing = set_alarm(cloudwatch, cfg, "5xx-errors", "ALARM")
    set_alarm(cloudwatch, cfg, "latency", "OK")
    cloudwatch.put_metric_alarm(
        AlarmName="other-team-alarm",
        Namespace="X",
        MetricName="Y",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="other-team-alarm", StateValue="ALARM", StateReason="not ours")
    alarms = firing_alarms(cloudwatch, cfg.alarms.prefix)
    assert [a["name"] for a in alarms] == [firing]
    assert alarms[0]["reason"] == "unit test: ALARM"
    sample = fetch_sample(cloudwatch, MetricQuery.from_config(cfg), 10)
    assert sample.alarms_firing == (firing,)


def test_baseline_is_the_request_rate_before_the_release(aws_server):
    cfg = aws_server["cfg"]
    put_traffic(aws_server["cloudwatch"], cfg, requests=300, errors=0, latency_ms=100)
    result = baseline(cfg)
    window = cfg.timings.baseline_window_seconds
    assert result["requests"] == 300
    assert result["requests_per_second"] == round(300 / window, 6)
    low, high = cfg.thresholds.traffic_band
    assert result["band_requests_per_second"] == [round(300 / window * low, 6), round(300 / window * high, 6)]


def test_baseline_without_traffic_has_no_rate(aws_server):
    assert baseline(aws_server["cfg"])["requests_per_second"] is None


def test_staging_health_healthy_and_breached(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    staging = cfg.metrics.staging_dimensions
    put_traffic(cloudwatch, cfg, requests=500, errors=1, latency_ms=120, dimensions=staging)
    set_alarm(cloudwatch, cfg, "5xx-errors", "ALARM")  # production's alarms do not judge staging
    result = staging_health(cfg)
    assert result == {
        "ok": True,
        "error_rate_percent": 0.2,
        "latency_ms": 120.0,
        "verdict": HEALTHY,
        "detail": HEALTHY,
    }
    put_traffic(cloudwatch, cfg, requests=500, errors=50, latency_ms=120, dimensions=staging)
    result = staging_health(cfg)
    assert result["ok"] is False and result["verdict"] == BREACH
    assert "error_rate_percent = 5" in result["detail"]


def test_staging_health_without_data_is_not_ok(aws_server):
    result = staging_health(aws_server["cfg"])
    assert result["ok"] is False
    assert result["verdict"] == "insufficient_data"
    assert result["error_rate_percent"] is None and result["latency_ms"] is None


def test_polls_read_the_window_that_ends_the_configured_lag_ago():
    from datetime import UTC, datetime

    from deployment.aws.cloudwatch_metrics import MetricQuery
    from deployment.config import load_config

    production = MetricQuery.from_config(load_config("production"))
    assert production.lag_seconds == 60
    lagged = (datetime.now(UTC) - production.window_end()).total_seconds()
    assert 59 <= lagged <= 62
    fixed = datetime(2026, 1, 1, 12, 0, 0, 500, tzinfo=UTC)
    assert production.window_end(fixed) == fixed.replace(microsecond=0)
    assert MetricQuery(**production.to_dict()) == production  # a trigger carries it as JSON-safe kwargs
