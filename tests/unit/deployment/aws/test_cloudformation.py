"""CloudFormation's stack and template helpers against in-process moto, with the seeded stack at v1.0.0."""

from __future__ import annotations

import json

import pytest
from _release import COMMIT, PREVIOUS, VERSION

from deployment.aws import cloudformation as cf


def test_release_parameters_add_the_version(cfg):
    assert cf.release_parameters(cfg, VERSION) == {**cfg.stack.parameters, "AppVersion": VERSION}


def test_template_body_transforms_the_packaged_template_locally_in_the_sandbox(cfg, aws):
    body = json.loads(cf.template_body(cfg, VERSION, aws["builds"][VERSION]))
    assert "Transform" not in body
    function = body["Resources"]["ApiFunction"]
    assert function["Type"] == "AWS::Lambda::Function"
    assert function["Properties"]["Code"]["S3Bucket"] == cfg.artifacts.bucket
    assert function["Properties"]["Code"]["S3Key"].startswith(f"builds/{COMMIT}/code/")


def test_template_body_is_the_packaged_sam_template_in_production(cfg, aws):
    production = cfg.model_copy(update={"stack": cfg.stack.model_copy(update={"transform_locally": False})})
    assert cf.template_body(production, VERSION, aws["builds"][VERSION]) == aws["builds"][VERSION]


def test_live_stack(cfg, aws):
    live = cf.live_stack(cfg)
    assert live["status"] == "UPDATE_COMPLETE"  # created, then its API alias adopted (seed.adopt_api_alias)
    assert live["parameters"][cfg.stack.version_parameter] == PREVIOUS
    assert (
        live["parameters"][cfg.backend.version_parameter]
        == live["outputs"][cfg.backend.version_output]
        == "1"
    )
    assert live["outputs"]["AppVersion"] == PREVIOUS
    assert json.loads(live["template_body"])["Resources"]["ContentTable"]
    assert cf.deployed_version(cfg) == PREVIOUS


def test_live_stack_missing(cfg, aws):
    aws["cfn"].delete_stack(StackName=cfg.stack.name)
    assert cf.describe_stack(cfg) is None
    with pytest.raises(cf.CloudFormationError, match="does not exist"):
        cf.live_stack(cfg)
