"""The control API: faults in, alarms forced, recordings out, reset and reseed."""

from __future__ import annotations

import time

import pytest
import requests


@pytest.fixture
def control(sandbox):
    base = sandbox.endpoints["control"]

    def call(method, path, **kwargs):
        return requests.request(method, f"{base}{path}", timeout=30, **kwargs)

    return call


def _add(control, **fault):
    response = control("POST", "/faults", json=fault)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_health_lists_endpoints(sandbox, control):
    assert control("GET", "/health").json() == {"status": "ok", "endpoints": sandbox.endpoints}


def test_fault_lifecycle(sandbox, control):
    fault_id = _add(control, kind="error_rate", version="v1.1.0", percent=30)
    assert control("GET", "/faults").json() == [
        {"id": fault_id, "kind": "error_rate", "version": "v1.1.0", "percent": 30}
    ]
    assert sandbox.faults.find("error_rate", version="v1.1.0")["percent"] == 30
    assert control("DELETE", f"/faults/{fault_id}").status_code == 200
    assert control("GET", "/faults").json() == []
    assert control("DELETE", f"/faults/{fault_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "meteor"}, "kind must be one of"),
        ({"kind": "latency", "ms": "slow"}, "setting ms must be a number"),
        ({"kind": "error_rate", "percent": 120}, "percent must be between 0 and 100"),
        ({"kind": "error_rate", "percent": 5, "spacing": "sometimes"}, "spacing must be random or even"),
        ({"kind": "outage", "service": ""}, "matcher service must be a non-empty string"),
        ({"kind": "outage", "servce": "github"}, "unknown field 'servce'"),
        ({"kind": "stack_update_failure", "rollback_fails": "yes"}, "setting rollback_fails must be a bool"),
        ([1, 2], "the body must be a JSON object"),
    ],
)
def test_bad_fault_requests_are_400(control, body, message):
    response = control("POST", "/faults", json=body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_bad_json_and_unknown_paths(control):
    assert control("POST", "/faults", data="{").json() == {"error": "the body is not valid JSON"}
    assert control("GET", "/nowhere").status_code == 404
    assert control("PUT", "/faults").status_code == 405


def test_force_alarm_state(sandbox, control, aws):
    name = f"{sandbox.cfg.alarms.prefix}latency"
    response = control("POST", f"/alarms/{name}", json={"state": "ALARM", "reason": "p99 above 2 s"})
    assert response.json() == {"alarm": name, "state": "ALARM"}
    alarm = aws("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "p99 above 2 s")
    control("POST", f"/alarms/{name}", json={"state": "OK"})
    assert aws("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] == "OK"

    assert control("POST", f"/alarms/{name}", json={"state": "RED"}).status_code == 400
    assert control("POST", "/alarms/no-such-alarm", json={"state": "ALARM"}).status_code == 404


def _post_check(sandbox, colour, path):
    check = next(c for c in sandbox.cfg.smoke_tests.checks if c.path == path)
    url = f"{sandbox.endpoints[f'app_{colour}']}{check.path}"
    return requests.request(check.method, url, json=check.json_body, timeout=10)


def test_smoke_failure_by_version_and_check(sandbox, control):
    _add(control, kind="smoke_failure", version="v1.0.0", check="payment_processing")
    assert _post_check(sandbox, "blue", "/api/payments/intent").status_code == 500
    assert _post_check(sandbox, "blue", "/api/ai/generate").status_code == 200


def test_error_rate_by_colour(sandbox, control):
    _add(control, kind="error_rate", colour="blue", percent=100)
    assert _post_check(sandbox, "blue", "/api/ai/generate").status_code == 500


def test_latency_by_version(sandbox, control):
    _add(control, kind="latency", version="v1.0.0", ms=300)
    started = time.monotonic()
    assert _post_check(sandbox, "blue", "/api/ai/generate").status_code == 200
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("service", ["github", "slack", "statuspage"])
def test_outage_by_service(sandbox, control, service):
    _add(control, kind="outage", service=service)
    assert requests.get(f"{sandbox.endpoints[service]}/", timeout=5).status_code == 503
    assert control("POST", "/reset").json() == {"reset": True}
    assert requests.get(f"{sandbox.endpoints[service]}/", timeout=5).status_code != 503


def test_recorded_and_reset(sandbox, control):
    channel_url = sandbox.connections()[sandbox.cfg.connections.slack_team]["password"]
    assert requests.post(channel_url, json={"text": "release v1.1.0 started"}, timeout=5).text == "ok"
    recorded = control("GET", "/recorded/slack").json()
    assert [(r["channel"], r["text"]) for r in recorded] == [
        (sandbox.cfg.notifications.slack_team_channel, "release v1.1.0 started")
    ]
    assert control("GET", "/recorded/pager").status_code == 404
    _add(control, kind="outage", service="smtp")
    control("POST", "/reset")
    assert control("GET", "/recorded/slack").json() == []
    assert control("GET", "/faults").json() == []
    assert control("GET", "/requests").json() == []


def test_reseed_restores_the_seeded_state(sandbox, control, aws):
    amplify = aws("amplify")
    app_id, green = sandbox.cfg.amplify.app_id, sandbox.cfg.amplify.branches["green"]
    amplify.update_branch(appId=app_id, branchName=green, environmentVariables={"APP_VERSION": "v1.1.0"})
    aws("dynamodb").delete_table(TableName=sandbox.cfg.dynamodb.tables[0])

    assert control("POST", "/reseed").json() == {"reseeded": True}
    assert (
        "APP_VERSION"
        not in amplify.get_branch(appId=app_id, branchName=green)["branch"]["environmentVariables"]
    )
    assert aws("dynamodb").scan(TableName=sandbox.cfg.dynamodb.tables[0])["Count"] >= 3
    assert sandbox.version_of("blue") == "v1.0.0"
