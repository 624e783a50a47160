"""Announcements of a release and of its rollback: GitHub release, Slack, email, status page.

Each channel is a plain function of ``(cfg, ...)`` over a provider hook, so that it
can be tested against the sandbox emulators without an Airflow context. Message
texts are Jinja templates in ``include/templates/messages/``.

Idempotence: :func:`send_once` keeps what was sent in the deployment record
(one section per channel and purpose, e.g. ``notifications.slack_team``) and skips a
channel that already has a ``sent`` entry, so a retried or cleared task does not
post twice. The GitHub release is looked up by tag before it is created, and an
incident is looked up among the unresolved ones before one is opened.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployment.config import PROJECT_ROOT

if TYPE_CHECKING:
    from datetime import datetime

    import jinja2

    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

log = logging.getLogger(__name__)

TEMPLATES_DIR = PROJECT_ROOT / "include" / "templates" / "messages"
VERSION_TAG = re.compile(r"^v\d+\.\d+\.\d+$")
SLACK_SECTION_LIMIT = 3000


class NotificationError(RuntimeError):
    """A channel refused or failed a message; the message names the channel."""


# ------------------------------------------------------------------ rendering
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def slack_escape(text: Any) -> str:
    """Slack mrkdwn: ``&``, ``<``, ``>`` as entities, so ``<!channel>`` or ``<url|x>`` stay literal text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_escape(text: Any) -> str:
    """Markdown (GitHub, Airflow's Required Actions): HTML as entities, punctuation backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", slack_escape(text))


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["slack"] = slack_escape
    env.filters["md"] = md_escape
    return env


def render(template: str, **values: Any) -> str:
    """Render ``include/templates/messages/<template>`` with ``values``."""
    return _environment().get_template(template).render(**values).strip() + "\n"


def run_url(cfg: DeploymentConfig, dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    return f"{cfg.notifications.ui_base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


# ---------------------------------------------------------------- idempotence
def send_once(ledger: Ledger, section: str, send: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Call ``send`` unless the record shows this message as sent; record what it returns."""
    from deployment.ledger import now_iso

    previous = ledger.read(section)
    if previous and previous.get("status") == "sent":
        log.info("%s was already sent at %s; not sending it again", section, previous.get("sent_at"))
        return {**previous, "skipped": True}
    try:
        detail = send()
    except Exception as err:
        ledger.write(section, {"status": "failed", "failed_at": now_iso(), "error": str(err)[:500]})
        raise
    entry = {"status": "sent", "sent_at": now_iso(), **detail}
    ledger.write(section, entry)
    return entry


# --------------------------------------------------------------------- GitHub
def _repo(cfg: DeploymentConfig):
    from airflow.providers.github.hooks.github import GithubHook

    return GithubHook(github_conn_id=cfg.connections.github).client.get_repo(cfg.github.repository)


def previous_production_tag(cfg: DeploymentConfig, version: str, backup: dict | None = None) -> str | None:
    """The version production ran before ``version``.

    In order: the version the backup of this run saw live (what production really
    ran), the last successful release in the ledger, the latest published non-rc
    GitHub release. ``None`` for a first release.
    """
    from deployment.ledger import find_releases

    live = (backup or {}).get("previous_version")
    if isinstance(live, str) and VERSION_TAG.match(live) and live != version:
        return live
    for release in find_releases(cfg, "succeeded"):
        if release.get("version") != version and VERSION_TAG.match(str(release.get("version", ""))):
            return release["version"]
    for release in _repo(cfg).get_releases():
        tag = release.tag_name
        if not release.draft and not release.prerelease and tag != version and VERSION_TAG.match(tag):
            return tag
    return None


def _ref_exists(repo, tag: str) -> bool:
    from github import UnknownObjectException

    try:
        repo.get_git_ref(f"tags/{tag}")
    except UnknownObjectException:
        return False
    return True


def release_notes(
    cfg: DeploymentConfig, conf: dict[str, Any], previous: str | None, approvals: Any = None
) -> dict[str, Any]:
    """Markdown release notes from GitHub's compare of ``previous``...this release, and when the
    release's first commit was made (``first_commit_at``: DORA's lead time starts there)."""
    from datetime import UTC

    repo = _repo(cfg)
    version = conf["version"]
    head = version if _ref_exists(repo, version) else conf["commit_sha"]
    commits: list[dict[str, str]] = []
    compare_url = None
    dates = []  # each commit's author date: the first is where the release's lead time starts
    if previous:
        comparison = repo.compare(previous, head)
        compare_url = comparison.html_url
        for commit in comparison.commits:
            login = commit.author.login if commit.author else commit.commit.author.name
            commits.append(
                {"sha": commit.sha[:7], "title": commit.commit.message.splitlines()[0], "author": login}
            )
            if commit.commit.author and commit.commit.author.date:
                date = commit.commit.author.date
                dates.append(date if date.tzinfo else date.replace(tzinfo=UTC))
    markdown = render(
        "release_notes.md.j2",
        version=version,
        previous=previous,
        conf=conf,
        commits=commits,
        compare_url=compare_url,
        approvers=_approvers(approvals),
        emergency=active_flags(conf.get("emergency") or {}),
    )
    return {
        "previous_version": previous,
        "head": head,
        "commits": len(commits),
        "compare_url": compare_url,
        "first_commit_at": min(dates).isoformat() if dates else None,
        "markdown": markdown,
    }


def publish_github_release(
    cfg: DeploymentConfig, version: str, commit_sha: str, notes: str
) -> dict[str, Any]:
    """Create, or update in place, the published GitHub release ``version`` with ``notes``."""
    from github import UnknownObjectException

    repo = _repo(cfg)
    try:
        release = repo.get_release(version)
    except UnknownObjectException:
        release = repo.create_git_release(
            version,
            name=version,
            message=notes,
            draft=False,
            prerelease=False,
            target_commitish=commit_sha,
        )
        action = "created"
    else:
        release = release.update_release(name=version, message=notes, draft=False, prerelease=False)
        action = "updated"
    return {"action": action, "release_id": release.id, "tag": release.tag_name, "url": release.html_url}


# ---------------------------------------------------------------------- Slack
def send_slack(conn_id: str, text: str) -> dict[str, Any]:
    """Post ``text`` (Slack mrkdwn) through the incoming webhook of connection ``conn_id``."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=conn_id)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[i : i + SLACK_SECTION_LIMIT]}}
        for i in range(0, len(text), SLACK_SECTION_LIMIT)
    ]
    try:
        hook.send(text=text, blocks=blocks)
    except Exception as err:
        raise NotificationError(f"Slack webhook {conn_id!r} refused the message: {err}") from err
    return {"connection": conn_id, "chars": len(text)}


def oncall_mentions(cfg: DeploymentConfig) -> str:
    return " ".join(f"<@{user}>" for user in cfg.notifications.oncall_users)


# ---------------------------------------------------------------------- email
def send_email(cfg: DeploymentConfig, to: list[str], subject: str, html: str, run_id: str) -> dict[str, Any]:
    """Send an HTML email through the SMTP connection."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        with SmtpHook(smtp_conn_id=cfg.connections.smtp) as hook:
            hook.send_email_smtp(
                to=to,
                subject=subject,
                html_content=html,
                from_email=cfg.notifications.email_from,
                custom_headers={"X-Deployment-Run": run_id, "X-Deployment-Application": cfg.application},
            )
    except Exception as err:
        raise NotificationError(
            f"SMTP connection {cfg.connections.smtp!r} did not send {subject!r}: {err}"
        ) from err
    return {"to": list(to), "subject": subject}


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


# -------------------------------------------------------------- message values
def active_flags(emergency: dict[str, Any]) -> dict[str, Any]:
    """``{"flags": ["force_deploy", "ignore_alarms: a, b"], "reason": ...}``, or {} when none is set."""
    flags = []
    for name, value in sorted(emergency.items()):
        if name == "reason" or not value:
            continue
        flags.append(name if value is True else f"{name}: {', '.join(map(str, value))}")
    return {"flags": flags, "reason": emergency.get("reason", "")} if flags else {}


def _approvers(approvals: dict[str, Any] | None) -> list[str]:
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
