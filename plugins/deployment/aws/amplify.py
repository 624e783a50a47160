"""The frontend release on the idle Amplify branch: environment variables, then a RELEASE job.

Idempotent: the variables are only written when they differ, and the job is
marked with the version and run (its ``commitMessage``), so a rerun finds the
job it started instead of starting another. A failed or cancelled job is not
reused: rerunning the task is how an operator retries the build.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from deployment.hooks.aws import AmplifyHook, hook_for

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig

IN_FLIGHT = frozenset({"CREATED", "PENDING", "PROVISIONING", "RUNNING"})
FAILED = frozenset({"FAILED", "CANCELLING", "CANCELLED"})
SUCCEEDED = "SUCCEED"


def client(cfg: DeploymentConfig) -> Any:
    return hook_for(cfg, AmplifyHook).conn


def release_marker(version: str, run_key: str) -> str:
    """The ``commitMessage`` that ties a RELEASE job to this version and run."""
    return f"deployment {version} run {run_key}"


def variable_hashes(env: dict[str, str], key: str) -> dict[str, str]:
    """``{name: HMAC-SHA256 of its value under the hex ``key``}``: what the record keeps of branch
    variables. Keyed, because a plain hash of a short secret is found by hashing guesses; the
    key is kept with the values, outside the record (``backup.store_environments``)."""
    secret = bytes.fromhex(key)
    return {
        name: hmac.new(secret, str(value).encode(), hashlib.sha256).hexdigest()
        for name, value in sorted(env.items())
    }


def release_environment(cfg: DeploymentConfig, current: dict[str, str], version: str) -> dict[str, str]:
    """The branch's variables with the release's own set over them (others are kept)."""
    return {**current, **cfg.amplify.environment_variables, cfg.amplify.version_variable: version}


def prepare_branch(cfg: DeploymentConfig, colour: Colour, version: str, amplify: Any | None = None) -> dict:
    """Set the release's environment variables on ``colour``'s branch; a no-op when already set."""
    amplify = amplify or client(cfg)
    branch = cfg.amplify.branches[colour]
    current = amplify.get_branch(appId=cfg.amplify.app_id, branchName=branch)["branch"]
    env = dict(current.get("environmentVariables") or {})
    wanted = release_environment(cfg, env, version)
    changed = wanted != env
    if changed:
        amplify.update_branch(appId=cfg.amplify.app_id, branchName=branch, environmentVariables=wanted)
    # Names only: this goes to the record and to XCom (the values set are the config's and the version).
    return {
        "colour": colour,
        "branch": branch,
        "version_variable": cfg.amplify.version_variable,
        "variables_set": sorted({*cfg.amplify.environment_variables, cfg.amplify.version_variable}),
        "changed": changed,
    }


class WrongCommit(RuntimeError):
    """An Amplify job that builds another commit than the release's."""


def find_release_job(cfg: DeploymentConfig, branch: str, marker: str, amplify: Any) -> dict | None:
    """The newest job on ``branch`` carrying ``marker`` that is running or succeeded."""
    pages = amplify.get_paginator("list_jobs").paginate(
        appId=cfg.amplify.app_id, branchName=branch, PaginationConfig={"PageSize": 50}
    )
    for page in pages:
        for job in page.get("jobSummaries", []):  # newest first
            if (
                job.get("commitMessage") == marker
                and job["jobType"] == "RELEASE"
                and job["status"] not in FAILED
            ):
                return job
    return None


def start_release(
    cfg: DeploymentConfig,
    colour: Colour,
    version: str,
    run_key: str,
    commit_sha: str,
    amplify: Any | None = None,
) -> dict:
    """Start (or find, when this run already started it) the RELEASE job of ``version`` on ``colour``.

    The job builds ``commit_sha`` (StartJob's ``commitId``), not whatever the branch's head
    is; the commit Amplify reports for the job is checked (:func:`job_commit`).
    """
    amplify = amplify or client(cfg)
    branch = cfg.amplify.branches[colour]
    marker = release_marker(version, run_key)
    existing = find_release_job(cfg, branch, marker, amplify)
    if existing:
        summary, started = existing, False
    else:
        summary = amplify.start_job(
            appId=cfg.amplify.app_id,
            branchName=branch,
            jobType="RELEASE",
            jobReason=f"release {version}"[:255],
            commitId=commit_sha,
            commitMessage=marker,
        )["jobSummary"]
        started = True
    job = {
        "job_id": summary["jobId"],
        "job_arn": summary.get("jobArn"),
        "branch": branch,
        "status": summary["status"],
        "started": started,
        "commit_id": job_commit(amplify, cfg.amplify.app_id, branch, summary["jobId"], commit_sha),
    }
    return job


def job_commit(amplify: Any, app_id: str, branch: str, job_id: str, commit_sha: str) -> str:
    """The commit Amplify says job ``job_id`` builds (GetJob); raises unless it is ``commit_sha``."""
    commit = amplify.get_job(appId=app_id, branchName=branch, jobId=job_id)["job"]["summary"].get("commitId")
    if commit != commit_sha:
        raise WrongCommit(
            f"Amplify job {job_id} on {branch} builds commit {commit}, not the release's {commit_sha}"
        )
    return commit


def job_state(amplify: Any, app_id: str, branch: str, job_id: str) -> tuple[str, str]:
    """A job's status and, when it failed, the reasons its steps give."""
    job = amplify.get_job(appId=app_id, branchName=branch, jobId=job_id)["job"]
    status = job["summary"]["status"]
    reasons = [
        f"{step['stepName']}: {step.get('statusReason') or step['status']}"
        for step in job.get("steps", [])
        if step.get("status") in FAILED
    ]
    return status, "; ".join(reasons) or f"job {job_id} ended {status}"
