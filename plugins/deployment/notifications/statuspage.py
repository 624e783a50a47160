"""The status page: a maintenance window opened before production changes and closed after, and the
incident of a rollback (looked up among the unresolved ones before one is opened)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger
from deployment.notifications.base import NotificationError


# ---------------------------------------------------------------- status page
class StatusPage:
    """The Statuspage v1 API on the ``statuspage`` connection (API key = password)."""

    def __init__(self, cfg: DeploymentConfig) -> None:
        self.conn_id = cfg.connections.statuspage
        self.page = cfg.notifications.statuspage_page_id
        self.component = cfg.notifications.statuspage_component_id

    def _call(self, method: str, endpoint: str, body: dict[str, Any] | None = None) -> Any:
        from airflow.providers.http.hooks.http import HttpHook

        hook = HttpHook(method=method, http_conn_id=self.conn_id)
        key = hook.get_connection(self.conn_id).password
        if not key:
            raise NotificationError(f"connection {self.conn_id!r} has no API key (password)")
        headers = {"Authorization": f"OAuth {key}", "Content-Type": "application/json"}
        try:
            response = hook.run(
                f"/v1/pages/{self.page}/{endpoint}",
                json=body,
                headers=headers,
                extra_options={"check_response": False},
            )
        except Exception as err:
            raise NotificationError(f"status page {self.conn_id!r} unreachable: {err}") from err
        if response.status_code >= 300:
            raise NotificationError(
                f"status page {self.conn_id!r} answered {method} {endpoint} with "
                f"{response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def set_component(self, status: str) -> dict[str, Any]:
        component = self._call("PATCH", f"components/{self.component}", {"component": {"status": status}})
        return {"component": self.component, "status": component["status"]}

    def incidents(self, which: str) -> list[dict[str, Any]]:
        """``unresolved``, ``upcoming`` (maintenances still scheduled) or ``active_maintenance``."""
        return list(self._call("GET", f"incidents/{which}"))

    def schedule_maintenance(
        self, name: str, body: str, start: datetime, until: datetime, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """A scheduled maintenance on the component, ``scheduled`` from ``start`` to ``until``.

        Statuspage would move it by the clock (``scheduled_auto_*``); the pipeline moves it
        itself, so those are off, and the component follows its status
        (``auto_transition_to_*_state``).
        """
        spec = {
            "name": name,
            "status": "scheduled",
            "body": body,
            "scheduled_for": start.isoformat(),
            "scheduled_until": until.isoformat(),
            "scheduled_remind_prior": False,
            "scheduled_auto_in_progress": False,
            "scheduled_auto_completed": False,
            "auto_transition_to_maintenance_state": True,
            "auto_transition_to_operational_state": True,
            "metadata": metadata,
            "component_ids": [self.component],
        }
        return self._call("POST", "incidents", {"incident": spec})

    def move_maintenance(
        self, incident_id: str, status: str, body: str, component_status: str
    ) -> dict[str, Any]:
        """The maintenance to ``in_progress`` or ``completed``, with an update and the component's status."""
        spec = {"status": status, "body": body, "components": {self.component: component_status}}
        return self._call("PATCH", f"incidents/{incident_id}", {"incident": spec})

    def open_or_update_incident(
        self, name: str, status: str, body: str, component_status: str, incident_id: str | None = None
    ) -> dict[str, Any]:
        """Open the incident ``name``, or update it when it (or ``incident_id``) is already open."""
        if incident_id is None:
            for incident in self._call("GET", "incidents/unresolved"):
                if incident["name"] == name:
                    incident_id = incident["id"]
                    break
        spec = {
            "name": name,
            "status": status,
            "body": body,
            "component_ids": [self.component],
            "components": {self.component: component_status},
        }
        if incident_id is None:
            incident = self._call("POST", "incidents", {"incident": spec})
            action = "opened"
        else:
            incident = self._call("PATCH", f"incidents/{incident_id}", {"incident": spec})
            action = "updated"
        return {
            "action": action,
            "incident_id": incident["id"],
            "status": incident["status"],
            "component_status": component_status,
        }


MAINTENANCE_SECTION = "notifications.statuspage_maintenance"


def maintenance_window_seconds(cfg: DeploymentConfig) -> int:
    """How long a release is expected to change production: stack update, build, steps, monitoring."""
    t = cfg.timings
    holds = sum(step.hold_seconds for step in cfg.traffic.steps)
    return max(60, t.stack_timeout_seconds + t.amplify_timeout_seconds + holds + t.monitoring_seconds)


def open_maintenance(cfg: DeploymentConfig, ledger: Ledger, version: str) -> dict[str, Any]:
    """The release's scheduled maintenance on the status page, opened and ``in_progress``.

    Once per run: its id is kept in ``notifications.statuspage_maintenance`` as soon as it
    exists, and a try that died before writing it finds it again by the run in its
    ``metadata``, so a rerun moves the same maintenance on instead of opening another.
    """
    from datetime import UTC, datetime, timedelta

    from deployment.ledger import now_iso

    section = ledger.read(MAINTENANCE_SECTION) or {}
    if section.get("status") in ("in_progress", "completed"):
        return {**section, "reused": True}
    page = StatusPage(cfg)
    incident_id = section.get("incident_id")
    if incident_id is None:
        for incident in page.incidents("upcoming") + page.incidents("active_maintenance"):
            if ((incident.get("metadata") or {}).get("deployment") or {}).get("run_id") == ledger.run_id:
                incident_id = incident["id"]
                break
    if incident_id is None:
        start = datetime.now(UTC)
        until = start + timedelta(seconds=maintenance_window_seconds(cfg))
        created = page.schedule_maintenance(
            name=f"{cfg.application}: release {version}",
            body=f"Release {version} of {cfg.application} is being deployed.",
            start=start,
            until=until,
            metadata={"deployment": {"run_id": ledger.run_id, "version": version}},
        )
        incident_id = created["id"]
        section = {
            "status": "scheduled",
            "incident_id": incident_id,
            "scheduled_for": created.get("scheduled_for"),
            "scheduled_until": created.get("scheduled_until"),
            "shortlink": created.get("shortlink"),
        }
        ledger.write(MAINTENANCE_SECTION, section)
    started = page.move_maintenance(
        incident_id, "in_progress", f"Deploying {version}: production is being changed.", "under_maintenance"
    )
    section = {**section, "status": started["status"], "incident_id": incident_id, "started_at": now_iso()}
    ledger.write(MAINTENANCE_SECTION, section)
    return {**section, "reused": False}


def close_maintenance(cfg: DeploymentConfig, ledger: Ledger, body: str) -> dict[str, Any] | None:
    """The release's maintenance ``completed`` (component operational) with ``body``; once per run.

    None when the run opened none. A record from before maintenances (the component set
    ``under_maintenance`` by hand, ``status: sent``) gets the component back to operational.
    """
    from deployment.ledger import now_iso

    section = ledger.read(MAINTENANCE_SECTION) or {}
    if section.get("status") in ("completed", "resolved"):
        return {**section, "reused": True}
    page = StatusPage(cfg)
    if section.get("incident_id"):
        done = page.move_maintenance(section["incident_id"], "completed", body, "operational")
        section = {**section, "status": done["status"], "completed_at": now_iso(), "body": body}
    elif section.get("status") == "sent":
        component = page.set_component("operational")
        section = {
            **section,
            "status": "resolved",
            "resolved_at": now_iso(),
            "component_status": component["status"],
        }
    else:
        return None
    ledger.write(MAINTENANCE_SECTION, section)
    return {**section, "reused": False}
