"""The rollback's urgent notices and what they tell: the rollback's summary so far, then Slack with the
on-call mentions, the incident email, and the status page's incident (the release's maintenance
completed first). Each sender takes the configuration and the message's values; the ``rollback``
group sends each once per attempt and verification state."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import get_current_context

from deployment.rollback.steps import STEPS
from deployment.run_context import run_ledger

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

log = logging.getLogger(__name__)


def summary(ledger: Ledger) -> dict[str, Any]:
    """The ``rollback`` section as it stands: plan, steps and verification so far."""
    from deployment.rollback.steps import summarize

    plan = ledger.read("rollback.plan") or {}
    steps = {name: ledger.read(f"rollback.{name}") for name in (*STEPS, "verify")}
    return {
        **summarize(plan, {k: v for k, v in steps.items() if v}, plan.get("failed_tasks", [])),
        "attempt": plan.get("attempt") or 1,
    }


def rolled_back_version(ledger: Ledger, plan: dict[str, Any]) -> str:
    """The version the rollback took off production: the plan's, else the release's."""
    return plan.get("rolled_back_version") or ledger.version


def slack_notice(cfg: DeploymentConfig, values: dict[str, Any]) -> dict[str, Any]:
    """Slack, team channel, with the on-call mentions."""
    from deployment.notifications.base import render
    from deployment.notifications.slack import oncall_mentions, send_slack

    text = render("slack_rollback.md.j2", mentions=oncall_mentions(cfg), **values)
    return send_slack(cfg.connections.slack_team, text)


def email_notice(cfg: DeploymentConfig, values: dict[str, Any]) -> dict[str, Any]:
    """Incident email to ``notifications.incident_emails``."""
    from deployment.notifications.base import render
    from deployment.notifications.mail import send_email

    state = "rolled back" if values["summary"]["verified"] else "ROLLBACK NOT VERIFIED"
    subject = f"[INCIDENT] {cfg.application} {values['version']} {state} ({cfg.environment})"
    return send_email(
        cfg,
        list(cfg.notifications.incident_emails),
        subject,
        render("email_incident.html.j2", **values),
        values["run_id"],
    )


def statuspage_notice(cfg: DeploymentConfig, values: dict[str, Any]) -> dict[str, Any]:
    """Status-page incident on the app's component; the release's maintenance completed first."""
    from deployment.notifications.base import render
    from deployment.notifications.statuspage import StatusPage, close_maintenance

    verified = values["summary"]["verified"]
    name = f"{cfg.application}: release {values['version']} rolled back"
    ledger = run_ledger(cfg, get_current_context())
    try:  # the maintenance the gate opened ends here; the incident tells what happened
        close_maintenance(cfg, ledger, f"The release was rolled back: see the incident {name!r}.")
    except Exception as err:  # the incident below is what matters now
        log.warning("could not complete the status page maintenance: %s", err)
    return StatusPage(cfg).open_or_update_incident(
        name=name,
        status="monitoring" if verified else "identified",
        body=render("statuspage_incident.md.j2", **values).strip(),
        component_status="operational" if verified else "degraded_performance",
    )
