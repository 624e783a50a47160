"""The texts of the emergency, approval and failure notices, and the approval request's notice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger
from deployment.notifications.base import render, run_url, send_once
from deployment.notifications.mail import send_email
from deployment.notifications.slack import send_slack


# -------------------------------------------------------------- message values
def active_flags(emergency: dict[str, Any]) -> dict[str, Any]:
    """``{"flags": ["force_deploy", "ignore_alarms: a, b"], "reason": ...}``, or {} when none is set."""
    flags = []
    for name, value in sorted(emergency.items()):
        if name == "reason" or not value:
            continue
        flags.append(name if value is True else f"{name}: {', '.join(map(str, value))}")
    return {"flags": flags, "reason": emergency.get("reason", "")} if flags else {}


def approver_names(approvals: dict[str, Any] | None) -> list[str]:
    """Who approved, from the ``approvals`` section's ``result`` (written by ``record_approvals``)."""
    from deployment.ledger import APPROVAL_RESULT_KEY

    result = (approvals or {}).get(APPROVAL_RESULT_KEY) or {}
    return [str(a.get("name") or a["id"]) for a in result.get("approvers", [])]


def emergency_text(cfg: DeploymentConfig, conf: dict[str, Any], dag_id: str) -> str | None:
    """The team-channel announcement of a run's emergency flags, or None when none is set."""
    active = active_flags(conf.get("emergency") or {})
    if not active:
        return None
    return render(
        "slack_emergency.md.j2",
        conf=conf,
        emergency=active,
        cfg=cfg,
        url=run_url(cfg, dag_id, conf["run_id"]),
    )


# ------------------------------------------------------------ approval needed
def approver_contacts(cfg: DeploymentConfig, user_ids: list[str]) -> tuple[list[str], list[str]]:
    """Slack mentions and email addresses of ``user_ids`` (Airflow users), through ``people:``."""
    people = [cfg.person_by_airflow(u) for u in user_ids]
    mentions = [f"<@{p.slack}>" for p in people if p and p.slack]
    emails = [p.email for p in people if p and p.email]
    return mentions, emails


def required_actions_url(cfg: DeploymentConfig, dag_id: str, run_id: str, task_id: str) -> str:
    """The Required Actions page of an approval request, as ``HITLOperator.generate_link_to_ui`` builds it."""
    return f"{run_url(cfg, dag_id, run_id)}/tasks/{task_id}/required_actions?map_index=-1"


def approval_needed(
    cfg: DeploymentConfig,
    ledger: Ledger,
    *,
    version: str,
    task_id: str,
    key: str,
    assigned: list[str],
    deadline: str,
    link: str,
    run_id: str,
    reminder: bool = False,
) -> dict[str, Any]:
    """Tell the assigned approvers (Slack mention, email) that an approval waits; once per ``key``."""
    mentions, emails = approver_contacts(cfg, assigned)
    values = {
        "cfg": cfg,
        "version": version,
        "assigned": assigned,
        "deadline": deadline,
        "link": link,
        "reminder": reminder,
    }
    text = render("slack_approval_needed.md.j2", mentions=" ".join(mentions), **values)
    section = f"notifications.approval_needed.{task_id}.{key}"
    slack = send_once(ledger, f"{section}.slack", lambda: send_slack(cfg.connections.slack_team, text))
    email = {}
    if emails:
        what = "Reminder: approval needed" if reminder else "Approval needed"
        subject = f"{what}: {cfg.application} {version} to {cfg.environment}"
        html = render("email_approval_needed.html.j2", **values)
        email = send_once(ledger, f"{section}.email", lambda: send_email(cfg, emails, subject, html, run_id))
    return {"slack": slack, "email": email}


def failure_cause(failed: list[str], approvals: dict[str, Any] | None) -> str:
    """One line on why a release stopped before any change: the failed tasks and any refused answer."""
    parts = [f"failed: {', '.join(failed)}"]
    for task_id, entry in sorted((approvals or {}).items()):
        if isinstance(entry, dict) and entry.get("decision") in ("rejected", "timed_out", "refused"):
            who = entry.get("user_name") or entry.get("user_id")
            parts.append(f"{task_id} {entry['decision']}" + (f" by {who}" if who else ""))
    return "; ".join(parts)
