"""Phase 9, ``notify``: announce a healthy release. Never upstream of the rollback.

Tasks (each retried; one that still fails is failed on its own and rolls nothing back):
``release_notes`` (GitHub compare of the previous production tag ... this one) then
``github_release`` (created or updated, published); ``slack_team``, ``slack_company``,
``email_stakeholders`` (after the notes, whatever became of them), ``statuspage``
(component operational) and ``record_metrics`` (phase durations). What each sent is
kept in the record (``notifications.<channel>``), so a rerun does not send it again.

:func:`announce_emergency` is separate: put it right after ``record_release``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, get_current_context

from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "notify"
log = logging.getLogger(__name__)
RETRIES = 3


def _run(guard: str | None = None):
    """The task's context, config, record and conf; with ``guard``, refuse unless the release is live."""
    from deployment.run_context import run_config, run_ledger

    context = get_current_context()
    if guard:
        from deployment.guards import require_live_release

        require_live_release(context, f"notify.{guard}")
    cfg = run_config(context)
    ledger = run_ledger(cfg, context)
    conf = ledger.read("conf") or {**context["params"], "run_id": context["run_id"]}
    return context, cfg, ledger, conf


def release_page(cfg: DeploymentConfig, version: str) -> str:
    return f"https://github.com/{cfg.github.repository}/releases/tag/{version}"


def _values(cfg, ledger, conf, context) -> dict[str, Any]:
    from deployment.backup.restore_point import backup_version
    from deployment.notifications.base import run_url
    from deployment.notifications.messages import active_flags

    backup = ledger.read("backup") or {}
    published = ledger.read("notifications.github_release") or {}
    return {
        "cfg": cfg,
        "conf": conf,
        "previous": backup_version(cfg, backup) if backup else None,
        "release_url": published.get("url") or release_page(cfg, conf["version"]),
        "url": run_url(cfg, context["ti"].dag_id, context["run_id"]),
        "emergency": active_flags(conf.get("emergency") or {}),
        "commits": (ledger.read("release_notes") or {}).get("commits"),
    }


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration

    n = config.notifications
    return (
        f"**Phase 9, notify:** announces a healthy release: release notes and the GitHub release in "
        f"`{config.github.repository}`, Slack `{n.slack_team_channel}` and `{n.slack_company_channel}`, "
        f"email to {len(n.stakeholder_emails)} stakeholder address(es), the status page's maintenance "
        "completed, the phase durations recorded.\n\n"
        f"Each task is retried {RETRIES} times, {duration(config.timings.poll_interval_seconds)} apart. "
        "One that still fails is red on its own and rolls nothing back: the release still succeeds, "
        "with the task under `notification_failures` in `outcome`. Clear the failed task to send it "
        "again; a notice already sent is not sent twice."
    )


def notify_group(config: DeploymentConfig) -> TaskGroup:
    retry = {"retries": RETRIES, "retry_delay": timedelta(seconds=config.timings.poll_interval_seconds)}
    # none_failed: a skipped monitoring (skip_monitoring) still announces; a failed phase does not.
    root = {**retry, "trigger_rule": TriggerRule.NONE_FAILED}

    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Release notes, GitHub release, Slack, email, status page",
        doc_md=group_doc(config),
    ) as group:

        @task(task_id="release_notes", **root)
        def release_notes() -> dict[str, Any]:
            """Release notes from GitHub's compare of the previous production tag and this one; the
            release's first commit time (``first_commit_at``) with them."""
            from deployment.notifications.github import previous_production_tag
            from deployment.notifications.github import release_notes as build

            _, cfg, ledger, conf = _run("release_notes")
            previous = previous_production_tag(cfg, conf["version"], ledger.read("backup"))
            notes = build(cfg, conf, previous, ledger.read("approvals"))
            notes["uri"] = ledger.write_text("release_notes", notes["markdown"], "md")
            ledger.write("release_notes", notes)
            return {
                "previous_version": previous,
                "commits": notes["commits"],
                "first_commit_at": notes["first_commit_at"],  # lead time's start, for the view
            }

        @task(task_id="github_release", **retry)
        def github_release() -> dict[str, Any]:
            """Create (or update) and publish the GitHub release vX.Y.Z with the notes."""
            from deployment.notifications.github import publish_github_release

            _, cfg, ledger, conf = _run("github_release")
            notes = ledger.read("release_notes")
            if notes is None:
                raise RuntimeError(f"{ledger.uri('release_notes')} is missing: release_notes wrote none")
            result = publish_github_release(cfg, conf["version"], conf["commit_sha"], notes["markdown"])
            ledger.write("notifications.github_release", {"status": "sent", **result})
            return result

        @task(task_id="slack_team", **root)
        def slack_team() -> dict[str, Any]:
            """The release announced in the team channel."""
            from deployment.notifications.base import render, send_once
            from deployment.notifications.slack import send_slack

            context, cfg, ledger, conf = _run("slack_team")
            text = render("slack_team_released.md.j2", **_values(cfg, ledger, conf, context))
            return send_once(
                ledger, "notifications.slack_team", lambda: send_slack(cfg.connections.slack_team, text)
            )

        @task(task_id="slack_company", **root)
        def slack_company() -> dict[str, Any]:
            """A short announcement in the company channel."""
            from deployment.notifications.base import render, send_once
            from deployment.notifications.slack import send_slack

            context, cfg, ledger, conf = _run("slack_company")
            text = render("slack_company.md.j2", **_values(cfg, ledger, conf, context))
            return send_once(
                ledger, "notifications.slack_company", lambda: send_slack(cfg.connections.slack_company, text)
            )

        @task(task_id="email_stakeholders", trigger_rule=TriggerRule.ALL_DONE, **retry)
        def email_stakeholders() -> dict[str, Any]:
            """The stakeholder summary by email, with the notes when they could be built."""
            from airflow.sdk.exceptions import AirflowSkipException

            from deployment.notifications.base import render, send_once
            from deployment.notifications.mail import send_email
            from deployment.run_context import failed_release_tasks, task_states

            context, cfg, ledger, conf = _run()
            failed = failed_release_tasks(task_states(context))
            if failed:  # all_done also runs it after a failed release: announce only a healthy one
                raise AirflowSkipException(f"the release failed ({', '.join(failed)}): nothing to announce")
            from deployment.guards import require_live_release

            require_live_release(context, "notify.email_stakeholders")
            notes = (ledger.read("release_notes") or {}).get("markdown", "(release notes unavailable)")
            html = render("email_stakeholders.html.j2", notes=notes, **_values(cfg, ledger, conf, context))
            subject = f"{cfg.application} {conf['version']} is live"
            return send_once(
                ledger,
                "notifications.email_stakeholders",
                lambda: send_email(
                    cfg, list(cfg.notifications.stakeholder_emails), subject, html, context["run_id"]
                ),
            )

        @task(task_id="statuspage", **root)
        def statuspage() -> dict[str, Any]:
            """The release's status-page maintenance completed (component operational)."""
            from deployment.ledger import now_iso
            from deployment.notifications.statuspage import StatusPage, close_maintenance

            _, cfg, ledger, conf = _run("statuspage")
            closed = close_maintenance(cfg, ledger, f"Release {conf['version']} is live.")
            if closed is None:  # no maintenance was opened (the status page was down then)
                result = StatusPage(cfg).set_component("operational")
            else:
                result = {"maintenance": closed.get("incident_id"), "status": closed["status"]}
            ledger.write("notifications.statuspage", {"status": "sent", "sent_at": now_iso(), **result})
            return result

        @task(task_id="record_metrics", **root)
        def record_metrics() -> dict[str, Any]:
            """Per-phase durations into the record and CloudWatch."""
            from deployment.release.phase_metrics import record_metrics as record

            _, cfg, ledger, _ = _run()
            section = record(cfg, ledger, outcome="succeeded")
            return {phase: (v or {}).get("seconds") for phase, v in section["phases"].items()}

        notes = release_notes()
        notes >> github_release()
        notes >> email_stakeholders()
        slack_team()
        slack_company()
        statuspage()
        record_metrics()
    return group


def announce_emergency():
    """Announce the run's emergency flags to the team channel and write them to ``emergency``."""

    @task(task_id="announce_emergency", retries=RETRIES, retry_delay=timedelta(seconds=5))
    def _announce() -> dict[str, Any]:
        """Emergency flags (force_deploy, skip_monitoring, ignore_alarms) to the team channel."""
        from airflow.sdk.exceptions import AirflowSkipException

        from deployment.notifications.announce import announce_team
        from deployment.notifications.base import send_once
        from deployment.notifications.messages import active_flags, emergency_text

        context, cfg, ledger, conf = _run()
        text = emergency_text(cfg, conf, context["ti"].dag_id)
        if text is None:
            raise AirflowSkipException("no emergency flag is set")

        def send() -> dict[str, Any]:
            announce_team(cfg, text)
            return {**active_flags(conf.get("emergency") or {}), "author": conf.get("author")}

        return send_once(ledger, "emergency", send)

    return _announce()


FAILURE_TASK_ID = "announce_failure"


def announce_failure():
    """ "Deployment failed" when a release stopped before changing anything; the status page back to normal.

    Wire it after ``notify`` and ``rollback`` and before ``record_outcome`` (trigger rule
    ``all_done``). It skips a healthy release, and a failed one that changed production:
    the rollback's own notices tell that story.
    """

    @task(
        task_id=FAILURE_TASK_ID,
        trigger_rule=TriggerRule.ALL_DONE,
        retries=RETRIES,
        retry_delay=timedelta(seconds=5),
        doc_md=announce_failure.__doc__,
    )
    def _announce() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from deployment.notifications.base import render, run_url, send_once
        from deployment.notifications.messages import failure_cause
        from deployment.notifications.slack import send_slack
        from deployment.notifications.statuspage import close_maintenance
        from deployment.run_context import failed_release_tasks, task_states

        context, cfg, ledger, conf = _run()
        states = task_states(context)
        failed = failed_release_tasks(states)
        if not failed:
            raise AirflowSkipException("the release did not fail")
        rollback = ledger.read("rollback") or {}
        if rollback and rollback.get("status") != "not_needed":
            raise AirflowSkipException(
                f"production was changed (rollback {rollback.get('status')}): the rollback's notices tell"
            )
        detail = failure_cause(failed, ledger.read("approvals"))
        text = render(
            "slack_failed.md.j2",
            cfg=cfg,
            version=conf["version"],
            detail=detail,
            url=run_url(cfg, context["ti"].dag_id, context["run_id"]),
        )
        sent = send_once(ledger, "notifications.failed", lambda: send_slack(cfg.connections.slack_team, text))
        try:  # the gate opened a maintenance, then something failed before any change
            close_maintenance(
                cfg, ledger, f"Release {conf['version']} failed before changing production: nothing changed."
            )
        except Exception as err:  # a status page that cannot be told never hides the failure notice
            log.warning("could not complete the status page maintenance: %s", err)
        return {"cause": detail, "slack": sent.get("status")}

    return _announce()
