"""Notifications against the sandbox emulators: GitHub, Slack, status page, SMTP; the record in moto S3."""

from __future__ import annotations

import pytest
from _fixtures_notify import slack_company, smtp, statuspage  # noqa: F401 - fixtures
from _release import AUTHOR, COMMIT, PREVIOUS, VERSION

from deployment.notifications import base, github, mail, messages, slack
from deployment.notifications import statuspage as status_page

CONF = {
    "version": VERSION,
    "commit_sha": COMMIT,
    "author": AUTHOR,
    "run_id": "run-1",
    "emergency": {"force_deploy": False, "skip_monitoring": False, "ignore_alarms": [], "reason": ""},
}


@pytest.fixture
def repo(github):
    """v1.0.0 released, then two commits tagged v1.1.0."""
    emulator = github["emulator"]
    emulator.add_release(PREVIOUS)
    emulator.add_commits(
        [
            {"message": "Add <script> escaping\n\nbody", "author": "dana"},
            {"message": "Fix payments", "author": "erin"},
        ],
        tag=VERSION,
    )
    return emulator


def test_previous_tag_prefers_the_backup_then_github(cfg, aws, repo):
    assert github.previous_production_tag(cfg, VERSION, {"previous_version": "v0.9.0"}) == "v0.9.0"
    assert github.previous_production_tag(cfg, VERSION, None) == PREVIOUS  # rc-1.1.0 is a pre-release


# The ``approvals`` section as the gate writes it: one entry per request, the gate, the result.
APPROVALS = {
    "gate": {"deadline": "2026-01-04T10:00:00+00:00", "excluded": ["alice"]},
    "first_approval": {"decision": "approved", "user_id": "bob", "user_name": "Bob"},
    "second_approval": {"decision": "approved", "user_id": "carol", "user_name": "Carol"},
    "result": {
        "status": "approved",
        "approvers": [
            {"task": "first_approval", "id": "bob", "name": "Bob", "at": "2026-01-02T10:00:00+00:00"},
            {"task": "second_approval", "id": "carol", "name": "Carol", "at": "2026-01-02T10:05:00+00:00"},
        ],
    },
}


def test_release_notes_list_the_commits_since_the_previous_tag(cfg, repo):
    notes = github.release_notes(cfg, CONF, PREVIOUS, APPROVALS)
    assert notes["commits"] == 2 and notes["head"] == VERSION
    assert "- Add &lt;script&gt; escaping" in notes["markdown"] and "@erin" in notes["markdown"]
    assert "approved by Bob, Carol" in notes["markdown"]
    assert notes["compare_url"].endswith(f"{PREVIOUS}...{VERSION}")


def test_user_text_is_escaped_for_each_format(cfg):
    shout = "<!channel> *now* [x](http://evil) <b>"
    conf = {**CONF, "emergency": {"force_deploy": True, "reason": shout}}
    values = {
        "cfg": cfg,
        "conf": conf,
        "previous": None,
        "release_url": "https://r",
        "url": "https://u",
        "emergency": messages.active_flags(conf["emergency"]),
        "commits": 1,
    }
    slack = base.render("slack_team_released.md.j2", **values)
    assert "&lt;!channel&gt;" in slack and "<!channel>" not in slack
    notes = base.render(
        "release_notes.md.j2",
        version=VERSION,
        previous=None,
        conf=conf,
        commits=[],
        compare_url=None,
        approvers=["<!here>"],
        emergency=values["emergency"],
    )
    assert "<" not in notes
    assert r"\[x\]\(http://evil\)" in notes and r"&lt;\!here&gt;" in notes
    html = base.render("email_stakeholders.html.j2", notes=shout, **values)
    assert "<b>" not in html and "&lt;b&gt;" in html


def test_github_release_is_created_once_then_updated(cfg, repo):
    first = github.publish_github_release(cfg, VERSION, COMMIT, "notes 1")
    second = github.publish_github_release(cfg, VERSION, COMMIT, "notes 2")
    assert (first["action"], second["action"]) == ("created", "updated")
    ours = [r for r in repo.releases() if r["tag_name"] == VERSION]
    assert len(ours) == 1 and ours[0]["body"] == "notes 2"
    assert not ours[0]["draft"] and not ours[0]["prerelease"]


def _hi(cfg):
    return lambda: slack.send_slack(cfg.connections.slack_team, "hi")


def test_a_message_is_sent_once_per_run(cfg, aws, ledger, slack):
    first = base.send_once(ledger, "notifications.slack_team", _hi(cfg))
    again = base.send_once(ledger, "notifications.slack_team", _hi(cfg))
    assert first["status"] == "sent" and again["skipped"] is True
    assert [m["text"] for m in slack.recorder.list()] == ["hi"]


def test_a_slack_outage_fails_and_is_recorded(cfg, aws, ledger, slack):
    slack.faults.add("outage", service="slack")
    with pytest.raises(base.NotificationError, match="slack_team"):
        base.send_once(ledger, "notifications.slack_team", _hi(cfg))
    assert ledger.read("notifications.slack_team")["status"] == "failed"
    slack.faults.clear()
    base.send_once(ledger, "notifications.slack_team", _hi(cfg))
    assert len(slack.recorder) == 1


def test_company_channel_gets_its_own_webhook(cfg, slack_company):  # noqa: F811
    slack.send_slack(cfg.connections.slack_company, "live")
    assert slack_company.recorder.list()[0]["channel"] == cfg.notifications.slack_company_channel


def test_stakeholder_email_goes_through_smtp(cfg, smtp):  # noqa: F811
    mail.send_email(
        cfg, list(cfg.notifications.stakeholder_emails), "v1.1.0 is live", "<p>notes</p>", "run-1"
    )
    [message] = smtp.recorder.list()
    assert message["subject"] == "v1.1.0 is live"
    assert message["rcpt_tos"] == list(cfg.notifications.stakeholder_emails)
    assert message["from"] == cfg.notifications.email_from


def test_statuspage_component_and_one_incident_per_name(cfg, statuspage):  # noqa: F811
    page = status_page.StatusPage(cfg)
    assert page.set_component("operational")["status"] == "operational"
    opened = page.open_or_update_incident("release rolled back", "identified", "working", "partial_outage")
    updated = page.open_or_update_incident("release rolled back", "monitoring", "restored", "operational")
    assert (opened["action"], updated["action"]) == ("opened", "updated")
    assert opened["incident_id"] == updated["incident_id"]
    [incident] = statuspage.incidents(cfg.notifications.statuspage_page_id)
    assert incident["status"] == "monitoring"
    components = statuspage.components(cfg.notifications.statuspage_page_id)
    component = components[cfg.notifications.statuspage_component_id]
    assert component["status"] == "operational"


class _PageRecord:
    """The two calls the status-page helpers make of a Ledger, kept in memory."""

    def __init__(self, run_id="manual__run-1"):
        self.run_id, self.sections = run_id, {}

    def read(self, section, default=None):
        return self.sections.get(section, default)

    def write(self, section, value):
        self.sections[section] = value
        return section


def _component(cfg, statuspage):  # noqa: F811
    page = cfg.notifications.statuspage_page_id
    return statuspage.components(page)[cfg.notifications.statuspage_component_id]["status"]


def test_a_release_is_a_scheduled_maintenance_in_progress_then_completed(cfg, statuspage):  # noqa: F811
    record = _PageRecord()
    opened = status_page.open_maintenance(cfg, record, "v1.1.0")
    [maintenance] = statuspage.incidents(cfg.notifications.statuspage_page_id)
    assert opened["incident_id"] == maintenance["id"] and opened["reused"] is False
    assert (
        maintenance["status"] == "in_progress"
        and maintenance["scheduled_until"] > maintenance["scheduled_for"]
    )
    assert maintenance["metadata"] == {"deployment": {"run_id": record.run_id, "version": "v1.1.0"}}
    assert [u["status"] for u in maintenance["incident_updates"]] == ["in_progress", "scheduled"]
    assert _component(cfg, statuspage) == "under_maintenance"
    assert record.read(status_page.MAINTENANCE_SECTION)["status"] == "in_progress"

    assert status_page.open_maintenance(cfg, record, "v1.1.0")["reused"] is True  # a rerun: the same one
    closed = status_page.close_maintenance(cfg, record, "v1.1.0 is live.")
    assert closed["status"] == "completed" and _component(cfg, statuspage) == "operational"
    assert status_page.close_maintenance(cfg, record, "again")["reused"] is True
    [maintenance] = statuspage.incidents(cfg.notifications.statuspage_page_id)
    assert maintenance["status"] == "completed"
    assert [u["body"] for u in maintenance["incident_updates"]][0] == "v1.1.0 is live."
    assert len(statuspage.recorder.list(method="POST")) == 1


def test_a_try_that_died_before_recording_finds_its_maintenance(cfg, statuspage):  # noqa: F811
    record = _PageRecord()
    status_page.open_maintenance(cfg, record, "v1.1.0")
    record.sections.clear()  # the first try's record write was lost
    again = status_page.open_maintenance(cfg, record, "v1.1.0")
    assert len(statuspage.incidents(cfg.notifications.statuspage_page_id)) == 1
    assert again["status"] == "in_progress"
    other = _PageRecord("manual__run-2")  # another run gets its own
    assert status_page.open_maintenance(cfg, other, "v1.1.0")["incident_id"] != again["incident_id"]


def test_closing_without_a_maintenance_does_nothing_and_old_records_get_the_component_back(
    cfg,
    statuspage,  # noqa: F811
):
    assert status_page.close_maintenance(cfg, _PageRecord(), "nothing opened") is None
    assert statuspage.recorder.list() == []
    status_page.StatusPage(cfg).set_component("under_maintenance")
    old = _PageRecord()
    old.write(status_page.MAINTENANCE_SECTION, {"status": "sent", "component_status": "under_maintenance"})
    assert status_page.close_maintenance(cfg, old, "done")["status"] == "resolved"
    assert _component(cfg, statuspage) == "operational"


def test_a_rollback_completes_the_maintenance_and_opens_the_incident(cfg, statuspage):  # noqa: F811
    record = _PageRecord()
    status_page.open_maintenance(cfg, record, "v1.1.0")
    status_page.close_maintenance(cfg, record, "Release v1.1.0 was rolled back; see the incident.")
    incident = status_page.StatusPage(cfg).open_or_update_incident(
        "release v1.1.0 rolled back", "monitoring", "restored", "operational"
    )
    incidents = {i["id"]: i for i in statuspage.incidents(cfg.notifications.statuspage_page_id)}
    maintenance = incidents[record.read(status_page.MAINTENANCE_SECTION)["incident_id"]]
    assert (
        maintenance["status"] == "completed" and "rolled back" in maintenance["incident_updates"][0]["body"]
    )
    assert incidents[incident["incident_id"]]["status"] == "monitoring"
    assert incidents[incident["incident_id"]]["scheduled_for"] is None


def test_the_rollback_notice_completes_the_maintenance_then_opens_the_incident(
    cfg,
    statuspage,  # noqa: F811
    monkeypatch,
):
    from deployment.rollback import notices as group

    record = _PageRecord()
    status_page.open_maintenance(cfg, record, "v1.1.0")
    monkeypatch.setattr(group, "run_ledger", lambda cfg, context: record)
    monkeypatch.setattr(group, "get_current_context", dict)
    values = {"cfg": cfg, "summary": {"verified": True}, "version": "v1.1.0", "run_id": record.run_id}
    result = group.statuspage_notice(cfg, values)
    incidents = {i["id"]: i for i in statuspage.incidents(cfg.notifications.statuspage_page_id)}
    maintenance = incidents.pop(record.read(status_page.MAINTENANCE_SECTION)["incident_id"])
    assert (
        maintenance["status"] == "completed" and "rolled back" in maintenance["incident_updates"][0]["body"]
    )
    [incident] = incidents.values()
    assert incident["id"] == result["incident_id"] and incident["status"] == "monitoring"
    assert "was rolled back" in incident["incident_updates"][0]["body"]


def test_statuspage_rejects_a_bad_key_by_name(cfg, statuspage, monkeypatch):  # noqa: F811
    import json

    monkeypatch.setenv(
        f"AIRFLOW_CONN_{cfg.connections.statuspage.upper()}",
        json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9", "password": ""}),
    )
    with pytest.raises(base.NotificationError, match="no API key"):
        status_page.StatusPage(cfg).set_component("operational")


def test_emergency_flags_are_announced_only_when_set(cfg):
    assert messages.emergency_text(cfg, CONF, "deploy_production") is None
    conf = {**CONF, "emergency": {"force_deploy": True, "ignore_alarms": ["cpu"], "reason": "CVE hotfix now"}}
    text = messages.emergency_text(cfg, conf, "deploy_production")
    assert "`force_deploy`" in text and "`ignore_alarms: cpu`" in text and "CVE hotfix now" in text


def test_rollback_message_mentions_oncall(cfg):
    summary = {
        "failed_tasks": ["smoke_tests.payment_processing"],
        "undone": ["traffic"],
        "not_undone": [],
        "verified": True,
        "failed_checks": [],
        "previous_version": PREVIOUS,
        "dynamodb_backups": [],
    }
    text = base.render(
        "slack_rollback.md.j2",
        cfg=cfg,
        summary=summary,
        version=VERSION,
        mentions=slack.oncall_mentions(cfg),
        url="http://x",
    )
    assert text.startswith("<@U01ONCALL1> <@U01ONCALL2>") and "back on v1.0.0" in text


class _Record:
    """The sections a release's notify tasks read, as the deployment record holds them."""

    def __init__(self, sections):
        self.sections = sections

    def read(self, section, default=None):
        return self.sections.get(section, default)


class _TI:
    dag_id = "deploy_production"


@pytest.mark.parametrize("notes", [{"commits": 2}, None], ids=["with-notes", "notes-missing"])
def test_release_announcements_render_from_what_the_notify_tasks_pass(cfg, notes):
    from deployment.phases.notify import _values

    record = _Record({"release_notes": notes} if notes else {})
    values = _values(cfg, record, CONF, {"ti": _TI(), "run_id": "run-1"})
    team = base.render("slack_team_released.md.j2", **values)
    assert f"{VERSION}* is live" in team
    assert ("2 commit(s)" in team) == bool(notes)
    assert VERSION in base.render("slack_company.md.j2", **values)
    assert VERSION in base.render("email_stakeholders.html.j2", notes="the notes", **values)
