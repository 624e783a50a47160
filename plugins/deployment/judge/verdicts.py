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
polls had data and none breached. A canary error rate above a limit that the step so far
can neither confirm nor clear (*pending*) makes the last poll count as one without enough
data while the ``extend`` policy has polls to give: the step looks longer before it passes
(5 % errors at a 10 % weight show 2 or fewer in ~100 requests one time in eight). Once those
polls are spent it ends healthy and says what stayed unconfirmed. Used by
the traffic steps, the monitoring watch and the staging check alike; thresholds come from
config (``Thresholds``). The canary's own verdict on a poll is :mod:`deployment.judge.canary`'s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

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


class Judged(Protocol):
    """What a watch strings together: a monitoring :class:`Verdict`, or the canary's verdict
    (:class:`deployment.judge.canary.CanaryVerdict`, which may also carry ``pending``)."""

    outcome: Outcome
    sample: Any
    breaches: tuple[Breach, ...]

    @property
    def detail(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def verdict_detail(outcome: Outcome, breaches: tuple[Breach, ...], notes: tuple[str, ...]) -> str:
    """A verdict in one line: its breaches, else its notes, else the outcome."""
    if outcome == BREACH:
        return "; ".join(str(b) for b in breaches)
    return "; ".join(notes) or outcome


def verdict_dict(verdict: Judged, **fields: Any) -> dict[str, Any]:
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
        return verdict_detail(self.outcome, self.breaches, self.notes)

    def to_dict(self) -> dict[str, Any]:
        return verdict_dict(
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
    verdicts: list[Judged] = field(default_factory=list)
    outcome: Outcome | None = None
    reason: str = ""

    @property
    def insufficient_polls(self) -> int:
        return sum(v.outcome == INSUFFICIENT_DATA for v in self.verdicts)

    @property
    def polls_needed(self) -> int:
        """The planned polls plus one per poll without data the ``extend`` policy replaces."""
        return self.polls + self.insufficient_polls

    def add(self, verdict: Judged) -> Outcome | None:
        """Record one verdict; returns the watch's outcome once it is decided, else None."""
        if self.outcome is not None:
            raise RuntimeError(f"the watch already ended {self.outcome}")
        poll = len(self.verdicts) + 1
        if self._extends(verdict, poll):
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
            reason = f"{healthy} healthy polls, {self.insufficient_polls} without data"
            if getattr(verdict, "pending", ()):
                reason += "; unconfirmed after the extra polls: " + "; ".join(verdict.pending)
            return self._end(HEALTHY, reason)
        return None

    def _extends(self, verdict: Judged, poll: int) -> bool:
        """Whether a healthy last poll that leaves a rate pending is replaced by one more poll: while
        the ``extend`` policy has polls to give. Once they are spent the step ends healthy, saying
        what stayed unconfirmed: an unconfirmed rate is a reason to look longer, not a breach."""
        return (
            verdict.outcome == HEALTHY
            and poll >= self.polls_needed
            and bool(getattr(verdict, "pending", ()))
            and self.thresholds.insufficient_data == "extend"
            and self.insufficient_polls < self.thresholds.max_insufficient_polls
        )

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
