"""Change sets: the one path by which the release's plan and deploy and the rollback create,
await and describe them.

A change set is named from the version, a purpose (``plan`` for the preview the approvers
see, ``deploy`` for the one validated and executed, ``rollback-a<attempt>`` for the
rollback's) and the run, so a rerun finds its change set instead of creating another. A
change set is reduced to a *summary*: an order-independent list of normalized resource
changes, the thing both the plan shows and the "identical in effect" check compares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from deployment.aws import cloudformation as cf
from deployment.aws.cloudformation import CloudFormationError, error_text

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

# CloudFormation accepts at most this many bytes inline; larger bodies go through S3.
MAX_TEMPLATE_BODY = 51_200
CHANGE_SET_PENDING = {"CREATE_PENDING", "CREATE_IN_PROGRESS", "DELETE_PENDING", "DELETE_IN_PROGRESS"}
NO_CHANGES_MARKERS = ("didn't contain changes", "No updates are to be performed")


def change_set_name(version: str, run_id: str, purpose: str) -> str:
    """``release-v1-2-3-<purpose>-<run hash>``: valid for CloudFormation, stable per run."""
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:12]
    return f"release-{re.sub(r'[^A-Za-z0-9]+', '-', version).strip('-')}-{purpose}-{digest}"


# ------------------------------------------------------------- create, await, describe
def find(cfn: Any, stack: str, name: str) -> dict[str, Any] | None:
    try:
        return cfn.describe_change_set(StackName=stack, ChangeSetName=name)
    except ClientError as err:
        code = err.response["Error"].get("Code", "")
        if code == "ChangeSetNotFound" or "does not exist" in err.response["Error"].get("Message", ""):
            return None
        raise


def is_spent(described: dict[str, Any]) -> bool:
    """A change set that can never be executed: failed (not for "no changes"), executed, obsolete."""
    if described["Status"] == "FAILED":
        return not is_no_changes(described)
    return described.get("ExecutionStatus") in {"EXECUTE_COMPLETE", "EXECUTE_FAILED", "OBSOLETE"}


def is_no_changes(described: dict[str, Any]) -> bool:
    reason = described.get("StatusReason") or ""
    return described.get("Status") == "FAILED" and any(m in reason for m in NO_CHANGES_MARKERS)


def _waiter_config(timeout: float, poll: float) -> dict[str, float]:
    """A try every ``poll`` seconds until ``timeout`` has passed (botocore's own: 30 s apart, for an
    hour); without a pause, one try."""
    return {"Delay": poll, "MaxAttempts": math.floor(timeout / poll) + 1 if poll > 0 else 1}


def _wait(cfn: Any, stack: str, name: str, timeout: float, poll: float) -> dict[str, Any]:
    # The waiter stops at CREATE_COMPLETE, at FAILED (perhaps only for "no changes") or at the
    # timeout: which, the description tells.
    with contextlib.suppress(WaiterError):
        cfn.get_waiter("change_set_create_complete").wait(
            StackName=stack, ChangeSetName=name, WaiterConfig=_waiter_config(timeout, poll)
        )
    described = _describe_all(cfn, stack, name)
    if described["Status"] in CHANGE_SET_PENDING:
        raise CloudFormationError(f"change set {name} still {described['Status']} after {timeout:.0f} s")
    return described


def _describe_all(cfn: Any, stack: str, name: str) -> dict[str, Any]:
    """``describe_change_set`` with every page of ``Changes`` joined."""
    pages = cfn.get_paginator("describe_change_set").paginate(StackName=stack, ChangeSetName=name)
    return pages.build_full_result()


def find_or_create(
    cfn: Any,
    stack: str,
    name: str,
    submission: Callable[[], dict[str, Any]],
    *,
    timeout: float,
    poll: float,
    replace: Callable[[dict[str, Any]], bool] = is_spent,
) -> dict[str, Any] | None:
    """The change set ``name`` of ``stack``: the one a rerun finds, unless ``replace`` rejects it
    (then it is deleted), else created from what ``submission()`` returns (``create_change_set``'s
    template, parameters, capabilities and description: called only to create, so a large
    template is uploaded once); awaited, and described with every page of its changes. None
    when CloudFormation refuses to create it because nothing would change; a change set that
    fails for any other reason is an error.
    """
    described = find(cfn, stack, name)
    if described is not None and replace(described):
        cfn.delete_change_set(StackName=stack, ChangeSetName=name)
        described = None
    if described is None:
        try:
            cfn.create_change_set(StackName=stack, ChangeSetName=name, ChangeSetType="UPDATE", **submission())
        except ClientError as err:
            if any(marker in error_text(err) for marker in NO_CHANGES_MARKERS):
                return None
            raise CloudFormationError(f"creating change set {name} failed: {error_text(err)}") from None
    described = _wait(cfn, stack, name, timeout, poll)
    if described["Status"] == "FAILED" and not is_no_changes(described):
        raise CloudFormationError(
            f"change set {name} FAILED: {described.get('StatusReason') or 'no reason given'}"
        )
    return described


# ------------------------------------------------------------------ the release's
def _template_argument(ledger: Ledger | None, body: str, name: str) -> dict[str, str]:
    if len(body.encode()) <= MAX_TEMPLATE_BODY:
        return {"TemplateBody": body}
    if ledger is None:
        raise CloudFormationError(
            f"the template is {len(body.encode())} bytes, over CloudFormation's inline limit of "
            f"{MAX_TEMPLATE_BODY}; a deployment record is needed to upload it to S3"
        )
    suffix = "json" if body.lstrip().startswith("{") else "yaml"
    ledger.write_text(f"template-{name}", body, suffix)
    key = ledger.key(f"template-{name}", suffix)
    return {"TemplateURL": f"https://{ledger.bucket}.s3.amazonaws.com/{key}"}


def ensure_change_set(
    cfg: DeploymentConfig,
    version: str,
    run_id: str,
    purpose: str,
    *,
    ledger: Ledger | None = None,
    packaged: str | None = None,
    timeout: float | None = None,
    poll: float | None = None,
) -> dict[str, Any]:
    """Create (or find, on a rerun) this run's change set for ``purpose`` from the ``packaged`` template
    (default: the build ``pre_deployment_validation`` verified, read through ``ledger``).

    Returns ``{name, id, status, execution_status, no_changes, parameters, template_sha256,
    submitted_sha256, changes}``: ``template_sha256`` is the packaged template's digest (the
    build's), ``submitted_sha256`` that of the body sent (differs only when transformed
    locally); ``changes`` is the normalized summary (see :func:`summarize`). A change set
    already spent (failed, executed, and maybe rolled back since) is made anew under its name;
    one CloudFormation cannot create for any reason other than "no changes" is an error.
    """
    cfn = cf.client(cfg)
    stack = cfg.stack.name
    if cf.describe_stack(cfg, cfn) is None:
        raise CloudFormationError(
            f"stack {stack!r} does not exist in {cfg.region}; a release updates an existing stack"
        )
    name = change_set_name(version, run_id, purpose)
    if packaged is None:
        if ledger is None:
            raise CloudFormationError("a change set needs the packaged template or the run's record")
        packaged = cf.release_template(cfg, ledger)
    body = cf.template_body(cfg, version, packaged)
    from deployment.aws.lambda_alias import live_version_parameter

    parameters = {**cf.release_parameters(cfg, version), **live_version_parameter(cfg, packaged)}

    def submission() -> dict[str, Any]:
        return {
            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
            "Capabilities": list(cfg.stack.capabilities),
            "Description": f"{purpose} of release {version} (run {run_id})",
            **_template_argument(ledger, body, name),
        }

    timeout = timeout if timeout is not None else cfg.timings.stack_timeout_seconds
    poll = poll if poll is not None else cfg.timings.status_poll_seconds
    described = find_or_create(cfn, stack, name, submission, timeout=timeout, poll=poll)
    return _result(name, described, parameters, packaged, body)


def _result(
    name: str,
    described: dict[str, Any] | None,
    parameters: dict[str, str],
    packaged: str,
    body: str,
) -> dict[str, Any]:
    no_changes = described is None or is_no_changes(described)
    described = described or {}
    return {
        "name": name,
        "id": described.get("ChangeSetId"),
        "status": described.get("Status", "FAILED"),
        "execution_status": described.get("ExecutionStatus", "UNAVAILABLE"),
        "no_changes": no_changes,
        "parameters": dict(sorted(parameters.items())),
        "template_sha256": cf.template_digest(packaged),
        "submitted_sha256": cf.template_digest(body),
        "changes": [] if no_changes else summarize(described.get("Changes", [])),
    }


# ---------------------------------------------------------------------- summaries
def _detail(detail: dict[str, Any]) -> dict[str, Any]:
    target = detail.get("Target", {})
    return {
        "attribute": target.get("Attribute"),
        "name": target.get("Name"),
        "requires_recreation": target.get("RequiresRecreation"),
        "change_source": detail.get("ChangeSource"),
    }


def summarize(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalize ``describe_change_set``'s ``Changes`` into a sorted, comparable list."""
    summary = []
    for change in changes:
        rc = change.get("ResourceChange")
        if change.get("Type", "Resource") != "Resource" or not rc:
            continue
        details = [_detail(d) for d in rc.get("Details", [])]
        summary.append(
            {
                "action": rc["Action"],
                "logical_id": rc["LogicalResourceId"],
                "resource_type": rc["ResourceType"],
                "physical_id": rc.get("PhysicalResourceId"),
                "replacement": rc.get("Replacement"),
                "scope": sorted(rc.get("Scope", [])),
                "details": sorted(details, key=lambda d: json.dumps(d, sort_keys=True)),
            }
        )
    return sorted(summary, key=lambda c: (c["logical_id"], c["action"]))


def _effect(change: dict[str, Any]) -> dict[str, Any]:
    # The physical id of a resource about to be added is unknown, and CloudFormation may
    # or may not report it; it is not part of what the change does.
    return {k: v for k, v in change.items() if k != "physical_id"}


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The differences in effect between two :func:`ensure_change_set` results, as sentences."""
    differences = []
    if expected.get("template_sha256") != actual.get("template_sha256"):
        differences.append(
            f"packaged template differs: approved sha256 {expected.get('template_sha256')}, "
            f"now {actual.get('template_sha256')}"
        )
    if expected.get("parameters") != actual.get("parameters"):
        differences.append(
            f"parameters differ: approved {expected.get('parameters')}, now {actual.get('parameters')}"
        )
    before = {c["logical_id"]: _effect(c) for c in expected.get("changes", [])}
    after = {c["logical_id"]: _effect(c) for c in actual.get("changes", [])}
    for logical_id in sorted(before.keys() | after.keys()):
        old, new = before.get(logical_id), after.get(logical_id)
        if old == new:
            continue
        if old is None:
            differences.append(f"{logical_id}: not in the approved plan, now {new['action']} ({_brief(new)})")
        elif new is None:
            differences.append(f"{logical_id}: approved {old['action']} ({_brief(old)}), now no change")
        else:
            differences.append(f"{logical_id}: approved {_brief(old)}, now {_brief(new)}")
    return differences


def _brief(change: dict[str, Any]) -> str:
    parts = [change["action"], change["resource_type"]]
    if change.get("replacement"):
        parts.append(f"replacement={change['replacement']}")
    if change.get("scope"):
        parts.append(f"scope={','.join(change['scope'])}")
    if change.get("details"):
        parts.append("details=" + ";".join(f"{d['attribute']}:{d['name']}" for d in change["details"]))
    return " ".join(parts)
