"""The CloudFormation layer over moto: slow updates, injected failures, cancel and continue rollback."""

from __future__ import annotations

import itertools
import json

import pytest
from botocore.exceptions import ClientError

from deployment.aws.sam import transform_template
from sandbox.seed import packaged_template
from tests.sandbox._poll import poll

_names = itertools.count(1)
TEMPLATE = {
    "Parameters": {"AppVersion": {"Type": "String"}},
    "Resources": {
        "VersionParameter": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": {"Fn::Sub": "/${AWS::StackName}/version"},
                "Type": "String",
                "Value": {"Ref": "AppVersion"},
            },
        }
    },
    "Outputs": {"AppVersion": {"Value": {"Ref": "AppVersion"}}},
}


@pytest.fixture
def cfn(aws):
    return aws("cloudformation")


@pytest.fixture
def stack(cfn):
    """A small stack at v1.0.0 whose SSM parameter holds the version."""
    name = f"layer-test-{next(_names)}"
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(TEMPLATE), Parameters=_version("v1.0.0"))
    return name


def _version(version):
    return [{"ParameterKey": "AppVersion", "ParameterValue": version}]


def _describe(cfn, name):
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    return stack["StackStatus"], params["AppVersion"]


def _status(cfn, name):
    return _describe(cfn, name)[0]


def _template(version_note):
    template = json.loads(json.dumps(TEMPLATE))
    template["Description"] = version_note
    return json.dumps(template)


def _events(cfn, name):
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason"))
            for e in reversed(cfn.describe_stack_events(StackName=name)["StackEvents"])]  # fmt: skip


def test_executed_change_set_stays_in_progress_then_completes(cfn, stack):
    change_set = cfn.create_change_set(
        StackName=stack, ChangeSetName="release", TemplateBody=_template("v1.1.0"),
        Parameters=_version("v1.1.0"), ChangeSetType="UPDATE",
    )  # fmt: skip
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    assert _describe(cfn, stack) == ("UPDATE_IN_PROGRESS", "v1.1.0")
    assert cfn.describe_change_set(ChangeSetName=change_set["Id"])["ExecutionStatus"] == "EXECUTE_IN_PROGRESS"

    with pytest.raises(ClientError, match="UPDATE_IN_PROGRESS state and can not be updated"):
        cfn.update_stack(StackName=stack, TemplateBody=_template("v1.2.0"), Parameters=_version("v1.2.0"))

    seen = poll(lambda: _status(cfn, stack), lambda s: s == "UPDATE_COMPLETE")
    assert seen == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    assert cfn.describe_change_set(ChangeSetName=change_set["Id"])["ExecutionStatus"] == "EXECUTE_COMPLETE"
    assert [e[1] for e in _events(cfn, stack)][-3:] == [
        "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE",
    ]  # fmt: skip

    with pytest.raises(ClientError) as info:  # a change set runs once
        cfn.execute_change_set(ChangeSetName=change_set["Id"])
    assert info.value.response["Error"]["Code"] == "InvalidChangeSetStatus"


@pytest.mark.parametrize("matcher", ["version", "stack"])
def test_stack_update_failure_fault_rolls_back(sandbox, cfn, aws, stack, matcher):
    match = {"version": "v1.1.0"} if matcher == "version" else {"stack": stack}
    sandbox.faults.add("stack_update_failure", reason="Lambda: rate exceeded", **match)
    cfn.update_stack(StackName=stack, TemplateBody=_template("v1.1.0"), Parameters=_version("v1.1.0"))

    seen = poll(lambda: _status(cfn, stack), lambda s: s == "UPDATE_ROLLBACK_COMPLETE")
    assert seen == ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]
    assert _describe(cfn, stack)[1] == "v1.0.0"
    assert "Description" not in cfn.get_template(StackName=stack)["TemplateBody"]
    outputs = cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
    assert outputs == [{"OutputKey": "AppVersion", "OutputValue": "v1.0.0"}]
    assert aws("ssm").get_parameter(Name=f"/{stack}/version")["Parameter"]["Value"] == "v1.0.0"
    failed = [e for e in _events(cfn, stack) if e[1] == "UPDATE_FAILED"]
    assert failed == [("VersionParameter", "UPDATE_FAILED", "Lambda: rate exceeded")]


def test_cancel_update_stack_restores_the_old_state(cfn, stack):
    cfn.update_stack(StackName=stack, TemplateBody=_template("v1.1.0"), Parameters=_version("v1.1.0"))
    cfn.cancel_update_stack(StackName=stack)
    seen = poll(lambda: _status(cfn, stack), lambda s: s == "UPDATE_ROLLBACK_COMPLETE")
    assert seen == ["UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]
    assert _describe(cfn, stack)[1] == "v1.0.0"
    assert ("layer-test", "UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated") in [
        (e[0].rsplit("-", 1)[0], e[1], e[2]) for e in _events(cfn, stack)
    ]


def test_failed_rollback_needs_continue_update_rollback(sandbox, cfn, stack):
    sandbox.faults.add(
        "stack_update_failure", stack=stack, rollback_fails=True, reason="IAM eventual consistency"
    )
    cfn.update_stack(StackName=stack, TemplateBody=_template("v1.1.0"), Parameters=_version("v1.1.0"))
    poll(lambda: _status(cfn, stack), lambda s: s == "UPDATE_ROLLBACK_FAILED")
    with pytest.raises(ClientError, match="UPDATE_ROLLBACK_FAILED state and can not be updated"):
        cfn.update_stack(StackName=stack, TemplateBody=_template("v1.2.0"), Parameters=_version("v1.2.0"))

    cfn.continue_update_rollback(StackName=stack)
    poll(lambda: _status(cfn, stack), lambda s: s == "UPDATE_ROLLBACK_COMPLETE")
    assert _describe(cfn, stack)[1] == "v1.0.0"


def test_lifecycle_calls_in_the_wrong_state_are_validation_errors(cfn, stack):
    for call in (cfn.cancel_update_stack, cfn.continue_update_rollback):
        with pytest.raises(ClientError) as info:
            call(StackName=stack)
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert "cannot be called from current stack status CREATE_COMPLETE" in str(info.value)
    with pytest.raises(ClientError, match="Stack with id nope does not exist"):
        cfn.cancel_update_stack(StackName="nope")
    with pytest.raises(ClientError, match="No updates are to be performed"):
        cfn.update_stack(StackName=stack, TemplateBody=json.dumps(TEMPLATE), Parameters=_version("v1.0.0"))


def test_sam_template_update_through_change_set(sandbox, cfn, aws):
    """The seeded v1.1.0 build's packaged template, transformed locally, updated as the pipeline does."""
    cfg, name = sandbox.cfg, "bayon-coagent-staging"
    source = packaged_template(cfg, aws("s3"), sandbox.github.version_at("rc-1.1.0")[0])

    def body(version):
        return transform_template(source, {"Environment": "staging", "AppVersion": version}, cfg.region)

    def params(version):
        return [{"ParameterKey": "Environment", "ParameterValue": "staging"}, *_version(version)]

    cfn.create_stack(StackName=name, TemplateBody=body("v1.0.0"), Parameters=params("v1.0.0"),
                     Capabilities=["CAPABILITY_IAM"])  # fmt: skip
    change_set = cfn.create_change_set(
        StackName=name, ChangeSetName="v1-1-0", TemplateBody=body("v1.1.0"), Parameters=params("v1.1.0"),
        ChangeSetType="UPDATE", Capabilities=["CAPABILITY_IAM"],
    )  # fmt: skip
    assert cfn.describe_change_set(ChangeSetName=change_set["Id"])["Status"] == "CREATE_COMPLETE"
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    poll(lambda: _status(cfn, name), lambda s: s == "UPDATE_COMPLETE")
    function = aws("lambda").get_function(FunctionName="bayon-coagent-staging-api")
    assert function["Configuration"]["Environment"]["Variables"]["APP_VERSION"] == "v1.1.0"


def test_the_seeds_updates_end_at_once_and_the_pipelines_stay_slow(sandbox, cfn, stack):
    """The seed builds production's state with updates that do not wait (a reseed before each
    real-engine test); an update started afterwards is in progress for the configured time again."""
    layer = sandbox.aws.cloudformation
    slow = layer.update_seconds
    with layer.immediate():
        cfn.update_stack(StackName=stack, TemplateBody=_template("seed"), Parameters=_version("v1.0.1"))
        poll(lambda: _status(cfn, stack), lambda s: s == "UPDATE_COMPLETE")
    assert layer.update_seconds == slow > 0
    cfn.update_stack(StackName=stack, TemplateBody=_template("release"), Parameters=_version("v1.1.0"))
    assert _describe(cfn, stack) == ("UPDATE_IN_PROGRESS", "v1.1.0")
