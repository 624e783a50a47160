"""Change sets made, found again and compared, against in-process moto, with the seeded stack at v1.0.0."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from _release import COMMIT, PREVIOUS, RUN_ID, VERSION

from deployment.aws import change_sets as cs
from deployment.aws import cloudformation as cf
from deployment.aws.artifacts import ArtifactError


def _with_template(cfg, aws, mutate):
    """A config submitting templates as is, and the release's transformed template changed by ``mutate``."""
    template = json.loads(cf.template_body(cfg, VERSION, aws["builds"][VERSION]))
    mutate(template["Resources"])
    stack = cfg.stack.model_copy(update={"transform_locally": False})
    return cfg.model_copy(update={"stack": stack}), json.dumps(template)


def test_change_set_name_is_valid_and_stable():
    name = cs.change_set_name("v1.2.3", RUN_ID, "plan")
    assert name == cs.change_set_name("v1.2.3", RUN_ID, "plan")
    assert name != cs.change_set_name("v1.2.3", RUN_ID + "x", "plan")
    assert name.startswith("release-v1-2-3-plan-")
    assert all(c.isalnum() or c == "-" for c in name) and len(name) <= 128


def test_change_set_comes_from_the_verified_build_in_the_record(cfg, aws, record):
    result = cs.ensure_change_set(cfg, VERSION, RUN_ID, "plan", ledger=record, poll=0)
    packaged = aws["builds"][VERSION]
    assert result["template_sha256"] == hashlib.sha256(packaged.encode()).hexdigest()
    assert result["template_sha256"] == record.read("artifact")["template_sha256"]
    assert result["submitted_sha256"] == cf.template_digest(cf.template_body(cfg, VERSION, packaged))


def test_change_set_refuses_a_packaged_template_changed_since_verification(cfg, aws, record):
    key = f"builds/{COMMIT}/template.yaml"
    aws["s3"].put_object(Bucket=cfg.artifacts.bucket, Key=key, Body=aws["builds"][VERSION] + "\n# edited\n")
    with pytest.raises(ArtifactError, match=f"template s3://{cfg.artifacts.bucket}/{key} has SHA-256"):
        cs.ensure_change_set(cfg, VERSION, RUN_ID, "plan", ledger=record, poll=0)
    assert aws["cfn"].list_change_sets(StackName=cfg.stack.name)["Summaries"] == []


def test_change_set_summarizes_adds_modifies_removes(cfg, aws):
    def mutate(resources):
        resources["Queue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
        resources["ContentTable"]["Properties"]["BillingMode"] = "PROVISIONED"
        resources["ContentTable"]["Properties"]["ProvisionedThroughput"] = {
            "ReadCapacityUnits": 1,
            "WriteCapacityUnits": 1,
        }
        del resources["UsersTable"]

    changed, packaged = _with_template(cfg, aws, mutate)
    result = cs.ensure_change_set(changed, VERSION, RUN_ID, "plan", packaged=packaged, poll=0)
    assert result["status"] == "CREATE_COMPLETE" and result["no_changes"] is False
    # the version the API alias serves, so the update leaves the alias where it is
    assert result["parameters"] == {**cf.release_parameters(cfg, VERSION), "LiveVersion": "1"}
    assert [(c["action"], c["logical_id"]) for c in result["changes"]] == [
        ("Modify", "ApiFunction"),  # the v1.1.0 build's code object, not v1.0.0's
        ("Modify", "ContentTable"),
        ("Add", "Queue"),
        ("Remove", "UsersTable"),
    ]
    described = aws["cfn"].describe_change_set(StackName=cfg.stack.name, ChangeSetName=result["name"])
    assert described["ChangeSetId"] == result["id"]


def test_change_set_rerun_finds_the_existing_one(cfg, aws):
    first = cs.ensure_change_set(cfg, VERSION, RUN_ID, "plan", packaged=aws["builds"][VERSION], poll=0)
    second = cs.ensure_change_set(cfg, VERSION, RUN_ID, "plan", packaged=aws["builds"][VERSION], poll=0)
    assert first == second
    summaries = aws["cfn"].list_change_sets(StackName=cfg.stack.name)["Summaries"]
    assert [s["ChangeSetName"] for s in summaries] == [first["name"]]


def test_executed_change_set_is_made_anew_after_a_rollback(cfg, aws):
    """A rerun after the stack was rolled back gets an executable change set, not the spent one."""
    first = cs.ensure_change_set(cfg, VERSION, RUN_ID, "deploy", packaged=aws["builds"][VERSION], poll=0)
    cfn = aws["cfn"]
    cfn.execute_change_set(StackName=cfg.stack.name, ChangeSetName=first["name"])
    cfn.update_stack(
        StackName=cfg.stack.name,
        TemplateBody=cf.template_body(cfg, PREVIOUS, aws["builds"][PREVIOUS]),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in cf.release_parameters(cfg, PREVIOUS).items()
        ],
        Capabilities=list(cfg.stack.capabilities),
    )
    again = cs.ensure_change_set(cfg, VERSION, RUN_ID, "deploy", packaged=aws["builds"][VERSION], poll=0)
    assert again["name"] == first["name"] and again["id"] != first["id"]
    assert again["execution_status"] == "AVAILABLE"


def test_change_set_with_no_changes(cfg, aws):
    result = cs.ensure_change_set(cfg, PREVIOUS, RUN_ID, "plan", packaged=aws["builds"][PREVIOUS], poll=0)
    assert result["no_changes"] is True
    assert result["changes"] == []
    assert result["id"] is None


def test_change_set_needs_the_stack(cfg, aws):
    aws["cfn"].delete_stack(StackName=cfg.stack.name)
    with pytest.raises(cf.CloudFormationError, match="a release updates an existing stack"):
        cs.ensure_change_set(cfg, VERSION, RUN_ID, "plan", packaged=aws["builds"][VERSION], poll=0)


def test_failed_change_set_is_made_again(cfg, aws, monkeypatch):
    name = cs.change_set_name(VERSION, RUN_ID, "plan")
    real = cs.find
    deleted = []

    class Recording:
        def __init__(self, cfn):
            self.cfn = cfn

        def __getattr__(self, item):
            return getattr(self.cfn, item)

        def delete_change_set(self, **kwargs):
            deleted.append(kwargs["ChangeSetName"])
            return self.cfn.delete_change_set(**kwargs)

    calls = iter([{"Status": "FAILED", "StatusReason": "Template error"}])
    monkeypatch.setattr(cs, "find", lambda cfn, s, n: next(calls, None) or real(cfn, s, n))
    client = cf.client(cfg)
    aws["cfn"].create_change_set(
        StackName=cfg.stack.name,
        ChangeSetName=name,
        ChangeSetType="UPDATE",
        TemplateBody=cf.template_body(cfg, VERSION, aws["builds"][VERSION]),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in cf.release_parameters(cfg, VERSION).items()
        ],
    )
    monkeypatch.setattr(cf, "client", lambda _cfg: Recording(client))
    result = cs.ensure_change_set(cfg, VERSION, RUN_ID, "plan", packaged=aws["builds"][VERSION], poll=0)
    assert deleted == [name]
    assert result["status"] == "CREATE_COMPLETE"


def test_a_change_set_still_being_made_at_the_timeout_is_an_error(cfg, aws, monkeypatch):
    """The wait takes our poll interval and timeout, not botocore's (30 s apart, for an hour)."""
    client = cf.client(cfg)

    def still_in_progress(parsed, **_):
        if "Status" in parsed:
            parsed["Status"] = "CREATE_IN_PROGRESS"

    client.meta.events.register("after-call.cloudformation.DescribeChangeSet", still_in_progress)
    monkeypatch.setattr(cf, "client", lambda _cfg: client)
    started = time.monotonic()
    with pytest.raises(cf.CloudFormationError, match="still CREATE_IN_PROGRESS after 1 s"):
        cs.ensure_change_set(
            cfg, VERSION, RUN_ID, "plan", packaged=aws["builds"][VERSION], timeout=1, poll=0.1
        )
    assert 1 <= time.monotonic() - started < 5


def test_summarize_normalizes_and_orders():
    changes = [
        {
            "Type": "Resource",
            "ResourceChange": {
                "Action": "Modify",
                "LogicalResourceId": "B",
                "ResourceType": "AWS::DynamoDB::Table",
                "PhysicalResourceId": "b",
                "Replacement": "True",
                "Scope": ["Tags", "Properties"],
                "Details": [
                    {
                        "Target": {
                            "Attribute": "Properties",
                            "Name": "KeySchema",
                            "RequiresRecreation": "Always",
                        },
                        "ChangeSource": "DirectModification",
                        "Evaluation": "Static",
                    },
                    {
                        "Target": {"Attribute": "Tags", "RequiresRecreation": "Never"},
                        "ChangeSource": "DirectModification",
                    },
                ],
            },
        },
        {
            "Type": "Resource",
            "ResourceChange": {"Action": "Add", "LogicalResourceId": "A", "ResourceType": "AWS::SQS::Queue"},
        },
    ]
    summary = cs.summarize(changes)
    assert [c["logical_id"] for c in summary] == ["A", "B"]
    assert summary[1]["scope"] == ["Properties", "Tags"]
    assert summary[1]["replacement"] == "True"
    assert cs.summarize(list(reversed(changes))) == summary
    reordered = json.loads(json.dumps(changes))
    reordered[0]["ResourceChange"]["Details"].reverse()
    assert cs.summarize(reordered) == summary


def _change(logical_id, action="Modify", replacement=None, physical_id=None):
    return {
        "action": action,
        "logical_id": logical_id,
        "resource_type": "AWS::SQS::Queue",
        "physical_id": physical_id,
        "replacement": replacement,
        "scope": [],
        "details": [],
    }


def test_compare_identical_in_effect():
    plan = {"parameters": {"AppVersion": "v1"}, "changes": [_change("A", physical_id=None)]}
    now = {"parameters": {"AppVersion": "v1"}, "changes": [_change("A", physical_id="queue-a")]}
    assert cs.compare(plan, now) == []


def test_compare_lists_every_difference():
    plan = {"parameters": {"AppVersion": "v1"}, "changes": [_change("A"), _change("B", "Remove")]}
    now = {
        "parameters": {"AppVersion": "v2"},
        "changes": [_change("A", replacement="True"), _change("C", "Add")],
    }
    differences = cs.compare(plan, now)
    assert len(differences) == 4
    assert differences[0].startswith("parameters differ")
    assert "A: approved Modify AWS::SQS::Queue, now Modify AWS::SQS::Queue replacement=True" in differences
    assert "B: approved Remove (Remove AWS::SQS::Queue), now no change" in differences
    assert "C: not in the approved plan, now Add (Add AWS::SQS::Queue)" in differences
