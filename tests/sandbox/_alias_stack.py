"""A small stack shaped like the reference template's API function, version and alias."""

from __future__ import annotations

import itertools
import json

from tests.sandbox._poll import poll

_names = itertools.count(1)


def template(routing: bool = False) -> str:
    """The reference template's shape: the function runs AppVersion; a retained version per release;
    alias ``live`` on LiveVersion, or on the version this stack published when that is empty. With
    ``routing``, the alias names the published version and sends LiveVersion a quarter."""
    alias = {
        "Name": "live",
        "FunctionName": {"Ref": "Function"},
        "FunctionVersion": {
            "Fn::If": ["HasLiveVersion", {"Ref": "LiveVersion"}, {"Fn::GetAtt": ["Version", "Version"]}]
        },
    }
    if routing:
        alias["FunctionVersion"] = {"Fn::GetAtt": ["Version", "Version"]}
        alias["RoutingConfig"] = {
            "Fn::If": [
                "HasLiveVersion",
                {
                    "AdditionalVersionWeights": [
                        {"FunctionVersion": {"Ref": "LiveVersion"}, "FunctionWeight": 0.25}
                    ]
                },
                {"Ref": "AWS::NoValue"},
            ]
        }
    return json.dumps({
        "Parameters": {"AppVersion": {"Type": "String"}, "LiveVersion": {"Type": "String", "Default": ""}},
        "Conditions": {"HasLiveVersion": {"Fn::Not": [{"Fn::Equals": [{"Ref": "LiveVersion"}, ""]}]}},
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": {"Fn::Sub": "${AWS::StackName}-api"},
                    "Runtime": "python3.12",
                    "Handler": "index.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(event, context):\n    return {}\n"},
                    "Environment": {"Variables": {"APP_VERSION": {"Ref": "AppVersion"}}},
                },
            },
            "Version": {
                "Type": "AWS::Lambda::Version",
                "UpdateReplacePolicy": "Retain",
                "DeletionPolicy": "Retain",
                "Properties": {"FunctionName": {"Ref": "Function"}, "Description": {"Ref": "AppVersion"}},
            },
            "Alias": {"Type": "AWS::Lambda::Alias", "Properties": alias},
        },
        "Outputs": {
            "FunctionVersion": {"Value": {"Fn::GetAtt": ["Version", "Version"]}},
            "AliasArn": {"Value": {"Ref": "Alias"}},
        },
    })  # fmt: skip


def parameters(app_version: str, live_version: str = "") -> list[dict[str, str]]:
    return [
        {"ParameterKey": "AppVersion", "ParameterValue": app_version},
        {"ParameterKey": "LiveVersion", "ParameterValue": live_version},
    ]


def new_stack(cfn) -> str:
    """A stack at v1.0.0 whose alias names the version it published (1); its function is
    ``<name>-api``."""
    name = f"alias-test-{next(_names)}"
    cfn.create_stack(StackName=name, TemplateBody=template(), Parameters=parameters("v1.0.0"))
    return name


def release(cfn, stack, app_version, live_version, *, body=None, until="UPDATE_COMPLETE"):
    """Update the stack (``body`` None: its previous template) and wait for ``until``."""
    source = {"TemplateBody": body} if body else {"UsePreviousTemplate": True}
    cfn.update_stack(StackName=stack, Parameters=parameters(app_version, live_version), **source)
    return poll(lambda: status(cfn, stack), lambda s: s == until)


def status(cfn, stack):
    return cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
