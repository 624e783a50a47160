"""The triggers: serialize round-trips, and run() against a threaded moto server and the Amplify emulator."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.models.trigger import Trigger

from deployment.triggers.amplify import AmplifyJobTrigger
from deployment.triggers.analysis import MetricWatchTrigger
from deployment.triggers.cloudformation import StackUpdateTrigger, is_failed
from deployment.triggers.gate_reminder import GateReminderTrigger
from tests.sandbox._servers import serving
from tests.unit import _fixtures_phases58 as fx

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


# Every trigger, under the path a trigger row in the database names it by.
TRIGGERS = {
    "deployment.triggers.cloudformation.StackUpdateTrigger": StackUpdateTrigger(
        stack_name="s",
        aws_conn_id="a",
        region_name="r",
        poll_interval=1,
        deadline=123.0,
        since="2026-01-01T00:00:00+00:00",
    ),
    "deployment.triggers.amplify.AmplifyJobTrigger": AmplifyJobTrigger(
        app_id="app",
        branch_name="b",
        job_id="1",
        aws_conn_id="a",
        region_name="r",
        poll_interval=1,
        deadline=1.0,
    ),
    "deployment.triggers.analysis.MetricWatchTrigger": MetricWatchTrigger(
        aws_conn_id="a",
        region_name="r",
        query={"namespace": "n", "period_seconds": 60},
        thresholds={"error_rate_percent": 1.0},
        baseline_rps=None,
        poll_interval=30.0,
        label="shift_traffic_10",
        canary_colour="green",
        stable_colour="blue",
        data_since="2026-01-01T00:00:00+00:00",
        hold_until="2026-01-01T00:05:00+00:00",
        deadline="2026-01-01T00:07:00+00:00",
        ignore_alarms=["a"],
        restore=False,
    ),
    "deployment.triggers.gate_reminder.GateReminderTrigger": GateReminderTrigger(
        datetime(2026, 12, 1, 20, 0, tzinfo=UTC),
        dag_id="deploy_production",
        run_id="r",
        task_ids=["approval_gate.first_approval"],
        poll_interval=30,
    ),
}


@pytest.mark.parametrize("classpath", TRIGGERS)
def test_each_trigger_round_trips_through_its_stored_row(classpath):
    """Stored as the triggerer stores it, rebuilt as it rebuilds it: the same path and kwargs again."""
    trigger = TRIGGERS[classpath]
    row = Trigger.from_object(trigger)
    assert row.classpath == classpath
    assert set(row.kwargs) == set(inspect.signature(type(trigger)).parameters)  # every argument kept
    module, name = row.classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**row.kwargs)
    assert rebuilt.serialize() == trigger.serialize() == (classpath, row.kwargs)


def test_the_aws_triggers_kwargs_are_json_safe():
    for trigger in TRIGGERS.values():
        if not isinstance(trigger, GateReminderTrigger):  # a DateTimeTrigger's moment is a datetime
            json.dumps(trigger.serialize()[1])


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
