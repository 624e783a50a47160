"""The API canary's alias on moto: moved with the colours in one change, restored even when the
alias cannot be, and the version a release's change set passes."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest

from deployment.aws.lambda_alias import ApiAliasError, live_version_parameter
from deployment.traffic.api_alias import ApiAlias, ApiVersions, alias_target
from deployment.traffic.api_stack import sync_parameters
from deployment.traffic.paired import ALIAS_ONLY, PairedRouter
from deployment.traffic.route53 import Route53Router
from tests.unit import _fixtures_phases58 as fx

aws_server = fx.aws_server
moto_url = fx.moto_url

TEMPLATE_WITH = "Parameters:\n  LiveVersion: {Type: String, Default: ''}\nResources: {}\n"
TEMPLATE_WITHOUT = "Parameters:\n  AppVersion: {Type: String}\nResources: {}\n"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def api(aws_server):
    """The API function with versions 1 and 2 published and its alias on 1."""
    cfg = aws_server["cfg"]
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    iam = session.client("iam", endpoint_url=aws_server["url"], region_name=cfg.region)
    role = iam.create_role(RoleName="api", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = session.client("lambda", endpoint_url=aws_server["url"], region_name=cfg.region)
    name = cfg.backend.function_name
    client.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": _zip()}
    )
    client.publish_version(FunctionName=name)
    client.update_function_configuration(FunctionName=name, Description="next")
    client.publish_version(FunctionName=name)
    client.create_alias(FunctionName=name, Name=cfg.backend.alias, FunctionVersion="1")
    versions = ApiVersions(
        function=name, alias=cfg.backend.alias, previous="1", new="2", target_colour="green"
    )
    return {"cfg": cfg, "client": client, "versions": versions}


def _alias(api) -> tuple[str, dict]:
    found = api["client"].get_alias(FunctionName=api["versions"].function, Name=api["versions"].alias)
    return found["FunctionVersion"], (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def test_the_colours_split_is_the_alias_split():
    versions = ApiVersions(function="f", alias="live", previous="7", new="8", target_colour="green")
    assert alias_target(versions, {"blue": 100, "green": 0}) == ("7", {})
    assert alias_target(versions, {"blue": 90, "green": 10}) == ("7", {"8": 0.1})
    assert alias_target(versions, {"blue": 50, "green": 50}) == ("7", {"8": 0.5})
    assert alias_target(versions, {"blue": 0, "green": 100}) == ("8", {})
    with pytest.raises(ValueError):
        alias_target(versions, {"blue": 90, "green": 20})


def test_a_step_moves_colours_and_alias_in_one_change_and_a_restore_puts_both_back(api):
    cfg = api["cfg"]
    router = PairedRouter(Route53Router(cfg), ApiAlias(cfg, api["versions"], api["client"]))
    change = router.set_weights({"blue": 90, "green": 10})
    assert change.after == {"blue": 90, "green": 10}
    assert change.api["before"] == {"version": "1", "weights": {}}
    assert change.api["after"] == {"version": "1", "weights": {"2": 0.1}}
    assert _alias(api) == ("1", {"2": 0.1})
    assert router.set_weights({"blue": 90, "green": 10}) is None  # idempotent: nothing to write

    router.set_weights({"blue": 0, "green": 100})
    assert _alias(api) == ("2", {})
    restored = router.restore("blue")
    assert router.weights() == {"blue": 100, "green": 0} and _alias(api) == ("1", {})
    assert restored.api["after"] == {"version": "1", "weights": {}}


def test_an_alias_moved_alone_is_a_change_of_its_own(api):
    cfg = api["cfg"]
    api["client"].update_alias(
        FunctionName=api["versions"].function,
        Name=api["versions"].alias,
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    router = PairedRouter(Route53Router(cfg), ApiAlias(cfg, api["versions"], api["client"]))
    change = router.restore("blue")  # the colours are all on blue already
    assert change.router == ALIAS_ONLY and change.applied_at and _alias(api) == ("1", {})
    router.wait_applied(change, timeout=1)


def test_colours_go_back_even_when_the_alias_cannot(api):
    cfg = api["cfg"]
    missing = ApiVersions(
        function="no-such-function", alias="live", previous="1", new="2", target_colour="green"
    )
    Route53Router(cfg).set_weights({"blue": 50, "green": 50})
    router = PairedRouter(Route53Router(cfg), ApiAlias(cfg, missing, api["client"]))
    with pytest.raises(Exception, match="no-such-function|not found|Function not found"):
        router.restore("blue")
    assert router.weights() == {"blue": 100, "green": 0}


def test_the_change_set_passes_the_version_the_alias_serves(api):
    cfg = api["cfg"]
    assert live_version_parameter(cfg, TEMPLATE_WITH) == {"LiveVersion": "1"}
    assert live_version_parameter(cfg, TEMPLATE_WITHOUT) == {}  # a build from before the canary
    api["client"].update_alias(
        FunctionName=api["versions"].function,
        Name=api["versions"].alias,
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    with pytest.raises(ApiAliasError, match="split"):
        live_version_parameter(cfg, TEMPLATE_WITH)


def test_the_sync_keeps_every_other_parameter(aws_server):
    cfg = aws_server["cfg"]
    parameters = {"AppVersion": "v1.1.0", "Environment": "production", "LiveVersion": "1"}
    assert sync_parameters(cfg, parameters, "1") is None
    assert sync_parameters(cfg, parameters, "2") == [
        {"ParameterKey": "AppVersion", "UsePreviousValue": True},
        {"ParameterKey": "Environment", "UsePreviousValue": True},
        {"ParameterKey": "LiveVersion", "ParameterValue": "2"},
    ]
