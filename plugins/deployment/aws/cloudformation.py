"""CloudFormation helpers shared by the plan, the backup, the deploy and the rollback: the live
stack, and the template and parameters a release submits (its change sets: ``change_sets``).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

STACK_MISSING_MARKERS = ("does not exist",)


class CloudFormationError(RuntimeError):
    """A stack or change set not in the state the release needs, with what was found."""


def client(cfg: DeploymentConfig) -> Any:
    from airflow.providers.amazon.aws.hooks.cloud_formation import CloudFormationHook

    from deployment.hooks.aws import hook_for

    return hook_for(cfg, CloudFormationHook).conn


def error_text(err: ClientError) -> str:
    return f"{err.response['Error'].get('Code', '')}: {err.response['Error'].get('Message', '')}"


# --------------------------------------------------------------------- live stack
def describe_stack(cfg: DeploymentConfig, cfn: Any = None) -> dict[str, Any] | None:
    """The stack's ``describe_stacks`` entry, or None when the stack does not exist."""
    cfn = cfn or client(cfg)
    try:
        return cfn.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]
    except ClientError as err:
        if any(marker in error_text(err) for marker in STACK_MISSING_MARKERS):
            return None
        raise


def live_stack(cfg: DeploymentConfig, cfn: Any = None, *, template: bool = True) -> dict[str, Any]:
    """The live stack's status, parameters, outputs and (``template``) original template body (as
    text): one ``DescribeStacks``, and a ``GetTemplate`` for the body."""
    cfn = cfn or client(cfg)
    stack = describe_stack(cfg, cfn)
    if stack is None:
        raise CloudFormationError(f"stack {cfg.stack.name!r} does not exist in {cfg.region}")
    found = {
        "stack_id": stack["StackId"],
        "status": stack["StackStatus"],
        "parameters": {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
    }
    if template:
        body = cfn.get_template(StackName=cfg.stack.name, TemplateStage="Original")["TemplateBody"]
        if not isinstance(body, str):  # botocore decodes JSON template bodies into dicts
            body = json.dumps(body, indent=2)
        found["template_body"] = body
    return found


def deployed_version(cfg: DeploymentConfig, cfn: Any = None) -> str | None:
    stack = describe_stack(cfg, cfn)
    if stack is None:
        return None
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    return params.get(cfg.stack.version_parameter)


# ------------------------------------------------------------------- what to submit
def release_parameters(cfg: DeploymentConfig, version: str) -> dict[str, str]:
    return {**cfg.stack.parameters, cfg.stack.version_parameter: version}


def template_body(cfg: DeploymentConfig, version: str, packaged: str) -> str:
    """The packaged template to submit: SAM as is, or expanded locally where ``stack.transform_locally``."""
    if not cfg.stack.transform_locally:
        return packaged
    from deployment.aws.sam import transform_template

    return transform_template(packaged, release_parameters(cfg, version), cfg.region)


def release_template(cfg: DeploymentConfig, ledger: Ledger, template_sha256: str | None = None) -> str:
    """The release's packaged template, read from its build and checked against the verified digest.

    The digest is ``template_sha256`` when given (the approved plan's), else the one
    ``pre_deployment_validation`` verified (the record's ``artifact`` section).
    """
    from deployment.aws.artifacts import ArtifactError, packaged_template

    build = ledger.read("artifact") or {}
    if not build.get("ok") or not build.get("template_sha256"):
        raise ArtifactError(
            f"no verified build in {ledger.uri('artifact')}: "
            "pre_deployment_validation.verify_artifact has not passed"
        )
    return packaged_template(cfg, build["commit_sha"], template_sha256 or build["template_sha256"])


def template_digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()
