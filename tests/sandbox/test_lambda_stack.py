"""A stack's Lambda version and alias through the CloudFormation layer: published per release,
the alias kept where the stack's parameters say, drift detected, restored by a rollback."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.sandbox._alias_stack import new_stack, parameters, release, status, template
from tests.sandbox._poll import poll


@pytest.fixture
def cfn(aws):
    return aws("cloudformation")


@pytest.fixture
def lam(aws):
    return aws("lambda")


@pytest.fixture
def stack(cfn):
    return new_stack(cfn)


def outputs(cfn, stack):
    return {
        o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
    }


def physical_ids(cfn, stack):
    summaries = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: (r["ResourceType"], r["PhysicalResourceId"]) for r in summaries}


def versions(lam, stack):
    """{version: (release it runs, description)} of the stack's function, $LATEST left out."""
    found = lam.list_versions_by_function(FunctionName=f"{stack}-api")["Versions"]
    return {
        v["Version"]: (v["Environment"]["Variables"]["APP_VERSION"], v["Description"])
        for v in found
        if v["Version"] != "$LATEST"
    }


def alias(lam, stack):
    found = lam.get_alias(FunctionName=f"{stack}-api", Name="live")
    return found["FunctionVersion"], (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def drift(cfn, stack):
    """DetectStackDrift, then its status and the resource drifts."""
    detection = cfn.detect_stack_drift(StackName=stack)["StackDriftDetectionId"]
    status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
    assert status["DetectionStatus"] == "DETECTION_COMPLETE" and status["StackDriftDetectionId"] == detection
    return status, cfn.describe_stack_resource_drifts(StackName=stack)["StackResourceDrifts"]


def test_a_release_publishes_a_version_and_the_alias_stays_on_live_version(cfn, lam, stack):
    arn = f"arn:aws:lambda:us-west-2:123456789012:function:{stack}-api"
    assert outputs(cfn, stack) == {"FunctionVersion": "1", "AliasArn": f"{arn}:live"}
    assert alias(lam, stack) == ("1", {})

    release(cfn, stack, "v1.1.0", "1", body=template())
    assert versions(lam, stack) == {"1": ("v1.0.0", "v1.0.0"), "2": ("v1.1.0", "v1.1.0")}  # 1 retained
    assert alias(lam, stack) == ("1", {})
    assert outputs(cfn, stack)["FunctionVersion"] == "2"
    resources = physical_ids(cfn, stack)
    assert resources["Version"] == ("AWS::Lambda::Version", f"{arn}:2")
    assert resources["Alias"] == ("AWS::Lambda::Alias", f"{arn}:live")
    status, drifts = drift(cfn, stack)
    assert (status["StackDriftStatus"], status["DriftedStackResourceCount"]) == ("IN_SYNC", 0)
    assert [(d["LogicalResourceId"], d["StackResourceDriftStatus"]) for d in drifts] == [("Alias", "IN_SYNC")]
    assert json.loads(drifts[0]["ExpectedProperties"])["FunctionVersion"] == "1"


def test_the_alias_moved_outside_the_stack_drifts_until_live_version_follows(cfn, lam, stack):
    release(cfn, stack, "v1.1.0", "1", body=template())
    function = f"{stack}-api"
    lam.update_alias(
        FunctionName=function, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}}
    )
    # The template sets no RoutingConfig, and CloudFormation checks only the properties it sets.
    assert drift(cfn, stack)[0]["StackDriftStatus"] == "IN_SYNC"

    lam.update_alias(
        FunctionName=function,
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {}},
    )
    status, drifts = drift(cfn, stack)
    assert (status["StackDriftStatus"], status["DriftedStackResourceCount"]) == ("DRIFTED", 1)
    assert drifts[0]["StackResourceDriftStatus"] == "MODIFIED"
    assert drifts[0]["PropertyDifferences"] == [
        {
            "PropertyPath": "/FunctionVersion",
            "ExpectedValue": "1",
            "ActualValue": "2",
            "DifferenceType": "NOT_EQUAL",
        }
    ]
    single = cfn.detect_stack_resource_drift(StackName=stack, LogicalResourceId="Alias")["StackResourceDrift"]
    assert single["StackResourceDriftStatus"] == "MODIFIED"
    table = cfn.detect_stack_resource_drift(StackName=stack, LogicalResourceId="Function")[
        "StackResourceDrift"
    ]
    assert table["StackResourceDriftStatus"] == "NOT_CHECKED"
    filtered = cfn.describe_stack_resource_drifts(
        StackName=stack, StackResourceDriftStatusFilters=["IN_SYNC"]
    )
    assert filtered["StackResourceDrifts"] == []

    release(cfn, stack, "v1.1.0", "2")  # parameters only: the alias where the pipeline left it
    assert alias(lam, stack) == ("2", {})
    assert set(versions(lam, stack)) == {"1", "2"}  # no release changed: nothing published
    assert drift(cfn, stack)[0]["StackDriftStatus"] == "IN_SYNC"


def test_a_template_that_sets_routing_config_keeps_and_checks_the_weights(cfn, lam, stack):
    release(cfn, stack, "v1.1.0", "1", body=template(routing=True))
    assert alias(lam, stack) == ("2", {"1": 0.25})
    assert drift(cfn, stack)[0]["StackDriftStatus"] == "IN_SYNC"

    lam.update_alias(
        FunctionName=f"{stack}-api", Name="live", RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}}
    )
    differences = drift(cfn, stack)[1][0]["PropertyDifferences"]
    assert differences == [{
        "PropertyPath": "/RoutingConfig/AdditionalVersionWeights/0/FunctionWeight",
        "ExpectedValue": "0.25", "ActualValue": "0.5", "DifferenceType": "NOT_EQUAL",
    }]  # fmt: skip

    release(cfn, stack, "v1.1.0", "")  # the template now names no weight: the update clears them
    assert alias(lam, stack) == ("2", {})
    assert drift(cfn, stack)[0]["StackDriftStatus"] == "IN_SYNC"


@pytest.mark.parametrize("how", ["fault", "cancel"])
def test_a_rolled_back_update_puts_the_version_and_alias_back(sandbox, cfn, lam, stack, how):
    arn = f"arn:aws:lambda:us-west-2:123456789012:function:{stack}-api"
    if how == "fault":
        sandbox.faults.add("stack_update_failure", stack=stack, reason="Lambda: rate exceeded")
        release(cfn, stack, "v1.1.0", "", body=template(), until="UPDATE_ROLLBACK_COMPLETE")
    else:
        cfn.update_stack(StackName=stack, TemplateBody=template(), Parameters=parameters("v1.1.0"))
        assert alias(lam, stack) == ("2", {})  # applied, in progress
        cfn.cancel_update_stack(StackName=stack)
        poll(lambda: status(cfn, stack), lambda s: s == "UPDATE_ROLLBACK_COMPLETE")

    assert alias(lam, stack) == ("1", {})
    assert outputs(cfn, stack)["FunctionVersion"] == "1"
    assert physical_ids(cfn, stack)["Version"] == ("AWS::Lambda::Version", f"{arn}:1")
    assert versions(lam, stack)["2"] == (
        "v1.1.0",
        "v1.1.0",
    )  # DeletionPolicy Retain keeps what the update made
    assert drift(cfn, stack)[0]["StackDriftStatus"] == "IN_SYNC"

    sandbox.faults.clear()
    release(cfn, stack, "v1.1.0", "", body=template())  # the next attempt publishes afresh
    assert alias(lam, stack) == ("3", {}) and outputs(cfn, stack)["FunctionVersion"] == "3"


def test_an_alias_lambda_refuses_fails_the_update(cfn, lam, stack):
    release(cfn, stack, "v1.0.0", "7", until="UPDATE_ROLLBACK_COMPLETE")
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    failed = [
        (e["LogicalResourceId"], e["ResourceStatus"])
        for e in events
        if e["ResourceStatus"] == "UPDATE_FAILED"
    ]
    assert failed == [("Alias", "UPDATE_FAILED")]
    assert alias(lam, stack) == ("1", {})
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
    }
    assert params["LiveVersion"] == ""


def test_drift_of_unknown_things_is_a_validation_error(cfn, stack):
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stack_drift_detection_status(StackDriftDetectionId="nope")
    with pytest.raises(ClientError, match="Resource Nope does not exist"):
        cfn.detect_stack_resource_drift(StackName=stack, LogicalResourceId="Nope")
    with pytest.raises(ClientError, match="Stack with id nope does not exist"):
        cfn.detect_stack_drift(StackName="nope")


def test_the_reference_stack_through_a_release(sandbox, cfn, lam, aws):
    """The v1.1.0 build's template, transformed and applied by change set as the pipeline does, with
    LiveVersion naming the live version; the alias moved as the release moves it; the parameters-only
    update at its end."""
    from deployment.aws.sam import transform_template
    from sandbox.seed import packaged_template, stack_parameters

    cfg, function = sandbox.cfg, sandbox.cfg.backend.function_name
    name, live = cfg.stack.name, cfg.backend.version_parameter
    source = packaged_template(cfg, aws("s3"), sandbox.github.version_at("rc-1.1.0")[0])
    new = {**stack_parameters(cfg, "v1.1.0"), live: "1"}
    try:
        change_set = cfn.create_change_set(
            StackName=name, ChangeSetName="release-v1-1-0", ChangeSetType="UPDATE",
            TemplateBody=transform_template(source, new, cfg.region), Capabilities=cfg.stack.capabilities,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in new.items()],
        )  # fmt: skip
        cfn.execute_change_set(ChangeSetName=change_set["Id"])
        poll(lambda: status(cfn, name), lambda s: s == "UPDATE_COMPLETE")
        published = lam.get_function_configuration(FunctionName=function, Qualifier="2")
        assert published["Environment"]["Variables"]["APP_VERSION"] == "v1.1.0"
        assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == "1"
        stack_outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
        }
        assert stack_outputs["ApiFunctionVersion"] == "2"
        assert drift(cfn, name)[0]["StackDriftStatus"] == "IN_SYNC"

        lam.update_alias(
            FunctionName=function, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}}
        )
        lam.update_alias(
            FunctionName=function,
            Name="live",
            FunctionVersion="2",
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        assert drift(cfn, name)[0]["StackDriftStatus"] == "DRIFTED"
        cfn.update_stack(
            StackName=name, UsePreviousTemplate=True, Capabilities=cfg.stack.capabilities,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in {**new, live: "2"}.items()],
        )  # fmt: skip
        poll(lambda: status(cfn, name), lambda s: s == "UPDATE_COMPLETE")
        assert lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"] == "2"
        assert drift(cfn, name)[0]["StackDriftStatus"] == "IN_SYNC"
    finally:
        sandbox.reseed()
