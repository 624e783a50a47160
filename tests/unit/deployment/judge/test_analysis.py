"""The metric analysis: thresholds, not-enough-data, the baseline band, the watch's policies."""

from __future__ import annotations

import pytest

from deployment.config import Thresholds, load_config
from deployment.judge.rank_test import average_ranks, mann_whitney, rank_test, shift_interval
from deployment.judge.verdicts import (
    BREACH,
    HEALTHY,
    INSUFFICIENT_DATA,
    Sample,
    Watch,
    evaluate,
    planned_polls,
)

LIMITS = dict(
    error_rate_percent=1.0,
    latency_ms=1000,
    traffic_band=(0.5, 2.0),
    min_requests_per_poll=20,
    insufficient_data="extend",
    max_insufficient_polls=2,
)


def thresholds(**overrides) -> Thresholds:
    return Thresholds(**{**LIMITS, **overrides})


def sample(requests=600.0, errors=0.0, latency=200.0, alarms=(), window=60.0) -> Sample:
    return Sample(
        end="2026-01-01T00:00:00+00:00",
        window_seconds=window,
        requests=requests,
        errors=errors,
        latency_ms=latency,
        alarms_firing=tuple(alarms),
    )


def test_healthy_inside_every_threshold():
    verdict = evaluate(sample(), thresholds(), baseline_rps=10.0)
    assert verdict.outcome == HEALTHY
    assert verdict.error_rate_percent == 0.0
    assert verdict.request_rate_ratio == 1.0
    assert verdict.breaches == ()


@pytest.mark.parametrize(
    ("kwargs", "threshold", "value"),
    [
        ({"errors": 6.0}, "error_rate_percent", 1.0),  # exactly 1 % is not "< 1 %"
        ({"errors": 30.0}, "error_rate_percent", 5.0),
        ({"latency": 1000.0}, "latency_ms", 1000.0),
        ({"latency": 2500.0}, "latency_ms", 2500.0),
        ({"alarms": ["app-5xx"]}, "alarms_firing", 1),
    ],
)
def test_each_threshold_breaches_with_its_value(kwargs, threshold, value):
    verdict = evaluate(sample(**kwargs), thresholds(), baseline_rps=10.0)
    assert verdict.outcome == BREACH
    assert [(b.threshold, b.value) for b in verdict.breaches] == [(threshold, value)]
    assert threshold in verdict.detail


def test_thresholds_come_from_config():
    assert evaluate(sample(errors=30.0), thresholds(error_rate_percent=10.0)).outcome == HEALTHY
    assert evaluate(sample(latency=200.0), thresholds(latency_ms=100)).outcome == BREACH


def test_several_breaches_are_all_named():
    verdict = evaluate(sample(errors=60.0, latency=1500.0, alarms=["a"]), thresholds(), baseline_rps=10.0)
    assert {b.threshold for b in verdict.breaches} == {"alarms_firing", "error_rate_percent", "latency_ms"}


@pytest.mark.parametrize("requests", [None, 0.0, 19.0])
def test_too_few_requests_is_insufficient_data_not_a_pass(requests):
    verdict = evaluate(sample(requests=requests, errors=None), thresholds(), baseline_rps=10.0)
    assert verdict.outcome == INSUFFICIENT_DATA
    assert "fewer than the 20 needed" in verdict.detail


def test_an_alarm_is_a_breach_even_without_data():
    verdict = evaluate(sample(requests=None, alarms=["app-latency"]), thresholds())
    assert verdict.outcome == BREACH


def test_missing_latency_with_requests_is_insufficient_data():
    verdict = evaluate(sample(latency=None), thresholds(), baseline_rps=10.0)
    assert verdict.outcome == INSUFFICIENT_DATA
    assert "no latency datapoint" in verdict.detail


def test_missing_error_datapoint_counts_as_no_errors():
    assert evaluate(sample(errors=None), thresholds(), baseline_rps=10.0).outcome == HEALTHY


@pytest.mark.parametrize(
    ("requests", "outcome"), [(300.0, HEALTHY), (290.0, BREACH), (1200.0, HEALTHY), (1260.0, BREACH)]
)
def test_request_rate_band_is_relative_to_the_baseline(requests, outcome):
    # baseline 10 rps, band [0.5, 2.0] → 5..20 rps over a 60 s window → 300..1200 requests
    verdict = evaluate(sample(requests=requests), thresholds(), baseline_rps=10.0)
    assert verdict.outcome == outcome
    if outcome == BREACH:
        assert verdict.breaches[0].threshold == "request_rate_ratio"


def test_without_a_baseline_the_band_is_noted_as_unchecked():
    verdict = evaluate(sample(requests=5000.0), thresholds(), baseline_rps=None)
    assert verdict.outcome == HEALTHY
    assert verdict.request_rate_ratio is None
    assert "band not checked" in verdict.detail


def test_staging_leaves_the_band_out_silently():
    verdict = evaluate(sample(), thresholds(), check_band=False)
    assert verdict.notes == ()


def test_verdict_and_sample_round_trip_to_json_safe_dicts():
    import json

    verdict = evaluate(sample(alarms=["x"]), thresholds(), baseline_rps=10.0)
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["outcome"] == BREACH and data["breaches"][0]["threshold"] == "alarms_firing"
    assert Sample.from_dict(data["sample"]) == verdict.sample


@pytest.mark.parametrize(("duration", "interval", "polls"), [(300, 60, 5), (6, 2, 3), (0, 60, 1), (7, 2, 4)])
def test_planned_polls(duration, interval, polls):
    assert planned_polls(duration, interval) == polls


def _run(watch: Watch, samples: list[Sample]) -> list:
    decisions = []
    for s in samples:
        decisions.append(watch.add(evaluate(s, watch.thresholds, baseline_rps=10.0)))
        if decisions[-1] is not None:
            break
    return decisions


def test_watch_is_healthy_after_all_planned_polls():
    watch = Watch(thresholds(), polls=3)
    assert _run(watch, [sample()] * 3) == [None, None, HEALTHY]
    assert watch.to_dict()["polls"] == 3


def test_watch_ends_at_once_on_a_breach():
    watch = Watch(thresholds(), polls=5)
    assert _run(watch, [sample(), sample(errors=60.0), sample()]) == [None, BREACH]
    assert watch.reason.startswith("poll 2: error_rate_percent")
    with pytest.raises(RuntimeError):
        watch.add(evaluate(sample(), watch.thresholds))


def test_extend_policy_replaces_polls_without_data():
    watch = Watch(thresholds(max_insufficient_polls=2), polls=2)
    empty = sample(requests=None)
    assert _run(watch, [empty, sample(), empty, sample()]) == [None, None, None, HEALTHY]
    assert watch.to_dict()["insufficient_polls"] == 2


def test_extend_policy_fails_beyond_its_limit():
    watch = Watch(thresholds(max_insufficient_polls=2), polls=5)
    empty = sample(requests=None)
    assert _run(watch, [empty, empty, empty]) == [None, None, INSUFFICIENT_DATA]
    assert "more than the 2" in watch.reason


def test_fail_policy_fails_on_the_first_poll_without_data():
    watch = Watch(thresholds(insufficient_data="fail"), polls=5)
    assert _run(watch, [sample(), sample(requests=3.0)]) == [None, INSUFFICIENT_DATA]
    assert "policy: fail" in watch.reason


def test_a_single_check_watch_extends_when_its_only_poll_has_no_data():
    watch = Watch(thresholds(max_insufficient_polls=1), polls=1)
    assert _run(watch, [sample(requests=None), sample()]) == [None, HEALTHY]


# ------------------------------------------------------------------ the rank test
# Reference values computed once with scipy 1.17.1 and numpy 2.4.6 (not dependencies of this
# project): stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic",
# use_continuity=True) and numpy.median(numpy.subtract.outer(x, y)). The first pair is R's
# wilcox.test example (Hollander & Wolfe): its one-sided exact p 0.1272 is twice-halved 0.2544.
HW_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
HW_Y = [1.15, 0.88, 0.90, 0.74, 1.21]
TIED_X = [150, 152, 150, 160, 171, 165]
TIED_Y = [120, 125, 150, 118, 122, 130]


def test_average_ranks_share_ties():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


@pytest.mark.parametrize(
    ("x", "y", "u", "p", "shift"),
    [
        (HW_X, HW_Y, 35.0, 0.24462360512698333, 0.305),
        (TIED_X, TIED_Y, 35.0, 0.007795826617354622, 31.0),
    ],
)
def test_mann_whitney_and_hodges_lehmann_match_scipy(x, y, u, p, shift):
    got_u, got_p = mann_whitney(x, y)
    assert got_u == u and got_p == pytest.approx(p, rel=1e-9)
    estimate, lower, upper = shift_interval(x, y, 0.98)
    assert estimate == pytest.approx(shift) and lower <= estimate <= upper


def test_the_shift_interval_inverts_the_test():
    # At the interval's ends the shifted samples are just significant at 98 %: inside, never.
    estimate, lower, upper = shift_interval(TIED_X, TIED_Y, 0.98)
    assert 0 < lower < estimate < upper
    assert mann_whitney([v - (lower + 1e-6) for v in TIED_X], TIED_Y)[1] > 0.02
    assert mann_whitney([v - (lower - 1.0) for v in TIED_X], TIED_Y)[1] <= 0.02


def test_the_rank_test_is_kayentas_with_a_floor():
    thresholds = load_config("production").thresholds
    stable = [150.0, 152.0, 149.0, 151.0, 153.0, 150.5]
    slower = [v + 200 for v in [149.0, 151.0, 150.0, 152.0, 148.0, 150.0]]
    high = rank_test(slower, stable, thresholds, "blue")
    assert high.classification == "high" and high.lower > high.tolerance and high.shift > high.min_shift
    assert high.confidence == 0.98 and high.tolerance == pytest.approx(0.25 * high.shift, abs=1e-3)
    # Significant but a 3 ms shift: below 25 % of the stable median, no breach.
    nudged = rank_test([v + 3 for v in stable], stable, thresholds)
    assert nudged.classification != "high"
    low = rank_test(stable, slower, thresholds, "blue")
    assert low.classification == "low" and "stable colour is degraded" in low.reason
    few = rank_test(slower[:4], stable, thresholds)
    assert few.classification == "abstain" and "4 canary and 6 stable periods, fewer than the 5" in few.reason
