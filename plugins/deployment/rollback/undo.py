"""Undo a release: traffic first, then the stack, then the idle Amplify branch; verify.

Only what the record says was changed is undone (:func:`plan_from_record`):

- traffic, when ``frontend.traffic_moved``: both weighted records back to 100 % on the
  stable colour in one Route 53 batch (seconds, before anything slow);
- the stack, when ``infrastructure.changed`` (or the infrastructure phase started and the
  live stack no longer equals the backup): cancel an update in progress, finish an
  ``UPDATE_ROLLBACK_FAILED`` with ``continue_update_rollback``, and when the stack still
  differs from the backed-up template and parameters, redeploy them through a change set
  of this run;
- the idle branch, when the frontend phase started: its environment variables back to the
  backed-up ones and any build still running on it stopped. The stable branch is not
  rebuilt: it still serves the previous version.

Data is never restored: no DynamoDB table is touched, and a rollback change set that
would remove or replace a stateful resource (``stack.stateful_resource_types``) is not
executed. The backup ids stay in the record for a person to restore from.

Every step is idempotent: it compares the world with the wanted state first and does
nothing, saying so, when they already agree.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig
    from deployment.ledger import Ledger

from deployment.backup.restore_point import (
    RollbackError,
    backup_branch_environment,
    backup_live_colour,
    backup_version,
    dynamodb_backups,
    load_backed_up_stack,
)

log = logging.getLogger(__name__)

COLOURS = ("blue", "green")
STACK_SETTLED_OK = {
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "CREATE_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}
AMPLIFY_IN_FLIGHT = {"CREATED", "PENDING", "PROVISIONING", "RUNNING"}
MASKED = "****"


# ---------------------------------------------------------------------- the plan
def plan_from_record(
    cfg: DeploymentConfig, record: dict[str, Any], live: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What to undo, decided from the deployment record and from what is live now.

    ``live`` (:func:`live_differences`) is production as it is when the plan is made:
    traffic not all on the stable colour, or a stack that differs from the backup, is
    undone whatever the record says, so a second attempt is planned from the world and
    not from the first attempt's notes. ``undo`` holds ``traffic``, ``stack`` and
    ``frontend`` flags; ``needed`` is False when nothing was changed (a failure in
    validation, approval, backup or before the change set ran), and then nothing is
    touched and nobody is paged.
    """
    from deployment.traffic.router import full, other

    backup = record.get("backup") or {}
    infrastructure = record.get("infrastructure") or {}
    frontend = record.get("frontend") or {}
    live = live or {}
    stable = frontend.get("live_colour_before") or backup_live_colour(backup)
    reasons = []
    traffic_off = bool(live.get("weights")) and stable in COLOURS and live["weights"] != full(stable)
    undo = {
        "traffic": bool(frontend.get("traffic_moved")) or traffic_off,
        "stack": bool(infrastructure.get("changed")) or bool(live.get("stack_differences")),
        "frontend": bool(frontend),
    }
    if frontend.get("traffic_moved"):
        reasons.append("frontend.traffic_moved: the weights were changed")
    if traffic_off:
        reasons.append(f"live now: traffic is {live['weights']}, not all on {stable}")
    if infrastructure.get("changed"):
        reasons.append("infrastructure.changed: the change set was executed")
    if live.get("stack_differences"):
        reasons.append("live now: the stack differs from the backup: " + "; ".join(live["stack_differences"]))
    if undo["frontend"]:
        reasons.append("the frontend phase started: the idle branch may have new variables or a build")
    if any(undo.values()) and not backup:
        raise RollbackError(
            "the record shows production was changed but has no backup section: nothing to restore from; "
            "restore by hand"
        )
    if undo["traffic"] and stable not in COLOURS:
        raise RollbackError("traffic was moved but neither frontend nor backup names the stable colour")
    return {
        "needed": any(undo.values()),
        "undo": undo,
        "reasons": reasons or ["nothing was changed: the failure came before any change to production"],
        "stable_colour": stable,
        "idle_colour": other(stable) if stable in COLOURS else frontend.get("target_colour"),
        "backup": backup,
        "previous_version": backup_version(cfg, backup) if backup else None,
        "dynamodb_backups": dynamodb_backups(backup),
    }


def live_differences(cfg: DeploymentConfig, backup: dict[str, Any]) -> dict[str, Any]:
    """Production now against the backup: the router's weights and how the stack differs."""
    from deployment.aws import cloudformation as cf
    from deployment.traffic import router_for

    weights = router_for(cfg).weights()
    if not (backup.get("stack") or {}).get("template_uri"):
        return {"weights": weights, "stack_differences": []}
    live = cf.live_stack(cfg)
    differences = stack_differences(live, load_backed_up_stack(cfg, backup))
    if live["status"].endswith("_IN_PROGRESS") or live["status"] == "UPDATE_ROLLBACK_FAILED":
        differences.append(f"the stack is {live['status']}")
    return {"weights": weights, "stack_differences": differences}


def last_resort_colour(record: dict[str, Any], live_colour: str | None) -> str | None:
    """The colour live before the release: from the record, else the backup, else the router's."""
    frontend = record.get("frontend") or {}
    for colour in (frontend.get("live_colour_before"), backup_live_colour(record.get("backup") or {})):
        if colour in COLOURS:
            return colour
    return live_colour if live_colour in COLOURS else None


# ------------------------------------------------------------------- 1. traffic
def restore_traffic(cfg: DeploymentConfig, stable: Colour, *, wait_seconds: float = 60) -> dict[str, Any]:
    """Every viewer to ``stable`` at once; waits (briefly) for the change to be applied."""
    from deployment.traffic import router_for
    from deployment.traffic.router import full

    router = router_for(cfg)
    before = router.weights()
    wanted = full(stable)
    change = router.restore(stable)
    insync = None
    if change is not None:
        try:
            router.wait_applied(change, timeout=wait_seconds)
            insync = True
        except TimeoutError:
            insync = False  # the change is accepted and will propagate; do not hold the stack restore
    after = router.weights()
    if after != wanted:
        raise RollbackError(f"traffic weights are {after} after setting {wanted}")
    return {
        "before": before,
        "after": after,
        "change_id": change.change_id if change else None,
        "changed": change is not None,
        "insync": insync,
        "routing_change": change.to_dict() if change else None,
        "restored_at": datetime.now(UTC).isoformat(),
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
    poll: float = 5.0,
    attempt: int = 1,
    ledger: Ledger | None = None,
) -> dict[str, Any]:
    """Bring the stack back to the backed-up template and parameters; safe to rerun in any state.

    The change set executed is noted in ``rollback.stack-execution`` before it runs, so a
    rerun waits for its own redeploy instead of cancelling it; a change set already spent
    (executed, failed, obsolete) is never reused: the next one gets a new name.
    """
    from deployment.aws import cloudformation as cf

    timeout = timeout if timeout is not None else cfg.timings.stack_timeout_seconds
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

    base = cf.change_set_name(backup_version(cfg, backup) or "previous", run_id, f"rollback-a{attempt}")
    change_set, described = _usable_change_set(cfg, cfn, base, backed_up, timeout, poll)
    result["change_set"] = {
        "name": change_set,
        "id": described.get("ChangeSetId"),
        "changes": cf.summarize(described.get("Changes", [])),
    }
    if described.get("NoResourceChanges"):
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
) -> tuple[str, dict[str, Any]]:
    """The first of ``base``, ``base-2``, ... that is not spent, created and described."""
    for number in range(1, MAX_CHANGE_SETS + 1):
        name = base if number == 1 else f"{base}-{number}"
        described = _ensure_rollback_change_set(cfg, cfn, name, backed_up, timeout, poll)
        if described.get("NoResourceChanges") or described.get("ExecutionStatus") not in SPENT:
            return name, described
    raise RollbackError(
        f"{MAX_CHANGE_SETS} rollback change sets ({base}...) are spent and the stack still "
        "differs from the backup; restore it by hand"
    )


def _update_parameters(
    cfg: DeploymentConfig, cfn: Any, backed_up: dict[str, Any], actions: list[str]
) -> None:
    from botocore.exceptions import ClientError

    from deployment.aws.cloudformation import NO_CHANGES_MARKERS

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


def _ensure_rollback_change_set(
    cfg: DeploymentConfig, cfn: Any, name: str, backed_up: dict[str, Any], timeout: float, poll: float
) -> dict[str, Any]:
    """This run's rollback change set, created if missing; waits until it is described."""
    from botocore.exceptions import ClientError

    from deployment.aws.cloudformation import MAX_TEMPLATE_BODY, NO_CHANGES_MARKERS

    stack = cfg.stack.name

    def describe() -> dict[str, Any] | None:
        try:
            return cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        except ClientError as err:
            if err.response["Error"].get("Code") == "ChangeSetNotFound" or "does not exist" in str(err):
                return None
            raise

    described = describe()
    if described is not None and described.get("Status") == "FAILED":
        cfn.delete_change_set(StackName=stack, ChangeSetName=name)
        described = None
    if described is None:
        body = backed_up["template_body"]
        if len(body.encode()) > MAX_TEMPLATE_BODY:
            raise RollbackError(
                f"the backed-up template is over {MAX_TEMPLATE_BODY} bytes; "
                "redeploy it from its S3 copy by hand"
            )
        cfn.create_change_set(
            StackName=stack,
            ChangeSetName=name,
            ChangeSetType="UPDATE",
            TemplateBody=body,
            Parameters=_parameter_list(backed_up["parameters"]),
            Capabilities=list(cfg.stack.capabilities),
            Description="rollback to the backed-up template and parameters",
        )
    deadline = time.monotonic() + timeout
    while True:
        described = describe() or {}
        if described.get("Status") not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise RollbackError(f"change set {name} still {described.get('Status')} after {timeout:.0f} s")
        time.sleep(poll)
    if described.get("Status") == "FAILED":
        if any(marker in (described.get("StatusReason") or "") for marker in NO_CHANGES_MARKERS):
            return {**described, "NoResourceChanges": True}
        raise RollbackError(f"rollback change set {name} FAILED: {described.get('StatusReason')}")
    return described


# ------------------------------------------------------------------ 3. frontend
def restore_frontend(
    cfg: DeploymentConfig, backup: dict[str, Any], idle: Colour, stable: Colour | None = None
) -> dict[str, Any]:
    """Stop a build still running on the idle branch and put its variables back as backed up.

    The values come from the backup's SSE-KMS object, checked against the record's hashes
    (:func:`backup_branch_environment`). Without them (no object, unreadable, or not what the
    record hashed), only the version variable is set back, to the version the stable branch
    serves, and the actions say why.
    """
    from deployment.aws.amplify import client

    amplify = client(cfg)
    app_id, branch = cfg.amplify.app_id, cfg.amplify.branches[idle]
    actions = []
    jobs = amplify.list_jobs(appId=app_id, branchName=branch, maxResults=10).get("jobSummaries", [])
    for job in jobs:
        if job["status"] in AMPLIFY_IN_FLIGHT:
            amplify.stop_job(appId=app_id, branchName=branch, jobId=job["jobId"])
            actions.append(f"stopped job {job['jobId']} ({job['status']})")
    branch_info = amplify.get_branch(appId=app_id, branchName=branch)["branch"]
    current = dict(branch_info.get("environmentVariables") or {})
    wanted, source = backup_branch_environment(cfg, backup, idle)
    if wanted is None:
        actions.append(f"variables not restored from the backup: {source}")
        if stable is None:
            raise RollbackError(f"{source}, and no stable colour is known for {branch}")
        stable_env = amplify.get_branch(appId=app_id, branchName=cfg.amplify.branches[stable])["branch"]
        stable_version = (stable_env.get("environmentVariables") or {}).get(cfg.amplify.version_variable)
        wanted = {**current, cfg.amplify.version_variable: stable_version} if stable_version else current
        source = f"version variable of the stable branch {cfg.amplify.branches[stable]}"
    if wanted != current:
        amplify.update_branch(appId=app_id, branchName=branch, environmentVariables=wanted)
        actions.append(f"environment variables of {branch} restored from the {source}")
    else:
        actions.append(f"environment variables of {branch} already equal the {source}")
    return {
        "branch": branch,
        "colour": idle,
        "actions": actions,
        "variables_changed": wanted != current,
        "rebuilt": False,
    }


# ------------------------------------------------------------------- 4. verify
def metrics_health(
    cfg: DeploymentConfig,
    since: datetime | None = None,
    *,
    attempts: int | None = None,
    poll: float | None = None,
    ignore_alarms: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Production's metrics over the last two poll intervals, none before ``since`` (traffic
    restored), judged by the thresholds. ``ignore_alarms`` (the run's ``emergency.ignore_alarms``)
    has the meaning it has in every watch: listed alarms don't breach, others do.

    Polls again while the verdict is not healthy, at most ``max_insufficient_polls`` more
    times: right after traffic is restored the window can still hold too few requests, the
    bad release's last requests, or an alarm it raised that has not cleared yet. The last
    verdict stands; insufficient data is reported as such, never as healthy.
    """
    from deployment.aws.cloudwatch_metrics import MetricQuery, cloudwatch_client, fetch_sample
    from deployment.judge.verdicts import HEALTHY, evaluate

    cloudwatch = cloudwatch_client(cfg.connections.aws, cfg.region)
    query = MetricQuery.from_config(cfg)
    attempts = attempts if attempts is not None else cfg.thresholds.max_insufficient_polls + 1
    poll = poll if poll is not None else cfg.timings.poll_interval_seconds
    minimum = cfg.metrics.period_seconds * 2
    verdict = None
    for attempt in range(attempts):
        end = query.window_end()  # CloudWatch publishes with a lag: the newest datapoints are not in yet
        recent = end - timedelta(seconds=cfg.timings.poll_interval_seconds * 2)
        start = max(since, recent) if since else recent
        window = max((end - start).total_seconds(), minimum)
        sample = fetch_sample(cloudwatch, query, window, end, ignore_alarms=ignore_alarms)
        verdict = evaluate(sample, cfg.thresholds, check_band=False)
        if verdict.outcome == HEALTHY or attempt == attempts - 1:
            break
        time.sleep(poll)
    assert verdict is not None
    applied = {"ignore_alarms": sorted(ignore_alarms)} if ignore_alarms else {}
    return {"ok": verdict.outcome == HEALTHY, **applied, **verdict.to_dict()}


def verify(
    cfg: DeploymentConfig,
    backup: dict[str, Any],
    stable: Colour | None,
    *,
    check_stack: bool,
    since: datetime | None = None,
    ignore_alarms: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check production is back: traffic, stack = backup, smoke tests on the stable colour, metrics
    (``ignore_alarms`` as in :func:`metrics_health`)."""
    from deployment.aws import cloudformation as cf
    from deployment.checks.smoke import run_smoke_checks
    from deployment.traffic import router_for
    from deployment.traffic.router import full

    checks: dict[str, Any] = {}
    if stable in COLOURS:
        current = router_for(cfg).weights()
        checks["traffic"] = {"ok": current == full(stable), "weights": current}
        smoke = run_smoke_checks(cfg, stable)
        checks["smoke_tests"] = {"ok": all(r.get("ok") for r in smoke), "colour": stable, "results": smoke}
    if check_stack:
        live = cf.live_stack(cfg)
        differences = stack_differences(live, load_backed_up_stack(cfg, backup))
        checks["stack"] = {
            "ok": not differences and live["status"] in STACK_SETTLED_OK,
            "status": live["status"],
            "differences": differences,
        }
        # The build the restored stack runs: its pinned code proven against that build's manifest,
        # each function's CodeSha256 read back from Lambda (running_build.verify_restored_build).
        from deployment.checks.running_build import verify_restored_build

        checks["build"] = verify_restored_build(cfg, backup, live)
    checks["metrics"] = metrics_health(cfg, since, ignore_alarms=ignore_alarms)
    failed = [name for name, check in checks.items() if not check["ok"]]
    return {
        "verified": not failed,
        "failed_checks": failed,
        "checks": checks,
        "verified_at": datetime.now(UTC).isoformat(),
    }


# ------------------------------------------------------------------- 5. record
def summarize(plan: dict[str, Any], steps: dict[str, Any], failed_tasks: list[str]) -> dict[str, Any]:
    """The ``rollback`` section: what failed, what was undone, whether it was verified."""
    undone, not_undone = [], []
    for step in ("traffic", "stack", "frontend"):
        if not plan["undo"].get(step):
            continue
        outcome = steps.get(step)
        (undone if outcome and outcome.get("status") == "done" else not_undone).append(step)
    verification = steps.get("verify") or {}
    verified = bool(verification.get("status") == "done" and verification.get("verified"))
    status = "rolled_back" if not not_undone and verified else "rollback_incomplete"
    return {
        "needed": plan["needed"],
        "status": status,
        "failed_tasks": failed_tasks,
        "undone": undone,
        "not_undone": not_undone,
        "verified": verified,
        "failed_checks": verification.get("failed_checks", []),
        "stable_colour": plan.get("stable_colour"),
        "previous_version": plan.get("previous_version"),
        "reasons": plan.get("reasons", []),
        "dynamodb_backups": plan.get("dynamodb_backups", []),
        "data": "no table was restored; items written during the release are kept; "
        "restore from the DynamoDB backups above by hand if data must go back",
        "steps": steps,
    }


def step_entry(ledger: Ledger, name: str) -> dict[str, Any] | None:
    return ledger.read(f"rollback.{name}")


# ------------------------------------------------------------- manual rollback
def find_backups(cfg: DeploymentConfig) -> list[dict[str, Any]]:
    """Every recorded ``backup`` section, newest first."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from deployment.hooks.aws import hook_for

    hook = hook_for(cfg, S3Hook)
    bucket = cfg.artifacts.bucket
    keys = hook.list_keys(bucket_name=bucket, prefix=f"{cfg.artifacts.prefix.strip('/')}/") or []
    backups = [json.loads(hook.read_key(k, bucket_name=bucket)) for k in keys if k.endswith("/backup.json")]
    return sorted(backups, key=lambda b: b.get("created_at", ""), reverse=True)


def default_target(cfg: DeploymentConfig, current: str | None) -> str:
    """The newest successful release in the ledger that is not the version deployed now."""
    from deployment.ledger import find_releases

    for release in find_releases(cfg, "succeeded"):
        if release.get("version") and release["version"] != current:
            return release["version"]
    raise RollbackError(
        f"the ledger has no successful release other than the deployed {current}; give target_version"
    )


def built_commit(cfg: DeploymentConfig, colour: Colour) -> str | None:
    """The commit ``colour``'s branch serves: the ``commitId`` of its newest SUCCEED job."""
    from deployment.aws.amplify import client

    jobs = (
        client(cfg)
        .list_jobs(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches[colour], maxResults=50)
        .get("jobSummaries", [])
    )
    succeeded = sorted((j for j in jobs if j["status"] == "SUCCEED"), key=lambda j: j["startTime"])
    return succeeded[-1].get("commitId") if succeeded else None


def recorded_build(cfg: DeploymentConfig, backup: dict[str, Any], version: str) -> dict[str, Any]:
    """The verified build of ``version`` that the backed-up template runs (the artifact contract)."""
    from deployment.aws.artifacts import ArtifactError, build_of_template

    template = load_backed_up_stack(cfg, backup)["template_body"]
    try:
        build = build_of_template(cfg, template, version)
    except ArtifactError as err:
        raise RollbackError(
            f"the backup {backup.get('backup_id')} of {version} is not its recorded build: {err}"
        ) from err
    kept = ("commit_sha", "version", "manifest_key", "manifest_sha256", "template_sha256")
    return {key: build[key] for key in kept}


def manual_plan(cfg: DeploymentConfig, target: str | None, reason: str, requested_by: str | None) -> dict:
    """The ``rollback.plan`` of a manual rollback to ``target`` (default: :func:`default_target`).

    Production goes back to the state a release's backup captured while ``target`` was
    live, on the colour that backup found live: the backed-up template must run
    ``target``'s verified build, and that colour's branch must still serve the build's
    commit. A version older than that (whose branch was rebuilt since) is refused:
    release it anew.
    """
    from deployment.aws.cloudformation import deployed_version
    from deployment.traffic.router import other

    current = deployed_version(cfg)
    target = target or default_target(cfg, current)
    backup = next((b for b in find_backups(cfg) if backup_version(cfg, b) == target), None)
    if backup is None:
        raise RollbackError(f"no recorded backup shows {target} live: nothing to restore it from")
    stable = backup_live_colour(backup)
    if stable is None:
        raise RollbackError(f"the backup {backup.get('backup_id')} names no live colour")
    build = recorded_build(cfg, backup, target)
    serving = built_commit(cfg, stable)
    if serving != build["commit_sha"]:
        raise RollbackError(
            f"the {stable} branch that served {target} now serves commit {serving}, not {target}'s build "
            f"{build['commit_sha']}: a rollback switches traffic, it does not rebuild; release {target} "
            "again through deploy_production instead"
        )
    return {
        "needed": True,
        "undo": {"traffic": True, "stack": True, "frontend": True},
        "reasons": [f"manual rollback to {target} requested by {requested_by or 'unknown'}: {reason}"],
        "stable_colour": stable,
        "idle_colour": other(stable),
        "backup": backup,
        "build": build,
        "previous_version": target,
        "rolled_back_version": current,
        "dynamodb_backups": dynamodb_backups(backup),
        "reason": reason,
        "requested_by": requested_by,
        "failed_tasks": [],
        "started_at": datetime.now(UTC).isoformat(),
    }


# ---------------------------------------------------------------- cancellation
def restore_after_cancel(
    cfg: DeploymentConfig,
    run_id: str,
    task_id: str,
    stable: Colour,
    *,
    split_only: bool = True,
    ledger: Ledger | None = None,
) -> dict | None:
    """A task (or its run) was marked failed by hand while traffic was moved: all of it back on ``stable``.

    Called from the watch trigger's ``on_kill``, which Airflow runs when a user acts on a
    deferred task (mark failed, clear, mark success), not on a triggerer restart: there nothing
    happens unless both colours carry traffic (``split_only``). The cancel listener
    (``deployment.rollback.cancel_listener``) restores whatever is not all on ``stable``. What was done goes
    to the ``cancellation`` section and the team channel (once per attempt).
    """
    from deployment.guards import current_attempt
    from deployment.ledger import find_run, now_iso
    from deployment.notifications.base import send_once
    from deployment.traffic import router_for
    from deployment.traffic.router import full

    current = router_for(cfg).weights()
    if (split_only and min(current.values()) == 0) or current == full(stable):
        return None
    traffic = restore_traffic(cfg, stable)
    ledger = ledger or find_run(cfg, run_id)  # find_run lists every record: callers that have it pass it
    section = {
        "task_id": task_id,
        "run_id": run_id,
        "stable_colour": stable,
        "weights_before": current,
        "traffic": traffic,
        "restored_at": now_iso(),
    }
    if ledger is None:
        log.warning("no record of run %s: traffic restored to %s, not recorded", run_id, stable)
        return section
    section["attempt"] = current_attempt(ledger)
    ledger.write("cancellation", section)

    def announce() -> dict[str, Any]:
        from deployment.notifications.announce import announce_team

        announce_team(
            cfg,
            f":rotating_light: {cfg.application} {ledger.version}: {task_id} was cancelled "
            f"while traffic was {current}; all traffic is back on {stable} "
            f"(run {run_id}).",
        )
        return {"colour": stable}

    try:
        send_once(ledger, f"cancellation.notice.a{section['attempt']}", announce)
    except Exception:  # the traffic is back, which is what matters; the notice failure is recorded
        log.exception("could not announce the cancellation")
    return section
