"""Phase 3: the recovery point taken before anything changes.

Every step is keyed by the run (``backup_id``) and looks before it creates, so a
rerun reuses what an earlier attempt of the same run made: the stack snapshot in
the record is never overwritten, a DynamoDB backup of that name is found instead
of taken twice, tags are set to the same values again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

STABLE_STACK_STATUSES = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
TAG_PREFIX = "release:"
MAX_BACKUP_NAME = 255


class BackupError(RuntimeError):
    """A backup that could not be taken, naming the resource at fault."""


def backup_id(version: str, run_id: str) -> str:
    """``release-<version>-<run key>``, within DynamoDB's backup-name rules (``[A-Za-z0-9_.-]``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"release-{version}-{run_id}")
    if len(name) > MAX_BACKUP_NAME:
        digest = hashlib.sha1(run_id.encode()).hexdigest()[:12]
        name = f"{name[: MAX_BACKUP_NAME - 13]}-{digest}"
    return name


def _poll(cfg: DeploymentConfig) -> float:
    return float(cfg.timings.status_poll_seconds)


# ------------------------------------------------------------------ CloudFormation
def backup_stack(cfg: DeploymentConfig, ledger: Ledger) -> dict[str, Any]:
    """The live stack's template, parameters and outputs, copied into the record once per run."""
    existing = ledger.read("backup-stack")
    if existing is not None:
        return {**existing, "uri": ledger.uri("backup-stack"), "reused": True}
    from deployment.aws.cloudformation import live_stack

    live = live_stack(cfg)
    if live["status"] not in STABLE_STACK_STATUSES:
        raise BackupError(
            f"stack {cfg.stack.name} is {live['status']}; "
            f"a backup needs one of {sorted(STABLE_STACK_STATUSES)}"
        )
    from deployment.traffic.api_alias import backup_state

    body = live.pop("template_body")
    suffix = "json" if body.lstrip().startswith("{") else "yaml"
    snapshot = {
        **live,
        "stack_name": cfg.stack.name,
        "version": live["parameters"].get(cfg.stack.version_parameter),
        # the API alias the release starts from: what a rollback puts back (traffic.api_alias)
        "api_alias": backup_state(cfg),
        "template_uri": ledger.write_text("backup-template", body, suffix),
        "template_key": ledger.key("backup-template", suffix),
        "captured_at": _now(),
    }
    snapshot["uri"] = ledger.write("backup-stack", snapshot)
    return {**snapshot, "reused": False}


# ------------------------------------------------------------------------ DynamoDB
def _dynamodb(cfg: DeploymentConfig) -> Any:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from deployment.hooks.aws import hook_for

    return hook_for(cfg, AwsBaseHook, client_type="dynamodb").conn


def _find_backup(ddb: Any, table: str, name: str) -> str | None:
    for page in ddb.get_paginator("list_backups").paginate(TableName=table, BackupType="USER"):
        for summary in page.get("BackupSummaries", []):
            if summary["BackupName"] == name and summary.get("BackupStatus") != "DELETED":
                return summary["BackupArn"]
    return None


def _wait_available(ddb: Any, table: str, arn: str, timeout: float, poll: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        details = ddb.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]
        status = details["BackupStatus"]
        if status == "AVAILABLE":
            return details
        if status == "DELETED":
            raise BackupError(f"the backup {arn} of table {table} was deleted before it became AVAILABLE")
        if time.monotonic() > deadline:
            raise BackupError(f"the backup {arn} of table {table} is still {status} after {timeout:.0f} s")
        time.sleep(poll)


def backup_tables(
    cfg: DeploymentConfig, version: str, run_id: str, *, timeout: float | None = None
) -> list[dict[str, Any]]:
    """An on-demand backup of every configured table, named by the run, each waited to AVAILABLE."""
    ddb = _dynamodb(cfg)
    name = backup_id(version, run_id)
    timeout = timeout if timeout is not None else cfg.timings.stack_timeout_seconds
    results = []
    for table in cfg.dynamodb.tables:
        arn = _find_backup(ddb, table, name)
        reused = arn is not None
        if arn is None:
            try:
                arn = ddb.create_backup(TableName=table, BackupName=name)["BackupDetails"]["BackupArn"]
            except ddb.exceptions.TableNotFoundException:
                raise BackupError(f"DynamoDB table {table!r} (dynamodb.tables) does not exist") from None
        details = _wait_available(ddb, table, arn, timeout, _poll(cfg))
        results.append(
            {
                "table": table,
                "backup_name": name,
                "backup_arn": arn,
                "status": details["BackupStatus"],
                "size_bytes": details.get("BackupSizeBytes"),
                "created_at": str(details.get("BackupCreationDateTime")),
                "reused": reused,
            }
        )
    return results


# ------------------------------------------------------------------------- Amplify
def latest_succeeded_job(amplify: Any, app_id: str, branch: str) -> dict[str, Any] | None:
    """The branch's newest SUCCEED job: the build it serves."""
    pages = amplify.get_paginator("list_jobs").paginate(
        appId=app_id, branchName=branch, PaginationConfig={"PageSize": 50}
    )
    best = None
    for page in pages:
        for job in page.get("jobSummaries", []):
            if job["status"] == "SUCCEED" and (best is None or job["startTime"] > best["startTime"]):
                best = job
    return best


ENVIRONMENTS_PREFIX = "backups/amplify-environments"


def environments_key(cfg: DeploymentConfig, version: str, record_key: str) -> str:
    """Where a run's backed-up branch variables are kept: beside the record, never inside it
    (the record's prefix is read by the Deployments view and by anyone auditing releases)."""
    return f"{ENVIRONMENTS_PREFIX}/{version}/{record_key}.json"


def store_environments(
    cfg: DeploymentConfig, version: str, record_key: str, environments: dict[str, dict[str, str]]
) -> tuple[dict[str, Any], dict[str, dict[str, str]], str]:
    """Keep the branches' variables, values included, in one SSE-KMS object of the artifacts bucket,
    with the run's key for the record's hashes of them (``amplify.variable_hashes``).

    Written once per run: when the object exists (an earlier try of this run wrote it before any
    change), it is kept and its values and key are returned instead. Returns where it is
    (bucket, key, S3 version id, encryption), the environments it holds and the hash key.
    """
    import secrets

    from deployment.aws.artifacts import s3_client

    s3 = s3_client(cfg)
    bucket, key = cfg.artifacts.bucket, environments_key(cfg, version, record_key)
    try:
        found = s3.get_object(Bucket=bucket, Key=key)
        stored = json.loads(found["Body"].read())
        environments = {c: dict(entry["environment_variables"]) for c, entry in stored["branches"].items()}
        hash_key = stored["hmac_key"]
        response = found
    except s3.exceptions.NoSuchKey:
        hash_key = secrets.token_hex(32)
        body = {
            "schema": 2,
            "version": version,
            "record": record_key,
            "hmac_key": hash_key,
            "branches": {
                c: {"branch": cfg.amplify.branches[c], "environment_variables": env}
                for c, env in environments.items()
            },
        }
        kms = {"SSEKMSKeyId": cfg.amplify.variables_kms_key_id} if cfg.amplify.variables_kms_key_id else {}
        response = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(body, sort_keys=True).encode(),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            **kms,
        )
    where = {
        "bucket": bucket,
        "key": key,
        "version_id": response.get("VersionId"),
        "server_side_encryption": response.get("ServerSideEncryption"),
        "kms_key_id": response.get("SSEKMSKeyId"),
    }
    return where, environments, hash_key


def tag_live_amplify(
    cfg: DeploymentConfig, version: str, run_id: str, ledger: Ledger | None = None
) -> dict[str, Any]:
    """Tag the live colour's branch with the release, the backup id and its last good job.

    With ``ledger``, what was found is kept as ``backup-amplify`` and a rerun returns it
    unchanged: after traffic moved, the live colour is no longer the one to go back to.
    """
    existing = ledger.read("backup-amplify") if ledger is not None else None
    if existing is not None:
        return {**existing, "reused": True}
    from deployment.aws.amplify import variable_hashes
    from deployment.hooks.aws import AmplifyHook, hook_for
    from deployment.traffic import router_for

    colour = router_for(cfg).live_colour()
    branch_name = cfg.amplify.branches[colour]
    amplify = hook_for(cfg, AmplifyHook).conn
    branch = amplify.get_branch(appId=cfg.amplify.app_id, branchName=branch_name)["branch"]
    job = latest_succeeded_job(amplify, cfg.amplify.app_id, branch_name)
    if job is None:
        raise BackupError(
            f"the live {colour} branch {branch_name} of Amplify app {cfg.amplify.app_id} has no SUCCEED job"
        )
    served = (branch.get("environmentVariables") or {}).get(cfg.amplify.version_variable)
    # Both branches' environments, so that a rollback can put the idle one back as it was:
    # the values in an SSE-KMS object outside the record, the record names and keyed hashes only.
    environments = {
        c: dict(
            amplify.get_branch(appId=cfg.amplify.app_id, branchName=name)["branch"].get(
                "environmentVariables"
            )
            or {}
        )
        for c, name in cfg.amplify.branches.items()
    }
    from deployment.ledger import run_key

    record_key = ledger.run_key if ledger is not None else run_key(run_id)
    where, environments, hash_key = store_environments(cfg, version, record_key, environments)
    branches = {
        c: {
            "branch": name,
            "variables": sorted(environments.get(c, {})),
            "variable_hmac_sha256": variable_hashes(environments.get(c, {}), hash_key),
        }
        for c, name in cfg.amplify.branches.items()
    }
    tags = {
        f"{TAG_PREFIX}backup-id": backup_id(version, record_key),
        f"{TAG_PREFIX}backup-for": version,
        f"{TAG_PREFIX}live-job": job["jobId"],
        f"{TAG_PREFIX}live-version": served or "unknown",
    }
    amplify.tag_resource(resourceArn=branch["branchArn"], tags=tags)
    found = {
        "colour": colour,
        "branch": branch_name,
        "branch_arn": branch["branchArn"],
        "job_id": job["jobId"],
        "job_arn": job["jobArn"],
        "served_version": served,
        "branches": branches,
        "environment_object": where,
        "tags": tags,
    }
    if ledger is not None:
        ledger.write("backup-amplify", found)
    return found


# ------------------------------------------------------------------------ manifest
def write_manifest(
    cfg: DeploymentConfig,
    ledger: Ledger,
    *,
    stack: dict[str, Any],
    tables: list[dict[str, Any]],
    amplify: dict[str, Any],
) -> dict[str, Any]:
    """The ``backup`` section: where every part of the recovery point is; written once per release.

    A rerun returns the section already written: it describes production before any
    change, which a rerun after the release moved traffic or updated the stack cannot see.
    """
    existing = ledger.read("backup") or {}
    if existing.get("backup_id"):
        return {**existing, "reused": True}
    manifest = {
        "backup_id": backup_id(ledger.version, ledger.run_key),
        "version": ledger.version,
        "run_id": ledger.run_id,
        "created_at": _now(),
        "previous_version": stack.get("version"),
        "stack": {
            "name": cfg.stack.name,
            "status": stack["status"],
            "template_uri": stack["template_uri"],
            "template_key": stack["template_key"],
            "snapshot_uri": stack["uri"],
            "parameters": stack["parameters"],
            "outputs": stack["outputs"],
        },
        "dynamodb": [{k: t[k] for k in ("table", "backup_name", "backup_arn", "status")} for t in tables],
        "amplify": {
            k: amplify[k]
            for k in (
                "colour",
                "branch",
                "branch_arn",
                "job_id",
                "job_arn",
                "served_version",
                "branches",
                "environment_object",
            )
            if k in amplify
        },
    }
    manifest["uri"] = ledger.write("backup", manifest)
    return manifest


def _now() -> str:
    from deployment.ledger import now_iso

    return now_iso()
