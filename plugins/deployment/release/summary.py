"""One run's summary: what the releases table and DORA's four keys need, derived from its record.

``build`` is a pure function of a run's sections (``SECTIONS``; the rest are not read): the
version, commit, author, approvers, outcome, start and end, the time traffic reached 100 %,
the release's first commit, the first breach and the times to traffic back and to the
rollback verified, and what the links are made of. It is the one place these are derived:
``record_outcome`` and the manual rollback's last task write it when a run ends
(:func:`record_summary`), and the Deployments view builds it the same way for a run that
has none (a run still in progress, a record older than summaries).

Where: ``<artifacts.prefix>/summaries/<version or manual-rollbacks>/<run key>.json``, keyed
like the record (``<prefix>/<version>/<run key>/``). Not inside the run's folder: S3 lists by
prefix only, so summaries kept among the sections could be found only by listing every
section of every run, which is what made the view's first answer slow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from deployment.release.phase_metrics import parse_time
from deployment.run_contract import RELEASE_DAG_ID, ROLLBACK_DAG_ID

if TYPE_CHECKING:
    from deployment.ledger import Ledger

log = logging.getLogger(__name__)

SCHEMA = 1
FOLDER = "summaries"  # under the artifacts prefix
MANUAL_ROLLBACKS = "manual-rollbacks"  # the record folder of rollback_production's runs
# The sections a summary is built from: nothing else is read.
SECTIONS = (
    "conf",
    "approvals",
    "outcome",
    "frontend",
    "monitoring",
    "rollback",
    "rollback.plan",
    "release_notes",
    "backup",
    "backup-stack",
    "infrastructure",
    "notifications.github_release",
)

Sections = Mapping[str, Any]


def key(prefix: str, folder: str, run: str) -> str:
    """The summary's S3 key; ``prefix`` is the artifacts prefix, ``run`` the run key."""
    return f"{prefix.strip('/')}/{FOLDER}/{folder}/{run}.json"


def _section(sections: Sections, name: str) -> dict[str, Any]:
    value = sections.get(name)
    return value if isinstance(value, dict) else {}


def seconds_between(start: Any, end: Any) -> float | None:
    started, ended = parse_time(start), parse_time(end)
    if started is None or ended is None:
        return None
    return round((ended - started).total_seconds(), 3)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ------------------------------------------------------------------ who, what, when
def status(sections: Sections) -> str:
    """``succeeded``, ``rolled_back``, ``failed`` from the outcome; ``running`` before it exists."""
    return str(_section(sections, "outcome").get("status") or "running")


def started_at(
    sections: Sections, manual_rollback: bool, modified: Mapping[str, datetime] | None = None
) -> str | None:
    """The trigger time (a manual rollback: its rollback's start or plan); else the oldest section's time."""
    if manual_rollback:
        found = _section(sections, "rollback").get("started_at") or _section(sections, "rollback.plan").get(
            "planned_at"
        )
    else:
        found = _section(sections, "conf").get("started_at")
    if found:
        return found
    times = [t for t in (modified or {}).values() if t is not None]
    return min(times).isoformat() if times else None


def approvers(sections: Sections) -> list[dict[str, Any]]:
    """Who approved and when: the gate's result, else each answered gate task."""
    section = _section(sections, "approvals")
    result = section.get("result")
    listed = result.get("approvers") if isinstance(result, dict) else None
    if isinstance(listed, list) and listed:
        return [
            {
                "id": a.get("id"),
                "name": a.get("name") or a.get("id"),
                "at": a.get("at"),
                "task": a.get("task"),
            }
            for a in listed
            if isinstance(a, dict)
        ]
    answers = [
        {
            "id": v.get("user_id"),
            "name": v.get("user_name") or v.get("user_id"),
            "at": v.get("responded_at"),
            "task": k,
            "decision": v.get("decision"),
        }
        for k, v in sorted(section.items())
        if k != "result" and isinstance(v, dict)
    ]
    return [a for a in answers if a.get("decision") in (None, "approved")]


def emergency(conf: Mapping[str, Any]) -> list[str]:
    flags = conf.get("emergency") if isinstance(conf.get("emergency"), dict) else {}
    active = [name for name in ("force_deploy", "skip_monitoring") if flags.get(name)]
    if flags.get("ignore_alarms"):
        active.append("ignore_alarms")
    return active


def link_data(sections: Sections, manual_rollback: bool, run: str) -> dict[str, Any]:
    """What the links are made of (the view adds the region, the repository and the Amplify app)."""
    outcome, conf = _section(sections, "outcome"), _section(sections, "conf")
    job = _section(sections, "frontend").get("amplify_job") or {}
    github = _section(sections, "notifications.github_release")
    return {
        "dag_id": outcome.get("dag_id") or (ROLLBACK_DAG_ID if manual_rollback else RELEASE_DAG_ID),
        "run_id": outcome.get("run_id") or conf.get("run_id") or run,
        "stack_id": (_section(sections, "backup").get("stack") or {}).get("stack_id")
        or _section(sections, "backup-stack").get("stack_id"),
        "stack_name": _section(sections, "infrastructure").get("stack_name"),
        "amplify_job": {"branch": job.get("branch"), "job_id": job.get("job_id")}
        if isinstance(job, dict) and job.get("job_id")
        else None,
        "github_release_url": github.get("html_url") or github.get("url"),
    }


# ---------------------------------------------------------------------- DORA's times
def live_at_100(sections: Sections) -> datetime | None:
    """When traffic reached 100 % on the release's colour."""
    step = (_section(sections, "frontend").get("steps") or {}).get("100")
    if not isinstance(step, dict):
        return None
    return parse_time(step.get("applied_at") or step.get("finished_at"))


def _watches(sections: Sections) -> list[dict[str, Any]]:
    """The metric watches' sections: each traffic step's, then the monitoring's."""
    steps = _section(sections, "frontend").get("steps") or {}
    watches = [v for v in steps.values() if isinstance(v, dict)] if isinstance(steps, dict) else []
    return [*watches, _section(sections, "monitoring")]


def breach_at(sections: Sections) -> datetime | None:
    """The end of the first poll judged a breach (traffic steps, then monitoring)."""
    times = []
    for watch in _watches(sections):
        for verdict in (watch.get("watch") or {}).get("verdicts") or []:
            if isinstance(verdict, dict) and verdict.get("outcome") == "breach":
                times.append(parse_time((verdict.get("sample") or {}).get("end")))
    times = [t for t in times if t is not None]
    return min(times) if times else None


def watch_restored_at(sections: Sections) -> datetime | None:
    """When a watch put all traffic back on the stable colour itself on its breach (``traffic_restored``:
    the trigger's call, or the task's when the trigger's failed)."""
    times = []
    for watch in _watches(sections):
        restored = watch.get("traffic_restored")
        if isinstance(restored, dict):
            times.append(
                parse_time(restored.get("by_task_at") if restored.get("error") else restored.get("at"))
            )
    times = [t for t in times if t is not None]
    return min(times) if times else None


def restore(sections: Sections, manual_rollback: bool, start: str | None) -> dict[str, Any] | None:
    """From the failure (the first breach, else the rollback's first step; a manual rollback's start)
    to traffic back on the stable colour (the watch's own restore, else the rollback's traffic step)
    and to the rollback verified; None without a rollback."""
    rollback = _section(sections, "rollback")
    if rollback.get("status") != "rolled_back":
        return None
    steps = rollback.get("steps") if isinstance(rollback.get("steps"), dict) else {}
    if manual_rollback:
        began = parse_time(start)
    else:
        first_step = [parse_time(s.get("started_at")) for s in steps.values() if isinstance(s, dict)]
        began = breach_at(sections) or min((t for t in first_step if t), default=None)
    if began is None:
        return None
    traffic = steps.get("traffic") if isinstance(steps.get("traffic"), dict) else {}
    verify = steps.get("verify") if isinstance(steps.get("verify"), dict) else {}
    by_step = parse_time(traffic.get("finished_at")) if traffic.get("status") == "done" else None
    # the watch restores traffic at once on a breach; the rollback's traffic step then finds it back
    traffic_back = min((t for t in (watch_restored_at(sections), by_step) if t), default=None)
    verified = parse_time(verify.get("finished_at")) or parse_time(
        _section(sections, "outcome").get("finished_at")
    )

    def since(end: datetime | None) -> float | None:
        return round((end - began).total_seconds(), 3) if end else None

    return {
        "from": _iso(began),
        "traffic_back_at": _iso(traffic_back),
        "verified_at": _iso(verified),
        "to_traffic_back": since(traffic_back),
        "to_verified": since(verified),
    }


# ------------------------------------------------------------------------ the summary
def build(
    sections: Sections, folder: str, run: str, modified: Mapping[str, datetime] | None = None
) -> dict[str, Any]:
    """The summary of the run ``folder/run`` (``folder``: its version, or ``manual-rollbacks``).

    ``modified`` (section → S3 LastModified) dates a run whose trigger time is not recorded.
    """
    manual = folder == MANUAL_ROLLBACKS
    conf, outcome = _section(sections, "conf"), _section(sections, "outcome")
    plan, notes = _section(sections, "rollback.plan"), _section(sections, "release_notes")
    start, end = started_at(sections, manual, modified), outcome.get("finished_at")
    if manual:
        version = outcome.get("previous_version") or plan.get("previous_version")
        author = outcome.get("requested_by") or plan.get("requested_by")
        rolled_back = outcome.get("version") or plan.get("rolled_back_version")
    else:
        version, author, rolled_back = conf.get("version") or folder, conf.get("author"), None
    return {
        "schema": SCHEMA,
        "id": f"{folder}/{run}",
        "kind": "manual_rollback" if manual else "release",
        "version": version,
        "rolled_back_version": rolled_back,
        "previous_version": outcome.get("previous_version"),
        "commit": None if manual else conf.get("commit_sha"),
        "author": author,
        "approvers": approvers(sections),
        "outcome": status(sections),
        "rollback_status": outcome.get("rollback_status") or _section(sections, "rollback").get("status"),
        "reason": outcome.get("reason") if manual else None,
        "emergency": emergency(conf),
        "started_at": start,
        "finished_at": end,
        "duration_seconds": seconds_between(start, end),
        "triggered_at": None if manual else conf.get("started_at"),
        "live_at_100": _iso(live_at_100(sections)),
        "first_commit_at": notes.get("first_commit_at"),
        # the compare a missing first commit time can still be asked of GitHub (base...head)
        "compare_base": notes.get("previous_version")
        or outcome.get("previous_version")
        or _section(sections, "backup").get("previous_version"),
        "breach_at": _iso(breach_at(sections)),
        "restore": restore(sections, manual, start),
        "links": link_data(sections, manual, run),
    }


def record_summary(ledger: Ledger, outcome: Mapping[str, Any]) -> str | None:
    """Write the summary of ``ledger``'s run, its ``outcome`` just written; its S3 URI.

    Never raises: the summary serves the Deployments view, and a run's outcome must not depend on it
    (the view builds the summary from the sections when there is none). A failure is logged.
    """
    try:
        import json

        from deployment.ledger import put_text, read_object

        hook, bucket = ledger.hook, ledger.bucket
        names = {
            k.rsplit("/", 1)[-1].removesuffix(".json")
            for k in hook.list_keys(bucket_name=bucket, prefix=f"{ledger.prefix}/") or []
        }
        sections: dict[str, Any] = {
            name: json.loads(read_object(hook, bucket, ledger.key(name)))
            for name in SECTIONS
            if name in names and name != "outcome"
        }
        sections["outcome"] = dict(outcome)
        run = ledger.run_key
        summary = build(sections, ledger.version, run)
        target = key(ledger.config.artifacts.prefix, ledger.version, run)
        put_text(hook, bucket, target, json.dumps(summary, indent=1, sort_keys=True))
        return f"s3://{bucket}/{target}"
    except Exception:
        log.exception(
            "could not write the summary of %s (the Deployments view reads its sections)", ledger.prefix
        )
        return None
