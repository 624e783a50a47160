"""Status page, SMTP and company-Slack emulators behind their connections, for the notification tests.

pytest only loads ``conftest.py``; test modules import these fixtures explicitly.
"""

from __future__ import annotations

import json

import pytest

from tests.sandbox._servers import free_port
from tests.sandbox._servers import serving as serve


@pytest.fixture
def statuspage(cfg, monkeypatch):
    from sandbox.statuspage import StatusPage

    page = StatusPage(
        "page-key",
        {cfg.notifications.statuspage_page_id: {cfg.notifications.statuspage_component_id: "Web app"}},
    )
    with serve(page) as url:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{cfg.connections.statuspage.upper()}",
            json.dumps({"conn_type": "http", "host": url, "password": "page-key"}),
        )
        yield page


@pytest.fixture
def smtp(cfg, monkeypatch):
    from sandbox.smtp import SmtpSink

    port = free_port()
    with SmtpSink(port) as sink:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{cfg.connections.smtp.upper()}",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 5},
                }
            ),
        )
        yield sink


@pytest.fixture
def slack_company(cfg, monkeypatch):
    from sandbox.slack import SlackWebhooks

    path = "T0UNIT/B0COMPANY/secret"
    sink = SlackWebhooks({path: cfg.notifications.slack_company_channel})
    with serve(sink) as url:
        conn = {"conn_type": "slackwebhook", "host": f"{url}/services", "password": path}
        monkeypatch.setenv(f"AIRFLOW_CONN_{cfg.connections.slack_company.upper()}", json.dumps(conn))
        yield sink
