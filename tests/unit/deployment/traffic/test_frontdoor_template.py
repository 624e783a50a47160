"""The sample application stack carries the front door, with the function file verbatim."""

from __future__ import annotations

import pytest
from cfnlint.decode import cfn_yaml

from deployment.config import PROJECT_ROOT, load_config
from sandbox.frontdoor import FUNCTION_FILE


@pytest.fixture(scope="module")
def template():
    return cfn_yaml.loads((PROJECT_ROOT / "include" / "templates" / "bayon-coagent.yaml").read_text())


def test_the_function_in_the_stack_is_the_tested_file(template):
    function = template["Resources"]["FrontDoorFunction"]["Properties"]
    assert function["FunctionCode"] == FUNCTION_FILE.read_text()
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    kvs = function["FunctionConfig"]["KeyValueStoreAssociations"][0]["KeyValueStoreARN"]
    assert kvs == {"Fn::GetAtt": ["FrontDoorKeyValueStore", "Arn"]}


def test_the_distribution_fronts_both_branches_on_the_custom_domain(template):
    config = template["Resources"]["FrontDoorDistribution"]["Properties"]["DistributionConfig"]
    assert config["Aliases"] == [{"Ref": "FrontDoorDomain"}]
    assert config["ViewerCertificate"]["AcmCertificateArn"] == {"Ref": "FrontDoorCertificateArn"}
    assert [o["Id"] for o in config["Origins"]] == ["blue", "green"]
    behaviour = config["DefaultCacheBehavior"]
    assert {a["EventType"] for a in behaviour["FunctionAssociations"]} == {
        "viewer-request",
        "viewer-response",
    }
    assert behaviour["CachePolicyId"] == {"Ref": "FrontDoorCachePolicy"}


def test_the_cache_key_holds_the_colour(template):
    policy = template["Resources"]["FrontDoorCachePolicy"]["Properties"]["CachePolicyConfig"]
    headers = policy["ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"]
    assert headers == {"HeaderBehavior": "whitelist", "Headers": ["x-bg-colour"]}


def test_production_turns_it_on_and_reads_the_store_from_its_output(template):
    production, sandbox = load_config("production"), load_config("sandbox")
    assert production.stack.parameters["FrontDoorDomain"] and not sandbox.stack.parameters["FrontDoorDomain"]
    assert production.traffic.router == "keyvaluestore"
    assert production.traffic.front_door.key_value_store_output in template["Outputs"]
    front_door = [name for name, r in template["Resources"].items() if name.startswith("FrontDoor")]
    assert all(template["Resources"][name]["Condition"] == "HasFrontDoor" for name in front_door)
