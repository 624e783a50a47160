"""The metric analysis: samples in, verdicts out. Pure: no clock, no I/O.

One :class:`Sample` is what one poll saw over its window (request count, error
count, average latency, alarms firing). :func:`evaluate` turns it into a
:class:`Verdict`: ``healthy``, ``breach`` (naming each threshold crossed and the
value that crossed it) or ``insufficient_data``, an outcome of its own that is
never read as a pass. :class:`Watch` strings verdicts into one decision over a
watch of several polls, applying the configured insufficient-data policy:

- ``fail``: a poll without enough data ends the watch at once as ``insufficient_data``;
- ``extend``: such a poll is replaced by one more poll, at most ``max_insufficient_polls``
  times; the next one ends the watch as ``insufficient_data``.

A breach ends the watch at once. A watch is ``healthy`` only when all its planned
polls had data and none breached, and its last poll leaves nothing pending: a canary
error rate above a limit that the step so far cannot yet confirm or clear is never a pass,
so that last poll counts as one without enough data (``extend`` waits for more). Used by
the traffic steps, the monitoring watch and the staging check alike; thresholds come from
config (``Thresholds``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from statistics import NormalDist, median
from typing import Any, Literal

from deployment.config import Thresholds

# Below this p-value a rate over a limit is some evidence, not enough: the poll asks for more data.
# Above it the window shows no evidence of a breach (e.g. one error in 40 or in 120 requests against 1 %).
UNDECIDED_P = 0.1
HEALTHY = "healthy"
BREACH = "breach"
INSUFFICIENT_DATA = "insufficient_data"
Outcome = Literal["healthy", "breach", "insufficient_data"]


@dataclass(frozen=True)
class Sample:
    """What one poll saw over ``window_seconds`` ending at ``end``. ``None`` means no datapoint."""

    end: str
    window_seconds: float
    requests: float | None
    errors: float | None
    latency_ms: float | None
    alarms_firing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alarms_firing": list(self.alarms_firing)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return cls(**{**data, "alarms_firing": tuple(data.get("alarms_firing") or ())})


@dataclass(frozen=True)
class Breach:
    threshold: str
    value: float
    limit: str
    # Which window crossed it: the poll's own ``interval``, the ``step`` so far (canary verdicts).
    window: str | None = None

    def __str__(self) -> str:
        where = f"{self.window}: " if self.window else ""
        return f"{where}{self.threshold} = {self.value:g} (limit {self.limit})"


def _detail(outcome: Outcome, breaches: tuple[Breach, ...], notes: tuple[str, ...]) -> str:
    """A verdict in one line: its breaches, else its notes, else the outcome."""
    if outcome == BREACH:
        return "; ".join(str(b) for b in breaches)
    return "; ".join(notes) or outcome


def _verdict_dict(verdict: Verdict | CanaryVerdict, **fields: Any) -> dict[str, Any]:
    """What every verdict records (outcome, detail, sample, breaches), then its own ``fields``."""
    return {
        "outcome": verdict.outcome,
        "detail": verdict.detail,
        "sample": verdict.sample.to_dict(),
        "breaches": [asdict(b) for b in verdict.breaches],
        **fields,
    }


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    sample: Sample
    breaches: tuple[Breach, ...] = ()
    error_rate_percent: float | None = None
    request_rate_ratio: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        return _detail(self.outcome, self.breaches, self.notes)

    def to_dict(self) -> dict[str, Any]:
        return _verdict_dict(
            self,
            error_rate_percent=self.error_rate_percent,
            request_rate_ratio=self.request_rate_ratio,
            notes=list(self.notes),
        )


def request_rate(sample: Sample, thresholds: Thresholds) -> float | None:
    """Requests per second in ``sample``, or None when it saw too few requests to say."""
    if sample.requests is None or sample.requests <= 0 or sample.requests < thresholds.min_requests_per_poll:
        return None
    return sample.requests / sample.window_seconds


def evaluate(
    sample: Sample, thresholds: Thresholds, baseline_rps: float | None = None, *, check_band: bool = True
) -> Verdict:
    """Judge one sample against the thresholds.

    ``baseline_rps`` is the pre-release request rate the band is relative to; without one the
    verdict notes that the band was not checked. ``check_band=False`` leaves the band out silently
    (staging, which has no release to compare against).
    """
    breaches: list[Breach] = []
    notes: list[str] = []
    if sample.alarms_firing:
        names = ", ".join(sample.alarms_firing)
        breaches.append(Breach("alarms_firing", len(sample.alarms_firing), f"0; firing: {names}"))

    if request_rate(sample, thresholds) is None:
        seen = "no datapoint" if sample.requests is None else f"{sample.requests:g}"
        notes.append(
            f"requests in {sample.window_seconds:g}s: {seen}, "
            f"fewer than the {thresholds.min_requests_per_poll} needed to judge"
        )
        if breaches:
            return Verdict(BREACH, sample, tuple(breaches), notes=tuple(notes))
        return Verdict(INSUFFICIENT_DATA, sample, notes=tuple(notes))

    requests = float(sample.requests)
    # A missing error datapoint over a window that saw requests means no errors were counted.
    error_rate = 100.0 * (sample.errors or 0.0) / requests
    if error_rate >= thresholds.error_rate_percent:
        breaches.append(
            Breach("error_rate_percent", round(error_rate, 4), f"< {thresholds.error_rate_percent:g}")
        )

    if sample.latency_ms is None:
        notes.append("no latency datapoint although requests were counted")
    elif sample.latency_ms >= thresholds.latency_ms:
        breaches.append(Breach("latency_ms", round(sample.latency_ms, 3), f"< {thresholds.latency_ms:g}"))

    ratio = None
    low, high = thresholds.traffic_band
    has_baseline = baseline_rps is not None and baseline_rps > 0
    if check_band and not has_baseline:
        notes.append("request-rate band not checked: no pre-release baseline")
    elif check_band:
        ratio = round(requests / sample.window_seconds / baseline_rps, 4)
        if not low <= ratio <= high:
            breaches.append(
                Breach("request_rate_ratio", ratio, f"within [{low:g}, {high:g}] of the baseline")
            )

    if breaches:
        outcome: Outcome = BREACH
    elif sample.latency_ms is None:
        outcome = INSUFFICIENT_DATA
    else:
        outcome = HEALTHY
    return Verdict(outcome, sample, tuple(breaches), round(error_rate, 4), ratio, tuple(notes))


def planned_polls(duration_seconds: float, poll_interval_seconds: float) -> int:
    """Polls a watch of ``duration_seconds`` makes: one per interval, and at least one."""
    return max(1, math.ceil(duration_seconds / poll_interval_seconds))


@dataclass
class Watch:
    """Verdicts of one watch, and the decision they add up to."""

    thresholds: Thresholds
    polls: int
    verdicts: list[Verdict | CanaryVerdict] = field(default_factory=list)
    outcome: Outcome | None = None
    reason: str = ""

    @property
    def insufficient_polls(self) -> int:
        return sum(v.outcome == INSUFFICIENT_DATA for v in self.verdicts)

    @property
    def polls_needed(self) -> int:
        """The planned polls plus one per poll without data the ``extend`` policy replaces."""
        return self.polls + self.insufficient_polls

    def add(self, verdict: Verdict | CanaryVerdict) -> Outcome | None:
        """Record one verdict; returns the watch's outcome once it is decided, else None."""
        if self.outcome is not None:
            raise RuntimeError(f"the watch already ended {self.outcome}")
        poll = len(self.verdicts) + 1
        if verdict.outcome == HEALTHY and poll >= self.polls_needed and getattr(verdict, "pending", ()):
            verdict = verdict.undecided()
        self.verdicts.append(verdict)
        if verdict.outcome == BREACH:
            return self._end(BREACH, f"poll {poll}: {verdict.detail}")
        if verdict.outcome == INSUFFICIENT_DATA:
            policy, limit = self.thresholds.insufficient_data, self.thresholds.max_insufficient_polls
            if policy == "fail":
                return self._end(INSUFFICIENT_DATA, f"poll {poll}: {verdict.detail} (policy: fail)")
            if self.insufficient_polls > limit:
                return self._end(
                    INSUFFICIENT_DATA,
                    f"{self.insufficient_polls} polls without enough data, more than the "
                    f"{limit} the extend policy allows; last: {verdict.detail}",
                )
        if poll >= self.polls_needed:
            healthy = poll - self.insufficient_polls
            return self._end(HEALTHY, f"{healthy} healthy polls, {self.insufficient_polls} without data")
        return None

    def _end(self, outcome: Outcome, reason: str) -> Outcome:
        self.outcome, self.reason = outcome, reason
        return outcome

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "planned_polls": self.polls,
            "polls": len(self.verdicts),
            "insufficient_polls": self.insufficient_polls,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


# ------------------------------------------------------------------ the canary against the stable colour
def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p): the one-sided exact p-value of ``successes``."""
    if successes <= 0:
        return 1.0
    if successes > trials or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)

    def pmf(k: int) -> float:
        log_choose = math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
        return math.exp(log_choose + k * log_p + (trials - k) * log_q)

    if successes <= trials * p:  # the upper tail is large: sum the shorter lower tail instead
        return max(0.0, 1.0 - math.fsum(pmf(k) for k in range(successes)))
    return min(1.0, math.fsum(pmf(k) for k in range(successes, trials + 1)))


def worse_by_margin_p(errors_a: int, requests_a: int, errors_b: int, requests_b: int, margin: float) -> float:
    """One-sided p-value that rate A exceeds rate B by more than ``margin`` (a fraction).

    Agresti-Caffo adjusted Wald test for a difference of two proportions: one success and
    one failure are added to each group, which keeps the variance honest at zero or few errors.
    """
    pa = (errors_a + 1) / (requests_a + 2)
    pb = (errors_b + 1) / (requests_b + 2)
    se = math.sqrt(pa * (1 - pa) / (requests_a + 2) + pb * (1 - pb) / (requests_b + 2))
    z = (pa - pb - margin) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class Series:
    """One series over a window. ``None`` means CloudWatch returned no datapoint.

    ``latency_ms`` is the mean (recorded, not judged); ``p95_ms``/``p99_ms`` are CloudWatch's
    percentiles of the latency values published in the window.
    """

    requests: float | None = None
    errors: float | None = None
    latency_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @property
    def error_rate_percent(self) -> float | None:
        if not self.requests:
            return None
        return round(100.0 * (self.errors or 0.0) / self.requests, 4)


@dataclass(frozen=True)
class ColourSample:
    """What one poll saw: the new colour, the stable colour and the total over ``[start, end]``
    (the poll's own interval, the data that arrived since the previous poll), and the alarms.

    ``step`` is the same over the step so far (``[data_since, end]``; None on a step's first poll,
    whose interval is the step). ``canary_periods``/``stable_periods`` are each colour's median
    latency per metric period of the step so far, for the rank test. ``alarms_ignored`` are those
    firing that the run's ``emergency.ignore_alarms`` lists.
    """

    start: str
    end: str
    canary_colour: str
    stable_colour: str
    canary: Series
    stable: Series
    total: Series
    alarms_firing: tuple[str, ...] = ()
    alarms_ignored: tuple[str, ...] = ()
    step: ColourSample | None = None
    canary_periods: tuple[float, ...] = ()
    stable_periods: tuple[float, ...] = ()

    @property
    def window_seconds(self) -> float:
        return (datetime.fromisoformat(self.end) - datetime.fromisoformat(self.start)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            window_seconds=self.window_seconds,
            alarms_firing=list(self.alarms_firing),
            alarms_ignored=list(self.alarms_ignored),
            step=self.step.to_dict() if self.step is not None else None,
            canary_periods=list(self.canary_periods),
            stable_periods=list(self.stable_periods),
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColourSample:
        fields = {k: v for k, v in data.items() if k != "window_seconds"}
        for name in ("canary", "stable", "total"):
            fields[name] = Series(**fields[name])
        for name in ("alarms_firing", "alarms_ignored", "canary_periods", "stable_periods"):
            fields[name] = tuple(fields.get(name) or ())
        if fields.get("step") is not None:
            fields["step"] = cls.from_dict(fields["step"])
        return cls(**fields)


# ------------------------------------------------------------------ the rank test (Mann-Whitney U)
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


# ------------------------------------------------------------------ the canary's verdict
@dataclass(frozen=True)
class CanaryVerdict:
    """One poll's verdict on the new colour; ``reasons`` say why, whatever the outcome."""

    outcome: Outcome
    sample: ColourSample
    breaches: tuple[Breach, ...] = ()
    reasons: tuple[str, ...] = ()
    request_rate_ratio: float | None = None
    rank: RankTest | None = None
    pending: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        return _detail(self.outcome, self.breaches, self.reasons)

    def undecided(self) -> CanaryVerdict:
        """This healthy verdict as the last poll of a watch: what is pending makes it not enough data."""
        why = tuple(f"pending at the step's last poll: {reason}" for reason in self.pending)
        return replace(self, outcome=INSUFFICIENT_DATA, reasons=why + self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return _verdict_dict(
            self,
            reasons=list(self.reasons),
            error_rate_percent=self.sample.canary.error_rate_percent,
            stable_error_rate_percent=self.sample.stable.error_rate_percent,
            request_rate_ratio=self.request_rate_ratio,
            rank_test=self.rank.to_dict() if self.rank is not None else None,
            pending=list(self.pending),
        )


def split_alarms(
    firing: list[str] | tuple[str, ...], ignore: list[str] | tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(breaching, ignored)``: the one meaning of ``emergency.ignore_alarms`` in every check and watch.

    A listed alarm does not breach; every other alarm firing does.
    """
    ignored = set(ignore)
    return (
        tuple(a for a in firing if a not in ignored),
        tuple(a for a in firing if a in ignored),
    )


@dataclass
class _Findings:
    """What the rules found, in the order they ran: breaches, reasons, and reasons to wait."""

    breaches: list[Breach] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


# A percentile is judged against its limit once the window holds 1/(1-q) values (else it is just
# the maximum). p95 is also compared with the stable colour's once five values lie above it in each
# colour; p99 is not: a p99 of a few hundred values is decided by its top few, and on the 2-core
# machine a healthy canary's p99 came out 1.5-1.8x the stable colour's (306 vs 174 ms, 255 vs 175 ms)
# in three runs. How the canary's latency compares with the stable colour's as a distribution is the
# rank test's question.
PERCENTILES = (("p95_ms", 0.95), ("p99_ms", 0.99))
COMPARED_WITH_STABLE = frozenset({"p95_ms"})
TAIL_FOR_COMPARISON = 5


def _judge_errors(
    found: _Findings, window: str, sample: ColourSample, thresholds: Thresholds, *, so_far: bool
) -> None:
    """The exact binomial test against the limit, and the Agresti-Caffo test against stable.

    A rate above a limit with no evidence yet (p at or above ``UNDECIDED_P``) is only a reason in
    an interval; in the step so far (``so_far``) it is pending: the step cannot end on it healthy.
    """

    def unconfirmed(reason: str) -> None:
        found.reasons.append(reason)
        if so_far:
            found.pending.append(reason)

    canary, stable, alpha = sample.canary, sample.stable, thresholds.significance
    who = f"{window}: {sample.canary_colour} (new)"
    n, x = int(canary.requests or 0), int(canary.errors or 0)
    rate = canary.error_rate_percent or 0.0
    limit = thresholds.error_rate_percent
    p_abs = binomial_tail(x, n, limit / 100)
    if rate >= limit and p_abs < alpha:
        found.breaches.append(
            Breach("error_rate_percent", rate, f"< {limit:g} ({x}/{n}, p = {p_abs:.2g})", window)
        )
    elif rate >= limit and p_abs < UNDECIDED_P:
        found.undecided.append(
            f"{who} error rate {rate:g} % ({x}/{n}) is at or above {limit:g} % but p = {p_abs:.2g}"
        )
    elif rate >= limit:
        unconfirmed(f"{who} error rate {rate:g} % ({x}/{n}): no evidence above {limit:g} % (p = {p_abs:.2g})")
    else:
        found.reasons.append(f"{who} error rate {rate:g} % ({x}/{n}) below {limit:g} %")

    margin = thresholds.error_rate_margin_percent
    if not stable.requests:
        found.reasons.append(f"{window}: no requests on stable {sample.stable_colour}: comparison not made")
        return
    ns, xs = int(stable.requests), int(stable.errors or 0)
    stable_rate = stable.error_rate_percent or 0.0
    p_rel = worse_by_margin_p(x, n, xs, ns, margin / 100)
    versus = f"stable {sample.stable_colour} {stable_rate:g} % ({xs}/{ns})"
    if rate > stable_rate + margin and p_rel < alpha:
        found.breaches.append(
            Breach("error_rate_vs_stable", rate, f"<= {versus} + {margin:g} points, p = {p_rel:.2g}", window)
        )
    elif rate > stable_rate + margin and p_rel < UNDECIDED_P:
        found.undecided.append(
            f"{who} error rate {rate:g} % worse than {versus} + {margin:g} but p = {p_rel:.2g}"
        )
    elif stable_rate > rate:
        found.reasons.append(
            f"{window}: {versus} is worse than the new colour: the stable colour is degraded, not the release"
        )
    elif rate > stable_rate + margin:
        unconfirmed(f"{who} error rate {rate:g} %: no evidence of worse than {versus} (p = {p_rel:.2g})")
    else:
        found.reasons.append(f"{who} error rate within {margin:g} points of {versus}")


def _judge_latency(found: _Findings, window: str, sample: ColourSample, thresholds: Thresholds) -> None:
    """p95 and p99 against their limits and against the stable colour's (with the margin)."""
    canary, stable = sample.canary, sample.stable
    who = f"{window}: {sample.canary_colour} (new)"
    n, ns = canary.requests or 0, stable.requests or 0
    margin = thresholds.latency_margin_percent
    if canary.p95_ms is None and canary.p99_ms is None:
        found.undecided.append(f"{who}: no latency percentiles although requests were counted")
        return
    for name, q in PERCENTILES:
        value, label = getattr(canary, name), name.removesuffix("_ms")
        limit = getattr(thresholds, f"latency_{name}")
        if value is None or n < math.ceil(1 / (1 - q) - 1e-9):
            found.reasons.append(f"{who} {label} not judged: {n:g} requests, fewer than {1 / (1 - q):.0f}")
            continue
        if value >= limit:
            found.breaches.append(Breach(f"latency_{name}", value, f"< {limit:g}", window))
        else:
            found.reasons.append(f"{who} {label} {value:g} ms below {limit:g} ms")
        if name not in COMPARED_WITH_STABLE:
            found.reasons.append(
                f"{who} {label} judged against its limit only (the rank test compares colours)"
            )
            continue
        stable_value = getattr(stable, name)
        need = math.ceil(TAIL_FOR_COMPARISON / (1 - q) - 1e-9)
        if stable_value is None or min(n, ns) < need:
            found.reasons.append(
                f"{who} {label} not compared with stable {sample.stable_colour}: "
                f"{n:g} and {ns:g} requests, fewer than {need} each"
            )
            continue
        ceiling = stable_value * (1 + margin / 100)
        versus = f"stable {sample.stable_colour} {stable_value:g} ms"
        if value > ceiling:
            found.breaches.append(
                Breach(
                    f"latency_{label}_vs_stable",
                    value,
                    f"<= {versus} + {margin:g} % = {ceiling:.1f} ms",
                    window,
                )
            )
        elif value < stable_value:
            found.reasons.append(f"{who} {label} {value:g} ms, faster than {versus}")
        else:
            found.reasons.append(f"{who} {label} {value:g} ms within {margin:g} % of {versus}")


def _judge_band(
    found: _Findings, sample: ColourSample, thresholds: Thresholds, baseline_rps: float | None
) -> float | None:
    """The total request rate of the poll's interval against the pre-release rate."""
    low, high = thresholds.traffic_band
    total = sample.total.requests
    if not baseline_rps or baseline_rps <= 0:
        found.reasons.append("request-rate band not checked: no pre-release baseline")
        return None
    if not total or total < thresholds.min_requests_per_poll:
        found.undecided.append(f"total requests {total or 0:g}: too few for the request-rate band")
        return None
    ratio = round(total / sample.window_seconds / baseline_rps, 4)
    if not low <= ratio <= high:
        found.breaches.append(
            Breach("request_rate_ratio", ratio, f"within [{low:g}, {high:g}] of the baseline", "interval")
        )
    return ratio


def judge(
    sample: ColourSample,
    thresholds: Thresholds,
    baseline_rps: float | None = None,
    *,
    check_band: bool = True,
) -> CanaryVerdict:
    """Judge the new colour's own requests in the poll's interval and in the step so far.

    - Alarms firing (other than ignored ones) breach.
    - Fresh data only: an interval that brought fewer than ``min_requests_per_poll`` canary
      requests is not enough data, whatever the step so far says (a stalled canary, or data
      not published), though a breach in the step so far still ends the watch.
    - Errors, in each window: a breach when the canary's error rate is above ``error_rate_percent``
      by a one-sided exact binomial test, or above the stable colour's by more than
      ``error_rate_margin_percent`` by the Agresti-Caffo test, each at ``significance``. A rate
      above a limit that the window is too small to confirm (p below ``UNDECIDED_P``) is not
      enough data, never a pass.
    - Latency, in each window: p95 and p99 against ``latency_p95_ms``/``latency_p99_ms`` and more
      than ``latency_margin_percent`` above the stable colour's (each once the window holds
      enough values for that percentile); and the rank test of the step's per-period medians.
    - The request-rate band is checked on the interval's total traffic against ``baseline_rps``.
    A stable colour worse than the canary is no breach; the reasons say so.
    """
    found = _Findings()
    if sample.alarms_firing:
        names = ", ".join(sample.alarms_firing)
        found.breaches.append(Breach("alarms_firing", len(sample.alarms_firing), f"0; firing: {names}"))
    if sample.alarms_ignored:
        names = ", ".join(sample.alarms_ignored)
        found.reasons.append(f"alarms firing but ignored by emergency.ignore_alarms: {names}")

    windows = [("interval", sample)]
    if sample.step is not None and sample.step.start != sample.start:
        windows.append(("step", sample.step))
    for window, data in windows:
        so_far = data is windows[-1][1]
        requests = data.canary.requests
        if not requests or requests < thresholds.min_requests_per_poll:
            seen = "no datapoint" if requests is None else f"{requests:g}"
            note = (
                f"{window}: {data.canary_colour} (new) requests in {data.window_seconds:g}s: {seen}, "
                f"fewer than the {thresholds.min_requests_per_poll} needed to judge"
            )
            found.undecided.append(note)
            continue
        _judge_errors(found, window, data, thresholds, so_far=so_far)
        _judge_latency(found, window, data, thresholds)

    rank = rank_test(sample.canary_periods, sample.stable_periods, thresholds, sample.stable_colour)
    if rank.classification == "high":
        found.breaches.append(
            Breach(
                "latency_rank_test",
                rank.shift or 0.0,
                f"shift <= {rank.min_shift:g} ms, or its interval from {rank.lower:g} ms "
                f"reaching {rank.tolerance:g} ms",
                "step",
            )
        )
    found.reasons.append(rank.reason)

    ratio = _judge_band(found, sample, thresholds, baseline_rps) if check_band else None
    extra = {"request_rate_ratio": ratio, "rank": rank, "pending": tuple(found.pending)}
    if found.breaches:
        reasons = tuple(found.reasons + found.undecided)
        return CanaryVerdict(BREACH, sample, tuple(found.breaches), reasons, **extra)
    if found.undecided:
        return CanaryVerdict(INSUFFICIENT_DATA, sample, (), tuple(found.undecided + found.reasons), **extra)
    return CanaryVerdict(HEALTHY, sample, (), tuple(found.reasons), **extra)
