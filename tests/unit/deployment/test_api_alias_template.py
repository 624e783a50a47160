"""The sample application stack owns the API function's versions and the alias the configuration's
``backend`` names, on the stack parameter it names."""

from __future__ import annotations

import pytest
from cfnlint.decode import cfn_yaml

from deployment.config import PROJECT_ROOT, load_config


@pytest.fixture(scope="module")
def template():
    return cfn_yaml.loads((PROJECT_ROOT / "include" / "templates" / "bayon-coagent.yaml").read_text())


def test_each_release_publishes_a_version_the_stack_keeps(template):
    version = template["Resources"]["ApiFunctionVersion"]
    assert version["Type"] == "AWS::Lambda::Version"
    assert (version["UpdateReplacePolicy"], version["DeletionPolicy"]) == ("Retain", "Retain")
    release_parameter = load_config("production").stack.version_parameter
    assert version["Properties"] == {
        "FunctionName": {"Ref": "ApiFunction"},
        "Description": {"Ref": release_parameter},
    }
    assert template["Outputs"]["ApiFunctionVersion"]["Value"] == {
        "Fn::GetAtt": ["ApiFunctionVersion", "Version"]
    }


@pytest.mark.parametrize("config", ["production", "sandbox"])
def test_the_alias_is_the_configured_one_on_the_configured_parameter(template, config):
    cfg = load_config(config)
    backend, parameters = cfg.backend, template["Parameters"]
    function = template["Resources"]["ApiFunction"]["Properties"]["FunctionName"]["Fn::Sub"]
    assert function.replace("${Environment}", cfg.stack.parameters["Environment"]) == backend.function_name
    live = parameters[backend.version_parameter]
    assert (live["Type"], live["Default"], live["AllowedPattern"]) == ("String", "", "^[0-9]*$")
    assert template["Conditions"]["HasLiveVersion"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": backend.version_parameter}, ""]}]
    }
    alias = template["Resources"]["ApiLiveAlias"]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"] == {
        "Name": backend.alias,
        "FunctionName": {"Ref": "ApiFunction"},
        "FunctionVersion": {
            "Fn::If": [
                "HasLiveVersion",
                {"Ref": backend.version_parameter},
                {"Fn::GetAtt": ["ApiFunctionVersion", "Version"]},
            ]
        },
    }
    assert template["Outputs"]["ApiAliasArn"]["Value"] == {"Ref": "ApiLiveAlias"}
