"""One poll's verdict on both halves of a release: the new colour and the API's new version.

Each half is judged by :func:`deployment.judge.canary.judge` against its own stable side (the
stable colour; the version the alias served before). The poll breaches when either half does,
lacks data when either does, and is healthy only when both are; its reasons name the half.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from deployment.judge.canary import CanaryVerdict
from deployment.judge.verdicts import BREACH, HEALTHY, INSUFFICIENT_DATA, Breach, verdict_detail

API_LABEL = "API"


def _labelled(breaches: tuple[Breach, ...], label: str) -> tuple[Breach, ...]:
    return tuple(replace(b, window=f"{label} {b.window}" if b.window else label) for b in breaches)


@dataclass(frozen=True)
class PairedVerdict:
    frontend: CanaryVerdict
    api: CanaryVerdict

    @property
    def outcome(self) -> str:
        outcomes = {self.frontend.outcome, self.api.outcome}
        for outcome in (BREACH, INSUFFICIENT_DATA):
            if outcome in outcomes:
                return outcome
        return HEALTHY

    @property
    def sample(self) -> Any:
        return self.frontend.sample

    @property
    def breaches(self) -> tuple[Breach, ...]:
        return self.frontend.breaches + _labelled(self.api.breaches, API_LABEL)

    @property
    def pending(self) -> tuple[str, ...]:
        return self.frontend.pending + tuple(f"{API_LABEL}: {p}" for p in self.api.pending)

    @property
    def detail(self) -> str:
        api = self.api.sample
        notes = (
            f"frontend: {self.frontend.detail}",
            f"{API_LABEL} (version {api.canary_colour} against {api.stable_colour}): {self.api.detail}",
        )
        return verdict_detail(self.outcome, self.breaches, notes)

    def undecided(self) -> PairedVerdict:
        """As :meth:`CanaryVerdict.undecided`, for the half (or halves) that left something pending."""
        return PairedVerdict(
            self.frontend.undecided() if self.frontend.pending else self.frontend,
            self.api.undecided() if self.api.pending else self.api,
        )

    def to_dict(self) -> dict[str, Any]:
        """The frontend's verdict as before, with the combined outcome and detail and the API's own."""
        return {
            **self.frontend.to_dict(),
            "outcome": self.outcome,
            "detail": self.detail,
            "breaches": [
                {"threshold": b.threshold, "value": b.value, "limit": b.limit, "window": b.window}
                for b in self.breaches
            ],
            "frontend_outcome": self.frontend.outcome,
            "api": self.api.to_dict(),
        }
