"""Contract tests: the Slack webhook sink driven by the Airflow SlackWebhookHook over HTTP."""

from __future__ import annotations

import json

import pytest
import requests

from sandbox.faults import Faults
from sandbox.slack import SlackWebhooks
from tests.sandbox._servers import serving

TEAM = "T0SANDBOX/B0TEAM/teamsecret"
COMPANY = "T0SANDBOX/B0COMPANY/companysecret"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def sink(faults: Faults) -> SlackWebhooks:
    return SlackWebhooks({TEAM: "#deployments", COMPANY: "#general"}, faults=faults)


@pytest.fixture
def url(sink: SlackWebhooks):
    with serving(sink) as base:
        yield base


def hook(monkeypatch, conn_id: str, conn: dict):
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "slackwebhook", **conn}))
    return SlackWebhookHook(slack_webhook_conn_id=conn_id)


def test_hook_with_host_and_token_path(url: str, sink: SlackWebhooks, monkeypatch) -> None:
    team = hook(monkeypatch, "slack_team", {"host": f"{url}/services", "password": TEAM})
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*v1.1.0* released"}}]
    response = team.send(text="v1.1.0 released", blocks=blocks)
    assert (response.status_code, response.body) == (200, "ok")
    [entry] = sink.recorder.list()
    assert (entry["path"], entry["channel"], entry["text"], entry["blocks"]) == (
        TEAM,
        "#deployments",
        "v1.1.0 released",
        blocks,
    )
    assert "received_at" in entry


def test_hook_with_full_url_as_password(url: str, sink: SlackWebhooks, monkeypatch) -> None:
    company = hook(monkeypatch, "slack_company", {"password": f"{url}/services/{COMPANY}"})
    company.send_text("maintenance complete")
    assert [(e["channel"], e["text"]) for e in sink.recorder.list()] == [("#general", "maintenance complete")]


def test_unknown_webhook_is_404_no_service(url: str, sink: SlackWebhooks, monkeypatch) -> None:
    from airflow.exceptions import AirflowException

    stranger = hook(monkeypatch, "slack_other", {"host": f"{url}/services", "password": "T0/B0/unknown"})
    with pytest.raises(AirflowException, match="no_service"):
        stranger.send_text("hello")
    response = requests.post(f"{url}/elsewhere", json={"text": "x"}, timeout=5)
    assert (response.status_code, response.text) == (404, "no_service")
    assert sink.recorder.list() == []


def test_invalid_payloads_are_400(url: str, sink: SlackWebhooks) -> None:
    bad_json = requests.post(f"{url}/services/{TEAM}", data="{oops", timeout=5)
    assert (bad_json.status_code, bad_json.text) == (400, "invalid_payload")
    not_object = requests.post(f"{url}/services/{TEAM}", json=["text"], timeout=5)
    assert (not_object.status_code, not_object.text) == (400, "invalid_payload")
    empty = requests.post(f"{url}/services/{TEAM}", json={"username": "bot"}, timeout=5)
    assert (empty.status_code, empty.text) == (400, "no_text")
    assert bad_json.headers["Content-Type"].startswith("text/plain")
    assert sink.recorder.list() == []


def test_outage_answers_503(url: str, sink: SlackWebhooks, faults: Faults, monkeypatch) -> None:
    from airflow.exceptions import AirflowException

    team = hook(monkeypatch, "slack_team", {"host": f"{url}/services", "password": TEAM})
    fault = faults.add("outage", service="slack")
    with pytest.raises(AirflowException, match="503"):
        team.send_text("during outage")
    faults.remove(fault)
    faults.add("outage", service="github")
    team.send_text("after outage")
    assert [e["text"] for e in sink.recorder.list()] == ["after outage"]


def test_webhooks_added_later_and_clear(url: str, sink: SlackWebhooks) -> None:
    path = sink.add_webhook("/services/T1/B1/late/", "#late")
    assert path == "/services/T1/B1/late"
    assert requests.post(f"{url}{path}", json={"text": "hi"}, timeout=5).text == "ok"
    assert sink.recorder.list()[0]["channel"] == "#late"
    sink.recorder.clear()
    assert sink.recorder.list() == []
    with pytest.raises(ValueError):
        sink.add_webhook("/", "#nowhere")
