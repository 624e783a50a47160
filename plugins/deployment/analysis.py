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
polls had data and none breached. Used by the traffic steps, the monitoring
watch and the staging check alike; thresholds come from config (``Thresholds``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
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

    def __str__(self) -> str:
        return f"{self.threshold} = {self.value:g} (limit {self.limit})"


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
        self.verdicts.append(verdict)
        poll = len(self.verdicts)
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
    """One series' sums over a window. ``None`` means CloudWatch returned no datapoint."""

    requests: float | None = None
    errors: float | None = None
    latency_ms: float | None = None

    @property
    def error_rate_percent(self) -> float | None:
        if not self.requests:
            return None
        return round(100.0 * (self.errors or 0.0) / self.requests, 4)


@dataclass(frozen=True)
class ColourSample:
    """What one poll saw over ``[start, end]``: the new colour, the stable colour, the total, the alarms.

    ``alarms_ignored`` are those firing that the run's ``emergency.ignore_alarms`` lists.
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

    @property
    def window_seconds(self) -> float:
        from datetime import datetime

        return (datetime.fromisoformat(self.end) - datetime.fromisoformat(self.start)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            window_seconds=self.window_seconds,
            alarms_firing=list(self.alarms_firing),
            alarms_ignored=list(self.alarms_ignored),
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColourSample:
        fields = {k: v for k, v in data.items() if k != "window_seconds"}
        for name in ("canary", "stable", "total"):
            fields[name] = Series(**fields[name])
        for name in ("alarms_firing", "alarms_ignored"):
            fields[name] = tuple(fields.get(name) or ())
        return cls(**fields)


@dataclass(frozen=True)
class CanaryVerdict:
    """One poll's verdict on the new colour; ``reasons`` say why, whatever the outcome."""

    outcome: Outcome
    sample: ColourSample
    breaches: tuple[Breach, ...] = ()
    reasons: tuple[str, ...] = ()
    request_rate_ratio: float | None = None

    @property
    def detail(self) -> str:
        return _detail(self.outcome, self.breaches, self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return _verdict_dict(
            self,
            reasons=list(self.reasons),
            error_rate_percent=self.sample.canary.error_rate_percent,
            stable_error_rate_percent=self.sample.stable.error_rate_percent,
            request_rate_ratio=self.request_rate_ratio,
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


def judge(  # noqa: C901, PLR0912 - one rule per branch, read top to bottom
    sample: ColourSample,
    thresholds: Thresholds,
    baseline_rps: float | None = None,
    *,
    check_band: bool = True,
) -> CanaryVerdict:
    """Judge the new colour's own requests in ``sample``.

    - Alarms firing (other than ignored ones) breach.
    - Fewer than ``min_requests_per_poll`` canary requests: not enough data.
    - Errors: a breach when the canary's error rate is above ``error_rate_percent`` by a one-sided
      exact binomial test, or above the stable colour's by more than ``error_rate_margin_percent``
      by the Agresti-Caffo test, each at ``significance``. A rate above a limit that the window is
      too small to confirm (p below ``UNDECIDED_P``) is not enough data, never a pass.
    - Latency: a breach at or above ``latency_ms``, or more than ``latency_margin_percent`` above
      the stable colour's.
    - The request-rate band is checked on the total traffic against ``baseline_rps``.
    A stable colour worse than the canary is no breach; the reasons say so.
    """
    breaches: list[Breach] = []
    reasons: list[str] = []
    undecided: list[str] = []
    alpha = thresholds.significance
    breaching, ignored = sample.alarms_firing, sample.alarms_ignored
    if breaching:
        breaches.append(Breach("alarms_firing", len(breaching), f"0; firing: {', '.join(breaching)}"))
    if ignored:
        reasons.append(f"alarms firing but ignored by emergency.ignore_alarms: {', '.join(ignored)}")

    canary, stable = sample.canary, sample.stable
    who = f"{sample.canary_colour} (new)"
    if not canary.requests or canary.requests < thresholds.min_requests_per_poll:
        seen = "no datapoint" if canary.requests is None else f"{canary.requests:g}"
        reasons.append(
            f"{who} requests in {sample.window_seconds:g}s: {seen}, fewer than the "
            f"{thresholds.min_requests_per_poll} needed to judge"
        )
        outcome: Outcome = BREACH if breaches else INSUFFICIENT_DATA
        return CanaryVerdict(outcome, sample, tuple(breaches), tuple(reasons))

    n, x = int(canary.requests), int(canary.errors or 0)
    rate = canary.error_rate_percent or 0.0
    limit = thresholds.error_rate_percent
    p_abs = binomial_tail(x, n, limit / 100)
    if rate >= limit and p_abs < alpha:
        breaches.append(Breach("error_rate_percent", rate, f"< {limit:g} ({x}/{n}, p = {p_abs:.2g})"))
    elif rate >= limit and p_abs < UNDECIDED_P:
        undecided.append(
            f"{who} error rate {rate:g} % ({x}/{n}) is at or above {limit:g} % but p = {p_abs:.2g}"
        )
    elif rate >= limit:
        reasons.append(
            f"{who} error rate {rate:g} % ({x}/{n}): no evidence above {limit:g} % (p = {p_abs:.2g})"
        )
    else:
        reasons.append(f"{who} error rate {rate:g} % ({x}/{n}) below {limit:g} %")

    margin = thresholds.error_rate_margin_percent
    if stable.requests:
        ns, xs = int(stable.requests), int(stable.errors or 0)
        stable_rate = stable.error_rate_percent or 0.0
        p_rel = worse_by_margin_p(x, n, xs, ns, margin / 100)
        versus = f"stable {sample.stable_colour} {stable_rate:g} % ({xs}/{ns})"
        if rate > stable_rate + margin and p_rel < alpha:
            breaches.append(
                Breach("error_rate_vs_stable", rate, f"<= {versus} + {margin:g} points, p = {p_rel:.2g}")
            )
        elif rate > stable_rate + margin and p_rel < UNDECIDED_P:
            undecided.append(
                f"{who} error rate {rate:g} % worse than {versus} + {margin:g} but p = {p_rel:.2g}"
            )
        elif stable_rate > rate:
            reasons.append(
                f"{versus} is worse than the new colour: the stable colour is degraded, not the release"
            )
        elif rate > stable_rate + margin:
            reasons.append(
                f"{who} error rate {rate:g} %: no evidence of worse than {versus} (p = {p_rel:.2g})"
            )
        else:
            reasons.append(f"{who} error rate within {margin:g} points of {versus}")
    else:
        reasons.append(f"no requests on stable {sample.stable_colour}: comparison not made")

    if canary.latency_ms is None:
        undecided.append(f"no latency datapoint for {who} although requests were counted")
    else:
        latency = canary.latency_ms
        if latency >= thresholds.latency_ms:
            breaches.append(Breach("latency_ms", latency, f"< {thresholds.latency_ms:g}"))
        if stable.latency_ms:
            ceiling = stable.latency_ms * (1 + thresholds.latency_margin_percent / 100)
            versus = f"stable {sample.stable_colour} {stable.latency_ms:g} ms"
            if latency > ceiling:
                breaches.append(
                    Breach(
                        "latency_vs_stable",
                        latency,
                        f"<= {versus} + {thresholds.latency_margin_percent:g} % = {ceiling:.1f} ms",
                    )
                )
            elif stable.latency_ms > latency:
                reasons.append(f"{who} latency {latency:g} ms, better than {versus}")
            else:
                reasons.append(
                    f"{who} latency {latency:g} ms within {thresholds.latency_margin_percent:g} % of {versus}"
                )

    ratio = None
    if check_band:
        low, high = thresholds.traffic_band
        total = sample.total.requests
        if not baseline_rps or baseline_rps <= 0:
            reasons.append("request-rate band not checked: no pre-release baseline")
        elif not total or total < thresholds.min_requests_per_poll:
            undecided.append(f"total requests {total or 0:g}: too few for the request-rate band")
        else:
            ratio = round(total / sample.window_seconds / baseline_rps, 4)
            if not low <= ratio <= high:
                breaches.append(
                    Breach("request_rate_ratio", ratio, f"within [{low:g}, {high:g}] of the baseline")
                )

    if breaches:
        return CanaryVerdict(BREACH, sample, tuple(breaches), tuple(reasons + undecided), ratio)
    if undecided:
        return CanaryVerdict(INSUFFICIENT_DATA, sample, (), tuple(undecided + reasons), ratio)
    return CanaryVerdict(HEALTHY, sample, (), tuple(reasons), ratio)
