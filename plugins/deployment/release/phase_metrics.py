"""Per-phase durations of a release: into the record (``metrics``) and CloudWatch.

Durations come from the deployment record, not from Airflow's task instances:
a phase ends when its section was last written, and starts where the phase
before it ended (or at the section's own ``started_at`` when it has one). The
record is the source of truth that survives Airflow's database; it measures
wall-clock time including deferrals, the human approval wait and scheduling
gaps, all of which a sum of task durations misses; and the Task SDK exposes no
start/end times of other task instances (only states, and terminal durations
through an internal breadcrumbs call).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployment.release.phase_registry import MEASURED, TOTAL, TOTAL_METRIC

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

METRIC_NAMES = {**{phase.measured_as: phase.metric for phase in MEASURED}, TOTAL: TOTAL_METRIC}


def parse_time(value: Any) -> datetime | None:
    """An ISO timestamp (``Z`` allowed) or datetime, made timezone-aware (UTC if naive); None if unusable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def phase_durations(
    started_at: datetime, boundaries: dict[str, dict[str, datetime | None]], end: datetime
) -> dict[str, Any]:
    """Durations in seconds from each section's ``{"started": ..., "ended": ...}`` times.

    A phase without a section (never ran, or skipped) has no duration and does not move
    the boundary: the next phase starts where the last recorded one ended.
    """
    phases: dict[str, Any] = {}
    previous_end = started_at
    for phase in MEASURED:
        times = boundaries.get(phase.section)
        if not times or times.get("ended") is None:
            phases[phase.measured_as] = None
            continue
        start = times.get("started") or previous_end
        ended = times["ended"]
        phases[phase.measured_as] = {
            "started_at": start.isoformat(),
            "ended_at": ended.isoformat(),
            "seconds": round(max((ended - start).total_seconds(), 0.0), 3),
        }
        previous_end = ended
    phases[TOTAL] = {
        "started_at": started_at.isoformat(),
        "ended_at": end.isoformat(),
        "seconds": round(max((end - started_at).total_seconds(), 0.0), 3),
    }
    return phases


def section_boundaries(ledger: Ledger, record: dict[str, Any]) -> dict[str, dict[str, datetime | None]]:
    """Each phase section's start (its ``started_at``, if any) and end (last write to S3)."""
    boundaries = {}
    for section in (phase.section for phase in MEASURED):
        if section not in record:
            continue
        body = record[section] if isinstance(record[section], dict) else {}
        head = ledger.hook.head_object(ledger.key(section), ledger.bucket)
        written = parse_time(head["LastModified"])
        ended = parse_time(body.get("finished_at") or body.get("completed_at")) or written
        boundaries[section] = {"started": parse_time(body.get("started_at")), "ended": ended}
    return boundaries


def measure(cfg: DeploymentConfig, ledger: Ledger, end: datetime | None = None) -> dict[str, Any]:
    """The ``metrics`` section of a run: phase durations measured from its record."""
    record = ledger.record()
    conf = record.get("conf") or {}
    started_at = parse_time(conf.get("started_at"))
    if started_at is None:
        raise ValueError(f"the record {ledger.prefix} has no conf.started_at to measure from")
    end = end or datetime.now(UTC)
    return {
        "version": ledger.version,
        "run_id": ledger.run_id,
        "measured_at": end.isoformat(),
        "phases": phase_durations(started_at, section_boundaries(ledger, record), end),
    }


def metric_data(cfg: DeploymentConfig, phases: dict[str, Any], timestamp: datetime) -> list[dict[str, Any]]:
    dimensions = [
        {"Name": "Application", "Value": cfg.application},
        {"Name": "Environment", "Value": cfg.environment},
    ]
    return [
        {
            "MetricName": METRIC_NAMES[phase],
            "Dimensions": dimensions,
            "Timestamp": timestamp,
            "Value": value["seconds"],
            "Unit": "Seconds",
        }
        for phase, value in phases.items()
        if value is not None
    ]


def record_metrics(cfg: DeploymentConfig, ledger: Ledger, *, outcome: str | None = None) -> dict[str, Any]:
    """Measure, publish to ``metrics.deployment_namespace`` and write the ``metrics`` section, once per run.

    CloudWatch adds up datapoints sent twice, so a run whose section says it was published
    is not published again.
    """
    from deployment.hooks.aws import CloudWatchHook, hook_for

    existing = ledger.read("metrics")
    if existing and existing.get("published_at"):
        return {**existing, "skipped": True}
    section = measure(cfg, ledger)
    section["outcome"] = outcome
    data = metric_data(cfg, section["phases"], parse_time(section["measured_at"]))
    cloudwatch = hook_for(cfg, CloudWatchHook).conn
    for start in range(0, len(data), 20):
        batch = data[start : start + 20]
        cloudwatch.put_metric_data(Namespace=cfg.metrics.deployment_namespace, MetricData=batch)
    section["namespace"] = cfg.metrics.deployment_namespace
    section["published"] = [d["MetricName"] for d in data]
    section["published_at"] = datetime.now(UTC).isoformat()
    ledger.write("metrics", section)
    return section
