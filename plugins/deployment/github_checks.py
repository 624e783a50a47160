"""The two GitHub checks of pre-deployment validation.

``gh release view rc-X.Y.Z`` and ``gh run list --workflow=deploy-staging.yml``,
done with the provider's ``GithubHook`` (PyGithub). Each returns a result dict
``{check, ok, detail, ...}``; a GitHub error is a failed check that says so,
never an exception that hides which check could not be made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from github import GithubException

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


def rc_tag(cfg: DeploymentConfig, version: str) -> str:
    """``v1.2.3`` → ``rc-1.2.3`` (with the configured prefix)."""
    return f"{cfg.github.rc_tag_prefix}{version.removeprefix('v')}"


def _repository(cfg: DeploymentConfig) -> Any:
    from airflow.providers.github.hooks.github import GithubHook

    return GithubHook(github_conn_id=cfg.connections.github).get_conn().get_repo(cfg.github.repository)


def _github_error(err: GithubException) -> str:
    message = err.data.get("message") if isinstance(err.data, dict) else err.data
    return f"HTTP {err.status} {message or ''}".strip()


def check_rc_release(cfg: DeploymentConfig, version: str) -> dict[str, Any]:
    """The staging release ``rc-X.Y.Z`` for ``version`` exists on GitHub."""
    tag = rc_tag(cfg, version)
    result: dict[str, Any] = {"check": "rc_release", "tag": tag, "repository": cfg.github.repository}
    try:
        release = _repository(cfg).get_release(tag)
    except GithubException as err:
        if err.status == 404:
            detail = (
                f"no GitHub release {tag!r} in {cfg.github.repository}: "
                f"{version} was never released to staging"
            )
        else:
            detail = f"could not read GitHub release {tag!r} of {cfg.github.repository}: {_github_error(err)}"
        return {**result, "ok": False, "detail": detail}
    return {
        **result,
        "ok": True,
        "release_id": release.id,
        "name": release.title,
        "prerelease": release.prerelease,
        "draft": release.draft,
        "html_url": release.html_url,
        "detail": f"GitHub release {tag!r} exists ({release.html_url})",
    }


def check_staging_workflow(cfg: DeploymentConfig, commit_sha: str) -> dict[str, Any]:
    """The latest run of the staging workflow for ``commit_sha`` completed with ``success``."""
    workflow = cfg.github.staging_workflow
    result: dict[str, Any] = {"check": "staging_workflow", "workflow": workflow, "commit_sha": commit_sha}
    try:
        runs = _repository(cfg).get_workflow(workflow).get_runs(head_sha=commit_sha)
        latest = next(iter(runs), None)
    except GithubException as err:
        detail = f"could not list runs of {workflow} for commit {commit_sha}: {_github_error(err)}"
        return {**result, "ok": False, "detail": detail}
    if latest is None:
        return {**result, "ok": False, "detail": f"no run of {workflow} for commit {commit_sha}"}
    run = {
        "run_id": latest.id,
        "run_number": latest.run_number,
        "status": latest.status,
        "conclusion": latest.conclusion,
        "html_url": latest.html_url,
    }
    label = f"the latest run of {workflow} for commit {commit_sha} (#{latest.run_number}, {latest.html_url})"
    if latest.status != "completed":
        return {**result, **run, "ok": False, "detail": f"{label} has not completed: {latest.status!r}"}
    if latest.conclusion != "success":
        return {
            **result,
            **run,
            "ok": False,
            "detail": f"{label} concluded {latest.conclusion!r}, not success",
        }
    return {**result, **run, "ok": True, "detail": f"{label} concluded 'success'"}
