"""The rank test of the canary's per-period latencies against the stable colour's (pure).

Mann-Whitney U with the normal approximation and tie correction, the Hodges-Lehmann shift and its
confidence interval, classified as Kayenta's judge does, made stricter by a minimum shift.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist, median
from typing import Any, Literal

from deployment.config import Thresholds


@dataclass(frozen=True)
class RankTest:
    """The canary's per-period latencies against the stable colour's (Mann-Whitney U, two-sided).

    ``shift`` is the Hodges-Lehmann estimate of how much higher the canary sits, ``lower``/``upper``
    its confidence interval at ``confidence``. ``classification``: ``high`` (the canary is slower
    beyond the tolerance: a breach), ``low`` (the stable colour is slower), ``pass``, or
    ``abstain`` (too few periods to test, said in ``reason``).
    """

    classification: Literal["high", "low", "pass", "abstain"]
    reason: str
    canary_periods: int
    stable_periods: int
    confidence: float
    u: float | None = None
    p_value: float | None = None
    shift: float | None = None
    lower: float | None = None
    upper: float | None = None
    tolerance: float | None = None
    min_shift: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def average_ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _tie_sigma(values: list[float], n: int, m: int) -> float:
    """The standard deviation of U under the null hypothesis, corrected for ties."""
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t**3 - t for t in counts.values())
    total = n + m
    return math.sqrt(n * m / 12 * ((total + 1) - ties / (total * (total - 1))))


def mann_whitney(x: list[float], y: list[float]) -> tuple[float, float]:
    """``(U of x, two-sided p)`` by the normal approximation with tie and continuity corrections
    (as R's ``wilcox.test(exact = FALSE)`` and scipy's ``mannwhitneyu(method="asymptotic")``)."""
    n, m = len(x), len(y)
    combined = list(x) + list(y)
    u = sum(average_ranks(combined)[:n]) - n * (n + 1) / 2
    sigma = _tie_sigma(combined, n, m)
    if sigma == 0:
        return u, 1.0
    z = (abs(u - n * m / 2) - 0.5) / sigma
    return u, min(1.0, 2 * (1 - NormalDist().cdf(max(z, 0.0))))


def _wilcoxon_diff(mu: float, quantile: float, x: list[float], y: list[float]) -> float:
    """Kayenta's (and R's) function whose roots in ``mu`` give the estimate and its interval."""
    n, m = len(x), len(y)
    combined = [v - mu for v in x] + list(y)
    dz = sum(average_ranks(combined)[:n]) - n * (n + 1) / 2 - n * m / 2
    sigma = _tie_sigma(combined, n, m)
    if sigma == 0:
        return -quantile
    return (dz - math.copysign(0.5, dz) * (dz != 0)) / sigma - quantile


def _root(quantile: float, x: list[float], y: list[float]) -> float:
    """The shift where ``_wilcoxon_diff`` crosses zero (it falls as the shift grows): bisection."""
    low, high = min(x) - max(y), max(x) - min(y)
    if _wilcoxon_diff(low, quantile, x, y) <= 0:
        return low
    if _wilcoxon_diff(high, quantile, x, y) >= 0:
        return high
    for _ in range(100):
        middle = (low + high) / 2
        if _wilcoxon_diff(middle, quantile, x, y) > 0:
            low = middle
        else:
            high = middle
        if high - low <= 1e-9 * max(1.0, abs(high)):
            break
    return (low + high) / 2


def shift_interval(x: list[float], y: list[float], confidence: float) -> tuple[float, float, float]:
    """``(estimate, lower, upper)``: the Hodges-Lehmann shift of ``x`` over ``y`` (the median of
    every difference ``x_i - y_j``) and its ``confidence`` interval, by inverting the rank test
    as Kayenta's MannWhitney and R's ``wilcox.test(conf.int = TRUE, exact = FALSE)`` do."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    return median(a - b for a in x for b in y), _root(z, x, y), _root(-z, x, y)


def rank_test(
    canary: list[float] | tuple[float, ...],
    stable: list[float] | tuple[float, ...],
    thresholds: Thresholds,
    stable_colour: str = "stable",
) -> RankTest:
    """The canary's per-period latencies against the stable colour's, Kayenta's way, made stricter.

    Kayenta (NetflixACAJudge) classifies a metric ``high`` when the lower end of the shift's
    interval at 98 % lies above ``0.25 ×`` the Hodges-Lehmann estimate. A statistically clear
    shift of a few milliseconds fails no release here: the shift must also exceed
    ``latency_margin_percent`` of the stable colour's median. Fewer than ``rank_min_intervals``
    periods on either side: the test abstains, and says so.
    """
    x, y = [float(v) for v in canary], [float(v) for v in stable]
    confidence, tolerance = thresholds.rank_confidence, thresholds.rank_tolerance
    base = {"canary_periods": len(x), "stable_periods": len(y), "confidence": confidence}
    need = thresholds.rank_min_intervals
    if len(x) < need or len(y) < need:
        return RankTest(
            "abstain",
            f"rank test abstains: {len(x)} canary and {len(y)} stable periods, fewer than the {need} "
            "it needs; the percentile limits decide",
            **base,
        )
    if sorted(x) == sorted(y) or len(set(x + y)) == 1:
        return RankTest("pass", "rank test: the two colours' periods are identical", **base)
    u, p = mann_whitney(x, y)
    shift, lower, upper = shift_interval(x, y, confidence)
    bound = tolerance * abs(shift)
    min_shift = thresholds.latency_margin_percent / 100 * median(y)
    numbers = {
        "u": u,
        "p_value": round(p, 6),
        "shift": round(shift, 3),
        "lower": round(lower, 3),
        "upper": round(upper, 3),
        "tolerance": round(bound, 3),
        "min_shift": round(min_shift, 3),
    }
    where = (
        f"shift {shift:+.1f} ms, {confidence:.0%} interval [{lower:.1f}, {upper:.1f}], p = {p:.2g} "
        f"over {len(x)} vs {len(y)} periods"
    )
    if lower > bound and shift > min_shift:
        reason = f"rank test: the new colour is slower than stable {stable_colour}: {where}"
        return RankTest("high", reason, **base, **numbers)
    if upper < -bound:
        reason = (
            f"rank test: stable {stable_colour} is slower than the new colour ({where}): "
            "the stable colour is degraded, not the release"
        )
        return RankTest("low", reason, **base, **numbers)
    return RankTest("pass", f"rank test: no shift beyond the tolerance ({where})", **base, **numbers)
