"""Phase 5 on threaded moto: the alarms baseline and override, the approved build proven again right
before the change set executes, the change set executed once, what runs read back, new alarms."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from deployment.aws.artifacts import packaged_template, verify_build
from deployment.aws.cloudformation import release_parameters, template_body
from deployment.checks.alarms import AlarmsFiring, alarms_after, alarms_baseline
from deployment.checks.running_build import code_sha256
from deployment.ledger import Ledger
from deployment.operators.cloudformation import ChangeSetError, ExecuteChangeSetOperator
from sandbox.seed import publish_sample_build, tamper_build_object
from tests.unit import _fixtures_phases58 as fx
from tests.unit._fixtures_phases58 import PARAMS, RUN_ID, VERSION, set_alarm

moto_url = fx.moto_url
aws_server = fx.aws_server

PREVIOUS, PREVIOUS_COMMIT, COMMIT = "v1.0.0", "b" * 40, PARAMS["commit_sha"]
CHANGE_SET = "release-v1-1-0-deploy-x"


@pytest.fixture
def ledger(aws_server):
    return Ledger(aws_server["cfg"], VERSION, RUN_ID)


@pytest.fixture
def builds(aws_server, ledger):
    """Both releases' builds of the sample application published, the release's verified into the
    record (as verify_artifact does before approval); ``{version: packaged template}``."""
    cfg, s3 = aws_server["cfg"], aws_server["s3"]
    packaged = {}
    for version, commit in ((PREVIOUS, PREVIOUS_COMMIT), (VERSION, COMMIT)):
        manifest = publish_sample_build(cfg, s3, commit, version)
        packaged[version] = packaged_template(cfg, commit, manifest["template"]["sha256"], s3)
    ledger.write("artifact", {**verify_build(cfg, COMMIT, VERSION, s3), "ok": True})
    return packaged


def _stack_arguments(cfg, builds, version):
    parameters = release_parameters(cfg, version)
    return {
        "StackName": cfg.stack.name,
        "TemplateBody": template_body(cfg, version, builds[version]),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": list(cfg.stack.capabilities),
    }


def _stack_and_change_set(cfg, cfn, ledger, builds):
    """Production at v1.0.0's build; the validated change set to v1.1.0's."""
    cfn.create_stack(**_stack_arguments(cfg, builds, PREVIOUS))
    cfn.create_change_set(
        **_stack_arguments(cfg, builds, VERSION), ChangeSetName=CHANGE_SET, ChangeSetType="UPDATE"
    )
    ledger.write("validation", {"change_set": {"identical": True, "change_set": {"name": CHANGE_SET}}})


def _update(operator, context, deferred):
    """Let the deferred wait run, then resume the operator with its event."""

    async def run():
        async for event in deferred.trigger.run():
            return event.payload

    return operator.execute_complete(context, asyncio.run(run()))


def _running_code(aws_server):
    import boto3

    cfg = aws_server["cfg"]
    session = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name=cfg.region)
    functions = session.client("lambda", endpoint_url=aws_server["url"]).list_functions()["Functions"]
    return {f["CodeSha256"] for f in functions}


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


def test_an_ignored_alarm_raised_during_the_deploy_does_not_fail_the_phase(aws_server, ledger):
    """``ignore_alarms`` means after the deploy what it means before it and in every watch."""
    cfg = aws_server["cfg"]
    name = f"{cfg.alarms.prefix}latency"
    emergency = {"ignore_alarms": [name], "reason": "latency alarm under repair"}
    alarms_baseline(cfg, ledger, emergency)
    assert set_alarm(aws_server["cloudwatch"], cfg, "latency", "ALARM") == name
    assert alarms_after(cfg, ledger, emergency) == {"alarms_after": [name], "new_alarms": []}
    section = ledger.read("infrastructure")
    assert (section["new_alarms"], section["new_alarms_ignored"]) == ([], [name])
    # Without the run's flags, the baseline's record of them decides the same.
    assert alarms_after(cfg, ledger)["new_alarms"] == []


def test_change_set_executed_once_and_recorded(aws_server, ledger, builds):
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    _stack_and_change_set(cfg, cfn, ledger, builds)
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": None}
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    # the stack's status is asked for at the status cadence, not at the metric watches' poll
    assert deferred.value.trigger.poll_interval == cfg.timings.status_poll_seconds
    assert cfg.timings.status_poll_seconds < cfg.timings.poll_interval_seconds
    section = ledger.read("infrastructure")
    assert section["changed"] is True and section["executed_at"]
    approved = ledger.read("artifact")
    assert section["build_proof"]["ok"] is True and section["build_proof"]["objects"] == approved["objects"]
    assert section["build_proof"]["replaced"] == []

    done = _update(operator, context, deferred.value)
    assert done["status"] == "UPDATE_COMPLETE" and done["new_alarms"] == []
    section = ledger.read("infrastructure")
    assert section["alarms_after_checked_at"] and section["running_build"]["ok"] is True
    assert _running_code(aws_server) == {code_sha256(approved["objects"][0]["sha256"])}
    again = operator.execute(context)  # a rerun: nothing executed twice
    assert again["skipped"] == f"the stack already runs {VERSION}" and again["new_alarms"] == []
    assert ledger.read("infrastructure")["changed"] is True

    # Rolled back since: the spent change set is not executed, and the error says how to redeploy.
    cfn.update_stack(**_stack_arguments(cfg, builds, PREVIOUS))
    with pytest.raises(ChangeSetError, match="rolled back\\): clear validate_infrastructure"):
        operator.execute(context)


def test_a_pinned_version_gone_before_execute_fails_with_nothing_executed(aws_server, ledger, builds):
    cfg, cfn, s3 = aws_server["cfg"], aws_server["cloudformation"], aws_server["s3"]
    _stack_and_change_set(cfg, cfn, ledger, builds)
    code = ledger.read("artifact")["objects"][0]
    s3.delete_object(Bucket=cfg.artifacts.bucket, Key=code["key"], VersionId=code["version_id"])
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    gone = f"s3://{cfg.artifacts.bucket}/{code['key']} version {code['version_id']} is missing"
    with pytest.raises(AirflowFailException, match=f"nothing was executed: build object {gone}"):
        operator.execute({"params": PARAMS, "run_id": RUN_ID, "ti": None})
    section = ledger.read("infrastructure")
    assert section["build_proof"]["ok"] is False and gone in section["build_proof"]["error"]
    assert "changed" not in section, "nothing executed, nothing to roll back"
    described = cfn.describe_change_set(StackName=cfg.stack.name, ChangeSetName=CHANGE_SET)
    assert described["ExecutionStatus"] == "AVAILABLE"
    stack = cfn.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["AppVersion"] == PREVIOUS


def test_a_key_written_after_approval_deploys_its_approved_version(aws_server, ledger, builds, monkeypatch):
    """Lambda reads the version the template pins (the sandbox's moto made to do the same)."""
    from moto.awslambda import models

    from sandbox.aws import honour_code_versions

    monkeypatch.setattr(models.LambdaFunction, "_set_function_code", models.LambdaFunction._set_function_code)
    honour_code_versions()
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    _stack_and_change_set(cfg, cfn, ledger, builds)
    key = tamper_build_object(cfg, aws_server["s3"], COMMIT)
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": None}
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert [r["key"] for r in ledger.read("infrastructure")["build_proof"]["replaced"]] == [key]
    assert _update(operator, context, deferred.value)["status"] == "UPDATE_COMPLETE"
    approved = code_sha256(ledger.read("artifact")["objects"][0]["sha256"])
    assert _running_code(aws_server) == {approved}
    assert ledger.read("infrastructure")["running_build"]["functions"][0]["code_sha256"] == approved


def test_other_code_running_after_the_update_fails_the_task(aws_server, ledger, builds):
    """moto's own Lambda reads the key's newest bytes whatever the version: the read-back sees it,
    and the task fails with the stack changed, so the rollback runs."""
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    _stack_and_change_set(cfg, cfn, ledger, builds)
    tamper_build_object(cfg, aws_server["s3"], COMMIT)
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": None}
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    with pytest.raises(
        AirflowFailException, match="production does not run the approved build: .* runs code"
    ):
        _update(operator, context, deferred.value)
    section = ledger.read("infrastructure")
    assert section["changed"] is True and section["running_build"]["ok"] is False
    assert "alarms_after_checked_at" not in section


def test_the_deploy_task_is_guarded_by_alarms_before_and_after(aws_server, ledger, builds):
    cfg, cfn = aws_server["cfg"], aws_server["cloudformation"]
    _stack_and_change_set(cfg, cfn, ledger, builds)
    context = {"params": PARAMS, "run_id": RUN_ID, "ti": None}
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    firing = set_alarm(aws_server["cloudwatch"], cfg, "5xx-errors", "ALARM")
    with pytest.raises(AlarmsFiring, match=firing):
        operator.execute(context)
    assert "changed" not in ledger.read("infrastructure"), "nothing executed beside a firing alarm"

    set_alarm(aws_server["cloudwatch"], cfg, "5xx-errors", "OK")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    raised = set_alarm(aws_server["cloudwatch"], cfg, "latency", "ALARM")
    with pytest.raises(AlarmsFiring, match=f"during the infrastructure deploy: {raised}"):
        _update(operator, context, deferred.value)
    assert ledger.read("infrastructure")["changed"] is True


def test_change_set_that_differs_from_the_plan_is_refused(aws_server, ledger):
    ledger.write(
        "validation",
        {"change_set": {"identical": False, "differences": ["Queue: added"], "change_set": {"name": "x"}}},
    )
    with pytest.raises(ChangeSetError, match="differs from the approved plan"):
        ExecuteChangeSetOperator(task_id="e").execute({"params": PARAMS, "run_id": RUN_ID})


def _recorded(cfg):
    return {"stack_name": cfg.stack.name, "change_set_name": CHANGE_SET}


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


def test_a_change_set_executing_already_is_waited_for_not_executed_again(aws_server, ledger, builds):
    rel = SimpleNamespace(cfg=aws_server["cfg"], ledger=ledger, version=VERSION)
    ledger.write("infrastructure", {"executed_at": "2026-12-02T16:00:00+00:00", "changed": True})
    cfn, recorded = _Cfn(), _recorded(rel.cfg)
    operator = ExecuteChangeSetOperator(task_id="execute_change_set", do_xcom_push=False)
    described = {"ChangeSetId": "arn:cs", "ExecutionStatus": "EXECUTE_IN_PROGRESS"}
    since = operator._start_execution(rel, cfn, {"StackStatus": "UPDATE_IN_PROGRESS"}, described, recorded)
    assert since == "2026-12-02T16:00:00+00:00" and cfn.executed == []

    described = {"ChangeSetId": "arn:cs", "ExecutionStatus": "AVAILABLE"}
    operator._start_execution(rel, cfn, {"StackStatus": "UPDATE_COMPLETE"}, described, recorded)
    assert [call["ChangeSetName"] for call in cfn.executed] == [CHANGE_SET]
    assert ledger.read("infrastructure")["stack_status_before"] == "UPDATE_COMPLETE"
