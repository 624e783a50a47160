"""The rollback's metric check polls again while production is not yet healthy after traffic is restored.

Right after the weights go back, the error alarm the bad release raised can still fire for a
tick (the fault matrix's breach at 50 %): a single sample would judge it a breach and report the
rollback not verified, paging "ROLLBACK NOT VERIFIED" for a recovered production.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from deployment.judge.verdicts import BREACH, HEALTHY
from deployment.rollback.steps import metrics_health


@dataclass
class Verdict:
    outcome: str

    def to_dict(self) -> dict:
        return {"outcome": self.outcome}


@pytest.fixture
def verdicts(cfg, monkeypatch):
    """Feed metrics_health the given outcomes, one per poll; the list of polls made."""
    polls: list[str] = []

    def feed(*outcomes: str) -> list[str]:
        queue = list(outcomes)
        monkeypatch.setattr(
            "deployment.aws.cloudwatch_metrics.cloudwatch_client", lambda conn, region: object()
        )
        monkeypatch.setattr("deployment.aws.cloudwatch_metrics.fetch_sample", lambda *args, **kwargs: None)

        def evaluate(sample, thresholds, check_band):
            polls.append(queue[0])
            return Verdict(queue.pop(0) if len(queue) > 1 else queue[0])

        monkeypatch.setattr("deployment.judge.verdicts.evaluate", evaluate)
        return polls

    return feed


def test_a_breach_that_clears_on_the_next_poll_is_healthy(cfg, verdicts):
    polls = verdicts(BREACH, HEALTHY)
    assert metrics_health(cfg, attempts=4, poll=0) == {"ok": True, "outcome": HEALTHY}
    assert polls == [BREACH, HEALTHY]


def test_a_breach_that_stays_fails_after_every_poll(cfg, verdicts):
    polls = verdicts(BREACH)
    assert metrics_health(cfg, attempts=4, poll=0) == {"ok": False, "outcome": BREACH}
    assert polls == [BREACH] * 4


def test_the_window_is_the_recent_past_not_everything_since_the_restore(cfg, monkeypatch):
    # The restore's own minute still holds the bad release's requests: judging everything since
    # the restore would keep them in every poll; the last two poll intervals let them go.
    from datetime import UTC, datetime, timedelta

    windows: list[float] = []
    monkeypatch.setattr("deployment.aws.cloudwatch_metrics.cloudwatch_client", lambda conn, region: object())
    monkeypatch.setattr(
        "deployment.aws.cloudwatch_metrics.fetch_sample",
        lambda cloudwatch, query, window, end, **kwargs: windows.append(window),
    )
    monkeypatch.setattr("deployment.judge.verdicts.evaluate", lambda *args, **kwargs: Verdict(HEALTHY))
    restored = datetime.now(UTC) - timedelta(seconds=600)
    assert metrics_health(cfg, restored, attempts=1, poll=0)["ok"] is True
    assert windows == [pytest.approx(cfg.timings.poll_interval_seconds * 2, abs=0.5)]


def test_an_alarm_the_release_ignored_does_not_fail_the_rollback_verification(cfg, aws):
    """A release with ``emergency.ignore_alarms`` (the stable colour degraded, its alarm firing):
    after a rollback that alarm still fires on the restored version. The verification gives
    ``ignore_alarms`` the meaning every watch gives it: listed alarms don't breach, others do."""
    from tests.unit._fixtures_phases58 import put_traffic, set_alarm

    cloudwatch = aws["session"].client("cloudwatch")
    for _ in range(3):
        put_traffic(cloudwatch, cfg, requests=200, errors=0, latency_ms=100)
    ignored = set_alarm(cloudwatch, cfg, "5xx-errors", "ALARM")

    assert metrics_health(cfg, attempts=1, poll=0)["ok"] is False  # without the run's list: a breach
    health = metrics_health(cfg, attempts=1, poll=0, ignore_alarms=[ignored])
    assert health["ok"] is True, health
    assert health["ignore_alarms"] == [ignored]  # recorded where applied

    other = set_alarm(cloudwatch, cfg, "latency", "ALARM")
    health = metrics_health(cfg, attempts=1, poll=0, ignore_alarms=[ignored])
    assert health["ok"] is False and other in str(health["breaches"]), health
