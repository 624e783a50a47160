"""The local SAM transform used where ``stack.transform_locally`` is set (the sandbox)."""

from __future__ import annotations

import json

import pytest

from deployment.aws.sam import SamTransformError, transform_template
from deployment.config import load_config

CFG = load_config("sandbox")


def _transform(version: str) -> dict:
    """The sample template as ``sam package`` leaves it (CodeUri in S3), transformed."""
    source = CFG.stack.template_path.read_text().replace("CodeUri: functions/api/", "CodeUri: s3://b/api.zip")
    params = {**CFG.stack.parameters, CFG.stack.version_parameter: version}
    return json.loads(transform_template(source, params, CFG.region))


def test_expands_the_sample_template_into_plain_cloudformation():
    template = _transform("v1.0.0")
    assert "Transform" not in template
    types = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::DynamoDB::Table", "AWS::Lambda::Function", "AWS::IAM::Role"} <= types
    function = template["Resources"]["ApiFunction"]["Properties"]
    assert function["Environment"]["Variables"]["APP_VERSION"] == {"Ref": "AppVersion"}
    assert {"Environment", "AppVersion"} <= set(template["Parameters"])
    for table in ("ContentTable", "UsersTable"):
        assert template["Resources"][table]["DeletionPolicy"] == "Retain"


def test_same_input_same_output():
    assert _transform("v1.1.0") == _transform("v1.1.0")


def test_invalid_sam_resource_names_the_resource():
    bad = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Api:\n    Type: AWS::Serverless::Function\n"
    with pytest.raises(SamTransformError, match=r"Resource with id \[Api\] is invalid"):
        transform_template(bad, {}, "us-west-2")


def test_not_yaml_is_a_clear_error():
    with pytest.raises(SamTransformError, match="not valid YAML or JSON"):
        transform_template("Resources: [", {}, "us-west-2")
