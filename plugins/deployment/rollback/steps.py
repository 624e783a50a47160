"""The rollback's other steps: traffic back on the stable colour first (seconds, before anything
slow), the idle Amplify branch's variables back and its running build stopped (the stable branch
is not rebuilt: it still serves the previous version), then the verification and the summary.
Each compares the world with the wanted state first and does nothing, saying so, when they agree."""

from __future__ import annotations

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
    load_backed_up_stack,
)
from deployment.rollback.stack import STACK_SETTLED_OK, stack_differences
from deployment.traffic.router import COLOURS

log = logging.getLogger(__name__)
# The rollback's restore steps, in order; each writes ``rollback.<step>`` (then ``rollback.verify``).
STEPS = ("traffic", "stack", "frontend")
AMPLIFY_IN_FLIGHT = {"CREATED", "PENDING", "PROVISIONING", "RUNNING"}


# ------------------------------------------------------------------- 1. traffic
def restore_traffic(
    cfg: DeploymentConfig, stable: Colour, *, api: dict[str, Any] | None = None, wait_seconds: float = 60
) -> dict[str, Any]:
    """Every viewer to ``stable`` at once, and with ``api`` (``ApiVersions.to_dict()``) the API's alias
    to ``stable``'s version alone, in the same change; waits (briefly) for it to be applied."""
    from deployment.traffic import router_for
    from deployment.traffic.api_alias import ApiVersions, serves_only
    from deployment.traffic.router import full

    versions = ApiVersions.from_dict(api) if api else None
    router = router_for(cfg, versions)
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
    alias = serves_only(cfg, versions, stable) if versions is not None else None
    if alias is not None and not alias["ok"]:
        raise RollbackError(
            f"the API alias serves {alias['state']} after restoring version {alias['version']}"
        )
    return {
        "before": before,
        "after": after,
        "api": alias,
        "change_id": change.change_id if change else None,
        "changed": change is not None,
        "insync": insync,
        "routing_change": change.to_dict() if change else None,
        "restored_at": datetime.now(UTC).isoformat(),
    }


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
    api: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check production is back: traffic (and with ``api``, the API alias on the stable colour's
    version alone), stack = backup, smoke tests on the stable colour, metrics (``ignore_alarms`` as
    in :func:`metrics_health`)."""
    from deployment.aws import cloudformation as cf
    from deployment.checks.smoke import run_smoke_checks
    from deployment.traffic import router_for
    from deployment.traffic.router import full

    checks: dict[str, Any] = {}
    if stable in COLOURS:
        current = router_for(cfg).weights()
        checks["traffic"] = {"ok": current == full(stable), "weights": current}
        if api:
            from deployment.traffic.api_alias import ApiVersions, serves_only

            checks["api_alias"] = serves_only(cfg, ApiVersions.from_dict(api), stable)
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
