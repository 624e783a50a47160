"""The canary's verdict: its own requests against the thresholds and against the stable colour."""

from __future__ import annotations

import math

import pytest

from deployment.config import load_config
from deployment.judge.canary import ColourSample, Series, judge, split_alarms
from deployment.judge.proportions import binomial_tail, worse_by_margin_p
from deployment.judge.verdicts import BREACH, HEALTHY, INSUFFICIENT_DATA, Watch


@pytest.fixture
def thresholds():
    return load_config("production").thresholds  # 1 % errors, 1000 ms, margins 0.5 points / 25 %


def S(requests: float, errors: float = 0, latency: float = 120) -> Series:
    """A series whose latency values spread as the sandbox's do: p95 1.25 and p99 1.6 x the mean."""
    return Series(
        requests=requests, errors=errors, latency_ms=latency, p95_ms=latency * 1.25, p99_ms=latency * 1.6
    )


def sample(canary: Series, stable: Series | None = None, **extra) -> ColourSample:
    stable = stable or S(3600, 4, 120)
    total = Series(
        requests=(canary.requests or 0) + (stable.requests or 0),
        errors=(canary.errors or 0) + (stable.errors or 0),
    )
    fields = dict(
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:01:00+00:00",
        canary_colour="green",
        stable_colour="blue",
        canary=canary,
        stable=stable,
        total=total,
    )
    return ColourSample(**{**fields, **extra})


def test_binomial_tail_matches_the_closed_form():
    # P(X >= 1) = 1 - (1-p)^n, and both summing directions agree.
    assert binomial_tail(1, 40, 0.01) == pytest.approx(1 - 0.99**40)
    assert binomial_tail(3, 40, 0.01) == pytest.approx(0.0074974, rel=1e-4)
    exact = sum(math.comb(200, k) * 0.3**k * 0.7 ** (200 - k) for k in range(50, 201))
    assert binomial_tail(50, 200, 0.3) == pytest.approx(exact)
    assert binomial_tail(0, 10, 0.5) == 1.0 and binomial_tail(11, 10, 0.5) == 0.0


def test_two_proportion_test_is_one_sided_with_a_margin():
    assert worse_by_margin_p(20, 400, 4, 3600, 0.005) < 1e-4  # 5 % against 0.1 %
    assert worse_by_margin_p(4, 3600, 20, 400, 0.005) > 0.99  # better is never "worse"
    # The same rates with and without a margin: the margin demands more evidence.
    assert worse_by_margin_p(6, 400, 4, 3600, 0.0) < worse_by_margin_p(6, 400, 4, 3600, 0.005)


def test_a_canary_with_five_percent_errors_at_ten_percent_weight_breaches(thresholds):
    # 400 canary requests, 20 errors; environment-wide this is 24 / 4000 = 0.6 %, under the 1 % limit.
    verdict = judge(sample(S(400, 20, 125)), thresholds)
    assert verdict.outcome == BREACH
    assert {b.threshold for b in verdict.breaches} == {"error_rate_percent", "error_rate_vs_stable"}
    assert verdict.sample.total.error_rate_percent == 0.6
    record = verdict.to_dict()
    assert record["error_rate_percent"] == 5.0 and record["stable_error_rate_percent"] == pytest.approx(
        0.1111, 1e-3
    )
    assert record["sample"]["start"] and record["sample"]["end"] and record["sample"]["window_seconds"] == 60


def test_a_latency_only_regression_breaches_against_the_stable_colour(thresholds):
    verdict = judge(sample(S(600, 0, 320)), thresholds)
    assert verdict.outcome == BREACH
    # far below the absolute limits; p95 is compared with the stable colour's, p99 only with its limit
    assert [b.threshold for b in verdict.breaches] == ["latency_p95_vs_stable"]
    assert verdict.breaches[0].window == "interval"


def test_a_p99_only_regression_breaches_on_its_limit_though_the_mean_holds(thresholds):
    tail = Series(requests=150, errors=0, latency_ms=120, p95_ms=150, p99_ms=2400)
    verdict = judge(sample(tail), thresholds)
    assert verdict.outcome == BREACH
    assert [(b.threshold, b.value) for b in verdict.breaches] == [("latency_p99_ms", 2400)]
    assert any(
        "p99 judged against its limit only (the rank test compares colours)" in r for r in verdict.reasons
    )


def test_a_high_percentile_of_a_few_requests_is_not_judged(thresholds):
    # p99 of 60 values is their maximum: one cold start must not fail a release.
    few = Series(requests=60, errors=0, latency_ms=130, p95_ms=160, p99_ms=2500)
    verdict = judge(sample(few), thresholds)
    assert verdict.outcome == HEALTHY, verdict.detail
    assert any("p99 not judged: 60 requests, fewer than 100" in r for r in verdict.reasons)


def test_a_stalled_canary_is_not_enough_data_though_the_step_so_far_is_healthy(thresholds):
    step = sample(S(400, 0, 120))
    stalled = sample(Series(), start="2026-01-01T00:01:00+00:00", end="2026-01-01T00:02:00+00:00")
    verdict = judge(ColourSample(**{**stalled.__dict__, "start": stalled.start, "step": step}), thresholds)
    assert verdict.outcome == INSUFFICIENT_DATA
    assert verdict.detail.startswith("interval: green (new) requests in 60s: no datapoint, fewer than the 20")


def test_a_breach_in_the_step_so_far_ends_the_watch_whatever_the_interval(thresholds):
    step = sample(S(400, 20, 125))
    fresh = sample(S(40, 0, 120), start="2026-01-01T00:01:00+00:00", end="2026-01-01T00:02:00+00:00")
    verdict = judge(ColourSample(**{**fresh.__dict__, "step": step}), thresholds)
    assert verdict.outcome == BREACH
    assert {(b.threshold, b.window) for b in verdict.breaches} == {
        ("error_rate_percent", "step"),
        ("error_rate_vs_stable", "step"),
    }


def test_a_degraded_stable_colour_with_a_healthy_canary_passes_and_says_why(thresholds):
    degraded = S(3600, 180, 400)
    verdict = judge(sample(S(400, 0, 121), degraded), thresholds)
    assert verdict.outcome == HEALTHY
    assert any("stable colour is degraded" in r for r in verdict.reasons)
    assert any("p95 151.25 ms, faster than stable blue 500 ms" in r for r in verdict.reasons)


def test_too_few_canary_requests_is_not_enough_data_never_a_pass(thresholds):
    verdict = judge(sample(S(5, 0, 120)), thresholds)
    assert verdict.outcome == INSUFFICIENT_DATA and "fewer than the 20" in verdict.detail
    assert "rank test abstains: 0 canary and 0 stable periods, fewer than the 5" in verdict.detail


def test_a_rate_above_the_limit_that_the_window_cannot_confirm_is_not_enough_data(thresholds):
    # 2 errors in 40 is 5 %, but at 1 % two errors in 40 happen 6 % of the time: more data, not a pass.
    verdict = judge(sample(S(40, 2, 120)), thresholds)
    assert verdict.outcome == INSUFFICIENT_DATA
    assert "p = 0.061" in verdict.detail


def test_one_error_in_a_small_window_is_no_evidence(thresholds):
    # 1 error in 40 happens a third of the time at 1 %, and the stable colour errs as often.
    stable = S(360, 9, 120)
    verdict = judge(sample(S(40, 1, 120), stable), thresholds)
    assert verdict.outcome == HEALTHY, verdict.detail
    assert "no evidence above 1 % (p = 0.33)" in verdict.detail


def test_baseline_noise_passes(thresholds):
    verdict = judge(sample(S(400, 0, 131)), thresholds)
    assert verdict.outcome == HEALTHY, verdict.detail


def test_ignored_alarms_do_not_breach_others_do(thresholds):
    breaching, ignored = split_alarms(["app-5xx", "app-latency"], ["app-5xx"])
    assert (breaching, ignored) == (("app-latency",), ("app-5xx",))
    canary = S(400, 0, 120)
    only_ignored = judge(sample(canary, alarms_ignored=("app-5xx",)), thresholds)
    assert only_ignored.outcome == HEALTHY
    assert "ignored by emergency.ignore_alarms: app-5xx" in only_ignored.detail
    other = judge(sample(canary, alarms_firing=breaching, alarms_ignored=ignored), thresholds)
    assert other.outcome == BREACH and "app-latency" in other.detail and "app-5xx" not in other.detail


def test_the_request_rate_band_is_judged_on_total_traffic(thresholds):
    # Canary and stable each fine; the total is 4000 requests in 60 s = 66.7 rps against 200 before.
    verdict = judge(sample(S(400, 0, 120)), thresholds, baseline_rps=200.0)
    assert verdict.outcome == BREACH and verdict.breaches[0].threshold == "request_rate_ratio"
    assert verdict.request_rate_ratio == pytest.approx(0.3333, 1e-3)


def test_samples_round_trip_and_feed_a_watch(thresholds):
    s = sample(S(400, 0, 120), alarms_ignored=("a",))
    assert ColourSample.from_dict(s.to_dict()) == s
    watch = Watch(thresholds, polls=2)
    assert watch.add(judge(s, thresholds)) is None
    assert watch.add(judge(s, thresholds)) == HEALTHY
    assert watch.to_dict()["verdicts"][0]["sample"]["canary"]["requests"] == 400


def test_a_step_looks_longer_at_an_error_rate_above_the_limit_it_cannot_confirm(thresholds):
    # 2 errors in 96 (2.1 %) against 1 %: p = 0.25, no evidence either way. The step's last poll
    # asks for one more poll instead of passing it (5 % errors at a 10 % weight look like this 12 %
    # of the time at ~100 requests); a later poll that confirms it breaches.
    unclear = sample(S(96, 2, 120), S(3600, 36, 120))
    assert judge(unclear, thresholds).outcome == HEALTHY, "a poll before the last one goes on"
    watch = Watch(thresholds, polls=1)
    assert watch.add(judge(unclear, thresholds)) is None
    last = watch.to_dict()["verdicts"][-1]
    assert last["outcome"] == INSUFFICIENT_DATA and watch.insufficient_polls == 1
    assert last["reasons"][0].startswith("pending at the step's last poll: interval: green (new) error rate")
    assert watch.add(judge(sample(S(250, 7, 120), S(3600, 36, 120)), thresholds)) == BREACH  # p = 0.004


def test_a_rate_still_unconfirmed_when_the_extra_polls_are_spent_passes_and_says_so(thresholds):
    # A healthy canary's one error in a thin step is no breach: the step looks max_insufficient_polls
    # more times, then ends healthy with the unconfirmed rate in its reason (never insufficient_data).
    unclear = sample(S(40, 1, 120), S(3600, 36, 120))
    watch = Watch(thresholds, polls=1)
    outcomes = [watch.add(judge(unclear, thresholds)) for _ in range(thresholds.max_insufficient_polls + 1)]
    assert outcomes == [None] * thresholds.max_insufficient_polls + [HEALTHY]
    assert "unconfirmed after the extra polls" in watch.reason and "no evidence above 1 %" in watch.reason


def test_a_pending_rate_that_more_data_clears_lets_the_step_pass(thresholds):
    watch = Watch(thresholds, polls=1)
    assert watch.add(judge(sample(S(96, 1, 120), S(3600, 40, 120)), thresholds)) is None
    assert watch.add(judge(sample(S(250, 1, 120), S(3600, 40, 120)), thresholds)) == HEALTHY
    assert watch.to_dict()["insufficient_polls"] == 1


def test_an_interval_rate_above_the_limit_is_not_pending_when_the_step_so_far_clears_it(thresholds):
    # One error in a 32-request interval (3 %), 1 in 250 over the step: the step so far decides.
    step = S(250, 1, 120)
    stable = S(3600, 40, 120)
    interval = sample(S(32, 1, 120), stable, step=sample(step, stable, start="2025-12-31T23:59:00+00:00"))
    verdict = judge(interval, thresholds)
    assert verdict.outcome == HEALTHY and not verdict.pending, verdict.detail
