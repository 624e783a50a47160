"""One poll's verdict on the new colour and the API's new version: either half's breach breaches."""

from __future__ import annotations

import pytest

from deployment.config import load_config
from deployment.judge.canary import Series, judge
from deployment.judge.paired import PairedVerdict
from deployment.judge.verdicts import BREACH, HEALTHY, INSUFFICIENT_DATA, Watch
from tests.unit.deployment.judge.test_canary_analysis import S, sample


@pytest.fixture
def thresholds():
    return load_config("production").thresholds


def api_sample(canary, stable=None):
    return sample(canary, stable, canary_colour="8", stable_colour="7")


def test_a_backend_regression_behind_a_healthy_frontend_breaches_and_says_it_is_the_api(thresholds):
    verdict = PairedVerdict(
        judge(sample(S(400, 0, 120)), thresholds),
        judge(api_sample(S(400, 40, 120)), thresholds, check_band=False),
    )
    assert verdict.outcome == BREACH
    assert all(b.window.startswith("API") for b in verdict.breaches)
    record = verdict.to_dict()
    assert record["outcome"] == BREACH and record["frontend_outcome"] == HEALTHY
    assert record["api"]["outcome"] == BREACH and record["api"]["error_rate_percent"] == 10.0
    watch = Watch(thresholds, 3)
    assert watch.add(verdict) == BREACH and "API" in watch.reason


def test_both_halves_healthy_is_healthy_and_either_without_data_is_not_enough(thresholds):
    healthy = PairedVerdict(
        judge(sample(S(400, 0, 120)), thresholds),
        judge(api_sample(S(400, 0, 120)), thresholds, check_band=False),
    )
    assert healthy.outcome == HEALTHY and "version 8 against 7" in healthy.detail
    quiet_api = PairedVerdict(
        judge(sample(S(400, 0, 120)), thresholds),
        judge(api_sample(S(2, 0, 120)), thresholds, check_band=False),
    )
    assert quiet_api.outcome == INSUFFICIENT_DATA


def test_a_p99_regression_of_the_api_alone_breaches(thresholds):
    slow = Series(requests=400, errors=0, latency_ms=200, p95_ms=250, p99_ms=thresholds.latency_p99_ms * 3)
    verdict = PairedVerdict(
        judge(sample(S(400, 0, 120)), thresholds), judge(api_sample(slow), thresholds, check_band=False)
    )
    assert verdict.outcome == BREACH and {b.threshold for b in verdict.breaches} >= {"latency_p99_ms"}
