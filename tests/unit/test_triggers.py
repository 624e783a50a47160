"""The triggers: serialize round-trips, and run() against a threaded moto server and the Amplify emulator."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from deployment.metrics import MetricQuery
from deployment.triggers.amplify import AmplifyJobTrigger
from deployment.triggers.analysis import MetricWatchTrigger
from deployment.triggers.cloudformation import StackUpdateTrigger, is_failed
from tests.sandbox._servers import serving
from tests.unit import _fixtures_phases58 as fx
from tests.unit._fixtures_phases58 import Feeder, set_alarm

moto_url = fx.moto_url
aws_server = fx.aws_server

TEMPLATE = json.dumps(
    {
        "Parameters": {"AppVersion": {"Type": "String"}},
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "AppVersion"}}}
        },
    }
)


def first_event(trigger) -> tuple[dict[str, Any], float]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger yielded nothing")

    started = time.monotonic()
    payload = asyncio.run(run())
    return payload, time.monotonic() - started


def round_trip(trigger):
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    assert module.startswith("deployment.triggers.")
    json.dumps(kwargs)  # JSON-safe
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    return rebuilt


def watch_trigger(cfg, **overrides) -> MetricWatchTrigger:
    kwargs = dict(
        aws_conn_id=cfg.connections.aws,
        region_name=cfg.region,
        query=MetricQuery.from_config(cfg).to_dict(),
        thresholds=cfg.thresholds.model_dump(mode="json"),
        baseline_rps=None,
        duration=2,
        poll_interval=1,
        label="unit",
    )
    return MetricWatchTrigger(**{**kwargs, **overrides})


def test_serialize_round_trips(tmp_path):
    from deployment.config import load_config

    cfg = load_config("sandbox")
    round_trip(
        StackUpdateTrigger(
            stack_name="s",
            aws_conn_id="a",
            region_name="r",
            poll_interval=1,
            deadline=123.0,
            since="2026-01-01T00:00:00+00:00",
        )
    )
    round_trip(
        AmplifyJobTrigger(
            app_id="app",
            branch_name="b",
            job_id="1",
            aws_conn_id="a",
            region_name="r",
            poll_interval=1,
            deadline=1.0,
        )
    )
    rebuilt = round_trip(watch_trigger(cfg, baseline_rps=3.5))
    assert rebuilt.thresholds["traffic_band"] == [0.5, 2.0]


@pytest.mark.parametrize(
    ("status", "failed"),
    [
        ("UPDATE_COMPLETE", False),
        ("UPDATE_IN_PROGRESS", False),
        ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", False),
        ("UPDATE_FAILED", True),
        ("UPDATE_ROLLBACK_IN_PROGRESS", True),
        ("UPDATE_ROLLBACK_COMPLETE", True),
        ("ROLLBACK_COMPLETE", True),
    ],
)
def test_failed_states(status, failed):
    assert is_failed(status) is failed


# ----------------------------------------------------------------- CloudFormation
def stack_trigger(cfg, name: str, deadline: float | None = None) -> StackUpdateTrigger:
    return StackUpdateTrigger(
        stack_name=name,
        aws_conn_id=cfg.connections.aws,
        region_name=cfg.region,
        poll_interval=0.2,
        deadline=deadline or time.time() + 30,
        since=datetime.now(UTC).isoformat(),
    )


def test_stack_update_complete(aws_server):
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    cfn.create_stack(
        StackName="unit",
        TemplateBody=TEMPLATE,
        Parameters=[{"ParameterKey": "AppVersion", "ParameterValue": "v1"}],
    )
    cfn.update_stack(
        StackName="unit",
        TemplateBody=TEMPLATE,
        Parameters=[{"ParameterKey": "AppVersion", "ParameterValue": "v2"}],
    )
    payload, _ = first_event(stack_trigger(cfg, "unit"))
    assert payload["status"] == "success" and payload["stack_status"] == "UPDATE_COMPLETE"


def test_stack_timeout_is_an_error(aws_server):
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    cfn.create_stack(
        StackName="unit",
        TemplateBody=TEMPLATE,
        Parameters=[{"ParameterKey": "AppVersion", "ParameterValue": "v1"}],
    )
    payload, _ = first_event(stack_trigger(cfg, "unit", deadline=time.time() - 1))
    assert payload["status"] == "error" and "CREATE_COMPLETE at the deadline" in payload["message"]


def test_missing_stack_is_an_error_not_a_hang(aws_server):
    payload, _ = first_event(stack_trigger(aws_server["cfg"], "no-such-stack"))
    assert payload["status"] == "error" and "no-such-stack" in payload["message"]


class _FailedStackClient:
    """A stack rolling back, as CloudFormation reports it (moto's updates cannot fail)."""

    def describe_stacks(self, StackName):
        return {"Stacks": [{"StackId": "arn:stack", "StackStatus": "UPDATE_ROLLBACK_IN_PROGRESS"}]}

    def get_paginator(self, name):
        assert name == "describe_stack_events"
        now = datetime.now(UTC)
        events = [
            {
                "LogicalResourceId": "Api",
                "ResourceType": "AWS::Lambda::Function",
                "ResourceStatus": "UPDATE_FAILED",
                "ResourceStatusReason": "Handler not found",
                "Timestamp": now,
            },
            {
                "LogicalResourceId": "Table",
                "ResourceType": "AWS::DynamoDB::Table",
                "ResourceStatus": "UPDATE_COMPLETE",
                "Timestamp": now,
            },
            {
                "LogicalResourceId": "Old",
                "ResourceType": "AWS::Lambda::Function",
                "ResourceStatus": "UPDATE_FAILED",
                "ResourceStatusReason": "an earlier release",
                "Timestamp": datetime(2020, 1, 1, tzinfo=UTC),
            },
        ]
        return type("Paginator", (), {"paginate": lambda self, **kw: [{"StackEvents": events}]})()


def test_stack_failure_carries_the_events_that_explain_it(monkeypatch):
    import deployment.triggers.cloudformation as module

    async def fake_client(*args):
        return _FailedStackClient()

    monkeypatch.setattr(module, "client_in_thread", fake_client)
    trigger = StackUpdateTrigger(
        stack_name="s",
        aws_conn_id="a",
        region_name="r",
        poll_interval=1,
        deadline=time.time() + 30,
        since="2021-01-01T00:00:00+00:00",
    )
    payload, elapsed = first_event(trigger)
    assert payload["status"] == "error" and elapsed < 1  # fails fast, no wait for the rollback to end
    assert payload["stack_status"] == "UPDATE_ROLLBACK_IN_PROGRESS"
    assert [e["logical_id"] for e in payload["events"]] == ["Api"]
    assert "Api: Handler not found" in payload["message"]


# ------------------------------------------------------------------------ Amplify
@pytest.fixture
def amplify_server(monkeypatch):
    from sandbox.amplify import AmplifyEmulator
    from sandbox.faults import Faults

    faults = Faults()
    emulator = AmplifyEmulator(faults, region="us-west-2", job_seconds=0.6)
    emulator.add_app("app1", "unit")
    emulator.add_branch("app1", "main-green", environment={"APP_VERSION": "v1.1.0"})
    with serving(emulator) as url:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        extra = {"region_name": "us-west-2", "endpoint_url": url}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_AMPLIFY_UNIT", json.dumps({"conn_type": "aws", "extra": extra}))
        yield emulator, faults


def amplify_trigger(job_id: str, deadline: float | None = None) -> AmplifyJobTrigger:
    return AmplifyJobTrigger(
        app_id="app1",
        branch_name="main-green",
        job_id=job_id,
        aws_conn_id="aws_amplify_unit",
        region_name="us-west-2",
        poll_interval=0.1,
        deadline=deadline or time.time() + 30,
    )


def test_amplify_job_succeeds(amplify_server):
    emulator, _ = amplify_server
    job = emulator.start_job("app1", "main-green", {"jobType": "RELEASE"})["jobSummary"]
    payload, elapsed = first_event(amplify_trigger(job["jobId"]))
    assert payload == {
        "job_id": job["jobId"],
        "branch": "main-green",
        "status": "success",
        "job_status": "SUCCEED",
    }
    assert elapsed >= 0.5


def test_amplify_job_failure_carries_the_reason(amplify_server):
    emulator, faults = amplify_server
    faults.add("amplify_job_failure", branch="main-green", reason="npm ERR! build script failed")
    job = emulator.start_job("app1", "main-green", {"jobType": "RELEASE"})["jobSummary"]
    payload, _ = first_event(amplify_trigger(job["jobId"]))
    assert payload["status"] == "error" and payload["job_status"] == "FAILED"
    assert "npm ERR! build script failed" in payload["message"]


def test_amplify_deadline(amplify_server):
    emulator, _ = amplify_server
    emulator.job_seconds = 60  # still running when the trigger first looks, however slow the machine
    job = emulator.start_job("app1", "main-green", {"jobType": "RELEASE"})["jobSummary"]
    payload, _ = first_event(amplify_trigger(job["jobId"], deadline=time.time() - 1))
    assert payload["status"] == "error" and "at the deadline" in payload["message"]


# ------------------------------------------------------------------ metric watch
def test_watch_healthy_keeps_every_sample(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    with Feeder(cloudwatch, cfg, requests=50, errors=0, latency_ms=120):
        payload, elapsed = first_event(watch_trigger(cfg, duration=2, poll_interval=1))
    assert payload["status"] == "healthy", payload["watch"]["reason"]
    verdicts = payload["watch"]["verdicts"]
    assert len(verdicts) == 2 and all(v["sample"]["requests"] > 0 for v in verdicts)
    assert 2 <= elapsed < 5


def test_watch_breach_ends_within_one_poll_interval(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    with Feeder(cloudwatch, cfg, requests=50, errors=10, latency_ms=120):
        payload, elapsed = first_event(watch_trigger(cfg, duration=60, poll_interval=1))
    assert payload["status"] == "breach"
    assert payload["watch"]["polls"] == 1 and "error_rate_percent" in payload["watch"]["reason"]
    assert elapsed < 2.5  # one poll interval (1 s) plus the poll itself, not the 60 s hold


def test_watch_fails_on_an_alarm(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    name = set_alarm(cloudwatch, cfg, "latency", "ALARM")
    with Feeder(cloudwatch, cfg, requests=50, errors=0, latency_ms=120):
        payload, _ = first_event(watch_trigger(cfg, duration=0, poll_interval=1))
    assert payload["status"] == "breach" and name in payload["watch"]["reason"]


def test_watch_without_data_ends_insufficient_after_the_policy(aws_server):
    cfg = aws_server["cfg"]
    thresholds = {
        **cfg.thresholds.model_dump(mode="json"),
        "insufficient_data": "extend",
        "max_insufficient_polls": 1,
    }
    payload, elapsed = first_event(watch_trigger(cfg, thresholds=thresholds, duration=1, poll_interval=1))
    assert payload["status"] == "insufficient_data"
    assert payload["watch"]["polls"] == 2 and payload["watch"]["insufficient_polls"] == 2


def test_watch_duration_zero_checks_once_at_once(aws_server):
    cfg, cloudwatch = aws_server["cfg"], aws_server["cloudwatch"]
    with Feeder(cloudwatch, cfg, requests=50, errors=0, latency_ms=120):
        time.sleep(1)  # a full second of traffic behind the check
        payload, elapsed = first_event(watch_trigger(cfg, duration=0, poll_interval=1))
    assert payload["status"] == "healthy" and payload["watch"]["polls"] == 1
    assert elapsed < 1.5
