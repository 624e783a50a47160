"""The manual rollback's plan (``rollback_production``): the backup a release took while the target
version was live, and the build that version ran, checked against what its colour serves now."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig

from deployment.backup.restore_point import (
    RollbackError,
    backup_live_colour,
    backup_version,
    dynamodb_backups,
    load_backed_up_stack,
)


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
    from deployment.traffic.api_alias import backup_state, rollback_versions
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
        "api": rollback_versions(cfg, backup, stable, {"new": (backup_state(cfg) or {}).get("version")}),
        "build": build,
        "previous_version": target,
        "rolled_back_version": current,
        "dynamodb_backups": dynamodb_backups(backup),
        "reason": reason,
        "requested_by": requested_by,
        "failed_tasks": [],
        "started_at": datetime.now(UTC).isoformat(),
    }
