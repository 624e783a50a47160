"""Contract tests: the PagerDuty Events API v2 emulator, over HTTP and through the pipeline's page."""

from __future__ import annotations

import json

import pytest
import requests

from sandbox.faults import Faults
from sandbox.pagerduty import PagerDutyEvents
from tests.sandbox._servers import serving

KEY = "r" * 32


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def events(faults: Faults) -> PagerDutyEvents:
    return PagerDutyEvents([KEY], faults=faults)


@pytest.fixture
def url(events: PagerDutyEvents):
    with serving(events) as base:
        yield base


def _trigger(**extra) -> dict:
    return {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "release rolled back", "source": "app", "severity": "critical"},
        **extra,
    }


def test_a_trigger_is_accepted_with_a_dedup_key_and_recorded(url, events):
    answer = requests.post(f"{url}/v2/enqueue", json=_trigger(dedup_key="run-1"), timeout=5)
    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": "run-1"}
    generated = requests.post(f"{url}/v2/enqueue", json=_trigger(), timeout=5).json()["dedup_key"]
    assert generated and generated != "run-1"
    requests.post(
        f"{url}/v2/enqueue",
        json={"routing_key": KEY, "event_action": "resolve", "dedup_key": "run-1"},
        timeout=5,
    )
    assert events.alerts() == {"run-1": "resolved", generated: "triggered"}
    assert [e["event_action"] for e in events.recorder.list()] == ["trigger", "trigger", "resolve"]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (_trigger(routing_key="short"), "Length of 'routing_key' is incorrect"),
        (_trigger(routing_key="x" * 32), "does not match an integration"),
        (_trigger(event_action="page"), "'event_action' must be one of"),
        (_trigger(payload={"summary": "s", "source": "a", "severity": "urgent"}), "'payload.severity'"),
        (_trigger(payload={"summary": "s", "severity": "info"}), "'payload.source' is missing"),
        (_trigger(payload={"summary": "s" * 1025, "source": "a", "severity": "info"}), "longer than 1024"),
        ({"routing_key": KEY, "event_action": "acknowledge"}, "'dedup_key' is required"),
    ],
)
def test_invalid_events_are_refused_as_pagerduty_does(url, events, event, error):
    answer = requests.post(f"{url}/v2/enqueue", data=json.dumps(event), timeout=5)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "invalid event" and any(error in e for e in body["errors"]), body
    assert events.recorder.list() == []


def test_an_outage_answers_503(url, faults):
    faults.add("outage", service="pagerduty")
    assert requests.post(f"{url}/v2/enqueue", json=_trigger(), timeout=5).status_code == 503


def test_the_pipeline_pages_through_the_pagerduty_provider(url, events, monkeypatch):
    from deployment.config import load_config
    from deployment.notifications.base import NotificationError
    from deployment.notifications.pagerduty import rollback_page

    cfg = load_config("sandbox")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{cfg.connections.pagerduty.upper()}",
        json.dumps({"conn_type": "pagerduty_events", "host": url, "password": KEY}),
    )
    values = {
        "version": "v1.1.0",
        "run_id": "manual__1",
        "url": "http://airflow/run",
        "summary": {
            "verified": True,
            "failed_tasks": ["smoke_tests.content_creation"],
            "undone": ["stack"],
            "not_undone": [],
            "failed_checks": [],
            "previous_version": "v1.0.0",
        },
    }
    sent = rollback_page(cfg, values)
    (event,) = events.recorder.list()
    assert sent["dedup_key"] == event["dedup_key"] == f"{cfg.application}/sandbox/manual__1"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["summary"] == f"{cfg.application} v1.1.0 rolled back in sandbox"
    assert event["payload"]["custom_details"]["failed_tasks"] == ["smoke_tests.content_creation"]
    assert event["links"] == [{"href": "http://airflow/run", "text": "Airflow run"}]
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{cfg.connections.pagerduty.upper()}",
        json.dumps({"conn_type": "pagerduty_events", "host": url, "password": "k" * 32}),
    )
    with pytest.raises(NotificationError, match="refused the page: 400"):
        rollback_page(cfg, values)
