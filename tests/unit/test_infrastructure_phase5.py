"""Phase 5 on threaded moto: the alarms baseline and override, the change set executed once, new alarms."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import TaskDeferred

from deployment.alarm_guard import AlarmsFiring, alarms_after, alarms_baseline
from deployment.ledger import Ledger
from deployment.operators.cloudformation import ChangeSetError, ExecuteChangeSetOperator
from tests.unit import _fixtures_phases58 as fx
from tests.unit._fixtures_phases58 import PARAMS, RUN_ID, VERSION, set_alarm

moto_url = fx.moto_url
aws_server = fx.aws_server

TEMPLATE = json.dumps(
    {
        "Parameters": {"AppVersion": {"Type": "String"}, "Environment": {"Type": "String"}},
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Ref": "AppVersion"}}}
        },
    }
)


def params(version):
    return [
        {"ParameterKey": "AppVersion", "ParameterValue": version},
        {"ParameterKey": "Environment", "ParameterValue": "production"},
    ]


@pytest.fixture
def ledger(aws_server):
    return Ledger(aws_server["cfg"], VERSION, RUN_ID)


def test_firing_alarm_stops_the_run_unless_overridden(aws_server, ledger):
    cfg = aws_server["cfg"]
    name = set_alarm(aws_server["cloudwatch"], cfg, "5xx-errors", "ALARM")
    with pytest.raises(AlarmsFiring, match=name):
        alarms_baseline(cfg, ledger, {"ignore_alarms": []})
    assert ledger.read("infrastructure")["alarms_blocking"] == [name]
    section = alarms_baseline(cfg, ledger, {"ignore_alarms": [name], "reason": "known noisy alarm"})
    assert section["alarms_override"] == {
        "ignore_alarms": [name],
        "reason": "known noisy alarm",
        "firing_and_ignored": [name],
    }
    assert "traffic_baseline" in section
    assert alarms_after(cfg, ledger)["new_alarms"] == []  # still firing, but it was in the baseline


def test_an_alarm_raised_during_the_deploy_fails_the_phase(aws_server, ledger):
    cfg = aws_server["cfg"]
    alarms_baseline(cfg, ledger, {})
    name = set_alarm(aws_server["cloudwatch"], cfg, "latency", "ALARM")
    with pytest.raises(AlarmsFiring, match=f"went to ALARM during the infrastructure deploy: {name}"):
        alarms_after(cfg, ledger)
    assert [a["name"] for a in ledger.read("infrastructure")["new_alarms"]] == [name]


def test_change_set_executed_once_and_recorded(aws_server, ledger):
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    _stack_and_change_set(cfg, cfn, ledger)
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": None}
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    section = ledger.read("infrastructure")
    assert section["changed"] is True and section["executed_at"]

    async def run():
        async for event in deferred.value.trigger.run():
            return event.payload

    event = asyncio.run(run())
    done = operator.execute_complete(context, event)
    assert done["status"] == "UPDATE_COMPLETE" and done["new_alarms"] == []
    assert ledger.read("infrastructure")["alarms_after_checked_at"]
    again = operator.execute(context)  # a rerun: nothing executed twice
    assert again["skipped"] == f"the stack already runs {VERSION}" and again["new_alarms"] == []
    assert ledger.read("infrastructure")["changed"] is True

    # Rolled back since: the spent change set is not executed, and the error says how to redeploy.
    cfn.update_stack(StackName=cfg.stack.name, TemplateBody=TEMPLATE, Parameters=params("v1.0.0"))
    with pytest.raises(ChangeSetError, match="rolled back\\): clear validate_infrastructure"):
        operator.execute(context)


def _stack_and_change_set(cfg, cfn, ledger):
    cfn.create_stack(StackName=cfg.stack.name, TemplateBody=TEMPLATE, Parameters=params("v1.0.0"))
    cfn.create_change_set(
        StackName=cfg.stack.name,
        ChangeSetName="release-v1-1-0-deploy-x",
        TemplateBody=TEMPLATE,
        Parameters=params(VERSION),
        ChangeSetType="UPDATE",
    )
    ledger.write(
        "validation", {"change_set": {"identical": True, "change_set": {"name": "release-v1-1-0-deploy-x"}}}
    )


def test_the_deploy_task_is_guarded_by_alarms_before_and_after(aws_server, ledger):
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    _stack_and_change_set(cfg, cfn, ledger)
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": None}
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    firing = set_alarm(aws_server["cloudwatch"], cfg, "5xx-errors", "ALARM")
    with pytest.raises(AlarmsFiring, match=firing):
        operator.execute(context)
    assert "changed" not in ledger.read("infrastructure"), "nothing executed beside a firing alarm"

    set_alarm(aws_server["cloudwatch"], cfg, "5xx-errors", "OK")
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    raised = set_alarm(aws_server["cloudwatch"], cfg, "latency", "ALARM")
    with pytest.raises(AlarmsFiring, match=f"during the infrastructure deploy: {raised}"):
        operator.execute_complete(context, {"status": "success", "stack_status": "UPDATE_COMPLETE"})
    assert ledger.read("infrastructure")["changed"] is True


def test_change_set_that_differs_from_the_plan_is_refused(aws_server, ledger):
    ledger.write(
        "validation",
        {"change_set": {"identical": False, "differences": ["Queue: added"], "change_set": {"name": "x"}}},
    )
    with pytest.raises(ChangeSetError, match="differs from the approved plan"):
        ExecuteChangeSetOperator(task_id="e").execute({"params": PARAMS, "run_id": RUN_ID})


def _recorded(cfg):
    return {"stack_name": cfg.stack.name, "change_set_name": "release-v1-1-0-deploy-x"}


class _Cfn:
    """Records what the operator asks CloudFormation to execute."""

    def __init__(self):
        self.executed = []

    def execute_change_set(self, **kwargs):
        self.executed.append(kwargs)


@pytest.mark.parametrize(
    ("execution", "stack_status", "error"),
    [
        ("EXECUTE_COMPLETE", "UPDATE_COMPLETE", "rolled back\\): clear validate_infrastructure"),
        ("UNAVAILABLE", "UPDATE_COMPLETE", "cannot be executed: status FAILED, execution status UNAVAILABLE"),
        ("AVAILABLE", "UPDATE_IN_PROGRESS", "is UPDATE_IN_PROGRESS: it cannot be updated now"),
    ],
)
def test_a_change_set_in_any_other_state_is_not_executed(aws_server, ledger, execution, stack_status, error):
    rel = SimpleNamespace(cfg=aws_server["cfg"], ledger=ledger, version=VERSION)
    described = {"ChangeSetId": "arn:cs", "ExecutionStatus": execution, "Status": "FAILED"}
    cfn = _Cfn()
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    with pytest.raises(ChangeSetError, match=error):
        operator._start_execution(rel, cfn, {"StackStatus": stack_status}, described, _recorded(rel.cfg))
    assert cfn.executed == [] and ledger.read("infrastructure") is None


def test_a_change_set_executing_already_is_waited_for_not_executed_again(aws_server, ledger):
    rel = SimpleNamespace(cfg=aws_server["cfg"], ledger=ledger, version=VERSION)
    ledger.write("infrastructure", {"executed_at": "2026-12-02T16:00:00+00:00", "changed": True})
    cfn, recorded = _Cfn(), _recorded(rel.cfg)
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    described = {"ChangeSetId": "arn:cs", "ExecutionStatus": "EXECUTE_IN_PROGRESS"}
    since = operator._start_execution(rel, cfn, {"StackStatus": "UPDATE_IN_PROGRESS"}, described, recorded)
    assert since == "2026-12-02T16:00:00+00:00" and cfn.executed == []

    described = {"ChangeSetId": "arn:cs", "ExecutionStatus": "AVAILABLE"}
    operator._start_execution(rel, cfn, {"StackStatus": "UPDATE_COMPLETE"}, described, recorded)
    assert [call["ChangeSetName"] for call in cfn.executed] == ["release-v1-1-0-deploy-x"]
    assert ledger.read("infrastructure")["stack_status_before"] == "UPDATE_COMPLETE"
