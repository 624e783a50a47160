"""The smoke checks over the http connection of a colour, against a small real HTTP server."""

from __future__ import annotations

import json

import pytest
from werkzeug.wrappers import Request, Response

from deployment.checks.smoke import run_smoke_checks
from tests.sandbox._servers import serving

ACCOUNT = {"login": "smoke", "password": "s3cret"}


@Request.application
def app(request: Request) -> Response:
    sent = request.get_json(silent=True) or {}
    signed_in = (sent.get("username"), sent.get("password")) == (ACCOUNT["login"], ACCOUNT["password"])
    routes = {
        "/api/auth/session": (200, {"token": "t"}) if signed_in else (401, {"error": "bad credentials"}),
        "/api/content": (201, {"id": "c1"}),
        "/api/ai/generate": (200, {"wrong": "key", "echo": sent, "api_key": "k-123"}),
        "/api/payments/intent": (503, {"error": "payment provider down"}),
    }
    status, body = routes.get(request.path, (404, {"error": "no route"}))
    return Response(json.dumps(body), status=status, content_type="application/json")


@pytest.fixture
def blue(cfg, monkeypatch):
    with serving(app) as url:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{cfg.connections.app_blue.upper()}",
            json.dumps({"conn_type": "http", "host": url, **ACCOUNT}),
        )
        yield url


def test_each_check_reports_status_latency_and_the_response_on_failure(cfg, blue):
    results = {r["name"]: r for r in run_smoke_checks(cfg, "blue")}
    assert set(results) == {c.name for c in cfg.smoke_tests.checks}
    assert results["authentication_flow"]["ok"] and results["content_creation"]["status"] == 201
    assert "response_excerpt" not in results["authentication_flow"]
    assert results["ai_service_integration"]["ok"] is False
    assert "'completion'" in results["ai_service_integration"]["error"]
    payment = results["payment_processing"]
    assert payment["ok"] is False and payment["status"] == 503
    assert "payment provider down" in payment["response_excerpt"]
    assert all(r["latency_ms"] >= 0 and r["colour"] == "blue" for r in results.values())


def test_named_checks_only_and_unknown_names_refused(cfg, blue):
    assert [r["name"] for r in run_smoke_checks(cfg, "blue", ["content_creation"])] == ["content_creation"]
    with pytest.raises(ValueError, match="no_such_check"):
        run_smoke_checks(cfg, "blue", ["no_such_check"])


def test_an_unreachable_app_is_a_failed_check(cfg, monkeypatch):
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{cfg.connections.app_green.upper()}",
        json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9", **ACCOUNT}),
    )
    (result,) = run_smoke_checks(cfg, "green", ["authentication_flow"])
    assert result["ok"] is False and result["status"] is None and "request failed" in result["error"]


def test_the_sign_in_check_takes_its_credentials_from_the_connection_only(cfg, blue, monkeypatch):
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{cfg.connections.app_blue.upper()}",
        json.dumps({"conn_type": "http", "host": blue, "login": "smoke", "password": "wrong"}),
    )
    (result,) = run_smoke_checks(cfg, "blue", ["authentication_flow"])
    assert result["status"] == 401 and "wrong" not in json.dumps(result)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{cfg.connections.app_blue.upper()}", json.dumps({"conn_type": "http", "host": blue})
    )
    with pytest.raises(
        ValueError, match=f"needs a login and password on connection '{cfg.connections.app_blue}'"
    ):
        run_smoke_checks(cfg, "blue", ["authentication_flow"])


def test_excerpts_are_redacted_and_only_the_sign_in_check_sends_credentials(cfg, blue):
    results = {r["name"]: r for r in run_smoke_checks(cfg, "blue")}
    excerpt = results["ai_service_integration"]["response_excerpt"]
    assert "k-123" not in excerpt and '"api_key": "[redacted]"' in excerpt
    assert '"echo": {"prompt": "ping"}' in excerpt, "the other checks send no credentials"
    assert ACCOUNT["password"] not in json.dumps(results)


def test_redact_replaces_secret_keys_and_literals():
    from deployment.checks.smoke import redact

    redacted = redact('{"a": {"client_secret": "x", "n": 1}}', [])
    assert redacted == '{"a": {"client_secret": "[redacted]", "n": 1}}'
    assert redact("denied for s3cret", ["s3cret", None]) == "denied for [redacted]"
