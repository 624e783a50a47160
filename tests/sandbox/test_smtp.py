"""Contract tests: the SMTP sink driven by smtplib and the Airflow SmtpHook."""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage

import pytest

from sandbox.faults import Faults
from sandbox.smtp import SmtpSink
from tests.sandbox._servers import free_port


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def sink(faults: Faults):
    with SmtpSink(free_port(), faults=faults) as server:
        yield server


def test_smtplib_message_is_recorded(sink: SmtpSink) -> None:
    message = EmailMessage()
    message["From"] = "deployments@bayoncoagent.com"
    message["To"] = "stakeholders@bayoncoagent.com"
    message["Subject"] = "Release v1.1.0 complete"
    message.set_content("v1.1.0 is live on green.")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        refused = client.send_message(message)
    assert refused == {}
    [entry] = sink.recorder.list()
    assert entry["mail_from"] == "deployments@bayoncoagent.com"
    assert entry["rcpt_tos"] == ["stakeholders@bayoncoagent.com"]
    assert (entry["from"], entry["to"]) == ("deployments@bayoncoagent.com", "stakeholders@bayoncoagent.com")
    assert entry["subject"] == "Release v1.1.0 complete"
    assert entry["body"].strip() == "v1.1.0 is live on green."
    assert entry["content_type"] == "text/plain"


def test_smtp_hook_sends_html(sink: SmtpSink, monkeypatch) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    conn = {
        "conn_type": "smtp",
        "host": sink.host,
        "port": sink.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 5},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
    with SmtpHook(smtp_conn_id="smtp_default") as hook:
        hook.send_email_smtp(
            to=["stakeholders@bayoncoagent.com", "oncall@bayoncoagent.com"],
            from_email="deployments@bayoncoagent.com",
            subject="Release v1.1.0 rolled back",
            html_content="<p>Error rate exceeded the threshold.</p>",
        )
    [entry] = sink.recorder.list()
    assert entry["rcpt_tos"] == ["stakeholders@bayoncoagent.com", "oncall@bayoncoagent.com"]
    assert entry["subject"] == "Release v1.1.0 rolled back"
    assert entry["content_type"] == "text/html"
    assert "Error rate exceeded the threshold." in entry["body"]


def test_outage_refuses_mail(sink: SmtpSink, faults: Faults) -> None:
    fault = faults.add("outage", service="smtp")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as err:
            client.sendmail("deployments@bayoncoagent.com", ["oncall@bayoncoagent.com"], "Subject: x\n\nbody")
    assert err.value.smtp_code == 421
    assert sink.recorder.list() == []
    faults.remove(fault)
    faults.add("outage", service="slack")
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        client.sendmail("deployments@bayoncoagent.com", ["oncall@bayoncoagent.com"], "Subject: x\n\nbody")
    assert [e["subject"] for e in sink.recorder.list()] == ["x"]


def test_invalid_port_is_rejected() -> None:
    with pytest.raises(ValueError, match="port"):
        SmtpSink(0)
