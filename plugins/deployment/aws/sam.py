"""The SAM transform, run locally.

Real CloudFormation expands ``Transform: AWS::Serverless-2016-10-31`` server-side.
moto cannot, so where ``stack.transform_locally`` is set (the sandbox) the
pipeline and the sandbox's seeding submit the template expanded here by
``samtranslator``, the library CloudFormation's own transform is built on.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import yaml
from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import intrinsics_multi_constructor

# samtranslator resolves managed policies named in a template (e.g. ``Policies:
# [AmazonDynamoDBReadOnlyAccess]``) through IAM's ListPolicies; the ones a SAM
# template is likely to name are listed here so no IAM call is made.
MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in [
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("service-role/", "AWSLambdaDynamoDBExecutionRole"),
        ("", "AWSXRayDaemonWriteAccess"),
        ("", "AmazonDynamoDBReadOnlyAccess"),
        ("", "AmazonDynamoDBFullAccess"),
        ("", "AmazonS3ReadOnlyAccess"),
        ("", "CloudWatchLambdaInsightsExecutionRolePolicy"),
    ]
}


class SamTransformError(ValueError):
    """A template samtranslator cannot expand, with its reasons."""


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (``!Ref``, ``!Sub``...)."""


_CfnLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def parse_template(template_body: str) -> dict[str, Any]:
    """A CloudFormation template (JSON or YAML with short-form intrinsics) as a dict."""
    try:
        template = yaml.load(template_body, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise SamTransformError(f"the template is not valid YAML or JSON: {err}") from None
    if not isinstance(template, dict):
        raise SamTransformError("the template's top level must be a mapping")
    return template


def transform_template(template_body: str, parameters: dict[str, str], region: str) -> str:
    """Expand the SAM template ``template_body`` into plain CloudFormation (JSON).

    ``parameters`` are the stack's parameter values; ``region`` sets ``AWS::Region``
    and the partition of the ARNs the transform generates. A template without the
    SAM transform is returned unchanged in meaning (as JSON).
    """
    template = parse_template(template_body)
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    translator = Translator(
        None, Parser(), boto_session=boto3.session.Session(region_name=region), metrics=metrics
    )
    try:
        transformed = translator.translate(
            template,
            parameter_values=dict(parameters),
            get_managed_policy_map=lambda: MANAGED_POLICIES,
        )
    except InvalidDocumentException as err:
        reasons = "; ".join(cause.message for cause in err.causes)
        raise SamTransformError(f"the SAM transform rejected the template: {reasons}") from None
    finally:
        metrics.publish()  # to the dummy publisher; unpublished metrics log a warning
    return json.dumps(transformed, indent=2, sort_keys=True)
