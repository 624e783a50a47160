"""DORA's four keys over a window of days, from the deployment records, with their performance bands.

- Deployment frequency: releases that reached production (succeeded or rolled back) per day.
- Lead time for changes: the release's first commit to traffic at 100 %. The first commit's
  time is the record's ``release_notes.first_commit_at`` when written, else the time GitHub
  gives the release's compare (``first_commit_times``); without either the trigger time
  (``conf.started_at``) stands in and the release is counted in ``lead_time_from_trigger``.
- Change failure rate: deployments rolled back (automatically, or by a later manual rollback of
  that version) over deployments.
- Time to restore: the first breached poll (or the manual rollback's start) to traffic back on
  the stable colour, and to the rollback verified.

Every time is read from the runs' summaries (``deployment.release.summary``, which derives them).

Bands follow the State of DevOps report's clusters (elite / high / medium / low).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

from deployment.release.phase_metrics import parse_time

WINDOWS = (7, 30, 90)
DAY = 86400.0
# (band, test) in order: the first that holds is the band.
BANDS: dict[str, tuple[tuple[str, Callable[[float], bool]], ...]] = {
    "deployment_frequency_per_day": (
        ("elite", lambda v: v >= 1),
        ("high", lambda v: v >= 1 / 7),
        ("medium", lambda v: v >= 1 / 30),
        ("low", lambda v: True),
    ),
    "lead_time_seconds": (
        ("elite", lambda v: v < DAY),
        ("high", lambda v: v < 7 * DAY),
        ("medium", lambda v: v < 30 * DAY),
        ("low", lambda v: True),
    ),
    "change_failure_rate": (
        ("elite", lambda v: v <= 0.05),
        ("high", lambda v: v <= 0.10),
        ("medium", lambda v: v <= 0.15),
        ("low", lambda v: True),
    ),
    "time_to_restore_seconds": (
        ("elite", lambda v: v < 3600),
        ("high", lambda v: v < DAY),
        ("medium", lambda v: v < 7 * DAY),
        ("low", lambda v: True),
    ),
}
BAND_ORDER = ("low", "medium", "high", "elite")
DEPLOYED = ("succeeded", "rolled_back")


def band(metric: str, value: float | None) -> str | None:
    if value is None:
        return None
    return next(name for name, holds in BANDS[metric] if holds(value))


def _facts(summaries: Iterable[dict], first_commit_times: Callable[[dict], datetime | None]) -> list[dict]:
    """One fact per deployment (a release that reached production) and per manual rollback."""
    facts = []
    for summary in summaries:
        status = summary.get("outcome")
        if summary.get("kind") == "manual_rollback":
            facts.append(
                {
                    "kind": "manual_rollback",
                    "at": parse_time(summary.get("started_at")),
                    "version": summary.get("rolled_back_version"),
                    "restore": summary.get("restore"),
                }
            )
            continue
        if status not in DEPLOYED:
            continue
        live = parse_time(summary.get("live_at_100"))
        triggered = parse_time(summary.get("triggered_at"))
        committed = first_commit_times(summary)
        if committed is not None and triggered is not None and committed > triggered:
            committed = None  # a commit after its release's trigger is not this release's first commit
        from_trigger = committed is None
        begin = committed or triggered
        facts.append(
            {
                "kind": "deployment",
                "at": parse_time(summary.get("finished_at")) or parse_time(summary.get("started_at")),
                "version": summary.get("version"),
                "rolled_back": status == "rolled_back",
                "lead_time": round((live - begin).total_seconds(), 3) if live and begin else None,
                "lead_from_trigger": from_trigger,
                "restore": summary.get("restore") if status == "rolled_back" else None,
            }
        )
    return [f for f in facts if f["at"] is not None]


def _manually_rolled_back(facts: list[dict]) -> None:
    """Mark the latest deployment of each manually rolled-back version, before that rollback, as failed."""
    deployments = sorted((f for f in facts if f["kind"] == "deployment"), key=lambda f: f["at"])
    for rollback in (f for f in facts if f["kind"] == "manual_rollback"):
        earlier = [
            d for d in deployments if d["version"] == rollback["version"] and d["at"] <= rollback["at"]
        ]
        if earlier:
            earlier[-1]["rolled_back"] = True
            earlier[-1]["manual_rollback"] = True


def _summarise(facts: list[dict], days: float) -> dict[str, Any]:
    deployments = [f for f in facts if f["kind"] == "deployment"]
    leads = [f["lead_time"] for f in deployments if f["lead_time"] is not None]
    restores = [f["restore"] for f in facts if f["restore"]]
    traffic_back = [r["to_traffic_back"] for r in restores if r.get("to_traffic_back") is not None]
    verified = [r["to_verified"] for r in restores if r.get("to_verified") is not None]
    failures = sum(1 for f in deployments if f["rolled_back"])
    frequency = round(len(deployments) / days, 4) if days else None
    lead = round(median(leads), 3) if leads else None
    cfr = round(failures / len(deployments), 4) if deployments else None
    restore = round(median(traffic_back), 3) if traffic_back else None
    return {
        "deployments": len(deployments),
        "failures": failures,
        "manual_rollbacks": sum(1 for f in facts if f["kind"] == "manual_rollback"),
        "deployment_frequency_per_day": frequency,
        "lead_time_seconds": lead,
        "lead_time_from_trigger": sum(
            1 for f in deployments if f["lead_time"] is not None and f["lead_from_trigger"]
        ),
        "change_failure_rate": cfr,
        "time_to_restore_seconds": restore,
        "time_to_verified_seconds": round(median(verified), 3) if verified else None,
        "bands": {
            "deployment_frequency_per_day": band("deployment_frequency_per_day", frequency)
            if deployments
            else None,
            "lead_time_seconds": band("lead_time_seconds", lead),
            "change_failure_rate": band("change_failure_rate", cfr),
            "time_to_restore_seconds": band("time_to_restore_seconds", restore),
        },
    }


def overall(bands: dict[str, str | None]) -> str | None:
    """The team's band: the weakest of the four keys that have a value."""
    known = [b for b in bands.values() if b]
    return min(known, key=BAND_ORDER.index) if known else None


def dora(
    summaries: Iterable[dict],
    days: int,
    *,
    now: datetime | None = None,
    first_commit_times: Callable[[dict], datetime | None] = lambda summary: parse_time(
        summary.get("first_commit_at")
    ),
) -> dict[str, Any]:
    """The four keys over the last ``days`` days from the runs' summaries, and their trend per day
    (up to 30 days) or per week."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    facts = _facts(summaries, first_commit_times)
    _manually_rolled_back(facts)
    window = [f for f in facts if since <= f["at"] <= now]
    summary = _summarise(window, days)
    bucket_days = 1 if days <= 30 else 7
    trend = []
    start = since
    while start < now:
        end = min(start + timedelta(days=bucket_days), now)
        inside = [f for f in window if start <= f["at"] < end or (end == now and f["at"] == now)]
        point = _summarise(inside, (end - start).total_seconds() / DAY)
        trend.append(
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                **{
                    k: point[k]
                    for k in (
                        "deployments",
                        "failures",
                        "deployment_frequency_per_day",
                        "lead_time_seconds",
                        "change_failure_rate",
                        "time_to_restore_seconds",
                    )
                },
            }
        )
        start = end
    return {
        "days": days,
        "since": since.isoformat(),
        "until": now.isoformat(),
        **summary,
        "band": overall(summary["bands"]),
        "trend": trend,
    }
