"""PagerDuty: on-call paged through the Events API when a rollback cannot be verified."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
from deployment.notifications.base import NotificationError

# ------------------------------------------------------------------ PagerDuty
PAGERDUTY_API = "https://events.pagerduty.com"


def page_oncall(
    cfg: DeploymentConfig, summary: str, dedup_key: str, details: dict[str, Any], links: list[dict[str, str]]
) -> dict[str, Any]:
    """Trigger a critical PagerDuty alert (Events API v2) through the ``pagerduty`` connection.

    The provider's hook reads the routing key (the connection's password) and shapes the
    event; it is posted to the connection's host (``PAGERDUTY_API`` in production; the
    provider's own client only speaks HTTPS to that fixed address, so the sandbox could
    not be reached through it).
    """
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook, prepare_event_data

    conn_id = cfg.connections.pagerduty
    events = PagerdutyEventsHook(pagerduty_events_conn_id=conn_id)
    event = {
        "routing_key": events.integration_key,
        **prepare_event_data(
            summary=summary[:1024],
            severity="critical",
            source=cfg.application,
            group=cfg.environment,
            component="release",
            class_type="rollback",
            action="trigger",
            dedup_key=dedup_key,
            custom_details=details,
            links=links,
            action_key_name="event_action",
        ),
    }
    hook = HttpHook(method="POST", http_conn_id=conn_id)
    if not hook.get_connection(conn_id).host:
        raise NotificationError(f"connection {conn_id!r} has no host: set it to {PAGERDUTY_API}")
    try:
        response = hook.run("v2/enqueue", json=event, extra_options={"check_response": False})
    except Exception as err:
        raise NotificationError(f"PagerDuty {conn_id!r} unreachable: {err}") from err
    if response.status_code != 202:
        raise NotificationError(
            f"PagerDuty {conn_id!r} refused the page: {response.status_code} {response.text[:300]}"
        )
    return {"dedup_key": response.json()["dedup_key"], "severity": "critical"}


def rollback_page(cfg: DeploymentConfig, values: dict[str, Any]) -> dict[str, Any]:
    """PagerDuty, on-call paged about the rollback (one alert per run, keyed by the run)."""
    summary_ = values["summary"]
    state = "rolled back" if summary_["verified"] else "ROLLBACK NOT VERIFIED"
    return page_oncall(
        cfg,
        summary=f"{cfg.application} {values['version']} {state} in {cfg.environment}",
        dedup_key=f"{cfg.application}/{cfg.environment}/{values['run_id']}",
        details={
            "failed_tasks": summary_.get("failed_tasks"),
            "undone": summary_.get("undone"),
            "not_undone": summary_.get("not_undone"),
            "failed_checks": summary_.get("failed_checks"),
            "version_now": summary_.get("previous_version"),
        },
        links=[{"href": values["url"], "text": "Airflow run"}],
    )
