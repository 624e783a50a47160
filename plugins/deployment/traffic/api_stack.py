"""CloudFormation stays the truth for the API alias (README "The API canary").

During a release the pipeline moves the alias outside CloudFormation (``traffic.api_alias``), so
the stack's alias drifts while the steps run. Once the alias serves the new version alone, a
parameters-only stack update (the same template, every other parameter kept) writes that version
into ``backend.version_parameter``: the template and the alias agree again, drift detection
reports the alias ``IN_SYNC``, and no later stack update can move the API's traffic by surprise.
A rollback needs no such update: restoring the backed-up stack restores the parameter too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

ALIAS_TYPE = "AWS::Lambda::Alias"


def sync_parameters(cfg: DeploymentConfig, parameters: dict[str, str], version: str) -> list[dict] | None:
    """UpdateStack's parameters that write ``version`` into the stack; None when it has it already."""
    assert cfg.backend is not None
    name = cfg.backend.version_parameter
    if parameters.get(name) == version:
        return None
    kept = [{"ParameterKey": key, "UsePreviousValue": True} for key in sorted(parameters) if key != name]
    return [*kept, {"ParameterKey": name, "ParameterValue": version}]


def start_sync(cfg: DeploymentConfig, version: str, token: str) -> dict[str, Any] | None:
    """Start the parameters-only update that names ``version``; None when the stack names it already.

    ``token`` (ClientRequestToken) makes a retried call the same request."""
    from datetime import UTC, datetime

    from deployment.aws import cloudformation as cf

    live = cf.live_stack(cfg, template=False)
    parameters = sync_parameters(cfg, live["parameters"], version)
    if parameters is None:
        return None
    since = datetime.now(UTC).isoformat()
    cf.client(cfg).update_stack(
        StackName=cfg.stack.name,
        UsePreviousTemplate=True,
        Parameters=parameters,
        Capabilities=list(cfg.stack.capabilities),
        ClientRequestToken=token,
    )
    return {"version": version, "started_at": since, "status_before": live["status"]}


def alias_drift(cfg: DeploymentConfig, *, timeout: float = 60, poll: float | None = None) -> dict[str, Any]:
    """Drift detection on the stack, as CloudFormation reports it for the alias:
    ``{"status": IN_SYNC | MODIFIED | DELETED | NOT_CHECKED | UNKNOWN, "differences": [...]}``."""
    from deployment.aws import cloudformation as cf

    poll = poll if poll is not None else cfg.timings.status_poll_seconds
    cfn = cf.client(cfg)
    detection = cfn.detect_stack_drift(StackName=cfg.stack.name)["StackDriftDetectionId"]
    deadline = time.monotonic() + timeout
    while True:
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
        if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
            break
        if time.monotonic() > deadline:
            return {
                "status": "UNKNOWN",
                "detection": detection,
                "reason": "drift detection still in progress",
            }
        time.sleep(poll)
    drifts: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:  # boto3 has no paginator for this call: follow NextToken
        page = cfn.describe_stack_resource_drifts(StackName=cfg.stack.name, **token)
        drifts += [d for d in page["StackResourceDrifts"] if d["ResourceType"] == ALIAS_TYPE]
        if not page.get("NextToken"):
            break
        token = {"NextToken": page["NextToken"]}
    if not drifts:
        return {
            "status": "UNKNOWN",
            "detection": detection,
            "reason": "no alias among the stack's drift results",
        }
    drift = drifts[0]
    return {
        "status": drift["StackResourceDriftStatus"],
        "logical_id": drift["LogicalResourceId"],
        "detection": detection,
        "differences": [
            {k: d.get(k) for k in ("PropertyPath", "ExpectedValue", "ActualValue", "DifferenceType")}
            for d in drift.get("PropertyDifferences", [])
        ],
    }
