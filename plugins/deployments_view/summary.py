"""What the view shows of one run: a row of the releases table, and the release page.

Pure functions of the run's summary (``deployment.release.summary``, the row) or of its
``Record`` (the page), and of the configuration (thresholds and links). The sections are
read defensively: a section may be missing (the run has not got there, or failed earlier),
and other tasks add fields over time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from deployment.release.phase_metrics import parse_time
from deployment.release.summary import seconds_between
from deployments_view.records import Record

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

# The rollback group's steps, in the order they run (the section ``rollback``'s ``steps``).
ROLLBACK_STEPS = ("traffic", "stack", "frontend", "verify")
# A row of the releases table: these fields of the run's summary, and its links.
ROW_FIELDS = (
    "id",
    "kind",
    "version",
    "rolled_back_version",
    "previous_version",
    "commit",
    "author",
    "outcome",
    "rollback_status",
    "reason",
    "emergency",
    "started_at",
    "finished_at",
    "duration_seconds",
)


# ------------------------------------------------------------------ the releases table
def links(summary: dict[str, Any], config: DeploymentConfig) -> dict[str, str | None]:
    """The Airflow run (a UI path), the GitHub release, the CloudFormation stack, the Amplify job."""
    data = summary.get("links") or {}
    version, manual = summary.get("version"), summary.get("kind") == "manual_rollback"
    region = config.region
    stack = data.get("stack_id") or data.get("stack_name") or config.stack.name
    job = data.get("amplify_job") or {}
    return {
        "airflow_run": f"/dags/{data.get('dag_id')}/runs/{quote(str(data.get('run_id')), safe='')}",
        "github_release": data.get("github_release_url")
        or (
            f"https://github.com/{config.github.repository}/releases/tag/{version}"
            if version and not manual
            else None
        ),
        "cloudformation_stack": f"https://{region}.console.aws.amazon.com/cloudformation/home?region={region}"
        f"#/stacks/stackinfo?stackId={quote(stack, safe='')}",
        "amplify_job": (
            f"https://{region}.console.aws.amazon.com/amplify/home?region={region}"
            f"#/{config.amplify.app_id}/{job.get('branch')}/{job.get('job_id')}"
        )
        if job.get("job_id")
        else None,
    }


def row(summary: dict[str, Any], config: DeploymentConfig) -> dict[str, Any]:
    """One line of the releases table, from the run's summary (``deployment.release.summary``)."""
    return {
        **{name: summary.get(name) for name in ROW_FIELDS},
        "approvers": [a.get("id") for a in summary.get("approvers") or [] if isinstance(a, dict)],
        "emergency": summary.get("emergency") or [],
        "links": links(summary, config),
    }


def sort_key(item: dict[str, Any]) -> str:
    return item.get("started_at") or item.get("finished_at") or ""


# ---------------------------------------------------------------------- one release
def timeline(record: Record, started_at: str | None) -> list[dict[str, Any]]:
    """The phases as (name, start, end, seconds): the recorded ``metrics`` when written, else measured
    from the sections the same way deployment_metrics measures them; the rollback's steps after."""
    from deployment.release.phase_metrics import phase_durations
    from deployment.release.phase_registry import MEASURED

    phases = record.section("metrics").get("phases")
    if not isinstance(phases, dict) or not phases:
        start = parse_time(started_at)
        boundaries = {}
        for name in (phase.section for phase in MEASURED):
            if name not in record.sections:
                continue
            body = record.section(name)
            ended = parse_time(body.get("finished_at") or body.get("completed_at")) or record.modified.get(
                name
            )
            boundaries[name] = {"started": parse_time(body.get("started_at")), "ended": ended}
        ends = [b["ended"] for b in boundaries.values() if b["ended"]]
        phases = phase_durations(start, boundaries, max(ends, default=start)) if start else {}
    bars = [
        {
            "phase": name,
            "started_at": value["started_at"],
            "ended_at": value["ended_at"],
            "seconds": value["seconds"],
        }
        for name, value in phases.items()
        if name != "total" and isinstance(value, dict) and value.get("started_at") and value.get("ended_at")
    ]
    steps = record.section("rollback").get("steps") or {}
    for name in ROLLBACK_STEPS:
        step = steps.get(name) if isinstance(steps.get(name), dict) else {}
        if step.get("started_at") and step.get("finished_at") and step.get("status") != "not_needed":
            bars.append(
                {
                    "phase": f"rollback: {name}",
                    "started_at": step["started_at"],
                    "ended_at": step["finished_at"],
                    "seconds": seconds_between(step["started_at"], step["finished_at"]),
                }
            )
    return sorted(bars, key=lambda bar: bar["started_at"])


def thresholds(config: DeploymentConfig, section: dict[str, Any]) -> dict[str, Any]:
    """The thresholds a watch was judged against: the ones it recorded, else today's configuration."""
    recorded = section.get("thresholds") if isinstance(section.get("thresholds"), dict) else {}
    configured = config.thresholds.model_dump() if hasattr(config.thresholds, "model_dump") else {}
    return {**configured, **recorded}


def _rate(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _series(sample: dict[str, Any], name: str) -> dict[str, Any]:
    value = sample.get(name)
    return value if isinstance(value, dict) else {}


def _error_rate(series: dict[str, Any]) -> float | None:
    requests, errors = _rate(series.get("requests")), _rate(series.get("errors")) or 0.0
    return round(100.0 * errors / requests, 4) if requests else None


def polls(watch: Any) -> list[dict[str, Any]]:
    """Each poll of a metric watch as one point: time, error rate, latency, request rate, verdict.

    Two sample shapes are read: one series per poll (``requests``, ``errors``, ``latency_ms``), and
    the new colour against the stable one (``canary``, ``stable``, ``total`` series): then the chart
    values are the new colour's, with the stable colour's beside them.
    """
    verdicts = watch.get("verdicts") if isinstance(watch, dict) else None
    points = []
    for verdict in verdicts if isinstance(verdicts, list) else []:
        if not isinstance(verdict, dict):
            continue
        sample = verdict.get("sample") if isinstance(verdict.get("sample"), dict) else {}
        canary, stable, total = _series(sample, "canary"), _series(sample, "stable"), _series(sample, "total")
        own = canary or sample
        window = _rate(sample.get("window_seconds"))
        requests = _rate((total or own).get("requests"))
        error_rate = verdict.get("error_rate_percent")
        points.append(
            {
                "at": sample.get("end") or verdict.get("at"),
                "error_rate_percent": error_rate if error_rate is not None else _error_rate(own),
                "latency_ms": _rate(own.get("latency_ms")),
                "requests_per_second": round(requests / window, 3)
                if requests is not None and window
                else None,
                "stable_error_rate_percent": verdict.get("stable_error_rate_percent")
                if verdict.get("stable_error_rate_percent") is not None
                else (_error_rate(stable) if stable else None),
                "stable_latency_ms": _rate(stable.get("latency_ms")) if stable else None,
                "request_rate_ratio": verdict.get("request_rate_ratio"),
                "outcome": verdict.get("outcome"),
                "breaches": verdict.get("breaches") or [],
                "detail": verdict.get("detail"),
                "reasons": verdict.get("reasons") or verdict.get("notes") or [],
                "alarms_firing": sample.get("alarms_firing") or [],
                "api": _api_verdict(verdict.get("api")),
            }
        )
    return points


def _api_verdict(verdict: Any) -> dict[str, Any] | None:
    """The API half of a paired verdict (the new version against the previous), or None."""
    if not isinstance(verdict, dict):
        return None
    sample = verdict.get("sample") if isinstance(verdict.get("sample"), dict) else {}
    canary = _series(sample, "canary")
    return {
        "outcome": verdict.get("outcome"),
        "version": sample.get("canary_colour"),
        "previous_version": sample.get("stable_colour"),
        "error_rate_percent": verdict.get("error_rate_percent"),
        "stable_error_rate_percent": verdict.get("stable_error_rate_percent"),
        "p99_ms": _rate(canary.get("p99_ms")),
        "detail": verdict.get("detail"),
    }


def _api_weights(body: dict[str, Any]) -> dict[str, Any] | None:
    """The alias as the step left it: ``{"version", "weights"}`` from its routing change."""
    change = body.get("routing_change")
    api = change.get("api") if isinstance(change, dict) else None
    return api.get("after") if isinstance(api, dict) else None


def _watch_view(name: str, body: dict[str, Any], config: DeploymentConfig) -> dict[str, Any]:
    attempts = [a for a in body.get("previous_attempts") or [] if isinstance(a, dict)]
    return {
        "name": name,
        "weight": body.get("weight"),
        "weights": body.get("weights"),
        "api_weights": _api_weights(body),
        "outcome": body.get("outcome"),
        "reason": body.get("reason") or (body.get("watch") or {}).get("reason"),
        "started_at": body.get("applied_at") or body.get("started_at"),
        "finished_at": body.get("finished_at"),
        "baseline_rps": body.get("baseline_rps"),
        "thresholds": thresholds(config, body),
        "polls": polls(body.get("watch")),
        "previous_attempts": [
            {"outcome": a.get("outcome"), "reason": a.get("reason"), "polls": polls(a.get("watch"))}
            for a in attempts
        ],
    }


def watches(record: Record, config: DeploymentConfig) -> list[dict[str, Any]]:
    """Every traffic step (by weight) and the monitoring watch, with their polls."""
    steps = record.section("frontend").get("steps") or {}
    found = []
    for key in sorted(steps, key=lambda k: float(k) if str(k).replace(".", "", 1).isdigit() else 1e9):
        if isinstance(steps[key], dict):
            found.append(_watch_view(f"traffic {key} %", {"weight": key, **steps[key]}, config))
    monitoring = record.section("monitoring")
    if monitoring:
        view = _watch_view("monitoring", monitoring, config)
        view["skipped"] = bool(monitoring.get("skipped"))
        found.append(view)
    return found


def smoke(record: Record) -> dict[str, Any]:
    section = record.section("smoke_tests")
    checks = section.get("checks") if isinstance(section.get("checks"), dict) else {}
    if not checks:
        checks = {
            name.split(".", 1)[1]: body
            for name, body in record.sections.items()
            if name.startswith("smoke_tests.") and isinstance(body, dict)
        }
    return {
        "passed": section.get("passed"),
        "failed": section.get("failed") or [],
        "missing": section.get("missing") or [],
        "recorded_at": section.get("recorded_at"),
        "checks": [{"name": name, **body} for name, body in sorted(checks.items()) if isinstance(body, dict)],
    }


def rollback(record: Record) -> dict[str, Any] | None:
    section = record.section("rollback")
    plan = record.section("rollback.plan")
    if not section and not plan:
        return None
    steps = section.get("steps") if isinstance(section.get("steps"), dict) else {}
    return {
        "status": section.get("status"),
        "needed": section.get("needed"),
        "verified": section.get("verified"),
        "reasons": section.get("reasons") or plan.get("reasons") or [],
        "undone": section.get("undone") or [],
        "not_undone": section.get("not_undone") or [],
        "plan": plan or None,
        "steps": [{"name": name, **body} for name, body in steps.items() if isinstance(body, dict)],
    }


def detail(record: Record, config: DeploymentConfig) -> dict[str, Any]:
    """Everything the release page shows."""
    plan = record.section("plan")
    summary = record.summary()
    return {
        **row(summary, config),
        "timeline": timeline(record, summary["started_at"]),
        "plan": {
            "risk": plan.get("risk"),
            "steps": plan.get("steps") or [],
            "rollback_plan": plan.get("rollback_plan") or [],
            "checks": (plan.get("checks") or {}).get("checks")
            if isinstance(plan.get("checks"), dict)
            else None,
            "change_set": plan.get("change_set"),
            "generated_at": plan.get("generated_at"),
        }
        if plan
        else None,
        "approvals": summary["approvers"],
        "infrastructure": record.section("infrastructure") or None,
        "frontend": {k: v for k, v in record.section("frontend").items() if k != "steps"} or None,
        "watches": watches(record, config),
        "smoke_tests": smoke(record),
        "rollback": rollback(record),
        "outcome_record": record.section("outcome") or None,
        "sections": sorted(record.sections),
    }
