"""The stack back to the backup: an update in progress cancelled, an ``UPDATE_ROLLBACK_FAILED``
stack resumed with ``continue_update_rollback``, and when it still differs from the backed-up
template and parameters, a change set of this run that removes or replaces no stateful resource
(``stack.stateful_resource_types``). Idempotent: each step compares first."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

from deployment.backup.restore_point import (
    RollbackError,
    backup_version,
    load_backed_up_stack,
)

# How CloudFormation shows a NoEcho parameter's value: never compared, never sent back.
MASKED = "****"
STACK_SETTLED_OK = {
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "CREATE_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}


# --------------------------------------------------------------------- 2. stack
def _normalize_template(body: Any) -> Any:
    """A template as data, so that formatting and key order do not count as a difference."""
    if isinstance(body, dict):
        return body
    text = str(body)
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {f"!{suffix}": value}

    _Loader.add_multi_constructor("!", _tag)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text.strip()


def stack_differences(live: dict[str, Any], backed_up: dict[str, Any]) -> list[str]:
    """How the live stack differs from the backup (template and parameters), as sentences."""
    differences = []
    if _normalize_template(live["template_body"]) != _normalize_template(backed_up["template_body"]):
        differences.append("the template differs from the backed-up one")
    live_params, saved = live["parameters"], backed_up["parameters"]
    for key in sorted(live_params.keys() | saved.keys()):
        if saved.get(key) == MASKED or live_params.get(key) == MASKED:
            continue  # NoEcho: CloudFormation never shows the value
        if live_params.get(key) != saved.get(key):
            differences.append(f"parameter {key}: live {live_params.get(key)!r}, backup {saved.get(key)!r}")
    return differences


def wait_stack(cfn: Any, name: str, timeout: float, poll: float) -> str:
    """Wait until the stack leaves every ``*_IN_PROGRESS`` state; return that status."""
    deadline = time.monotonic() + timeout
    while True:
        status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise RollbackError(f"stack {name} still {status} after {timeout:.0f} s")
        time.sleep(poll)


def _unsafe_changes(cfg: DeploymentConfig, changes: list[dict[str, Any]]) -> list[str]:
    stateful = set(cfg.stack.stateful_resource_types)
    unsafe = []
    for change in changes:
        if change["resource_type"] not in stateful:
            continue
        if change["action"] == "Remove" or change.get("replacement") in ("True", "Conditional"):
            unsafe.append(
                f"{change['logical_id']} ({change['resource_type']}): {change['action']}"
                f"{' with replacement' if change['action'] == 'Modify' else ''}"
            )
    return unsafe


def settle_stack(
    cfg: DeploymentConfig, cfn: Any, *, timeout: float, poll: float, own_update: bool = False
) -> tuple[str, list[str]]:
    """Bring an update in flight to rest: cancel it, or resume a failed rollback; (status, actions).

    ``own_update``: the update in progress is this rollback's own redeploy (an earlier
    try of the task executed it), so it is waited for, never cancelled.
    """
    from botocore.exceptions import ClientError

    name = cfg.stack.name
    actions: list[str] = []
    status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    if status == "UPDATE_IN_PROGRESS" and own_update:
        actions.append("the update in progress is this rollback's own redeploy: waited for it")
    elif status == "UPDATE_IN_PROGRESS":
        try:
            cfn.cancel_update_stack(StackName=name)
            actions.append("cancel_update_stack: the update in progress was cancelled")
        except ClientError as err:  # it finished or began rolling back in the meantime
            refusal = err.response["Error"].get("Message")
            actions.append(f"cancel_update_stack refused ({refusal}); waited instead")
    if status.endswith("_IN_PROGRESS"):
        status = wait_stack(cfn, name, timeout, poll)
    if status == "UPDATE_ROLLBACK_FAILED":
        cfn.continue_update_rollback(StackName=name)
        actions.append("continue_update_rollback: the failed rollback was resumed")
        status = wait_stack(cfn, name, timeout, poll)
        if status == "UPDATE_ROLLBACK_FAILED":
            raise RollbackError(
                f"stack {name} is UPDATE_ROLLBACK_FAILED again after continue_update_rollback; resources "
                "that cannot roll back must be skipped by hand (ResourcesToSkip)"
            )
    if status not in STACK_SETTLED_OK:
        raise RollbackError(f"stack {name} is {status}: not a state a rollback can update from")
    return status, actions


def restore_stack(
    cfg: DeploymentConfig,
    backup: dict[str, Any],
    run_id: str,
    *,
    timeout: float | None = None,
    poll: float | None = None,
    attempt: int = 1,
    ledger: Ledger | None = None,
) -> dict[str, Any]:
    """Bring the stack back to the backed-up template and parameters; safe to rerun in any state.

    The change set executed is noted in ``rollback.stack-execution`` before it runs, so a
    rerun waits for its own redeploy instead of cancelling it; a change set already spent
    (executed, failed, obsolete) is never reused: the next one gets a new name.
    """
    from deployment.aws import change_sets
    from deployment.aws import cloudformation as cf

    timeout = timeout if timeout is not None else cfg.timings.stack_timeout_seconds
    poll = poll if poll is not None else cfg.timings.status_poll_seconds
    cfn = cf.client(cfg)
    name = cfg.stack.name
    backed_up = load_backed_up_stack(cfg, backup)
    executing = (ledger.read(EXECUTION_SECTION) if ledger is not None else None) or {}
    own = executing.get("attempt") == attempt
    status, actions = settle_stack(cfg, cfn, timeout=timeout, poll=poll, own_update=own)
    differences = stack_differences(cf.live_stack(cfg, cfn), backed_up)
    result: dict[str, Any] = {
        "status_before": status,
        "actions": actions,
        "differences_found": differences,
        "change_set": None,
    }
    if not differences:
        actions.append("the stack equals the backup: nothing to redeploy")
        return {**result, "status": status, "redeployed": False}

    base = change_sets.change_set_name(
        backup_version(cfg, backup) or "previous", run_id, f"rollback-a{attempt}"
    )
    change_set, described = _usable_change_set(cfg, cfn, base, backed_up, timeout, poll)
    no_changes = described is None or change_sets.is_no_changes(described)
    described = described or {}
    result["change_set"] = {
        "name": change_set,
        "id": described.get("ChangeSetId"),
        "changes": change_sets.summarize(described.get("Changes", [])),
    }
    if no_changes:
        # No resource changes, yet the parameters differ: update them in place.
        _update_parameters(cfg, cfn, backed_up, actions)
    elif described.get("ExecutionStatus") == "AVAILABLE":
        unsafe = _unsafe_changes(cfg, result["change_set"]["changes"])
        if unsafe:
            raise RollbackError(
                f"change set {change_set} would remove or replace stateful resources ({'; '.join(unsafe)}); "
                "not executed, to keep their data. Review it in the console and restore by hand."
            )
        if ledger is not None:
            ledger.write(
                EXECUTION_SECTION,
                {"attempt": attempt, "change_set": change_set, "executed_at": datetime.now(UTC).isoformat()},
            )
        cfn.execute_change_set(StackName=name, ChangeSetName=change_set)
        actions.append(f"execute_change_set {change_set}: the backed-up template and parameters")
    status = wait_stack(cfn, name, timeout, poll)
    if status != "UPDATE_COMPLETE":
        raise RollbackError(f"redeploying the backup left stack {name} in {status}")
    remaining = stack_differences(cf.live_stack(cfg, cfn), backed_up)
    if remaining:
        raise RollbackError(f"after redeploying the backup the stack still differs: {'; '.join(remaining)}")
    return {**result, "status": status, "redeployed": True}


EXECUTION_SECTION = "rollback.stack-execution"
SPENT = {"EXECUTE_IN_PROGRESS", "EXECUTE_COMPLETE", "EXECUTE_FAILED", "OBSOLETE"}
MAX_CHANGE_SETS = 5


def _usable_change_set(
    cfg: DeploymentConfig, cfn: Any, base: str, backed_up: dict[str, Any], timeout: float, poll: float
) -> tuple[str, dict[str, Any] | None]:
    """The first of ``base``, ``base-2``, ... that is not spent, found or created, and described
    (None: CloudFormation refused to create it, nothing would change)."""
    from deployment.aws.change_sets import MAX_TEMPLATE_BODY, find_or_create, is_no_changes

    def submission() -> dict[str, Any]:
        body = backed_up["template_body"]
        if len(body.encode()) > MAX_TEMPLATE_BODY:
            raise RollbackError(
                f"the backed-up template is over {MAX_TEMPLATE_BODY} bytes; "
                "redeploy it from its S3 copy by hand"
            )
        return {
            "TemplateBody": body,
            "Parameters": _parameter_list(backed_up["parameters"]),
            "Capabilities": list(cfg.stack.capabilities),
            "Description": "rollback to the backed-up template and parameters",
        }

    for number in range(1, MAX_CHANGE_SETS + 1):
        name = base if number == 1 else f"{base}-{number}"
        # A failed one is made again, even one that found nothing to change: the stack still
        # differs from the backup. One executed stays, and the next name is tried.
        described = find_or_create(
            cfn, cfg.stack.name, name, submission, timeout=timeout, poll=poll, replace=_failed
        )
        if described is None or is_no_changes(described) or described.get("ExecutionStatus") not in SPENT:
            return name, described
    raise RollbackError(
        f"{MAX_CHANGE_SETS} rollback change sets ({base}...) are spent and the stack still "
        "differs from the backup; restore it by hand"
    )


def _failed(described: dict[str, Any]) -> bool:
    return described["Status"] == "FAILED"


def _update_parameters(
    cfg: DeploymentConfig, cfn: Any, backed_up: dict[str, Any], actions: list[str]
) -> None:
    from botocore.exceptions import ClientError

    from deployment.aws.change_sets import NO_CHANGES_MARKERS

    try:
        cfn.update_stack(
            StackName=cfg.stack.name,
            TemplateBody=backed_up["template_body"],
            Parameters=_parameter_list(backed_up["parameters"]),
            Capabilities=list(cfg.stack.capabilities),
        )
        actions.append("update_stack: the change set had no resource changes; parameters set back in place")
    except ClientError as err:
        if not any(marker in str(err) for marker in NO_CHANGES_MARKERS):
            raise
        actions.append("CloudFormation reports no update to perform: the difference has no effect")


def _parameter_list(parameters: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"ParameterKey": k, "UsePreviousValue": True}
        if v == MASKED
        else {"ParameterKey": k, "ParameterValue": v}
        for k, v in sorted(parameters.items())
    ]
